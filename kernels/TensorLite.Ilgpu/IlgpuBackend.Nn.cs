using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

// Softmax, cross-entropy, RMSNorm and RoPE over the row kernels in NnKernels.cs. Inputs are contiguous float32
// (the ops in src/TensorLite/Ops make them so); targets are int32 or int64.
public sealed partial class IlgpuBackend
{
    private readonly NnKernelSet _nn;

    /// <summary>The NN kernel delegates, loaded once when the backend is created.</summary>
    private sealed class NnKernelSet(Accelerator a)
    {
        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int> Softmax =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(IlgpuKernels.SoftmaxRows);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> SoftmaxBackward =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(IlgpuKernels.SoftmaxBackwardRows);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, int, int, int, ArrayView<float>, ArrayView<float>> CrossEntropyRows =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, int, int, int, ArrayView<float>, ArrayView<float>>(IlgpuKernels.CrossEntropyRows);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, int, int, int, int, ArrayView<float>, ArrayView<float>, int, ArrayView<float>> CrossEntropyLoss =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, int, int, int, int, ArrayView<float>, ArrayView<float>, int, ArrayView<float>>(IlgpuKernels.CrossEntropyLoss);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, ArrayView<float>> CrossEntropyBackward =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<int>, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, ArrayView<float>>(IlgpuKernels.CrossEntropyBackward);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float> RmsNorm =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(IlgpuKernels.RmsNormRows);

        public readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> RmsNormBackward =
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(IlgpuKernels.RmsNormBackwardRows);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> RmsNormWeightGrad =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(IlgpuKernels.RmsNormWeightGrad);

        public readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> Rope =
            a.LoadElementwiseKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(IlgpuKernels.Rope);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, int> SwiGlu =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, int>(IlgpuKernels.SwiGlu);

        public readonly Action<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, int, int> SwiGluBackward =
            a.LoadElementwiseKernel<Index1D, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, int, int>(IlgpuKernels.SwiGluBackward);
    }

    /// <summary>One group of <see cref="IlgpuKernels.RowGroupSize"/> threads per row (fewer on the CPU emulator).</summary>
    private KernelConfig RowLaunch(int rows) => new(new Index1D(rows), new Index1D(GroupThreads(IlgpuKernels.RowGroupSize)));

    private static int LastDim(Tensor t) => t.Rank == 0 ? 1 : t.Shape[^1];

    private static (int Outer, int Len, int Inner) SplitAxis(Tensor t, int axis) => ShapeMath.SplitAxis(t.Shape, axis);

    // ---- softmax ------------------------------------------------------------------------------------

    public void Softmax(Tensor x, Tensor y, int axis, bool log)
    {
        RequireFloat32("Softmax", x, y);
        var (outer, len, inner) = SplitAxis(x, axis);
        if (len == 0 || x.Numel == 0) return;
        _nn.Softmax(RowLaunch(outer * inner), View<float>(x), View<float>(y), len, inner, log ? 1 : 0);
    }

    public void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log)
    {
        RequireFloat32("SoftmaxBackward", y, gy, gx);
        var (outer, len, inner) = SplitAxis(y, axis);
        if (len == 0 || y.Numel == 0) return;
        _nn.SoftmaxBackward(RowLaunch(outer * inner), View<float>(y), View<float>(gy), View<float>(gx), len, inner, log ? 1 : 0);
    }

    // ---- cross-entropy ------------------------------------------------------------------------------

    /// <summary>Targets as 32-bit words plus the shift that turns a row into its word index (1 for int64, whose
    /// low word is read: the host check has ruled out values outside int range).</summary>
    private (ArrayView<int> View, int Shift) TargetWords(Tensor targets) => targets.DType switch
    {
        DType.Int32 => (View<int>(targets), 0),
        DType.Int64 => (View<long>(targets).Cast<int>(), 1),
        _ => throw new NotSupportedException($"cross_entropy targets of dtype {targets.DType.Name()} (int32 or int64 only)."),
    };

    public int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss)
    {
        RequireFloat32("CrossEntropy", logits, rowMax, rowLogSum, loss);
        int v = LastDim(logits);
        int n = targets.Numel;
        var words = TargetWords(targets);

        // The count is returned to the caller, so the targets come to the host anyway: validate and count there.
        int count = 0;
        if (n > 0)
        {
            var host = new byte[(long)n * targets.DType.SizeInBytes()];
            CopyToHost(targets, host);
            for (int i = 0; i < n; i++)
            {
                long t = targets.DType == DType.Int64
                    ? MemoryMarshal.Cast<byte, long>(host)[i]
                    : MemoryMarshal.Cast<byte, int>(host)[i];
                if (t == ignoreIndex) continue;
                if (t < 0 || t >= v)
                    throw new ArgumentOutOfRangeException(nameof(targets),
                        $"cross_entropy: target id {t} at position {i} is out of range for {v} classes (valid ids are 0..{v - 1} or the ignore index {ignoreIndex}).");
                count++;
            }
            _nn.CrossEntropyRows(RowLaunch(n), View<float>(logits), words.View, words.Shift, ignoreIndex, v,
                View<float>(rowMax), View<float>(rowLogSum));
        }
        _nn.CrossEntropyLoss(RowLaunch(1), View<float>(logits), words.View, words.Shift, ignoreIndex, n, v,
            View<float>(rowMax), View<float>(rowLogSum), count, View<float>(loss));
        return count;
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum,
        Tensor gLoss, int count, Tensor gLogits)
    {
        RequireFloat32("CrossEntropyBackward", logits, rowMax, rowLogSum, gLoss, gLogits);
        int v = LastDim(logits);
        int n = targets.Numel;
        if (n == 0 || v == 0) return;
        var words = TargetWords(targets);
        _nn.CrossEntropyBackward(n * v, View<float>(logits), words.View, words.Shift, ignoreIndex, v,
            View<float>(rowMax), View<float>(rowLogSum), View<float>(gLoss), count, View<float>(gLogits));
    }

    public int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits) =>
        ReferenceKernels.CrossEntropyWithGradient(logits, targets, ignoreIndex, loss, gLogits);

    // ---- RMSNorm ------------------------------------------------------------------------------------

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        RequireFloat32("RmsNorm", x, weight, y, rstd);
        int d = LastDim(x);
        if (d == 0 || x.Numel == 0) return;
        _nn.RmsNorm(RowLaunch(x.Numel / d), View<float>(x), View<float>(weight), View<float>(y), View<float>(rstd), d, eps);
    }

    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight)
    {
        RequireFloat32("RmsNormBackward", x, weight, rstd, gy);
        int d = LastDim(x);
        if (d == 0) return;
        int rows = x.Numel / d;
        if (gWeight != null)   // with no rows this writes zeros, as the CPU backend does
            _nn.RmsNormWeightGrad(d, View<float>(x), View<float>(rstd), View<float>(gy), View<float>(gWeight), rows, d);
        if (gx != null && rows > 0)
            _nn.RmsNormBackward(RowLaunch(rows), View<float>(x), View<float>(weight), View<float>(rstd), View<float>(gy), View<float>(gx), d);
    }

    // ---- RoPE ---------------------------------------------------------------------------------------

    public void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse)
    {
        RequireFloat32("Rope", x, cos, sin, y);
        int d = LastDim(x);
        if (d < 2 || x.Numel == 0) return;
        int seq = x.Shape[^2], rows = x.Numel / d;
        _nn.Rope(rows * (d / 2), View<float>(x), View<float>(cos), View<float>(sin), View<float>(y), d, seq, inverse ? -1f : 1f);
    }

    // ---- SwiGLU -------------------------------------------------------------------------------------

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        int format = SwiGluFormat("SwiGlu", gate, up, y);
        if (y.Numel == 0) return;
        _nn.SwiGlu(y.Numel, Bytes(gate), Bytes(up), Bytes(y), format);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp)
    {
        int format = SwiGluFormat("SwiGluBackward", gate, up, gy, gGate, gUp);
        if (gate.Numel == 0 || (gGate == null && gUp == null)) return;
        // A kernel argument cannot be null: an unwanted gradient is given gy's view, which the flags leave untouched.
        var dy = Bytes(gy);
        _nn.SwiGluBackward(gate.Numel, Bytes(gate), Bytes(up), dy, gGate == null ? dy : Bytes(gGate), gUp == null ? dy : Bytes(gUp),
            format, (gGate == null ? 0 : 1) | (gUp == null ? 0 : 2));
    }

    /// <summary>The one <see cref="FloatFormat"/> every operand of a SwiGLU kernel has.</summary>
    private static int SwiGluFormat(string op, params Tensor?[] tensors)
    {
        foreach (var t in tensors)
            if (t != null && t.DType != tensors[0]!.DType)
                throw new DTypeMismatchException($"{op}: every operand must have one dtype, got {tensors[0]!.Describe()} and {t.Describe()}.");
        return FormatOf(tensors[0]!, op);
    }
}
