using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

// The optimizer members of IBackend.Optim.cs over the kernels in OptimKernels.cs: fused AdamW for float32, bfloat16
// and float16 parameters and Σ x², plus the kernel set and helpers that IlgpuBackend.Projected.cs (the Adam direction,
// the projected optimizers' parameter update) and IlgpuBackend.Quantized.cs (the block-wise 8-bit states) share.
// Inputs are contiguous, as the contracts require.
public sealed partial class IlgpuBackend
{
    private readonly OptimKernelSet _optim;

    /// <summary>The optimizer kernel delegates, loaded once when the backend is created, and two small device buffers:
    /// the 8-bit code tables (written once) and the sum-of-squares partials.</summary>
    private sealed class OptimKernelSet(Accelerator a)
    {
        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, AdamKernelParams, ParamUpdateFormat> AdamW =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, AdamKernelParams, ParamUpdateFormat>(IlgpuKernels.AdamW);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamKernelParams> AdamDirection =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamKernelParams>(IlgpuKernels.AdamDirection);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, ParamUpdateFormat, float, float> ApplyUpdate =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, ParamUpdateFormat, float, float>(IlgpuKernels.ApplyUpdate);

        public readonly Action<KernelConfig, ArrayView<byte>, int, int, ArrayView<double>> SumOfSquaresPartials =
            a.LoadStreamKernel<ArrayView<byte>, int, int, ArrayView<double>>(IlgpuKernels.SumOfSquaresPartials);

        public readonly Action<KernelConfig, ArrayView<double>, int, ArrayView<double>> SumPartials =
            a.LoadStreamKernel<ArrayView<double>, int, ArrayView<double>>(IlgpuKernels.SumPartials);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<float>, int, int, ArrayView<float>, int> Quantize =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, ArrayView<float>, int, int, ArrayView<float>, int>(IlgpuKernels.QuantizeBlocks);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, ArrayView<float>, int> Dequantize =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, ArrayView<float>, int>(IlgpuKernels.DequantizeBlocks);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, AdamKernelParams, ArrayView<float>> Adam8bit =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, AdamKernelParams, ArrayView<float>>(IlgpuKernels.AdamBlocks8bit);

        /// <summary>Both code maps and their midpoints (<see cref="TensorLite.Ilgpu.CodeTables"/>).</summary>
        public readonly MemoryBuffer1D<float, Stride1D.Dense> CodeTables = a.Allocate1D(TensorLite.Ilgpu.CodeTables.Build());

        /// <summary><see cref="IlgpuKernels.MaxSumPartials"/> partial sums, then the total. Shared by every call: launches run
        /// in order on the one stream and the total is read back before the next call can start.</summary>
        public readonly MemoryBuffer1D<double, Stride1D.Dense> SumScratch = a.Allocate1D<double>(IlgpuKernels.MaxSumPartials + 1);

        public ArrayView<float> Tables => CodeTables.View;
    }

    /// <summary>Groups of the first sum-of-squares stage at most (1 … <see cref="IlgpuKernels.MaxSumPartials"/>); with more
    /// elements than their threads, each thread strides through several. Settable so tests reach that case cheaply.</summary>
    public int SumOfSquaresMaxGroups
    {
        get => _sumOfSquaresMaxGroups;
        set => _sumOfSquaresMaxGroups = value is >= 1 and <= IlgpuKernels.MaxSumPartials
            ? value : throw new ArgumentOutOfRangeException(nameof(value), $"1 … {IlgpuKernels.MaxSumPartials} groups.");
    }

    private int _sumOfSquaresMaxGroups = IlgpuKernels.MaxSumPartials;

    private KernelConfig OptimGroups(int groups) => new(new Index1D(groups), new Index1D(GroupThreads(IlgpuKernels.OptimGroupSize)));

    /// <summary>The kernel constants of an Adam step, computed as the CPU backend computes them.</summary>
    private static AdamKernelParams AdamParams(AdamWStepParams h) => new()
    {
        Beta1 = h.Beta1, Beta2 = h.Beta2, OneMinusBeta1 = 1f - h.Beta1, OneMinusBeta2 = 1f - h.Beta2,
        Decay = 1f - h.LearningRate * h.WeightDecay, StepSize = h.LearningRate / h.BiasCorrection1,
        InvBc1 = 1f / h.BiasCorrection1, InvSqrtBc2 = 1f / MathF.Sqrt(h.BiasCorrection2), Eps = h.Eps,
    };

    private static int FormatOf(Tensor t, string op) => t.DType switch
    {
        DType.Float32 => FloatFormat.Float32,
        DType.BFloat16 => FloatFormat.BFloat16,
        DType.Float16 => FloatFormat.Float16,
        _ => throw new DTypeMismatchException($"{op}: the ILGPU kernel reads float32, bfloat16 or float16, got {t.Describe()}."),
    };

    /// <summary>Formats of a parameter and its operand; stochastic rounding applies to bfloat16 parameters only (float16
    /// is always rounded to nearest, as on the CPU backend).</summary>
    private static ParamUpdateFormat UpdateFormat(Tensor param, Tensor operand, ParamRounding rounding, string op) => new()
    {
        Param = FormatOf(param, op),
        Operand = FormatOf(operand, op),
        Stochastic = rounding.Mode == ParamRoundingMode.Stochastic && param.DType == DType.BFloat16 ? 1 : 0,
        Key0 = (uint)rounding.Seed,
        Key1 = (uint)(rounding.Seed >> 32),
        FirstIndex = unchecked((uint)rounding.FirstIndex),
    };

    private static void RequireFloat32Operands(string op, Tensor[] tensors)
    {
        foreach (var t in tensors)
            if (t.DType != DType.Float32)
                throw new DTypeMismatchException($"{op} reads and writes float32 tensors, got {t.Describe()}.");
    }

    // ---- AdamW --------------------------------------------------------------------------------------

    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h)
    {
        if (m.DType != DType.Float32 || v.DType != DType.Float32)
            throw new DTypeMismatchException($"AdamW moments must be float32, got {m.Describe()} and {v.Describe()}.");
        var format = UpdateFormat(param, grad, h.Rounding, "adamw");
        if (param.Numel == 0) return;
        _optim.AdamW(param.Numel, Bytes(param), Bytes(grad), View<float>(m), View<float>(v), AdamParams(h), format);
    }

    // ---- Σ x² ---------------------------------------------------------------------------------------

    /// <summary>Two launches (per-group partials, then one group adds them) and one read-back of the double total.</summary>
    public double SumOfSquares(Tensor x)
    {
        int format = FormatOf(x, "sum_of_squares");
        int n = x.Numel;
        if (n == 0) return 0;
        int perGroup = GroupThreads(IlgpuKernels.OptimGroupSize) * IlgpuKernels.SumElementsPerThread;
        int groups = (int)Math.Min((n + (long)perGroup - 1) / perGroup, SumOfSquaresMaxGroups);
        var scratch = _optim.SumScratch.View.AsContiguous();
        var partials = scratch.SubView(0, IlgpuKernels.MaxSumPartials);
        var total = scratch.SubView(IlgpuKernels.MaxSumPartials, 1);
        _optim.SumOfSquaresPartials(OptimGroups(groups), Bytes(x), format, n, partials);
        _optim.SumPartials(OptimGroups(1), partials, groups, total);
        _accelerator.Synchronize();
        double result = 0;
        total.CopyToCPU(ref result, 1);
        return result;
    }
}
