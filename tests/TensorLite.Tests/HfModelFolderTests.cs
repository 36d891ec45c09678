using TensorLite.IO;
using TensorLite.Models;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>HF config fields (handled exactly or refused by name) and HF model folders in and out.</summary>
public class HfModelFolderTests
{
    // ---- rope_scaling ----------------------------------------------------------------------------

    // Llama 3.2 1B's rotary settings. Expected values: transformers' _compute_default_rope_parameters (float32 inv_freq)
    // then _compute_llama3_parameters, evaluated in float64 by a Python port of those two functions.
    [Theory]
    [InlineData(0, 1.0)]                        // high band: kept
    [InlineData(1, 0.663601279258728)]
    [InlineData(14, 0.0032114461064338684)]
    [InlineData(15, 0.0012905480279647187)]     // the band between: blended
    [InlineData(16, 0.00042955669189436585)]
    [InlineData(17, 9.708286858481353e-05)]
    [InlineData(18, 1.9461638657958247e-05)]    // low band: divided by the factor
    [InlineData(31, 9.418306490260875e-08)]
    public void Llama3RopeScaling_MatchesTransformersFormula(int index, double expected)
    {
        var config = LlamaConfig.FromJson("""
            { "hidden_size": 2048, "num_attention_heads": 32, "head_dim": 64, "intermediate_size": 64, "num_hidden_layers": 1,
              "vocab_size": 8, "rope_theta": 500000.0,
              "rope_scaling": { "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3" } }
            """);
        var frequencies = config.RopeInverseFrequencies()!;
        Assert.Equal(32, frequencies.Length);
        Assert.True(Math.Abs(frequencies[index] - expected) <= 1e-6 * expected, $"inv_freq[{index}] = {frequencies[index]:R}, expected {expected:R}");
    }

    [Fact]
    public void LinearRopeScaling_DividesEveryFrequency_AndNoScalingKeepsTheDefaultPath()
    {
        var plain = Micro();
        Assert.Null(plain.RopeInverseFrequencies());
        var linear = plain with { RopeScaling = new RopeScaling { RopeType = "linear", Factor = 4 } };
        var expected = RopeScaling.DefaultInverseFrequencies(plain.RopeTheta, plain.HeadDim);
        var scaled = linear.RopeInverseFrequencies()!;
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i] / 4, scaled[i], 1e-9f);
    }

    [Theory]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling type 'yarn'")]
    [InlineData("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}", "rope_scaling type 'dynamic'")]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0, \"beta_fast\": 32}", "rope_scaling field 'beta_fast'")]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "low_freq_factor")]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"linear\"}", "factor must be a positive number")]
    [InlineData("\"attention_bias\": true", "attention_bias")]
    [InlineData("\"mlp_bias\": true", "mlp_bias")]
    [InlineData("\"model_type\": \"mistral\"", "model_type 'mistral'")]
    [InlineData("\"sliding_window\": 4096", "field 'sliding_window'")]
    [InlineData("\"attention_dropout\": 0.1", "attention_dropout")]
    [InlineData("\"eos_token_id\": \"</s>\"", "eos_token_id")]
    [InlineData("\"eos_token_id\": [1, \"x\"]", "eos_token_id")]
    [InlineData("\"head_dim\": 0", "head_dim")]
    [InlineData("\"max_position_embeddings\": 0", "max_position_embeddings")]
    [InlineData("\"rope_theta\": -1", "rope_theta")]
    public void UnsupportedOrBadFields_AreRefusedByName(string field, string expected)
    {
        var e = Assert.Throws<TensorLiteException>(() => LlamaConfig.FromJson($"{{ \"hidden_size\": 16, \"num_attention_heads\": 2, \"vocab_size\": 8, {field} }}"));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Llama3Fields_AreReadAndWrittenBack()
    {
        var config = LlamaConfig.FromJson(HandWrittenConfig);
        Assert.Equal([38, 39], config.EosTokenId!);
        Assert.Equal(16, config.HeadDim);
        Assert.Equal(64, config.AttentionWidth);
        Assert.Equal("llama3", config.RopeScaling!.Kind);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(64, config.MaxPositionEmbeddings);
        Assert.Equal(10000f, config.RopeTheta);
        var again = LlamaConfig.FromJson(config.ToJson());
        Assert.Equal(config.ToJson(), again.ToJson());
        Assert.Contains("\"eos_token_id\": [", config.ToJson());
        Assert.Contains("\"transformers_version\"", config.ToJson()); // harmless fields survive
        Assert.Equal([7], LlamaConfig.FromJson("{\"eos_token_id\": 7, \"hidden_size\": 16, \"num_attention_heads\": 2}").EosTokenId!);
    }

    // ---- HF folders ------------------------------------------------------------------------------

    /// <summary>A Llama-3-style config written by hand: llama3 rope scaling whose three bands all occur at head_dim 16
    /// (wavelengths 6.3, 20, 63, ... against thresholds 8 and 32), head_dim ≠ hidden/heads, grouped KV heads, tied
    /// embeddings, an eos list, bf16.</summary>
    private const string HandWrittenConfig = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
          "bos_token_id": 37, "eos_token_id": [38, 39], "head_dim": 16, "hidden_act": "silu", "hidden_size": 32,
          "initializer_range": 0.02, "intermediate_size": 48, "max_position_embeddings": 64, "mlp_bias": false,
          "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
          "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_scaling": { "factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                            "original_max_position_embeddings": 32, "rope_type": "llama3" },
          "rope_theta": 10000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
          "transformers_version": "4.45.0", "use_cache": true, "vocab_size": 40
        }
        """;

    /// <summary>transformers' llama3 rule, restated here in double precision from the inverse frequencies.</summary>
    private static double[] Llama3Reference(int headDim, double theta, double factor, double low, double high, double context) =>
        Enumerable.Range(0, headDim / 2).Select(i =>
        {
            double inv = 1 / Math.Pow(theta, 2.0 * i / headDim), wavelength = 2 * Math.PI / inv;
            if (wavelength < context / high) return inv;
            if (wavelength > context / low) return inv / factor;
            double smooth = (context / wavelength - low) / (high - low);
            return (1 - smooth) * inv / factor + smooth * inv;
        }).ToArray();

    private static readonly (string Name, int[] Shape)[] HandWrittenTensors = BuildTensorList();

    private static (string, int[])[] BuildTensorList()
    {
        var list = new List<(string, int[])> { ("model.embed_tokens.weight", [40, 32]), ("model.norm.weight", [32]) };
        for (int l = 0; l < 2; l++)
        {
            string p = $"model.layers.{l}.";
            list.AddRange([(p + "input_layernorm.weight", [32]), (p + "post_attention_layernorm.weight", [32]),
                           (p + "self_attn.q_proj.weight", [64, 32]), (p + "self_attn.k_proj.weight", [32, 32]),
                           (p + "self_attn.v_proj.weight", [32, 32]), (p + "self_attn.o_proj.weight", [32, 64]),
                           (p + "mlp.gate_proj.weight", [48, 32]), (p + "mlp.up_proj.weight", [48, 32]), (p + "mlp.down_proj.weight", [32, 48])]);
        }
        return list.ToArray();
    }

    /// <summary>Writes the hand-written folder: config, three bf16 shards (tensors as HF orders them, split by hand),
    /// the index; returns the tensors written.</summary>
    private static Dictionary<string, Tensor> WriteHandWrittenFolder(string dir, string? index = null)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), HandWrittenConfig);
        var g = new Generator(77);
        var tensors = HandWrittenTensors.ToDictionary(t => t.Name, t => t.Name.EndsWith("norm.weight")
            ? Tensor.Rand(t.Shape, g, 0.5f, 1.5f, dtype: DType.BFloat16)
            : Tensor.RandN(t.Shape, g, 0.3f, dtype: DType.BFloat16));
        var names = tensors.Keys.ToArray();
        var shards = new[] { names[..5], names[5..13], names[13..] };
        var map = new List<string>();
        for (int s = 0; s < 3; s++)
        {
            string file = $"model-{s + 1:D5}-of-00003.safetensors";
            SafeTensors.Save(Path.Combine(dir, file), shards[s].Select(n => (n, tensors[n])), new Dictionary<string, string> { ["format"] = "pt" });
            map.AddRange(shards[s].Select(n => $"\"{n}\": \"{file}\""));
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
            index ?? $"{{ \"metadata\": {{ \"total_size\": 0 }}, \"weight_map\": {{ {string.Join(", ", map)} }} }}");
        return tensors;
    }

    [Fact]
    public void HandWrittenLlama3Folder_LoadsExpectedTensorsAndLogits()
    {
        using var dir = new TempDir();
        var written = WriteHandWrittenFolder(dir.Path);
        var model = HfModelFolder.Load(dir.Path);
        Assert.Equal(16, model.Config.HeadDim);
        Assert.Same(model.EmbedTokens, model.LmHead);
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        Assert.Equal(written.Keys.OrderBy(n => n), parameters.Keys.OrderBy(n => n));
        foreach (var (name, t) in written) Assert.Equal(t.ToArray(), parameters[name].ToArray()); // bf16 → fp32 is exact

        var bf16 = HfModelFolder.Load(dir.Path, DType.BFloat16);
        foreach (var (name, p) in bf16.NamedParameters()) Assert.Equal(written[name].ToArray<ushort>(), p.ToArray<ushort>());

        int[] ids = [37, 3, 17, 29, 5, 11, 0, 38, 21, 9, 14, 2];
        var logits = model.Forward(Tensor.FromArray(ids, 1, ids.Length)).ToArray();
        var expected = LlamaReference.Forward(model, ids, Llama3Reference(16, 10000, 8, 1, 4, 32));
        for (int i = 0; i < expected.Length; i++) Approx.Close(expected[i], logits[i], 2e-4, $"logit {i}");
        // Without the scaling the same weights give other logits: the test sees the rope_scaling.
        var unscaled = LlamaReference.Forward(model, ids);
        Assert.Contains(Enumerable.Range(0, expected.Length), i => Math.Abs(unscaled[i] - logits[i]) > 1e-2);
    }

    [Fact]
    public void BrokenFolders_AreRefusedWithOneSentence()
    {
        using var dir = new TempDir();
        WriteHandWrittenFolder(dir.Path);
        File.Delete(Path.Combine(dir.Path, "model-00002-of-00003.safetensors"));
        Assert.Contains("names shard 'model-00002-of-00003.safetensors'", Assert.Throws<TensorLiteException>(() => HfModelFolder.Load(dir.Path)).Message);

        using var wrongMap = new TempDir();
        WriteHandWrittenFolder(wrongMap.Path, """{ "weight_map": { "model.norm.weight": "model-00003-of-00003.safetensors" } }""");
        Assert.Contains("does not hold it", Assert.Throws<TensorLiteException>(() => HfModelFolder.Load(wrongMap.Path)).Message);

        using var untied = new TempDir();
        WriteHandWrittenFolder(untied.Path);
        File.WriteAllText(Path.Combine(untied.Path, "config.json"), HandWrittenConfig.Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"));
        Assert.Contains("no tensor 'lm_head.weight'", Assert.Throws<TensorLiteException>(() => HfModelFolder.Load(untied.Path)).Message);

        using var empty = new TempDir();
        Assert.Contains("no config.json", Assert.Throws<TensorLiteException>(() => HfModelFolder.Load(empty.Path)).Message);
        Assert.Contains("is a file", Assert.Throws<TensorLiteException>(() => HfModelFolder.Load(Path.Combine(dir.Path, "config.json"))).Message);
    }

    [Theory]
    [InlineData(false, DType.Float32)]
    [InlineData(true, DType.BFloat16)]
    public void Export_ThenLoad_IsExact(bool tie, DType weights)
    {
        var config = Micro() with { TieWordEmbeddings = tie, EosTokenId = [3, 4], BosTokenId = 2 };
        var model = new LlamaModel(config, new Generator(3), weights);
        using var dir = new TempDir();
        string outDir = Path.Combine(dir.Path, "hf");
        HfModelFolder.Save(model, outDir, weights, maxShardBytes: 600);
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(outDir, "model-*-of-*.safetensors").Length >= 3);
        Assert.Contains("\"eos_token_id\": [", File.ReadAllText(Path.Combine(outDir, "generation_config.json")));

        var loaded = HfModelFolder.Load(outDir, weights);
        Assert.Equal(config.ToJson(), (loaded.Config with { TorchDType = config.TorchDType }).ToJson());
        var original = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, p) in loaded.NamedParameters()) Assert.Equal(original[name].ToArray(), p.ToArray());
        var ids = Tensor.FromArray([1, 5, 2, 9, 0], 1, 5);
        Assert.Equal(model.Forward(ids).ToArray(), loaded.Forward(ids).ToArray());

        Assert.Contains("not empty", Assert.Throws<TensorLiteException>(() => HfModelFolder.Save(model, outDir)).Message);
    }

    [Fact]
    public void Export_OfASmallModel_IsOneFile()
    {
        using var dir = new TempDir();
        HfModelFolder.Save(new LlamaModel(Micro(), new Generator(1)), dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(dir.Path, "model.safetensors.index.json")));
    }

    private static LlamaConfig Micro() => new()
    {
        VocabSize = 11, HiddenSize = 8, IntermediateSize = 12, NumAttentionHeads = 2, NumKeyValueHeads = 1,
        NumHiddenLayers = 2, MaxPositionEmbeddings = 16, InitializerRange = 0.3f,
    };
}

/// <summary>Generation with the key/value cache gives the logits (and so the tokens) of full recomputation.</summary>
public class KvCacheTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CachedForward_MatchesFullForward(bool llama3Style)
    {
        var config = new LlamaConfig
        {
            VocabSize = 23, HiddenSize = 16, IntermediateSize = 24, NumAttentionHeads = 4, NumKeyValueHeads = 2, NumHiddenLayers = 2,
            MaxPositionEmbeddings = 32, InitializerRange = 0.3f,
            HeadDimOverride = llama3Style ? 8 : null,
            RopeScaling = llama3Style ? new RopeScaling { RopeType = "llama3", Factor = 4, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8 } : null,
        };
        var model = new LlamaModel(config, new Generator(11));
        int[] ids = [3, 9, 1, 22, 7, 7, 0, 15, 4, 18];
        var full = model.Forward(Tensor.FromArray(ids, 1, ids.Length)).ToArray();
        using var cache = new KvCache(model);
        var prompt = model.ForwardCached(Tensor.FromArray(ids[..4], 1, 4), cache).ToArray();
        AssertRow(full, 3, prompt);
        for (int t = 4; t < ids.Length; t++)
            AssertRow(full, t, model.ForwardCached(Tensor.FromArray([ids[t]], 1, 1), cache).ToArray());
        Assert.Equal(ids.Length, cache.Length);

        void AssertRow(float[] all, int position, float[] row)
        {
            for (int v = 0; v < config.VocabSize; v++) Approx.Close(all[position * config.VocabSize + v], row[v], 1e-4, $"position {position}, logit {v}");
        }
    }

    [Fact]
    public void Generation_PastTheWindow_StillMatchesRecomputation()
    {
        var config = new LlamaConfig { VocabSize = 19, HiddenSize = 16, IntermediateSize = 24, NumAttentionHeads = 2, NumHiddenLayers = 1, MaxPositionEmbeddings = 8, InitializerRange = 0.5f };
        var model = new LlamaModel(config, new Generator(5));
        var generated = Sampling.Generate(model, [1, 2, 3], 12, temperature: 0, topK: 0, new Generator(1), context: 6);
        var tokens = new List<int> { 1, 2, 3 };
        for (int i = 0; i < 12; i++)
        {
            var window = tokens.Skip(Math.Max(0, tokens.Count - 6)).ToArray();
            var logits = model.Forward(Tensor.FromArray(window, 1, window.Length)).ToArray()[^config.VocabSize..];
            tokens.Add(Array.IndexOf(logits, logits.Max()));
        }
        Assert.Equal(tokens, generated);
        // A stop token ends generation at its first occurrence, kept as the last token.
        int stop = generated[4], firstAt = Array.IndexOf(generated, stop, 3);
        Assert.Equal(generated[..(firstAt + 1)], Sampling.Generate(model, [1, 2, 3], 12, 0, 0, new Generator(1), stopTokens: new HashSet<int> { stop }));
    }
}
