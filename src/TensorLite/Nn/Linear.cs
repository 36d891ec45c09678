namespace TensorLite.Nn;

/// <summary>y = x·Wᵀ + b with W stored [out, in] as in PyTorch/HF checkpoints; Wᵀ is a view, not a copy.</summary>
public sealed class Linear : Module
{
    public Linear(int inFeatures, int outFeatures, Generator generator, bool bias = true, float? initStd = null)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        // Default init: uniform in ±1/sqrt(in), PyTorch's default scale for nn.Linear.
        float bound = 1f / MathF.Sqrt(inFeatures);
        Weight = RegisterParameter("weight", initStd is float std
            ? Tensor.RandN([outFeatures, inFeatures], generator, std)
            : Tensor.Rand([outFeatures, inFeatures], generator, -bound, bound));
        if (bias) Bias = RegisterParameter("bias", Tensor.Rand([outFeatures], generator, -bound, bound));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public Tensor Forward(Tensor x)
    {
        if (x.Shape[^1] != InFeatures)
            throw new ShapeMismatchException($"Linear({InFeatures} → {OutFeatures}) got input of shape {ShapeMath.Format(x.Shape)}.");
        var y = x.LinearProduct(Weight, Tensor.MatMulResultType(x.DType, Weight.DType));
        if (Bias == null) return y;
        using (y) return y + Bias;
    }
}
