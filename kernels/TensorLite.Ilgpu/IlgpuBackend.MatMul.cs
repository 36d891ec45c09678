using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Ilgpu;

// MatMul over the kernels in GemmKernels.cs: float32, bfloat16 and float16 operands in any mix, float32
// accumulation, c in any of the three (rounded to nearest even once when it is a half format).
public sealed partial class IlgpuBackend
{
    private readonly GemmKernelSet _gemm;

    /// <summary>The GEMM kernel delegates, loaded once when the backend is created.</summary>
    private sealed class GemmKernelSet(Accelerator a)
    {
        /// <summary>Tensor cores usable: a CUDA device of compute capability 8.0 or newer.</summary>
        public readonly bool HasTensorCores = a is CudaAccelerator { Architecture: { Major: >= 8 } };

        public readonly Action<Index3D, GemmOperand, GemmOperand, GemmOperand, GemmParams> Naive =
            a.LoadElementwiseKernel<Index3D, GemmOperand, GemmOperand, GemmOperand, GemmParams>(GemmKernels.GemmNaive);

        public readonly Action<KernelConfig, GemmOperand, GemmOperand, GemmOperand, GemmParams> Blocked =
            a.LoadStreamKernel<GemmOperand, GemmOperand, GemmOperand, GemmParams>(GemmKernels.GemmBlocked);

        /// <summary>Null on a CUDA device older than sm_80, whose PTX assembler rejects bf16 mma.sync; loaded on the
        /// CPU accelerator for the emulated path.</summary>
        public readonly Action<KernelConfig, ArrayView<ushort>, ArrayView<ushort>, GemmOperand, GemmParams, int>? TensorCore =
            a.AcceleratorType == AcceleratorType.CPU || a is CudaAccelerator { Architecture: { Major: >= 8 } }
                ? a.LoadStreamKernel<ArrayView<ushort>, ArrayView<ushort>, GemmOperand, GemmParams, int>(GemmKernels.GemmTensorCore)
                : null;
    }

    /// <summary>Problems with m·n·k at most this use the one-thread-per-output GEMM instead of a block-tiled one.</summary>
    public long NaiveGemmMaxWork { get; set; } = 4096;

    /// <summary>bf16×bf16 and f16×f16 products run on tensor cores (mma.sync) when true: set on a CUDA device of
    /// compute capability ≥ 8.0, false elsewhere.</summary>
    public bool UsesTensorCores => _gemm.HasTensorCores || _emulateTensorCores;

    private bool _emulateTensorCores;

    /// <summary>
    /// Tests only: route bf16×bf16 and f16×f16 products through the tensor-core kernel on the CPU accelerator, where
    /// its fragment logic runs the emulation of mma.sync (<see cref="GemmKernels.GemmTensorCore"/>).
    /// </summary>
    internal void EmulateTensorCores()
    {
        if (Kind != DeviceKind.Cpu || _accelerator.MaxNumThreadsPerGroup < GemmKernels.MmaThreads)
            throw new InvalidOperationException($"Tensor-core emulation needs the CPU accelerator with groups of {GemmKernels.MmaThreads} threads.");
        GroupThreadsLimit = Math.Max(GroupThreadsLimit, GemmKernels.MmaThreads);   // its fragment layout needs whole warps of 32
        _emulateTensorCores = true;
    }

    /// <summary>Which kernel <see cref="MatMul"/> would launch for these operands (tests and diagnostics).</summary>
    internal string GemmKernelFor(Tensor a, Tensor b, Tensor c)
    {
        int rank = c.Rank;
        long work = (long)c.Shape[rank - 2] * c.Shape[rank - 1] * a.Shape[rank - 1];
        long batch = 1;
        for (int i = 0; i < rank - 2; i++) batch *= c.Shape[i];
        // The naive kernel puts the batch on the grid's z axis, which CUDA caps at 65535; the block kernels loop.
        if (work <= NaiveGemmMaxWork && batch <= MaxGridZ) return nameof(GemmKernels.GemmNaive);
        return TensorCoreFormat(a, b) >= 0 ? nameof(GemmKernels.GemmTensorCore) : nameof(GemmKernels.GemmBlocked);
    }

    /// <summary>0 (bf16) or 1 (f16) when the tensor-core kernel takes this pair of operands, else -1.</summary>
    private int TensorCoreFormat(Tensor a, Tensor b)
    {
        if (!UsesTensorCores || _gemm.TensorCore is null || a.DType != b.DType) return -1;
        return a.DType switch { DType.BFloat16 => 0, DType.Float16 => 1, _ => -1 };
    }

    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta)
    {
        RequireGemmDType(a, nameof(a));
        RequireGemmDType(b, nameof(b));
        RequireGemmDType(c, nameof(c));
        int rank = c.Rank;
        int m = c.Shape[rank - 2], n = c.Shape[rank - 1], k = a.Shape[rank - 1];
        int batchRank = rank - 2, batch = 1;
        for (int i = 0; i < batchRank; i++) batch *= c.Shape[i];
        if (m == 0 || n == 0 || batch == 0) return;
        var p = new GemmParams
        {
            M = m, N = n, K = k,
            ARow = a.Strides[rank - 2], ACol = a.Strides[rank - 1],
            BRow = b.Strides[rank - 2], BCol = b.Strides[rank - 1],
            CRow = c.Strides[rank - 2], CCol = c.Strides[rank - 1],
            Alpha = alpha, Beta = beta,
            BatchCount = batch,
            Batch = StridedLayout.Create(c.Shape[..batchRank], a.Strides[..batchRank], b.Strides[..batchRank], c.Strides[..batchRank]),
        };
        var co = Operand(c);
        switch (GemmKernelFor(a, b, c))
        {
            case nameof(GemmKernels.GemmNaive):
                _gemm.Naive(new Index3D(n, m, batch), Operand(a), Operand(b), co, p);
                break;
            case nameof(GemmKernels.GemmTensorCore):
                _gemm.TensorCore!(BlockLaunch(m, n, batch, GemmKernels.MmaBlockTile, new Index3D(GemmKernels.MmaThreads, 1, 1)),
                    View<ushort>(a), View<ushort>(b), co, p, TensorCoreFormat(a, b));
                break;
            default:
                int side = BlockedGemmSide();
                _gemm.Blocked(BlockLaunch(m, n, batch, GemmKernels.MicroTileSide * side, new Index3D(side, side, 1)), Operand(a), Operand(b), co, p);
                break;
        }
    }

    /// <summary>Threads along each side of a <see cref="GemmKernels.GemmBlocked"/> group: 16 on CUDA, fewer when
    /// <see cref="GroupThreadsLimit"/> is smaller (a side·4 square block of c per group).</summary>
    private int BlockedGemmSide()
    {
        int side = GemmKernels.BlockThreads;
        while (side * side > GroupThreadsLimit) side /= 2;
        return side;
    }

    /// <summary>One group per tile × tile block of c; the batch goes to z, capped at CUDA's 65535 (groups loop over
    /// the rest).</summary>
    private KernelConfig BlockLaunch(int m, int n, int batch, int tile, Index3D group) =>
        new(new Index3D((n + tile - 1) / tile, (m + tile - 1) / tile, Math.Min(batch, MaxGridZ)), group);

    /// <summary>Most groups along the grid's z axis (CUDA's limit); tests lower it to exercise the batch loop.</summary>
    internal int MaxGridZ { get; set; } = 65535;

    private GemmOperand Operand(Tensor t) => t.DType switch
    {
        DType.Float32 => new GemmOperand { F32 = View<float>(t), Half = ArrayView<ushort>.Empty, Format = GemmOperand.Float32 },
        DType.BFloat16 => new GemmOperand { F32 = ArrayView<float>.Empty, Half = View<ushort>(t), Format = GemmOperand.BFloat16 },
        _ => new GemmOperand { F32 = ArrayView<float>.Empty, Half = View<ushort>(t), Format = GemmOperand.Float16 },
    };

    private static void RequireGemmDType(Tensor t, string name)
    {
        if (t.DType is not (DType.Float32 or DType.BFloat16 or DType.Float16))
            throw new ArgumentException($"GEMM operand {name} must be float32, bfloat16 or float16, got {t.DType.Name()}.", name);
    }
}
