using System.Security.Cryptography;
using System.Text.Json;
using TensorLite.IO;
using TensorLite.Models;
using TensorLite.Optim;

namespace TensorLite.Training;

/// <summary>What a checkpoint stores besides tensors: enough to continue bit for bit.</summary>
public sealed record TrainingState
{
    public long Step { get; init; }
    public ulong[] DataRngState { get; init; } = [];
    public long TokensSeen { get; init; }
    /// <summary>The global gradient norm of the step just taken: per-layer training clips the next step by it.</summary>
    public double? LastGradNorm { get; init; }
    /// <summary>SHA-256 (hex) of each file in the checkpoint folder, checked on load.</summary>
    public Dictionary<string, string> Checksums { get; init; } = new();
}

/// <summary>
/// Checkpoints in a run folder: <c>checkpoints/step-NNNNNNN/</c> holds model.safetensors (HF names),
/// optimizer.safetensors and state.json, and <c>checkpoints/latest</c> names the newest complete one.
/// A checkpoint is written into a temporary folder, checksummed, renamed into place, and only then
/// does <c>latest</c> move (atomically), so a crash at any point leaves the previous checkpoint usable.
/// </summary>
public static class Checkpoints
{
    public const string ModelFile = "model.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "state.json";

    /// <summary>Test hook: called with each file name just before it is written (to simulate a crash).</summary>
    internal static Action<string>? BeforeFileWrite { get; set; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string Folder(string runDir) => Path.Combine(runDir, "checkpoints");

    public static string Save(string runDir, LlamaModel model, Optimizer optimizer, TrainingState state, int keep)
    {
        string root = Folder(runDir);
        Directory.CreateDirectory(root);
        string name = $"step-{state.Step:D7}";
        string temp = Path.Combine(root, $".tmp-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            BeforeFileWrite?.Invoke(ModelFile);
            LlamaWeights.Save(model, Path.Combine(temp, ModelFile), model.WeightDType);
            BeforeFileWrite?.Invoke(OptimizerFile);
            SafeTensors.Save(Path.Combine(temp, OptimizerFile), optimizer.StateTensors(),
                new Dictionary<string, string> { ["optimizer"] = optimizer.GetType().Name, ["step_count"] = optimizer.StepCount.ToString() });
            var checksums = new Dictionary<string, string>
            {
                [ModelFile] = Sha256(Path.Combine(temp, ModelFile)),
                [OptimizerFile] = Sha256(Path.Combine(temp, OptimizerFile)),
            };
            BeforeFileWrite?.Invoke(StateFile);
            var full = state with { Checksums = checksums };
            AtomicFile.Write(Path.Combine(temp, StateFile), s => JsonSerializer.Serialize(s, full, Json));
            string final = Path.Combine(root, name);
            if (Directory.Exists(final)) Directory.Delete(final, recursive: true); // a stale copy from an abandoned run
            Directory.Move(temp, final);
            AtomicFile.Write(Path.Combine(root, "latest"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(name)));
            Prune(root, keep, name);
            return final;
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>The newest complete checkpoint folder, or null when the run has none.</summary>
    public static string? Latest(string runDir)
    {
        string pointer = Path.Combine(Folder(runDir), "latest");
        if (!File.Exists(pointer)) return null;
        string dir = Path.Combine(Folder(runDir), File.ReadAllText(pointer).Trim());
        return Directory.Exists(dir) ? dir : throw new TensorLiteException($"'{pointer}' names a checkpoint folder that does not exist.");
    }

    /// <summary>Verifies checksums and restores the model and optimizer from a checkpoint folder.</summary>
    public static TrainingState Load(string checkpointDir, LlamaModel model, Optimizer optimizer)
    {
        var state = ReadState(checkpointDir);
        foreach (var (file, expected) in state.Checksums)
        {
            string path = Path.Combine(checkpointDir, file);
            if (!File.Exists(path)) throw new TensorLiteException($"Checkpoint '{checkpointDir}' is missing {file}.");
            if (Sha256(path) != expected) throw new TensorLiteException($"Checkpoint file '{path}' does not match its checksum; it is corrupt.");
        }
        LlamaWeights.Load(model, Path.Combine(checkpointDir, ModelFile));
        var optState = SafeTensors.Load(Path.Combine(checkpointDir, OptimizerFile));
        try
        {
            var meta = SafeTensors.ReadHeader(Path.Combine(checkpointDir, OptimizerFile)).Metadata;
            if (meta.TryGetValue("optimizer", out var kind) && kind != optimizer.GetType().Name)
                throw new TensorLiteException($"Checkpoint '{checkpointDir}' holds {kind} state but this run uses {optimizer.GetType().Name}.");
            long stepCount = meta.TryGetValue("step_count", out var sc) && long.TryParse(sc, out var v) ? v : state.Step;
            optimizer.LoadState(optState, stepCount);
        }
        finally
        {
            foreach (var t in optState.Values) t.Dispose();
        }
        return state;
    }

    public static TrainingState ReadState(string checkpointDir)
    {
        string path = Path.Combine(checkpointDir, StateFile);
        if (!File.Exists(path)) throw new TensorLiteException($"Checkpoint '{checkpointDir}' has no {StateFile}.");
        try
        {
            return JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path)) ?? throw new TensorLiteException($"'{path}' is empty.");
        }
        catch (JsonException)
        {
            throw new TensorLiteException($"'{path}' is not a valid checkpoint state file.");
        }
    }

    private static void Prune(string root, int keep, string newest)
    {
        var complete = Directory.GetDirectories(root, "step-*").Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
        foreach (var old in complete.Take(Math.Max(0, complete.Count - keep)))
            if (old != newest) Directory.Delete(Path.Combine(root, old!), recursive: true);
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
