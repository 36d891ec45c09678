using TensorLite.Models;
using TensorLite.Optim;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

public class LlamaTests
{
    private static LlamaConfig Micro(int layers = 1, int? kvHeads = null, bool tie = false) => new()
    {
        VocabSize = 11, HiddenSize = 8, IntermediateSize = 12, NumAttentionHeads = 2, NumKeyValueHeads = kvHeads,
        NumHiddenLayers = layers, MaxPositionEmbeddings = 16, TieWordEmbeddings = tie, InitializerRange = 0.3f,
    };

    // Hand-computed: 2·V·h (embedding + LM head) + layers·(4h² + 3h·inter + 2h) + h, with V = 32000.
    // E.g. llama_20m: 2·32000·256 + 4·(4·256² + 3·256·688 + 512) + 256 = 19,548,416.
    [Theory]
    [InlineData("llama_7b", 6_738_415_616L)]
    [InlineData("llama_13b", 13_015_864_320L)] // equals LLaMA-2-13B's published count
    [InlineData("llama_1b", 1_339_082_752L)]
    [InlineData("llama_60m", 58_073_600L)]
    [InlineData("llama_20m", 19_548_416L)]
    public void NamedConfigs_HaveTheExpectedParameterCounts(string name, long expected)
    {
        var config = LlamaConfig.FromName(name);
        Assert.Equal(expected, config.ParameterCount());
    }

    [Fact]
    public void ModelParameters_MatchTheConfigFormulaAndHfNames()
    {
        foreach (var config in new[] { Micro(2), Micro(2, kvHeads: 1), Micro(1, tie: true), LlamaConfig.FromName("tiny") })
        {
            var model = new LlamaModel(config, new Generator(1));
            Assert.Equal(config.ParameterCount(), model.ParameterCount());
        }
        var names = new LlamaModel(Micro(1), new Generator(1)).NamedParameters().Select(p => p.Name).ToArray();
        Assert.Contains("model.embed_tokens.weight", names);
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", names);
        Assert.Contains("model.layers.0.mlp.down_proj.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.Contains("lm_head.weight", names);
    }

    [Fact]
    public void BadConfigs_AreRejectedWithOneSentence()
    {
        Assert.Contains("must divide hidden_size", Assert.Throws<TensorLiteException>(() => (Micro() with { NumAttentionHeads = 3 }).Validate()).Message);
        Assert.Contains("must divide num_attention_heads", Assert.Throws<TensorLiteException>(() => (Micro() with { NumKeyValueHeads = 3 }).Validate()).Message);
        Assert.Contains("Unknown model config 'llama_2b'", Assert.Throws<TensorLiteException>(() => LlamaConfig.FromName("llama_2b")).Message);
        Assert.Throws<TensorLiteException>(() => LlamaConfig.FromJson("{\"hidden_size\": \"big\"}"));
    }

    [Fact]
    public void Config_RoundTripsThroughHfJson()
    {
        var config = LlamaConfig.FromName("llama_60m") with { NumKeyValueHeads = 4 };
        var json = config.ToJson();
        Assert.Contains("\"num_key_value_heads\": 4", json);
        Assert.Contains("\"intermediate_size\": 1376", json);
        Assert.Equal(config.ToJson(), LlamaConfig.FromJson(json).ToJson());
    }

    [Fact]
    public void OneLayerModel_MatchesAHandComputedForward()
    {
        var config = Micro(1, kvHeads: 1);
        var model = new LlamaModel(config, new Generator(5));
        int[] ids = [3, 7, 1, 10, 3];
        var logits = model.Forward(Tensor.FromArray(ids, 1, ids.Length)).ToArray();
        var expected = LlamaReference.Forward(model, ids);
        for (int i = 0; i < expected.Length; i++) Approx.Close(expected[i], logits[i], 1e-4, $"logit {i}");
    }

    [Fact]
    public void DecoderBlockAndWholeModel_GradientsMatchFiniteDifferences()
    {
        var config = Micro(2, kvHeads: 1);
        var model = new LlamaModel(config, new Generator(6));
        var ids = Tensor.FromArray([1, 4, 2, 9, 9, 0, 5, 3], 2, 4);
        var targets = Tensor.FromArray([4, 2, 9, 9, 0, 5, 3, 8], 2, 4);
        ParameterGradCheck.Check(() => model.Loss(ids, targets), model.NamedParameters());

        var block = model.Layers[0];
        var x = Tensor.RandN([2, 3, config.HiddenSize], new Generator(7));
        GradCheck.Check(t => block.Forward(t[0]), [x]);
        var probe = Tensor.RandN([2, 3, config.HiddenSize], new Generator(8));
        ParameterGradCheck.Check(() => (block.Forward(x) * probe).Sum(), block.NamedParameters());
    }

    [Fact]
    public void CheckpointedLayers_GiveTheSameGradients()
    {
        var model = new LlamaModel(Micro(2), new Generator(9));
        var ids = Tensor.FromArray([1, 4, 2, 9], 1, 4);
        var targets = Tensor.FromArray([4, 2, 9, 3], 1, 4);
        model.Loss(ids, targets).Backward();
        var plain = model.Parameters().Select(p => p.Grad!.ToArray()).ToArray();
        foreach (var p in model.Parameters()) p.ZeroGrad();
        model.CheckpointLayers = true;
        model.Loss(ids, targets).Backward();
        var checkpointed = model.Parameters().Select(p => p.Grad!.ToArray()).ToArray();
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], checkpointed[i]);
    }

    [Fact]
    public void OverfitsOneBatch_ToNearZeroLoss()
    {
        var model = new LlamaModel(LlamaConfig.FromName("tiny"), new Generator(10));
        var gen = new Generator(11);
        var ids = Tensor.FromArray(Enumerable.Range(0, 2 * 24).Select(_ => gen.NextInt(256)).ToArray(), 2, 24);
        var targets = Tensor.FromArray(Enumerable.Range(0, 2 * 24).Select(_ => gen.NextInt(256)).ToArray(), 2, 24);
        var opt = new AdamW(model.Parameters(), 1e-2f, weightDecay: 0f);
        float first = 0, last = 0;
        for (int step = 0; step < 150; step++)
        {
            using var scope = TensorScope.Enter();
            var loss = model.Loss(ids, targets);
            last = loss.Item();
            if (step == 0) first = last;
            loss.Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        Assert.InRange(first, 5.0f, 6.1f); // ≈ ln 256 = 5.55 at initialization
        Assert.True(last < 0.05f, $"loss {first} → {last}");
    }
}
