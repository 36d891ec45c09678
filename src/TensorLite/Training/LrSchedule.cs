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

    /// <summary>ReLoRA's jagged schedule around restarts every <paramref name="restartEvery"/> steps: for the
    /// <paramref name="restartWarmup"/> steps from each restart (step = K·j + i, j ≥ 1, i &lt; W) the learning rate ramps
    /// linearly, (i + 1)/W, up to what <paramref name="schedule"/> gives at the restart step; elsewhere it is
    /// <paramref name="schedule"/>'s own. (The reference's cosine_restarts ramps i/W from a zero-lr update taken before
    /// its reset; here the restart comes before the step, so no step is spent at lr 0, as in the first warm-up.)</summary>
    public static float WithRestartWarmups(long step, long restartEvery, int restartWarmup, Func<long, float> schedule)
    {
        if (restartEvery <= 0 || restartWarmup <= 0 || step < restartEvery) return schedule(step);
        long i = step % restartEvery;
        return i >= restartWarmup ? schedule(step) : schedule(step - i) * (i + 1) / restartWarmup;
    }
}
