using System.Text.Json;
using System.Text.Json.Serialization;

namespace TensorLite.Models;

/// <summary>
/// The fields of HF's <c>LlamaConfig</c> that define the architecture, with HF's JSON names, so a
/// <c>config.json</c> written here loads in transformers and vice versa.
/// </summary>
public sealed record LlamaConfig
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 32000;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 4096;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 11008;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 32;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 32;
    /// <summary>Grouped-query attention: key/value heads shared by groups of query heads (null = same as heads).</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    [JsonPropertyName("rms_norm_eps")] public float RmsNormEps { get; init; } = 1e-6f;
    [JsonPropertyName("rope_theta")] public float RopeTheta { get; init; } = 10000f;
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    [JsonPropertyName("initializer_range")] public float InitializerRange { get; init; } = 0.02f;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "llama";
    [JsonPropertyName("architectures")] public string[] Architectures { get; init; } = ["LlamaForCausalLM"];
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    [JsonPropertyName("eos_token_id")] public int? EosTokenId { get; init; }
    [JsonPropertyName("torch_dtype")] public string TorchDType { get; init; } = "float32";

    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Checks the architecture is consistent; throws one clear sentence if not.</summary>
    public LlamaConfig Validate()
    {
        void Positive(int v, string name)
        {
            if (v <= 0) throw new TensorLiteException($"Model config: {name} must be positive, got {v}.");
        }
        Positive(VocabSize, "vocab_size");
        Positive(HiddenSize, "hidden_size");
        Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(KeyValueHeads, "num_key_value_heads");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new TensorLiteException($"Model config: num_attention_heads ({NumAttentionHeads}) must divide hidden_size ({HiddenSize}).");
        if (NumAttentionHeads % KeyValueHeads != 0)
            throw new TensorLiteException($"Model config: num_key_value_heads ({KeyValueHeads}) must divide num_attention_heads ({NumAttentionHeads}).");
        // Each weight matrix is one tensor, and a tensor holds at most int.MaxValue elements.
        foreach (var (rows, cols, what) in new[] { (VocabSize, HiddenSize, "vocab_size × hidden_size"), (IntermediateSize, HiddenSize, "intermediate_size × hidden_size"),
                                                  (HiddenSize, HiddenSize, "hidden_size × hidden_size") })
            if ((long)rows * cols > int.MaxValue)
                throw new TensorLiteException($"Model config: {what} = {(long)rows * cols:N0} elements, over a tensor's {int.MaxValue:N0}.");
        if (HeadDim % 2 != 0)
            throw new TensorLiteException($"Model config: the head dimension ({HeadDim}) must be even for rotary embeddings.");
        if (HiddenAct != "silu")
            throw new TensorLiteException($"Model config: hidden_act '{HiddenAct}' is not supported (LLaMA uses silu).");
        if (!(RmsNormEps > 0) || !(RopeTheta > 0))
            throw new TensorLiteException("Model config: rms_norm_eps and rope_theta must be positive.");
        return this;
    }

    /// <summary>Total parameters (the LM head counted unless tied to the embedding).</summary>
    public long ParameterCount()
    {
        long h = HiddenSize, kv = (long)KeyValueHeads * HeadDim;
        long attention = h * h * 2 + h * kv * 2;
        long mlp = 3L * h * IntermediateSize;
        long perLayer = attention + mlp + 2 * h;
        return VocabSize * h + NumHiddenLayers * perLayer + h + (TieWordEmbeddings ? 0 : VocabSize * h);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static LlamaConfig FromJson(string json, string source = "config.json")
    {
        LlamaConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<LlamaConfig>(json);
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"{source} is not a valid LLaMA config: {Where(e)}.");
        }
        return (config ?? throw new TensorLiteException($"{source} is empty.")).Validate();
    }

    /// <summary>Where a JSON file went wrong, on one line (the parser's own message quotes the file's text).</summary>
    internal static string Where(JsonException e) =>
        $"invalid JSON or a value of the wrong type at line {(e.LineNumber ?? 0) + 1}" + (e.Path is { Length: > 1 } p ? $", {p}" : "");

    public static LlamaConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model config '{path}' does not exist.", path);
        return FromJson(IO.SafeFile.ReadAllText(path, "Model config", 1 << 20), path);
    }

    // ---- named sizes ---------------------------------------------------------------------------

    /// <summary>The sizes of the GaLore paper's pre-training experiments (its configs/llama_*.json:
    /// vocab 32000, rms_norm_eps 1e-6), LLaMA-2-13B's, and small ones for the byte-level default run and tests.</summary>
    public static IReadOnlyDictionary<string, LlamaConfig> Named { get; } = new Dictionary<string, LlamaConfig>(StringComparer.Ordinal)
    {
        ["tiny"] = Sized(vocab: 256, hidden: 64, intermediate: 176, heads: 4, layers: 2, maxSeq: 256),
        ["byte_small"] = Sized(vocab: 256, hidden: 192, intermediate: 512, heads: 6, layers: 4, maxSeq: 512),
        ["llama_20m"] = Sized(vocab: 32000, hidden: 256, intermediate: 688, heads: 4, layers: 4, maxSeq: 1024),
        ["llama_60m"] = Sized(vocab: 32000, hidden: 512, intermediate: 1376, heads: 8, layers: 8, maxSeq: 1024),
        ["llama_130m"] = Sized(vocab: 32000, hidden: 768, intermediate: 2048, heads: 12, layers: 12, maxSeq: 1024),
        ["llama_350m"] = Sized(vocab: 32000, hidden: 1024, intermediate: 2736, heads: 16, layers: 24, maxSeq: 1024),
        ["llama_1b"] = Sized(vocab: 32000, hidden: 2048, intermediate: 5461, heads: 32, layers: 24, maxSeq: 1024),
        ["llama_7b"] = Sized(vocab: 32000, hidden: 4096, intermediate: 11008, heads: 32, layers: 32, maxSeq: 2048),
        // LLaMA-2-13B's shape, for the GRASS paper's 13B-on-one-40-GB-GPU claim (planned, not trained, here).
        ["llama_13b"] = Sized(vocab: 32000, hidden: 5120, intermediate: 13824, heads: 40, layers: 40, maxSeq: 4096),
    };

    public static LlamaConfig FromName(string name) =>
        Named.TryGetValue(name, out var c) ? c
            : throw new TensorLiteException($"Unknown model config '{name}'; choose one of {string.Join(", ", Named.Keys)}, or pass a config.json path.");

    private static LlamaConfig Sized(int vocab, int hidden, int intermediate, int heads, int layers, int maxSeq) => new()
    {
        VocabSize = vocab,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumAttentionHeads = heads,
        NumHiddenLayers = layers,
        MaxPositionEmbeddings = maxSeq,
    };
}
