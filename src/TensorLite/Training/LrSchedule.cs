namespace TensorLite.Training;

/// <summary>Linear warm-up to the peak learning rate, then cosine decay to peak · minRatio at the last step.</summary>
public static class LrSchedule
{
    /// <summary>The learning rate at <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>: linear warm-up over <paramref name="warmup"/> steps to <paramref name="peak"/>, then cosine decay to peak·<paramref name="minRatio"/>.</summary>
    public static float WarmupCosine(long step, long totalSteps, long warmup, float peak, float minRatio)
    {
        if (step < warmup) return peak * (step + 1) / warmup;
        double progress = totalSteps <= warmup ? 1 : Math.Min(1.0, (double)(step - warmup) / Math.Max(1, totalSteps - warmup - 1));
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return (float)(peak * (minRatio + (1 - minRatio) * cosine));
    }
}
