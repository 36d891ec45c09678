namespace TensorLite.Nn;

/// <summary>y = x·Wᵀ + b with W stored [out, in] as in PyTorch/HF checkpoints; Wᵀ is a view, not a copy.</summary>
public sealed class Linear : Module
{
    /// <summary>A layer of <paramref name="outFeatures"/>×<paramref name="inFeatures"/> weights drawn from <paramref name="generator"/>: uniform in ±1/√in (PyTorch's default), or normal with <paramref name="initStd"/> when given.</summary>
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

    /// <summary>Width of the input's last dimension.</summary>
    public int InFeatures { get; }
    /// <summary>Width of the output's last dimension.</summary>
    public int OutFeatures { get; }
    /// <summary>The weight [out, in] (a parameter).</summary>
    public Tensor Weight { get; }
    /// <summary>The bias [out], or null without one.</summary>
    public Tensor? Bias { get; }

    /// <summary>x·Wᵀ + b over the last dimension of <paramref name="x"/> ([..., in] → [..., out]).</summary>
    public Tensor Forward(Tensor x)
    {
        if (x.Shape[^1] != InFeatures)
            throw new ShapeMismatchException($"Linear({InFeatures} → {OutFeatures}) got input of shape {ShapeMath.Format(x.Shape)}.");
        var y = x.LinearProduct(Weight, Tensor.MatMulResultType(x.DType, Weight.DType));
        if (Bias == null) return y;
        using (y) return y + Bias;
    }
}
