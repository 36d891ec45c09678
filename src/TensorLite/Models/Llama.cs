using TensorLite.Autograd;
using TensorLite.Nn;

namespace TensorLite.Models;

/// <summary>
/// HF <c>LlamaForCausalLM</c>: token embedding; N decoder layers of (RMSNorm → causal self-attention with
/// rotary embeddings → residual; RMSNorm → SwiGLU MLP → residual); final RMSNorm; LM head (untied
/// unless the config ties it). Parameter names are HF's, so safetensors checkpoints interchange.
/// Weights are float32 or bfloat16 (<see cref="WeightDType"/>), and the GEMMs read bf16 weights directly (fp32
/// accumulation), so no float32 copy of a weight matrix is ever kept. Activations are float32 or bfloat16
/// (<see cref="ActivationDType"/>); with bfloat16 every op still computes in float32 and rounds its result once.
/// </summary>
public sealed class LlamaModel : Module
{
    /// <summary>A LLaMA of <paramref name="config"/>'s architecture with parameters in <paramref name="weightDType"/>
    /// (float32 or bfloat16).</summary>
    /// <param name="config">The architecture (validated here).</param>
    /// <param name="weightDType">The parameters' dtype: float32 or bfloat16.</param>
    /// <param name="generator">Initializes the weights (HF's normal(0, initializer_range), norms 1); null leaves them
    /// uninitialized, for weights that will be loaded or a model that is only planned.</param>
    public LlamaModel(LlamaConfig config, Generator? generator, DType weightDType = DType.Float32)
    {
        Config = config.Validate();
        if (weightDType is not (DType.Float32 or DType.BFloat16))
            throw new DTypeMismatchException($"LLaMA weights are float32 or bfloat16, not {weightDType}.");
        WeightDType = weightDType;
        _ropeInverseFrequencies = config.RopeInverseFrequencies();
        var init = new WeightInit(generator, config.InitializerRange, weightDType);
        EmbedTokens = RegisterParameter("model.embed_tokens.weight", init.Normal(config.VocabSize, config.HiddenSize));
        Layers = new LlamaDecoderLayer[config.NumHiddenLayers];
        for (int i = 0; i < Layers.Length; i++)
            Layers[i] = RegisterModule($"model.layers.{i}", new LlamaDecoderLayer(config, init, _ropeInverseFrequencies));
        Norm = RegisterParameter("model.norm.weight", init.Ones(config.HiddenSize));
        LmHead = config.TieWordEmbeddings
            ? EmbedTokens
            : RegisterParameter("lm_head.weight", init.Normal(config.VocabSize, config.HiddenSize));
    }

    /// <summary>The dtype the parameters are stored in: float32 or bfloat16.</summary>
    public DType WeightDType { get; }

    /// <summary>RoPE's scaled inverse frequencies (the config's rope_scaling), one array shared by all layers so the
    /// rotary tables are computed once; null for plain theta^(−2i/d).</summary>
    private readonly float[]? _ropeInverseFrequencies;

    /// <summary>The dtype of the hidden states between ops: float32 (default) or bfloat16. With bfloat16 the residual
    /// stream, normed inputs, q/k/v, the attention output and the SwiGLU intermediates are bfloat16, and so is
    /// everything the graph saves for backward on that path; the logits (and the loss) stay float32.</summary>
    public DType ActivationDType
    {
        get => _activationDType;
        set => _activationDType = value is DType.Float32 or DType.BFloat16
            ? value
            : throw new DTypeMismatchException($"LLaMA activations are float32 or bfloat16, not {value}.");
    }

    private DType _activationDType = DType.Float32;

    /// <summary>The architecture this model was built from.</summary>
    public LlamaConfig Config { get; }
    /// <summary>The token embedding [vocab, hidden] (model.embed_tokens.weight).</summary>
    public Tensor EmbedTokens { get; }
    /// <summary>The decoder layers, first to last.</summary>
    public LlamaDecoderLayer[] Layers { get; }
    /// <summary>The final RMSNorm's scale [hidden] (model.norm.weight).</summary>
    public Tensor Norm { get; }
    /// <summary>The output projection [vocab, hidden] (lm_head.weight); the embedding itself when the config ties them.</summary>
    public Tensor LmHead { get; }

    /// <summary>Recompute each decoder layer's activations during backward instead of keeping them.</summary>
    public bool CheckpointLayers { get; set; }

    /// <summary>Called by <see cref="Forward"/> at the start of each stage, before it reads that stage's weights: 0 before
    /// the embedding, i + 1 before decoder layer i, <see cref="LlamaConfig.NumHiddenLayers"/> + 1 before the final norm and
    /// the LM head. An offloaded run lands updates deferred from the last step here (docs/offload.md); null: nothing.</summary>
    public Action<int>? BeforeForwardStage { get; set; }

    /// <summary>Logits [batch, seq, vocab] for token ids [batch, seq] (int32 or int64).</summary>
    public Tensor Forward(Tensor ids)
    {
        if (ids.Rank != 2) throw new ShapeMismatchException($"LLaMA expects token ids shaped [batch, seq], got {ShapeMath.Format(ids.Shape)}.");
        if (ids.Shape[1] > Config.MaxPositionEmbeddings)
            throw new ShapeMismatchException($"Sequence length {ids.Shape[1]} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}.");
        BeforeForwardStage?.Invoke(0);
        Tensor h = Tensor.Embedding(EmbedTokens, ids);
        if (h.DType != ActivationDType)
            using (var embedded = h) h = embedded.To(ActivationDType);
        for (int i = 0; i < Layers.Length; i++)
        {
            var layer = Layers[i];
            BeforeForwardStage?.Invoke(i + 1);
            var next = CheckpointLayers && GradMode.IsEnabled ? Checkpoint.Run(x => layer.Forward(x[0]), h) : layer.Forward(h);
            h.Dispose();
            h = next;
        }
        BeforeForwardStage?.Invoke(Layers.Length + 1);
        using (h)
        using (var normCast = WeightInit.Float32Cast(Norm))
        using (var normed = h.RmsNorm(normCast ?? Norm, Config.RmsNormEps))
        using (var headT = LmHead.T)
            return normed.MatMul(headT, DType.Float32); // float32 logits: a stable cross-entropy whatever the activations
    }

    /// <summary>
    /// Inference with a key/value cache: the logits [batch, vocab] of the last of <paramref name="ids"/> [batch, t], whose
    /// positions follow the <see cref="KvCache.Length"/> already in <paramref name="cache"/>; their keys and values are
    /// appended. The first call may pass any number of tokens (the prompt), later ones one token each. No gradients.
    /// </summary>
    public Tensor ForwardCached(Tensor ids, KvCache cache)
    {
        if (ids.Rank != 2) throw new ShapeMismatchException($"LLaMA expects token ids shaped [batch, seq], got {ShapeMath.Format(ids.Shape)}.");
        if (cache.Length > 0 && ids.Shape[1] != 1) throw new ArgumentException("After the prompt, a cached forward takes one token at a time.");
        if (cache.Length + ids.Shape[1] > Config.MaxPositionEmbeddings)
            throw new ShapeMismatchException($"Sequence length {cache.Length + ids.Shape[1]} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}.");
        using var noGrad = GradMode.NoGrad();
        Tensor h = Tensor.Embedding(EmbedTokens, ids);
        if (h.DType != ActivationDType)
            using (var embedded = h) h = embedded.To(ActivationDType);
        for (int i = 0; i < Layers.Length; i++)
            using (var input = h) h = Layers[i].Forward(input, cache, i);
        cache.Length += ids.Shape[1];
        using (h)
        using (var last = h.Narrow(1, h.Shape[1] - 1, 1))
        using (var normCast = WeightInit.Float32Cast(Norm))
        using (var normed = last.RmsNorm(normCast ?? Norm, Config.RmsNormEps))
        using (var headT = LmHead.T)
        using (var logits = normed.MatMul(headT, DType.Float32))
            return logits.Reshape(ids.Shape[0], Config.VocabSize);
    }

    /// <summary>Mean next-token cross-entropy (nats) of <paramref name="targets"/> given <paramref name="ids"/>.</summary>
    public Tensor Loss(Tensor ids, Tensor targets, int ignoreIndex = -100)
    {
        using var logits = Forward(ids);
        using var flatLogits = logits.Reshape(-1, Config.VocabSize);
        using var flatTargets = targets.Reshape(-1);
        return Tensor.CrossEntropy(flatLogits, flatTargets, ignoreIndex);
    }
}

/// <summary>One LLaMA decoder block.</summary>
public sealed class LlamaDecoderLayer : Module
{
    private readonly LlamaConfig _config;
    private readonly float[]? _ropeInverseFrequencies;

    internal LlamaDecoderLayer(LlamaConfig config, WeightInit init, float[]? ropeInverseFrequencies)
    {
        _config = config;
        _ropeInverseFrequencies = ropeInverseFrequencies;
        int h = config.HiddenSize, q = config.AttentionWidth, kv = config.KeyValueHeads * config.HeadDim, inter = config.IntermediateSize;
        InputNorm = RegisterParameter("input_layernorm.weight", init.Ones(h));
        QProj = RegisterParameter("self_attn.q_proj.weight", init.Normal(q, h));
        KProj = RegisterParameter("self_attn.k_proj.weight", init.Normal(kv, h));
        VProj = RegisterParameter("self_attn.v_proj.weight", init.Normal(kv, h));
        OProj = RegisterParameter("self_attn.o_proj.weight", init.Normal(h, q));
        PostAttentionNorm = RegisterParameter("post_attention_layernorm.weight", init.Ones(h));
        GateProj = RegisterParameter("mlp.gate_proj.weight", init.Normal(inter, h));
        UpProj = RegisterParameter("mlp.up_proj.weight", init.Normal(inter, h));
        DownProj = RegisterParameter("mlp.down_proj.weight", init.Normal(h, inter));
    }

    /// <summary>The RMSNorm scale before attention (input_layernorm.weight).</summary>
    public Tensor InputNorm { get; }
    /// <summary>Query projection [heads·head_dim, hidden].</summary>
    public Tensor QProj { get; }
    /// <summary>Key projection [kv_heads·head_dim, hidden].</summary>
    public Tensor KProj { get; }
    /// <summary>Value projection [kv_heads·head_dim, hidden].</summary>
    public Tensor VProj { get; }
    /// <summary>Attention output projection [hidden, heads·head_dim].</summary>
    public Tensor OProj { get; }
    /// <summary>The RMSNorm scale before the MLP (post_attention_layernorm.weight).</summary>
    public Tensor PostAttentionNorm { get; }
    /// <summary>SwiGLU gate projection [intermediate, hidden].</summary>
    public Tensor GateProj { get; }
    /// <summary>SwiGLU up projection [intermediate, hidden].</summary>
    public Tensor UpProj { get; }
    /// <summary>SwiGLU down projection [hidden, intermediate].</summary>
    public Tensor DownProj { get; }

    /// <summary>x: [batch, seq, hidden] → same shape.</summary>
    public Tensor Forward(Tensor x) => Forward(x, null, 0);

    /// <summary>With a cache: x holds the positions after the cached ones, whose keys and values are appended.</summary>
    internal Tensor Forward(Tensor x, KvCache? cache, int layerIndex)
    {
        using var inputNormCast = WeightInit.Float32Cast(InputNorm);
        using var attnIn = x.RmsNorm(inputNormCast ?? InputNorm, _config.RmsNormEps);
        using var attn = Attention(attnIn, cache, layerIndex);
        using var h = x + attn;
        using var postNormCast = WeightInit.Float32Cast(PostAttentionNorm);
        using var mlpIn = h.RmsNorm(postNormCast ?? PostAttentionNorm, _config.RmsNormEps);
        using var mlp = Mlp(mlpIn);
        return h + mlp;
    }

    private Tensor Attention(Tensor x, KvCache? cache, int layerIndex)
    {
        int b = x.Shape[0], t = x.Shape[1], offset = cache?.Length ?? 0;
        int heads = _config.NumAttentionHeads, kvHeads = _config.KeyValueHeads, d = _config.HeadDim;
        using var q = Heads(Project(x, QProj), b, t, heads, d, rope: true, offset);
        using var k = Heads(Project(x, KProj), b, t, kvHeads, d, rope: true, offset);
        using var v = Heads(Project(x, VProj), b, t, kvHeads, d, rope: false, offset);
        using var o = offset == 0 ? Tensor.CausalAttention(q, k, v) : AttendToCache(q, cache!, layerIndex, k, v);
        if (cache != null && offset == 0) cache.Append(layerIndex, k, v);
        using var merged = o.Transpose(1, 2).Reshape(b, t, heads * d);
        return Project(merged, OProj);
    }

    /// <summary>[b, t, n·d] → [b, n, t, d], rotated by RoPE (positions from <paramref name="offset"/>) for queries and keys.</summary>
    private Tensor Heads(Tensor projected, int b, int t, int n, int d, bool rope, int offset)
    {
        using (projected)
        using (var split = projected.Reshape(b, t, n, d))
        {
            var heads = split.Transpose(1, 2);
            if (!rope) return heads;
            using (heads) return heads.Rope(offset, _config.RopeTheta, _ropeInverseFrequencies);
        }
    }

    /// <summary>One new query position attending to every cached position and itself (nothing later exists, so no
    /// mask): the new key and value are appended first. Query heads are grouped onto their key/value head.</summary>
    private Tensor AttendToCache(Tensor q, KvCache cache, int layerIndex, Tensor k, Tensor v)
    {
        var (keys, values) = cache.Append(layerIndex, k, v);
        int b = q.Shape[0], heads = q.Shape[1], d = q.Shape[3], kvHeads = keys.Shape[1];
        using var grouped = q.Reshape(b, kvHeads, heads / kvHeads, d);
        using var keysT = keys.Transpose(2, 3);
        using var scores = grouped.MatMul(keysT, DType.Float32);
        using var scaled = scores * (1f / MathF.Sqrt(d));
        using var weights = scaled.Softmax(-1);
        using var attended = weights.MatMul(values, q.DType);
        return attended.Reshape(b, heads, 1, d);
    }

    private Tensor Mlp(Tensor x)
    {
        using var gate = Project(x, GateProj);
        using var up = Project(x, UpProj);
        using var gated = gate.SwiGlu(up);   // fused: silu(gate) is not kept for backward
        return Project(gated, DownProj);
    }

    /// <summary>x·Wᵀ in x's dtype (the activations'), whatever the weight's dtype.</summary>
    private static Tensor Project(Tensor x, Tensor weight) => x.LinearProduct(weight, x.DType);
}

/// <summary>Creates a model's weights in its dtype, one tensor at a time (a bf16 model never holds float32 copies of its
/// matrices).</summary>
internal sealed class WeightInit(Generator? generator, float std, DType dtype)
{
    public Tensor Normal(int rows, int columns) =>
        generator == null ? Tensor.Empty([rows, columns], dtype) : Tensor.RandN([rows, columns], generator, std, dtype: dtype);

    public Tensor Ones(int size) => generator == null ? Tensor.Empty([size], dtype) : Convert(Tensor.Ones([size]));

    private Tensor Convert(Tensor fp32)
    {
        if (dtype == DType.Float32) return fp32;
        using (fp32) return fp32.To(dtype);
    }

    /// <summary>For a small non-float32 weight (norm scales), a differentiable float32 cast for the fp32 kernels (its
    /// gradient flows back in the weight's dtype); null when the weight is float32 already and is used as it is.</summary>
    public static Tensor? Float32Cast(Tensor weight) => weight.DType == DType.Float32 ? null : weight.To(DType.Float32);
}

/// <summary>The keys and values (after RoPE) of the positions a model has seen, one pair per layer, so that generation
/// computes each new token from it instead of re-running the whole sequence. Dispose it when done.</summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys, _values;

    /// <summary>An empty cache for <paramref name="model"/> (one key and value tensor per layer as positions are added).</summary>
    public KvCache(LlamaModel model)
    {
        _keys = new Tensor?[model.Layers.Length];
        _values = new Tensor?[model.Layers.Length];
    }

    /// <summary>Positions cached.</summary>
    public int Length { get; internal set; }

    /// <summary>Appends new keys and values [b, kvHeads, t, d] of a layer along the sequence; returns the layer's whole cache.</summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        _keys[layer] = Grow(_keys[layer], k);
        _values[layer] = Grow(_values[layer], v);
        return (_keys[layer]!, _values[layer]!);
    }

    private static Tensor Grow(Tensor? cached, Tensor added)
    {
        var grown = cached == null ? added.ContiguousNoGrad() : Tensor.Concat(2, cached, added);
        cached?.Dispose();
        return grown.Persist(); // outlives the caller's tensor scope
    }

    /// <summary>Frees the cached keys and values; the cache is empty again.</summary>
    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values)) t?.Dispose();
        Array.Clear(_keys);
        Array.Clear(_values);
        Length = 0;
    }
}
