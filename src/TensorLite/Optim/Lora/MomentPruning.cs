namespace TensorLite.Optim.Lora;

/// <summary>ReLoRA's in-place pruning of an optimizer moment tensor at a restart (float32 tensors; the work is done on a
/// host copy, once per restart).</summary>
public static class MomentPruning
{
    /// <summary>Zeroes each entry of <paramref name="moment"/> with probability <paramref name="ratio"/> (an entry is kept
    /// when a uniform draw from <paramref name="generator"/> exceeds the ratio, as torch.rand_like(t) &gt; ratio).</summary>
    public static void Random(Tensor moment, float ratio, Generator generator)
    {
        var values = moment.ToArray();
        for (int i = 0; i < values.Length; i++)
            if (!(generator.NextFloat() > ratio)) values[i] = 0f;
        Write(values, moment);
    }

    /// <summary>Zeroes the entries of <paramref name="moment"/> whose magnitude is at most the <paramref name="ratio"/>
    /// quantile of all magnitudes (torch.quantile's linear interpolation between the two nearest order statistics).</summary>
    public static void Magnitude(Tensor moment, float ratio)
    {
        var values = moment.ToArray();
        if (values.Length == 0) return;
        float threshold = Quantile(values.Select(MathF.Abs).ToArray(), ratio);
        for (int i = 0; i < values.Length; i++)
            if (!(MathF.Abs(values[i]) > threshold)) values[i] = 0f;
        Write(values, moment);
    }

    /// <summary>The <paramref name="q"/> quantile of <paramref name="values"/> (sorted in place) with linear interpolation:
    /// position q·(n − 1) between the order statistics around it.</summary>
    public static float Quantile(float[] values, float q)
    {
        Array.Sort(values);
        double position = (double)q * (values.Length - 1);
        int below = (int)Math.Floor(position), above = (int)Math.Ceiling(position);
        return (float)(values[below] + (values[above] - (double)values[below]) * (position - below));
    }

    private static void Write(float[] values, Tensor destination)
    {
        using var host = Tensor.FromSpan<float>(values, destination.ShapeArray, DType.Float32, destination.Backend);
        destination.Backend.Copy(host, destination);
    }
}
