using System.Text.Json;
using System.Text.Json.Serialization;

namespace TensorLite.Models;

/// <summary>
/// HF's <c>rope_scaling</c>: how a checkpoint stretches its rotary frequencies for longer contexts. Two kinds are
/// implemented as transformers computes them (<c>modeling_rope_utils.py</c>): <c>linear</c> divides every inverse
/// frequency by <see cref="Factor"/>; <c>llama3</c> (Llama 3.1 and later) keeps the high frequencies, divides the low
/// ones by the factor and blends the band between. Neither scales the attention (HF's attention_factor is 1 for both).
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The scaling kind: llama3 or linear (others are refused).</summary>
    [JsonPropertyName("rope_type")] public string? RopeType { get; init; }
    /// <summary>The older spelling of <see cref="RopeType"/> (configs written before transformers 4.43).</summary>
    [JsonPropertyName("type")] public string? LegacyType { get; init; }
    /// <summary>How much longer the context becomes: inverse frequencies are divided by it (all of them for linear, the low ones for llama3).</summary>
    [JsonPropertyName("factor")] public double? Factor { get; init; }
    /// <summary>llama3: wavelengths above original_max_position_embeddings / low_freq_factor are fully scaled.</summary>
    [JsonPropertyName("low_freq_factor")] public double? LowFreqFactor { get; init; }
    /// <summary>llama3: wavelengths below original_max_position_embeddings / high_freq_factor are kept.</summary>
    [JsonPropertyName("high_freq_factor")] public double? HighFreqFactor { get; init; }
    /// <summary>llama3: the context length the model was pretrained with.</summary>
    [JsonPropertyName("original_max_position_embeddings")] public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>Any other parameter (yarn's beta_fast, longrope's factors...): refused, since none is implemented.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? OtherFields { get; init; }

    /// <summary>The scaling kind, from rope_type or the older type field.</summary>
    [JsonIgnore] public string Kind => RopeType ?? LegacyType ?? "";

    /// <summary>Throws one sentence naming what is wrong or unsupported.</summary>
    public void Validate()
    {
        if (RopeType != null && LegacyType != null && RopeType != LegacyType)
            throw new TensorLiteException($"Model config: rope_scaling has rope_type '{RopeType}' and type '{LegacyType}', which disagree.");
        if (Kind is not ("llama3" or "linear" or "default"))
            throw new TensorLiteException($"Model config: rope_scaling type '{Kind}' is not supported (supported: llama3, linear).");
        if (OtherFields is { Count: > 0 } other)
            throw new TensorLiteException($"Model config: rope_scaling field '{other.Keys.First()}' is not supported for rope type '{Kind}'.");
        if (Kind == "default") return;
        if (Factor is not (> 0 and < double.PositiveInfinity))
            throw new TensorLiteException($"Model config: rope_scaling factor must be a positive number for rope type '{Kind}'.");
        if (Kind != "llama3") return;
        if (LowFreqFactor is not (> 0 and < double.PositiveInfinity) || HighFreqFactor is not (> 0 and < double.PositiveInfinity) || HighFreqFactor <= LowFreqFactor)
            throw new TensorLiteException("Model config: rope_scaling llama3 needs low_freq_factor and high_freq_factor with 0 < low_freq_factor < high_freq_factor.");
        if (OriginalMaxPositionEmbeddings is not > 0)
            throw new TensorLiteException("Model config: rope_scaling llama3 needs a positive original_max_position_embeddings.");
    }

    /// <summary>Unscaled RoPE: inv_freq[i] = 1 / theta^(2i/headDim), in float32 as HF computes it.</summary>
    public static float[] DefaultInverseFrequencies(float theta, int headDim)
    {
        var inv = new float[headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1f / MathF.Pow(theta, (float)(2 * i) / headDim);
        return inv;
    }

    /// <summary>The scaled inverse frequencies (a new array).</summary>
    public float[] Apply(float[] inverseFrequencies)
    {
        Validate();
        return Kind switch
        {
            "default" => (float[])inverseFrequencies.Clone(),
            "linear" => inverseFrequencies.Select(f => (float)(f / Factor!.Value)).ToArray(),
            _ => inverseFrequencies.Select(Llama3).ToArray(),
        };
    }

    /// <summary>Llama 3's rule for one inverse frequency: wavelengths shorter than original_context / high_freq_factor
    /// keep their frequency, those longer than original_context / low_freq_factor are slowed by the factor, and in
    /// between the two are mixed with weight smooth = (original_context / wavelength − low) / (high − low).</summary>
    private float Llama3(float inverseFrequency)
    {
        double factor = Factor!.Value, low = LowFreqFactor!.Value, high = HighFreqFactor!.Value;
        double context = OriginalMaxPositionEmbeddings!.Value;
        double wavelength = 2 * Math.PI / inverseFrequency;
        if (wavelength < context / high) return inverseFrequency;
        if (wavelength > context / low) return (float)(inverseFrequency / factor);
        double smooth = (context / wavelength - low) / (high - low);
        return (float)((1 - smooth) * inverseFrequency / factor + smooth * inverseFrequency);
    }
}
