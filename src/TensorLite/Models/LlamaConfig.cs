using System.Text.Json;
using System.Text.Json.Serialization;

namespace TensorLite.Models;

/// <summary>
/// The fields of HF's <c>LlamaConfig</c> that define the architecture, with HF's JSON names, so a
/// <c>config.json</c> written here loads in transformers and vice versa.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Number of token ids (rows of the embedding).</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 32000;
    /// <summary>Width of the residual stream.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 4096;
    /// <summary>Width of the SwiGLU MLP.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 11008;
    /// <summary>Number of decoder layers.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 32;
    /// <summary>Number of query heads.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 32;
    /// <summary>Grouped-query attention: key/value heads shared by groups of query heads (null = same as heads).</summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    /// <summary>The longest sequence the model is meant for (RoPE tables are built up to it).</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>RMSNorm's epsilon.</summary>
    [JsonPropertyName("rms_norm_eps")] public float RmsNormEps { get; init; } = 1e-6f;
    /// <summary>RoPE's base θ.</summary>
    [JsonPropertyName("rope_theta")] public float RopeTheta { get; init; } = 10000f;
    /// <summary>Whether the output projection is the token embedding (no separate lm_head.weight).</summary>
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    /// <summary>Standard deviation of the random initial weights.</summary>
    [JsonPropertyName("initializer_range")] public float InitializerRange { get; init; } = 0.02f;
    /// <summary>The MLP activation; only silu is implemented.</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    /// <summary>HF's model type; only llama is accepted.</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "llama";
    /// <summary>HF's architecture names, kept for transformers.</summary>
    [JsonPropertyName("architectures")] public string[] Architectures { get; init; } = ["LlamaForCausalLM"];
    /// <summary>The beginning-of-sequence token id, when the model has one.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    /// <summary>The end-of-sequence token ids: HF writes one id or a list (Llama 3: [128001, 128008, 128009]).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(TokenIdsConverter))] public int[]? EosTokenId { get; init; }
    /// <summary>The dtype HF records for the weights (informational; the files' own dtypes are what load).</summary>
    [JsonPropertyName("torch_dtype")] public string TorchDType { get; init; } = "float32";
    /// <summary>The width of one attention head; null means hidden_size / num_attention_heads (HF's default).</summary>
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; init; }
    /// <summary>RoPE frequency scaling (HF's <c>rope_scaling</c>): llama3 and linear are implemented, others refused.</summary>
    [JsonPropertyName("rope_scaling")] public RopeScaling? RopeScaling { get; init; }
    /// <summary>Bias in the attention projections; only false is implemented.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>Bias in the MLP projections; only false is implemented.</summary>
    [JsonPropertyName("mlp_bias")] public bool MlpBias { get; init; }

    /// <summary>Every other field of a config.json, kept so that <see cref="Validate"/> can refuse what it does not know
    /// (an unknown field may change the architecture) and the harmless ones survive a round trip.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? OtherFields { get; init; }

    /// <summary>Key/value heads in effect (<see cref="NumKeyValueHeads"/>, else the query heads).</summary>
    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    /// <summary>Width of one head in effect (head_dim, else hidden_size / num_attention_heads).</summary>
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    /// <summary>The width of the concatenated query heads (q_proj's rows, o_proj's columns).</summary>
    [JsonIgnore] public int AttentionWidth => NumAttentionHeads * HeadDim;

    /// <summary>Fields of HF LLaMA configs that do not change the model TensorLite builds from the config (bookkeeping,
    /// inference switches, token ids). Any other field not declared above is refused.</summary>
    private static readonly HashSet<string> HarmlessFields = new(StringComparer.Ordinal)
    {
        "transformers_version", "_name_or_path", "use_cache", "pad_token_id", "dtype", "pretraining_tp", "is_llama_config",
        "rope_interleaved", "transformers.js_config", "output_attentions", "output_hidden_states", "return_dict",
        "sep_token_id", "decoder_start_token_id", "attention_dropout",
    };

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
        if (HeadDimOverride is int explicitHeadDim) Positive(explicitHeadDim, "head_dim");
        ValidateHfFields();
        if (HeadDimOverride == null && HiddenSize % NumAttentionHeads != 0)
            throw new TensorLiteException($"Model config: num_attention_heads ({NumAttentionHeads}) must divide hidden_size ({HiddenSize}).");
        if (NumAttentionHeads % KeyValueHeads != 0)
            throw new TensorLiteException($"Model config: num_key_value_heads ({KeyValueHeads}) must divide num_attention_heads ({NumAttentionHeads}).");
        // Each weight matrix is one tensor, and a tensor holds at most int.MaxValue elements.
        foreach (var (rows, cols, what) in new[] { (VocabSize, HiddenSize, "vocab_size × hidden_size"), (IntermediateSize, HiddenSize, "intermediate_size × hidden_size"),
                                                  ((int)Math.Min(int.MaxValue, (long)AttentionWidth), HiddenSize, "num_attention_heads × head_dim × hidden_size") })
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
        long attention = h * AttentionWidth * 2 + h * kv * 2;
        long mlp = 3L * h * IntermediateSize;
        long perLayer = attention + mlp + 2 * h;
        return VocabSize * h + NumHiddenLayers * perLayer + h + (TieWordEmbeddings ? 0 : VocabSize * h);
    }

    /// <summary>The architecture fields HF defines that TensorLite does not implement, each refused with its own sentence
    /// (an unknown field in <see cref="OtherFields"/> is refused as well), and the rope_scaling parameters checked.</summary>
    private void ValidateHfFields()
    {
        if (ModelType != "llama")
            throw new TensorLiteException($"Model config: model_type '{ModelType}' is not supported; only 'llama' (LlamaForCausalLM) is.");
        if (AttentionBias)
            throw new TensorLiteException("Model config: attention_bias true (biases on q/k/v/o projections) is not supported.");
        if (MlpBias)
            throw new TensorLiteException("Model config: mlp_bias true (biases on the MLP projections) is not supported.");
        if (EosTokenId is { } eos && eos.Any(id => id < 0))
            throw new TensorLiteException("Model config: eos_token_id must hold non-negative token ids.");
        RopeScaling?.Validate();
        foreach (var (name, value) in OtherFields ?? [])
        {
            if (name == "attention_dropout" && value.ValueKind == JsonValueKind.Number && value.GetDouble() != 0)
                throw new TensorLiteException($"Model config: attention_dropout {value.GetRawText()} is not supported (only 0).");
            if (!HarmlessFields.Contains(name))
                throw new TensorLiteException($"Model config: field '{name}' is not known to TensorLite and may change the architecture, so the config is refused.");
        }
    }

    /// <summary>RoPE's inverse frequencies (one per pair of a head's dimensions) after <see cref="RopeScaling"/>; null
    /// when there is no scaling, and the rotary op then uses theta^(−2i/head_dim) itself.</summary>
    public float[]? RopeInverseFrequencies() => RopeScaling?.Apply(RopeScaling.DefaultInverseFrequencies(RopeTheta, HeadDim));

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The config as HF config.json text (snake_case fields).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses config.json text; <paramref name="source"/> names it in error messages. Fields TensorLite does not implement are refused by name.</summary>
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

    /// <summary>Reads and parses a config.json file.</summary>
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

    /// <summary>A named size (tiny, byte_small, llama_20m ... llama_13b; see <see cref="Named"/>).</summary>
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
