using TensorLite.Autograd;
using TensorLite.Nn;

namespace TensorLite.Models;

/// <summary>
/// HF <c>LlamaForCausalLM</c>: token embedding; N decoder layers of (RMSNorm → causal self-attention with
/// rotary embeddings → residual; RMSNorm → SwiGLU MLP → residual); final RMSNorm; LM head (untied
/// unless the config ties it). Parameter names are HF's, so safetensors checkpoints interchange.
/// </summary>
public sealed class LlamaModel : Module
{
    public LlamaModel(LlamaConfig config, Generator generator)
    {
        Config = config.Validate();
        float std = config.InitializerRange;
        EmbedTokens = RegisterParameter("model.embed_tokens.weight", Tensor.RandN([config.VocabSize, config.HiddenSize], generator, std));
        Layers = new LlamaDecoderLayer[config.NumHiddenLayers];
        for (int i = 0; i < Layers.Length; i++)
            Layers[i] = RegisterModule($"model.layers.{i}", new LlamaDecoderLayer(config, generator));
        Norm = RegisterParameter("model.norm.weight", Tensor.Ones([config.HiddenSize]));
        LmHead = config.TieWordEmbeddings
            ? EmbedTokens
            : RegisterParameter("lm_head.weight", Tensor.RandN([config.VocabSize, config.HiddenSize], generator, std));
    }

    public LlamaConfig Config { get; }
    public Tensor EmbedTokens { get; }
    public LlamaDecoderLayer[] Layers { get; }
    public Tensor Norm { get; }
    public Tensor LmHead { get; }

    /// <summary>Recompute each decoder layer's activations during backward instead of keeping them.</summary>
    public bool CheckpointLayers { get; set; }

    /// <summary>Logits [batch, seq, vocab] for token ids [batch, seq] (int32 or int64).</summary>
    public Tensor Forward(Tensor ids)
    {
        if (ids.Rank != 2) throw new ShapeMismatchException($"LLaMA expects token ids shaped [batch, seq], got {ShapeMath.Format(ids.Shape)}.");
        if (ids.Shape[1] > Config.MaxPositionEmbeddings)
            throw new ShapeMismatchException($"Sequence length {ids.Shape[1]} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}.");
        Tensor h = Tensor.Embedding(EmbedTokens, ids);
        foreach (var layer in Layers)
        {
            var next = CheckpointLayers && GradMode.IsEnabled ? Checkpoint.Run(x => layer.Forward(x[0]), h) : layer.Forward(h);
            h.Dispose();
            h = next;
        }
        using (h)
        using (var normed = h.RmsNorm(Norm, Config.RmsNormEps))
        using (var headT = LmHead.T)
            return normed.MatMul(headT);
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

    public LlamaDecoderLayer(LlamaConfig config, Generator generator)
    {
        _config = config;
        int h = config.HiddenSize, kv = config.KeyValueHeads * config.HeadDim, inter = config.IntermediateSize;
        float std = config.InitializerRange;
        InputNorm = RegisterParameter("input_layernorm.weight", Tensor.Ones([h]));
        QProj = RegisterParameter("self_attn.q_proj.weight", Tensor.RandN([h, h], generator, std));
        KProj = RegisterParameter("self_attn.k_proj.weight", Tensor.RandN([kv, h], generator, std));
        VProj = RegisterParameter("self_attn.v_proj.weight", Tensor.RandN([kv, h], generator, std));
        OProj = RegisterParameter("self_attn.o_proj.weight", Tensor.RandN([h, h], generator, std));
        PostAttentionNorm = RegisterParameter("post_attention_layernorm.weight", Tensor.Ones([h]));
        GateProj = RegisterParameter("mlp.gate_proj.weight", Tensor.RandN([inter, h], generator, std));
        UpProj = RegisterParameter("mlp.up_proj.weight", Tensor.RandN([inter, h], generator, std));
        DownProj = RegisterParameter("mlp.down_proj.weight", Tensor.RandN([h, inter], generator, std));
    }

    public Tensor InputNorm { get; }
    public Tensor QProj { get; }
    public Tensor KProj { get; }
    public Tensor VProj { get; }
    public Tensor OProj { get; }
    public Tensor PostAttentionNorm { get; }
    public Tensor GateProj { get; }
    public Tensor UpProj { get; }
    public Tensor DownProj { get; }

    /// <summary>x: [batch, seq, hidden] → same shape.</summary>
    public Tensor Forward(Tensor x)
    {
        using var attnIn = x.RmsNorm(InputNorm, _config.RmsNormEps);
        using var attn = Attention(attnIn);
        using var h = x + attn;
        using var mlpIn = h.RmsNorm(PostAttentionNorm, _config.RmsNormEps);
        using var mlp = Mlp(mlpIn);
        return h + mlp;
    }

    private Tensor Attention(Tensor x)
    {
        int b = x.Shape[0], t = x.Shape[1];
        int heads = _config.NumAttentionHeads, kvHeads = _config.KeyValueHeads, d = _config.HeadDim;
        using var q = Heads(Project(x, QProj), b, t, heads, d, rope: true);
        using var k = Heads(Project(x, KProj), b, t, kvHeads, d, rope: true);
        using var v = Heads(Project(x, VProj), b, t, kvHeads, d, rope: false);
        using var o = Tensor.CausalAttention(q, k, v);
        using var merged = o.Transpose(1, 2).Reshape(b, t, heads * d);
        return Project(merged, OProj);
    }

    /// <summary>[b, t, n·d] → [b, n, t, d], rotated by RoPE for queries and keys.</summary>
    private Tensor Heads(Tensor projected, int b, int t, int n, int d, bool rope)
    {
        using (projected)
        using (var split = projected.Reshape(b, t, n, d))
        {
            var heads = split.Transpose(1, 2);
            if (!rope) return heads;
            using (heads) return heads.Rope(0, _config.RopeTheta);
        }
    }

    private Tensor Mlp(Tensor x)
    {
        using var gate = Project(x, GateProj);
        using var up = Project(x, UpProj);
        using var act = gate.Silu();
        using var prod = act * up;
        return Project(prod, DownProj);
    }

    private static Tensor Project(Tensor x, Tensor weight)
    {
        using var wt = weight.T;
        return x.MatMul(wt);
    }
}
