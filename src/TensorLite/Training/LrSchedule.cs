namespace TensorLite.Training;

/// <summary>Linear warm-up to the peak learning rate, then cosine decay to peak · minRatio at the last step.</summary>
public static class LrSchedule
{
    public static float WarmupCosine(long step, long totalSteps, long warmup, float peak, float minRatio)
    {
        if (step < warmup) return peak * (step + 1) / warmup;
        double progress = totalSteps <= warmup ? 1 : Math.Min(1.0, (double)(step - warmup) / Math.Max(1, totalSteps - warmup - 1));
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return (float)(peak * (minRatio + (1 - minRatio) * cosine));
    }
}
