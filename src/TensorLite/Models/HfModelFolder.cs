using System.Text.Json;
using System.Text.Json.Nodes;
using TensorLite.IO;

namespace TensorLite.Models;

/// <summary>
/// An HF model folder as <c>save_pretrained</c> writes it: <c>config.json</c>, the weights as one
/// <c>model.safetensors</c> or as shards listed by <c>model.safetensors.index.json</c>, <c>generation_config.json</c>
/// and the tokenizer's files. Reads such a folder into a TensorLite model and writes one from a model.
/// </summary>
public static class HfModelFolder
{
    /// <summary>The model config of an HF folder.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>The weights of an unsharded HF folder.</summary>
    public const string SingleWeightsFile = "model.safetensors";
    /// <summary>The index of a sharded HF folder (weight_map: tensor name → shard file).</summary>
    public const string IndexFile = "model.safetensors.index.json";
    /// <summary>Generation settings (bos/eos ids) that transformers reads beside the model.</summary>
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>HF's default shard size for <c>save_pretrained</c> (5 GB).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>The tokenizer files copied with a model (those that exist).</summary>
    public static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    private const long MaxJsonBytes = 64L << 20;

    /// <summary>Checks <paramref name="dir"/> is a directory holding config.json; one sentence if not.</summary>
    public static void RequireFolder(string dir)
    {
        if (File.Exists(dir)) throw new TensorLiteException($"'{dir}' is a file; --init-from takes an HF model folder (config.json and model.safetensors).");
        if (!Directory.Exists(dir)) throw new TensorLiteException($"Model folder '{dir}' does not exist.");
        if (!File.Exists(Path.Combine(dir, ConfigFile))) throw new TensorLiteException($"'{dir}' is not an HF model folder: it has no {ConfigFile}.");
    }

    /// <summary>Reads and checks the folder's config.json (fields TensorLite does not implement are refused by name).</summary>
    public static LlamaConfig ReadConfig(string dir)
    {
        RequireFolder(dir);
        return LlamaConfig.Load(Path.Combine(dir, ConfigFile));
    }

    /// <summary>The folder's weight files: the shards named by the index (each once, in order), else model.safetensors.</summary>
    public static IReadOnlyList<string> WeightFiles(string dir)
    {
        RequireFolder(dir);
        string index = Path.Combine(dir, IndexFile);
        if (!File.Exists(index))
        {
            string single = Path.Combine(dir, SingleWeightsFile);
            if (!File.Exists(single)) throw new TensorLiteException($"'{dir}' has neither {SingleWeightsFile} nor {IndexFile}.");
            return [single];
        }
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(SafeFile.ReadAllText(index, "Weight index", MaxJsonBytes));
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"'{index}' is not valid JSON: {LlamaConfig.Where(e)}.");
        }
        if (root?["weight_map"] is not JsonObject map || map.Count == 0)
            throw new TensorLiteException($"'{index}' has no weight_map object.");
        var files = new List<string>();
        foreach (var (name, value) in map)
        {
            string? file = value is JsonValue v && v.TryGetValue(out string? s) ? s : null;
            if (string.IsNullOrEmpty(file) || Path.GetFileName(file) != file)
                throw new TensorLiteException($"'{index}': weight_map entry '{name}' must name a file in the folder.");
            string path = Path.Combine(dir, file);
            if (!files.Contains(path))
            {
                if (!File.Exists(path)) throw new TensorLiteException($"'{index}' names shard '{file}', which is not in '{dir}'.");
                files.Add(path);
            }
        }
        // The index and the shards must agree, or a tensor could come from a file the index does not name for it.
        var stored = files.SelectMany(f => SafeTensors.ReadHeader(f).Tensors.Select(t => (t.Name, File: Path.GetFileName(f))))
                          .ToDictionary(t => t.Name, t => t.File, StringComparer.Ordinal);
        foreach (var (name, value) in map)
            if (!stored.TryGetValue(name, out var inFile) || inFile != (string)value!)
                throw new TensorLiteException($"'{index}' puts tensor '{name}' in '{(string)value!}', but that shard does not hold it.");
        return files;
    }

    /// <summary>Builds the config's model and loads the folder's weights into it (converted to <paramref name="weightDType"/>),
    /// tensor by tensor.</summary>
    public static LlamaModel Load(string dir, DType weightDType = DType.Float32)
    {
        var model = new LlamaModel(ReadConfig(dir), generator: null, weightDType);
        LoadWeights(model, dir);
        return model;
    }

    /// <summary>Copies the folder's weights into an existing model of the same architecture.</summary>
    public static void LoadWeights(LlamaModel model, string dir) => LlamaWeights.Load(model, WeightFiles(dir), dir, requireFinite: true);

    /// <summary>
    /// Writes <paramref name="model"/> as an HF folder in <paramref name="dtype"/>: one model.safetensors, or shards of at
    /// most <paramref name="maxShardBytes"/> (a larger tensor gets a shard of its own) with an index, as HF does; the
    /// tokenizer files found in <paramref name="tokenizerDir"/> are copied. The folder must be new or empty.
    /// </summary>
    public static void Save(LlamaModel model, string outDir, DType dtype = DType.Float32, long maxShardBytes = DefaultMaxShardBytes,
        string? tokenizerDir = null)
    {
        if (dtype is not (DType.Float32 or DType.BFloat16 or DType.Float16))
            throw new ArgumentException($"An HF folder's weights are float32, bfloat16 or float16, not {dtype.Name()}.");
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), "The shard size must be positive.");
        if (File.Exists(outDir)) throw new TensorLiteException($"'{outDir}' is a file; the export goes into a folder.");
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new TensorLiteException($"'{outDir}' is not empty; export into a new or empty folder.");
        Directory.CreateDirectory(outDir);

        var shards = Shards(model.NamedParameters().ToList(), dtype.SizeInBytes(), maxShardBytes);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            string file = shards.Count == 1 ? SingleWeightsFile : $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            LlamaWeights.Save(Path.Combine(outDir, file), shards[i], dtype, requireFinite: true);
            foreach (var (name, p) in shards[i])
            {
                weightMap[name] = file;
                total += (long)p.Numel * dtype.SizeInBytes();
            }
        }
        if (shards.Count > 1)
            WriteJson(Path.Combine(outDir, IndexFile), new { metadata = new { total_size = total }, weight_map = weightMap });
        var config = model.Config with { TorchDType = dtype.Name() };
        AtomicFile.Write(Path.Combine(outDir, ConfigFile), s => s.Write(System.Text.Encoding.UTF8.GetBytes(config.ToJson())));
        WriteJson(Path.Combine(outDir, GenerationConfigFile), GenerationConfig(config));
        if (tokenizerDir != null)
            foreach (var name in TokenizerFiles)
                if (File.Exists(Path.Combine(tokenizerDir, name)))
                    File.Copy(Path.Combine(tokenizerDir, name), Path.Combine(outDir, name));
    }

    /// <summary>Consecutive groups of parameters whose bytes stay within the limit (HF's greedy rule).</summary>
    private static List<List<(string Name, Tensor Parameter)>> Shards(List<(string Name, Tensor Parameter)> parameters, int elementBytes, long maxShardBytes)
    {
        var shards = new List<List<(string, Tensor)>> { new() };
        long size = 0;
        foreach (var p in parameters)
        {
            long bytes = (long)p.Parameter.Numel * elementBytes;
            if (size > 0 && size + bytes > maxShardBytes)
            {
                shards.Add(new());
                size = 0;
            }
            shards[^1].Add(p);
            size += bytes;
        }
        return shards;
    }

    private static Dictionary<string, object> GenerationConfig(LlamaConfig config)
    {
        var generation = new Dictionary<string, object> { ["_from_model_config"] = true };
        if (config.BosTokenId is int bos) generation["bos_token_id"] = bos;
        if (config.EosTokenId is { } eos) generation["eos_token_id"] = eos.Length == 1 ? eos[0] : eos;
        return generation;
    }

    private static void WriteJson(string path, object value) =>
        AtomicFile.Write(path, s => JsonSerializer.Serialize(s, value, new JsonSerializerOptions { WriteIndented = true }));
}
