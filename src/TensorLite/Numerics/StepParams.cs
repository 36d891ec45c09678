namespace TensorLite;

// The hyper-parameters of one optimizer kernel call. They sit at the bottom with the other numerics (the 8-bit block
// routines take them) but keep the root namespace: every optimizer and backend names them.

/// <summary>Hyper-parameters of one AdamW update (bias corrections already folded in by the caller).
/// <see cref="Rounding"/> chooses how a bfloat16/float16 parameter is written back (default: nearest even).</summary>
public readonly record struct AdamWStepParams(
    float LearningRate, float Beta1, float Beta2, float Eps, float WeightDecay,
    float BiasCorrection1, float BiasCorrection2)
{
    /// <summary>How the float32 result is rounded into a half-precision parameter; ignored for float32 parameters.</summary>
    public ParamRounding Rounding { get; init; }
}

/// <summary>
/// How an optimizer kernel rounds the float32 result of an update into a bfloat16 parameter. The default
/// value is round-to-nearest-even. <see cref="Stochastic(ulong)"/> rounds up with probability equal to the dropped
/// fraction (unbiased, so updates smaller than half an ulp are not lost on average); the random bits are a
/// counter-based hash of (<see cref="Seed"/>, element index), so a step is reproducible bit for bit, e.g. after
/// resuming, and does not depend on threading. Build the seed per (run seed, step, parameter) with
/// <see cref="Stochastic(ulong, long, int)"/>. float16 parameters are always rounded to nearest.
/// </summary>
public readonly record struct ParamRounding(ParamRoundingMode Mode, ulong Seed)
{
    /// <summary>Round to nearest (the default).</summary>
    public static ParamRounding Nearest => default;

    /// <summary>The index, within the whole parameter, of the first element an update is given: an update applied to a
    /// range of a parameter (a flat view starting at this element) draws the random bits the whole-parameter update
    /// draws for those elements, so updating in ranges gives the same bits.</summary>
    public long FirstIndex { get; init; }

    /// <summary>Stochastic rounding keyed by an explicit 64-bit seed (already specific to the step and parameter).</summary>
    public static ParamRounding Stochastic(ulong seed) => new(ParamRoundingMode.Stochastic, seed);

    /// <summary>Stochastic rounding for one parameter at one optimizer step of a run: the three numbers are mixed
    /// into one key, so every (seed, step, parameter) draws independent bits.</summary>
    public static ParamRounding Stochastic(ulong runSeed, long step, int parameterIndex) =>
        new(ParamRoundingMode.Stochastic, SplitMix(runSeed ^ SplitMix((ulong)step ^ SplitMix((ulong)(uint)parameterIndex + 0x51ED27u))));

    private static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15ul;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }
}

/// <summary>How an update is rounded into a 16-bit parameter.</summary>
public enum ParamRoundingMode
{
    /// <summary>Round to nearest, ties to even (what <see cref="Tensor.To(DType)"/> does).</summary>
    Nearest,
    /// <summary>Unbiased stochastic rounding with counter-based random bits (see <see cref="ParamRounding"/>).</summary>
    Stochastic,
}
