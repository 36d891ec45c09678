using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using TensorLite.IO;
using TensorLite.Models;
using TensorLite.Optim;

namespace TensorLite.Training;

/// <summary>What a checkpoint stores besides tensors: enough to continue bit for bit.</summary>
public sealed record TrainingState
{
    /// <summary>The optimizer steps taken when the checkpoint was written.</summary>
    public long Step { get; init; }
    /// <summary>The data generator's state: the next batch a resume draws is the one the run would have drawn.</summary>
    public ulong[] DataRngState { get; init; } = [];
    /// <summary>Training tokens consumed so far.</summary>
    public long TokensSeen { get; init; }
    /// <summary>The global gradient norm of the step just taken: per-layer training clips the next step by it.</summary>
    public double? LastGradNorm { get; init; }
    /// <summary>SHA-256 (hex) of each file in the checkpoint folder, checked on load.</summary>
    public Dictionary<string, string> Checksums { get; init; } = new();
    /// <summary>SHA-256 (hex) of this record's JSON without this field: state.json checks itself, so a changed step,
    /// generator state, token count or checksum list is refused rather than silently changing what a resume does.</summary>
    public string? StateChecksum { get; init; }

    /// <summary>The checksum <see cref="StateChecksum"/> must hold for this record.</summary>
    public string ComputeStateChecksum() =>
        Convert.ToHexString(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(this with { StateChecksum = null })));
}

/// <summary>
/// Checkpoints in a run folder: <c>checkpoints/step-NNNNNNN/</c> holds model.safetensors (HF names),
/// optimizer.safetensors and state.json, and <c>checkpoints/latest</c> names the newest complete one.
/// A checkpoint is written into a temporary folder, checked to hold only finite values, checksummed, renamed into
/// place, and only then does <c>latest</c> move (atomically), so a crash at any point leaves the previous checkpoint
/// usable. The files a checkpoint holds are fixed by this format (<see cref="Files"/>), not by its state.json: loading
/// checks exactly those, regular files only, inside the checkpoint folder, each against its SHA-256.
/// </summary>
public static class Checkpoints
{
    /// <summary>The files of a checkpoint folder: the weights (HF names), the optimizer state, and the step with checksums.</summary>
    public const string ModelFile = "model.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "state.json";

    /// <summary>The checksummed files of every checkpoint (state.json carries their checksums).</summary>
    public static readonly string[] Files = [ModelFile, OptimizerFile];

    /// <summary>The largest step a checkpoint folder name (step-NNNNNNN) can hold.</summary>
    public const long MaxStep = 9_999_999;

    /// <summary>state.json and latest are small; anything larger is not one of them.</summary>
    private const long MaxStateBytes = 1 << 20, MaxPointerBytes = 64;

    /// <summary>Test hook: called with each file name just before it is written (to simulate a crash).</summary>
    internal static Action<string>? BeforeFileWrite { get; set; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private static readonly Regex CheckpointName = new(@"^step-(\d{7})$", RegexOptions.CultureInvariant);

    /// <summary>The checkpoints folder of a run folder.</summary>
    public static string Folder(string runDir) => Path.Combine(runDir, "checkpoints");

    /// <summary>Writes a checkpoint. A NaN or infinity in the weights or the optimizer state aborts it before anything
    /// is committed (<see cref="NonFiniteTensorException"/>): a diverged step never becomes "the last good checkpoint".
    /// <paramref name="optimizerState"/> replaces the optimizer's own entries when they live on several ranks
    /// (<see cref="Distributed.StateShards"/>).</summary>
    public static string Save(string runDir, LlamaModel model, Optimizer optimizer, TrainingState state, int keep,
        IEnumerable<(string Name, Tensor Tensor)>? optimizerState = null)
    {
        string root = Folder(runDir);
        Directory.CreateDirectory(root);
        string name = $"step-{state.Step:D7}";
        string temp = Path.Combine(root, $".tmp-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            BeforeFileWrite?.Invoke(ModelFile);
            FaultPoints.Hit("checkpoint.model");
            LlamaWeights.Save(model, Path.Combine(temp, ModelFile), model.WeightDType, requireFinite: true);
            BeforeFileWrite?.Invoke(OptimizerFile);
            FaultPoints.Hit("checkpoint.optimizer");
            SafeTensors.Save(Path.Combine(temp, OptimizerFile), optimizerState ?? optimizer.StateTensors(),
                new Dictionary<string, string> { ["optimizer"] = optimizer.GetType().Name, ["step_count"] = optimizer.StepCount.ToString() },
                requireFinite: true);
            var checksums = new Dictionary<string, string>
            {
                [ModelFile] = Sha256(Path.Combine(temp, ModelFile)),
                [OptimizerFile] = Sha256(Path.Combine(temp, OptimizerFile)),
            };
            BeforeFileWrite?.Invoke(StateFile);
            FaultPoints.Hit("checkpoint.state");
            var full = state with { Checksums = checksums, StateChecksum = null };
            full = full with { StateChecksum = full.ComputeStateChecksum() };
            AtomicFile.Write(Path.Combine(temp, StateFile), s => JsonSerializer.Serialize(s, full, Json));
            string final = Path.Combine(root, name);
            if (Directory.Exists(final)) Directory.Delete(final, recursive: true); // a stale copy from an abandoned run
            Directory.Move(temp, final);
            FaultPoints.Hit("checkpoint.commit");
            AtomicFile.Write(Path.Combine(root, "latest"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(name)));
            FaultPoints.Hit("checkpoint.prune");
            Prune(root, keep, name);
            return final;
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>The newest complete checkpoint folder, or null when the run has none. <c>latest</c> must be a regular
    /// file holding a plain <c>step-NNNNNNN</c> name of a real folder (not a link) in the run's checkpoints folder.</summary>
    public static string? Latest(string runDir)
    {
        string pointer = Path.Combine(Folder(runDir), "latest");
        if (!File.Exists(pointer) && !Directory.Exists(pointer) && new FileInfo(pointer).LinkTarget == null) return null;
        string name = SafeFile.ReadAllText(pointer, "Checkpoint pointer", MaxPointerBytes, allowSymlink: false).Trim();
        if (!CheckpointName.IsMatch(name))
            throw new TensorLiteException($"'{pointer}' must hold a checkpoint name like step-0000100, not '{Printable(name)}'.");
        string dir = Path.Combine(Folder(runDir), name);
        if (!Directory.Exists(dir)) throw new TensorLiteException($"'{pointer}' names a checkpoint folder that does not exist.");
        if (new DirectoryInfo(dir).LinkTarget != null) throw new TensorLiteException($"Checkpoint folder '{dir}' is a symbolic link; a run folder holds its own checkpoints.");
        return dir;
    }

    private static string Printable(string s)
    {
        var clean = new string(s.Select(c => char.IsControl(c) ? '?' : c).Take(40).ToArray());
        return s.Length > 40 ? clean + "..." : clean;
    }

    /// <summary>Verifies checksums and restores the model and optimizer from a checkpoint folder. Weights and optimizer
    /// state must be finite. With <paramref name="expectedState"/> (the names of the optimizer's state tensors once it
    /// has taken a step), an optimizer file missing any of them or holding any other is refused.
    /// <paramref name="keepState"/> chooses the optimizer entries this process loads (a sharded run keeps its own share);
    /// every entry is checked either way.</summary>
    public static TrainingState Load(string checkpointDir, LlamaModel model, Optimizer optimizer, IReadOnlySet<string>? expectedState = null,
        Func<string, bool>? keepState = null)
    {
        var state = ReadState(checkpointDir);
        foreach (var file in Files)
        {
            string path = Path.Combine(checkpointDir, file);
            if (!File.Exists(path) && !Directory.Exists(path) && new FileInfo(path).LinkTarget == null)
                throw new TensorLiteException($"Checkpoint '{checkpointDir}' is missing {file}.");
            SafeFile.RequireRegular(path, "Checkpoint file", allowSymlink: false);
            if (Sha256(path) != state.Checksums[file]) throw new TensorLiteException($"Checkpoint file '{path}' does not match its checksum; it is corrupt.");
        }
        try
        {
            LlamaWeights.Load(model, Path.Combine(checkpointDir, ModelFile), requireFinite: true);
        }
        catch (NonFiniteTensorException e)
        {
            throw new TensorLiteException($"Checkpoint '{checkpointDir}' holds non-finite weights ({e.TensorName}); it cannot be used.");
        }
        string optimizerPath = Path.Combine(checkpointDir, OptimizerFile);
        Dictionary<string, Tensor> optState;
        try
        {
            optState = SafeTensors.Load(optimizerPath, requireFinite: true);
        }
        catch (NonFiniteTensorException e)
        {
            throw new TensorLiteException($"Checkpoint '{checkpointDir}' holds non-finite optimizer state ({e.TensorName}); it cannot be used.");
        }
        try
        {
            var meta = SafeTensors.ReadHeader(optimizerPath).Metadata;
            if (!meta.TryGetValue("optimizer", out var kind) || kind != optimizer.GetType().Name)
                throw new TensorLiteException($"Checkpoint '{checkpointDir}' holds {kind ?? "unnamed"} state but this run uses {optimizer.GetType().Name}.");
            if (!meta.TryGetValue("step_count", out var sc) || !long.TryParse(sc, System.Globalization.NumberStyles.None, null, out long stepCount) || stepCount != state.Step)
                throw new TensorLiteException($"'{optimizerPath}' must record step_count {state.Step} (its checkpoint's step), not '{sc}'.");
            if (expectedState != null)
            {
                if (expectedState.FirstOrDefault(n => !optState.ContainsKey(n)) is string missing)
                    throw new TensorLiteException($"'{optimizerPath}' has no '{missing}' entry; the optimizer state is incomplete.");
                if (optState.Keys.FirstOrDefault(n => !expectedState.Contains(n)) is string extra)
                    throw new TensorLiteException($"'{optimizerPath}' has an entry '{extra}' that this run's optimizer does not keep; it was written by a different optimizer or model.");
            }
            optimizer.LoadState(keepState == null ? optState : optState.Where(e => keepState(e.Key)).ToDictionary(), stepCount);
        }
        finally
        {
            foreach (var t in optState.Values) t.Dispose();
        }
        return state;
    }

    /// <summary>Reads and validates a checkpoint's state.json: its step matches the folder name, the data generator's
    /// state is usable, and it holds a SHA-256 for exactly the files of the format.</summary>
    public static TrainingState ReadState(string checkpointDir)
    {
        string path = Path.Combine(checkpointDir, StateFile);
        if (!File.Exists(path) && !Directory.Exists(path) && new FileInfo(path).LinkTarget == null)
            throw new TensorLiteException($"Checkpoint '{checkpointDir}' has no {StateFile}.");
        string text = SafeFile.ReadAllText(path, "Checkpoint state file", MaxStateBytes, allowSymlink: false);
        TrainingState? state;
        try
        {
            state = JsonSerializer.Deserialize<TrainingState>(text);
        }
        catch (JsonException)
        {
            throw new TensorLiteException($"'{path}' is not a valid checkpoint state file.");
        }
        if (state == null) throw new TensorLiteException($"'{path}' is empty.");
        string Bad(string what) => $"'{path}' is not a valid checkpoint state file: {what}.";
        var folder = CheckpointName.Match(Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpointDir)));
        if (state.Step < 1 || state.Step > MaxStep) throw new TensorLiteException(Bad($"Step {state.Step} is out of range (1 to {MaxStep})"));
        if (folder.Success && long.Parse(folder.Groups[1].Value) != state.Step)
            throw new TensorLiteException(Bad($"Step {state.Step} does not match the folder name"));
        if (state.DataRngState is not { Length: 4 } rng || rng.All(x => x == 0))
            throw new TensorLiteException(Bad("DataRngState must be four numbers, not all zero"));
        if (state.TokensSeen < 0) throw new TensorLiteException(Bad($"TokensSeen {state.TokensSeen} is negative"));
        if (state.LastGradNorm is double g && !(double.IsFinite(g) && g >= 0))
            throw new TensorLiteException(Bad($"LastGradNorm {g} is not a finite non-negative number"));
        if (state.Checksums == null) throw new TensorLiteException(Bad("it has no Checksums"));
        foreach (var file in Files)
            if (!state.Checksums.TryGetValue(file, out var sum) || sum is not { Length: 64 } || !sum.All(char.IsAsciiHexDigitUpper))
                throw new TensorLiteException(Bad($"Checksums has no valid SHA-256 for {file}"));
        if (state.Checksums.Keys.FirstOrDefault(k => !Files.Contains(k)) is string other)
            throw new TensorLiteException(Bad($"Checksums names '{Printable(other)}', which is not a checkpoint file"));
        if (state.StateChecksum == null) throw new TensorLiteException(Bad("it has no StateChecksum"));
        if (state.StateChecksum != state.ComputeStateChecksum())
            throw new TensorLiteException($"'{path}' does not match its StateChecksum; it is corrupt.");
        return state;
    }

    /// <summary>Removes what interrupted writes leave behind: <c>checkpoints/.tmp-step-*</c> folders (a whole checkpoint
    /// each), a half-copied tokenizer folder and the hidden temporaries of atomic file writes. Call it only while holding the run's lock.</summary>
    public static int CleanTemporaries(string runDir)
    {
        int removed = 0;
        string root = Folder(runDir);
        if (Directory.Exists(root))
            foreach (var dir in Directory.GetDirectories(root, ".tmp-step-*"))
            {
                if (new DirectoryInfo(dir).LinkTarget != null) File.Delete(dir);
                else Directory.Delete(dir, recursive: true);
                removed++;
            }
        if (Directory.Exists(runDir))
            foreach (var dir in Directory.GetDirectories(runDir, $".{RunFolder.TokenizerFolder}-*.tmp"))
            {
                Directory.Delete(dir, recursive: true); // an interrupted copy of the tokenizer (RunFolder.Complete)
                removed++;
            }
        foreach (var folder in new[] { runDir, root })
        {
            if (!Directory.Exists(folder)) continue;
            foreach (var file in Directory.GetFiles(folder, ".*.tmp").Concat(Directory.GetFiles(folder, "*.tmp.png")))
            {
                File.Delete(file);
                removed++;
            }
        }
        return removed;
    }

    private static void Prune(string root, int keep, string newest)
    {
        var complete = Directory.GetDirectories(root, "step-*").Select(Path.GetFileName).Where(n => CheckpointName.IsMatch(n!))
            .OrderBy(n => n, StringComparer.Ordinal).ToList();
        foreach (var old in complete.Take(Math.Max(0, complete.Count - keep)))
            if (old != newest) Directory.Delete(Path.Combine(root, old!), recursive: true);
    }

    private static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
