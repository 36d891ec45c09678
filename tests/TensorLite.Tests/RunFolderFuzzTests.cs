using System.Text;
using System.Text.Json;
using TensorLite.IO;
using TensorLite.Models;
using TensorLite.Training;
using Xunit;
using Xunit.Abstractions;

namespace TensorLite.Tests;

/// <summary>
/// Seeded mutation fuzzing of everything a run folder holds (safetensors headers and bodies, config.json, train.json,
/// state.json, latest, metrics.jsonl). Every case must end in a one-sentence error of the expected kinds or a correct
/// load (the same values as before the mutation, or a file that still says the same thing) — never another exception
/// type (a crash), a hang, a runaway allocation or silently accepted corrupt data. Case counts are printed (and in
/// docs/reliability.md).
/// </summary>
public sealed class RunFolderFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>The kinds of failure that mean "refused with one sentence".</summary>
    private static bool IsCleanError(Exception e) =>
        e is TensorLiteException or ArgumentException or FileNotFoundException && !e.Message.Contains('\n');

    private const long AllocationLimit = 256L << 20;

    /// <summary>Runs one case on this thread (so allocations are counted) under a hang guard; returns the clean error or
    /// null when it succeeded, and fails on anything else.</summary>
    private static Exception? Case(string label, Action body)
    {
        Exception? error = null;
        var task = Task.Factory.StartNew(() =>
        {
            long start = GC.GetAllocatedBytesForCurrentThread();
            try { body(); }
            catch (Exception e) { error = e; }
            return GC.GetAllocatedBytesForCurrentThread() - start;
        }, TaskCreationOptions.LongRunning);
        if (!task.Wait(TimeSpan.FromSeconds(60))) throw new Xunit.Sdk.XunitException($"{label}: hung");
        Assert.True(task.Result < AllocationLimit, $"{label}: allocated {task.Result:N0} bytes");
        if (error != null && !IsCleanError(error)) throw new Xunit.Sdk.XunitException($"{label}: {error.GetType().Name}: {error}");
        return error;
    }

    private static byte[] Mutate(byte[] input, Random rng, int start = 0, int end = -1)
    {
        if (end < 0) end = input.Length;
        var b = input.ToList();
        int at = rng.Next(start, Math.Max(start + 1, end));
        switch (rng.Next(8))
        {
            case 0: if (at < b.Count) b[at] ^= (byte)(1 << rng.Next(8)); break;                     // bit flip
            case 1: if (at < b.Count) b[at] = (byte)rng.Next(256); break;                            // random byte
            case 2: if (at < b.Count) b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(8))); break; // delete
            case 3: b.InsertRange(Math.Min(at, b.Count), Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => (byte)rng.Next(256))); break;
            case 4: b.RemoveRange(Math.Min(at, b.Count), b.Count - Math.Min(at, b.Count)); break;   // truncate
            case 5:                                                                                   // a digit becomes another number
            {
                var text = Encoding.UTF8.GetBytes(new[] { "-1", "0", "1e309", "99999999999999999999", "2147483648", "-2147483649", "NaN", "null", "1.5", "\"x\"", "[]", "{}", "true" }[rng.Next(13)]);
                int digit = b.FindIndex(Math.Min(at, b.Count), x => x is >= (byte)'0' and <= (byte)'9');
                if (digit < 0) digit = b.FindIndex(x => x is >= (byte)'0' and <= (byte)'9');
                if (digit >= 0)
                {
                    int len = 1;
                    while (digit + len < b.Count && b[digit + len] is >= (byte)'0' and <= (byte)'9' or (byte)'.' or (byte)'e' or (byte)'-') len++;
                    b.RemoveRange(digit, len);
                    b.InsertRange(digit, text);
                }
                break;
            }
            case 6: if (at < b.Count) b.InsertRange(at, Encoding.UTF8.GetBytes(new[] { "\"", "{", "}", "[", ",", ":", "\\", "\u00e9", "\0" }[rng.Next(9)])); break;
            default:                                                                                  // duplicate a span
            {
                int len = Math.Min(b.Count - Math.Min(at, b.Count), 1 + rng.Next(32));
                b.InsertRange(Math.Min(at, b.Count), b.GetRange(Math.Min(at, b.Count), len));
                break;
            }
        }
        return b.ToArray();
    }

    [Fact]
    public void SafetensorsHeadersAndBodies_LoadCorrectlyOrFailWithOneSentence()
    {
        var rng = new Random(20261202);
        var gen = new Generator(7);
        string good = Path.Combine(_root, "good.safetensors");
        SafeTensors.Save(good, [("a", Tensor.RandN([3, 4], gen)), ("b", Tensor.RandN([5], gen).To(DType.BFloat16)), ("c", Tensor.FromArray([1, 2, 3], 3))],
            new Dictionary<string, string> { ["format"] = "pt" });
        var original = File.ReadAllBytes(good);
        long headerEnd = 8 + BitConverter.ToInt64(original, 0);
        var reference = SafeTensors.Load(good).ToDictionary(x => x.Key, x => x.Value.ToArray());
        string path = Path.Combine(_root, "case.safetensors");
        int cases = 0, refused = 0, loaded = 0;
        for (int i = 0; i < 500; i++, cases++)
        {
            // Mostly the header (where parsing happens), some in the length prefix and the body.
            var bytes = i % 10 < 7 ? Mutate(original, rng, 8, (int)headerEnd) : i % 10 < 8 ? Mutate(original, rng, 0, 8) : Mutate(original, rng, (int)headerEnd);
            File.WriteAllBytes(path, bytes);
            Dictionary<string, Tensor>? result = null;
            var error = Case($"safetensors case {i}", () => result = SafeTensors.Load(path, requireFinite: true));
            if (error != null) { refused++; continue; }
            loaded++;
            // A load that succeeds is faithful to the file: every tensor the header names, with exactly the bytes at its
            // offsets (a changed name or body that is still a valid file is only caught by checksums; the run-level cases
            // below check they do).
            var (infos, _, dataStart) = SafeTensors.ReadHeader(path);
            Assert.Equal(infos.Select(x => x.Name).Order(), result!.Keys.Order());
            foreach (var info in infos)
            {
                var t = result[info.Name];
                Assert.Equal(info.Shape, t.ShapeArray);
                var raw = new byte[info.End - info.Begin];
                t.Backend.CopyToHost(t, raw);
                Assert.True(raw.AsSpan().SequenceEqual(bytes.AsSpan((int)(dataStart + info.Begin), raw.Length)), $"case {i}: {info.Name} differs from the file");
            }
            if (bytes.AsSpan().SequenceEqual(original)) Assert.Equal(reference.Keys.Order(), result.Keys.Order());
        }
        output.WriteLine($"safetensors: {cases} cases, {refused} refused, {loaded} loaded");
        Assert.True(refused > cases / 2);
    }

    [Fact]
    public void ConfigAndTrainingOptionsJson_ValidateOrFailWithOneSentence()
    {
        var rng = new Random(1202);
        var config = Encoding.UTF8.GetBytes(LlamaConfig.FromName("tiny").ToJson());
        var options = Encoding.UTF8.GetBytes(RunFolders.Tiny().ToJson());
        int cases = 0, refused = 0;
        for (int i = 0; i < 300; i++, cases++)
        {
            var bytes = Mutate(Mutate(config, rng), rng);
            var error = Case($"config case {i}", () =>
            {
                var c = LlamaConfig.FromJson(new UTF8Encoding(false, true).GetString(bytes));
                MemoryPlan.RequireHostMemory(c, RunFolders.Tiny());
                Assert.True(c.ParameterCount() > 0);
            });
            if (error != null) refused++;
        }
        int optionCases = 0, optionRefused = 0;
        for (int i = 0; i < 300; i++, optionCases++)
        {
            var bytes = Mutate(Mutate(options, rng), rng);
            var error = Case($"train.json case {i}", () =>
                TrainingOptions.FromJson(new UTF8Encoding(false, true).GetString(bytes), "train.json").Validate());
            if (error != null) optionRefused++;
        }
        output.WriteLine($"config.json: {cases} cases, {refused} refused; train.json: {optionCases} cases, {optionRefused} refused");
    }

    [Fact]
    public void MetricsJsonl_RepairKeepsOnlyWholeRecords_AndNeverInventsAny()
    {
        var rng = new Random(99);
        var lines = Enumerable.Range(1, 12).Select(s => JsonSerializer.Serialize(new { step = s, loss = 5.0 - s * 0.1, val_loss = s % 4 == 0 ? 4.0 : (double?)null, tokens_per_s = 100 })).ToArray();
        var original = Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n");
        string path = Path.Combine(_root, "metrics.jsonl");
        int cases = 0;
        for (int i = 0; i < 300; i++, cases++)
        {
            var bytes = Mutate(original, rng);
            File.WriteAllBytes(path, bytes);
            string mutated = Encoding.UTF8.GetString(bytes);
            var before = MetricsLog.Read(path, out _).Count;
            long upTo = 1 + rng.Next(14);
            Case($"metrics case {i}", () => MetricsLog.Repair(path, upTo));
            var kept = File.Exists(path) ? File.ReadAllLines(path) : [];
            foreach (var line in kept)
            {
                Assert.Contains(line, mutated.Split('\n')); // nothing invented
                using var doc = JsonDocument.Parse(line);
                Assert.True(doc.RootElement.GetProperty("step").GetInt64() <= upTo);
            }
            // Every untouched whole record up to the step survives.
            foreach (var line in lines.Where(l => mutated.Split('\n').Contains(l) && JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64() <= upTo))
                Assert.Contains(line, kept);
            Assert.True(kept.Length <= before);
        }
        output.WriteLine($"metrics.jsonl: {cases} cases");
    }

    [Fact]
    public void RunFolderFiles_LoadTheSameCheckpointOrFailWithOneSentence()
    {
        var rng = new Random(2026);
        string dir = Path.Combine(_root, "run");
        Trainer.Create(RunFolders.Tiny(), dir).Run();
        string ckpt = Checkpoints.Latest(dir)!;
        var reference = Trainer.Open(dir).Model.Parameters().Select(p => p.ToArray()).ToArray();
        var targets = new[]
        {
            Path.Combine(ckpt, Checkpoints.StateFile), Path.Combine(Checkpoints.Folder(dir), "latest"), Path.Combine(dir, "train.json"),
            Path.Combine(dir, "config.json"), Path.Combine(ckpt, Checkpoints.ModelFile), Path.Combine(ckpt, Checkpoints.OptimizerFile),
        };
        var counts = targets.ToDictionary(t => Path.GetFileName(t), _ => (Cases: 0, Refused: 0));
        for (int i = 0; i < 240; i++)
        {
            string target = targets[i % targets.Length];
            var original = File.ReadAllBytes(target);
            var mutated = Mutate(original, rng);
            File.WriteAllBytes(target, mutated);
            try
            {
                Trainer? opened = null;
                var error = Case($"run case {i} ({Path.GetFileName(target)})", () => opened = Trainer.Open(dir));
                var (c, r) = counts[Path.GetFileName(target)];
                counts[Path.GetFileName(target)] = (c + 1, r + (error != null ? 1 : 0));
                if (error != null) continue;
                // Accepted: only when the change does not change what the run is (JSON whitespace, an equivalent spelling,
                // an option the checkpoint does not depend on): the weights are exactly the checkpoint's.
                Assert.Equal(2, opened!.StartStep);
                var weights = opened.Model.Parameters().Select(p => p.ToArray()).ToArray();
                for (int k = 0; k < reference.Length; k++) Assert.Equal(reference[k], weights[k]);
                Assert.False(target.EndsWith(".safetensors") && !mutated.AsSpan().SequenceEqual(original), $"case {i}: a changed {Path.GetFileName(target)} was accepted");
                Assert.False(target.EndsWith(Checkpoints.StateFile) && !StateEquivalent(original, mutated), $"case {i}: a changed state.json was accepted");
            }
            finally
            {
                File.WriteAllBytes(target, original);
            }
        }
        output.WriteLine("run folder: " + string.Join(", ", counts.Select(x => $"{x.Key} {x.Value.Cases} cases ({x.Value.Refused} refused)")));
    }

    private static bool StateEquivalent(byte[] a, byte[] b)
    {
        try
        {
            return JsonSerializer.Serialize(JsonSerializer.Deserialize<TrainingState>(a)) == JsonSerializer.Serialize(JsonSerializer.Deserialize<TrainingState>(b));
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
