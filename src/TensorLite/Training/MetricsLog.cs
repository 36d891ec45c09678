using System.Text;
using System.Text.Json;
using TensorLite.IO;

namespace TensorLite.Training;

/// <summary>
/// A run's metrics.jsonl: one JSON object per line, each with a numeric "step". Lines are appended unbuffered, one
/// write per line; a crash or a full disk can still leave the last line torn. Readers skip lines that are not whole
/// records, and resuming rewrites the file to the whole records up to the checkpoint it continues from.
/// </summary>
public static class MetricsLog
{
    /// <summary>The metrics file of a run folder.</summary>
    public const string FileName = "metrics.jsonl";

    /// <summary>A metrics file is text written by this program; anything far larger is not one.</summary>
    public const long MaxBytes = 1L << 30;

    /// <summary>The whole records of a metrics file, in order, skipping torn or foreign lines.</summary>
    public static List<JsonElement> Read(string path, out int skipped)
    {
        var records = new List<JsonElement>();
        skipped = 0;
        foreach (var (line, record) in Lines(path))
        {
            if (record is JsonElement r) records.Add(r);
            else if (line.Length > 0) skipped++;
        }
        return records;
    }

    private static IEnumerable<(string Line, JsonElement? Record)> Lines(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget != null || Directory.Exists(path))
            throw new TensorLiteException($"'{path}' is not a regular file; a run folder's metrics.jsonl must be one.");
        if (!info.Exists || info.Length == 0) yield break; // a FIFO or device reports 0 too and is never opened
        var bytes = SafeFile.ReadAllBytes(path, "Metrics file", MaxBytes, allowSymlink: false);
        // Invalid UTF-8 becomes U+FFFD, which then fails to parse as JSON (or parses as a string value): either way the
        // line is not taken as a record it is not.
        string text = new UTF8Encoding(false, throwOnInvalidBytes: false).GetString(bytes);
        foreach (var line in text.Split('\n'))
            yield return (line, Parse(line));
    }

    private static JsonElement? Parse(string line)
    {
        if (line.Length == 0 || line[^1] != '}') return null; // a torn line never ends its object
        try
        {
            using var doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 8 });
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("step", out var step) || step.ValueKind != JsonValueKind.Number || !step.TryGetInt64(out long s) || s < 1)
                return null;
            return root.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Rewrites the file to the whole records with step ≤ <paramref name="step"/> (a torn last line, or lines
    /// a crashed process wrote past its last checkpoint, are dropped), atomically; returns the lines dropped.</summary>
    public static int Repair(string path, long step)
    {
        var info = new FileInfo(path);
        if (!info.Exists && info.LinkTarget == null) return 0;
        if (info.LinkTarget == null && !Directory.Exists(path) && info.Length == 0)
        {
            File.Delete(path); // empty, or a FIFO/device put in its place: start it afresh
            return 0;
        }
        var kept = new StringBuilder();
        int dropped = 0;
        foreach (var (line, record) in Lines(path))
        {
            if (record is JsonElement r && r.GetProperty("step").GetInt64() <= step) kept.Append(line).Append('\n');
            else if (line.Length > 0) dropped++;
        }
        if (dropped == 0 && info.Length == Encoding.UTF8.GetByteCount(kept.ToString())) return 0;
        var bytes = Encoding.UTF8.GetBytes(kept.ToString());
        AtomicFile.Write(path, s => s.Write(bytes));
        return dropped;
    }

    /// <summary>Appends records to metrics.jsonl, each line in one unbuffered write.</summary>
    public sealed class Writer(string path) : IDisposable
    {
        private readonly FileStream _stream = new(path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);

        /// <summary>The file being appended to.</summary>
        public string Path { get; } = path;

        /// <summary>Appends one JSON record as a line.</summary>
        public void Append(string json)
        {
            var bytes = Encoding.UTF8.GetBytes(json + "\n");
            int half = bytes.Length / 2;
            // Crash tests stop the process (or fail the disk) between the two halves: a torn line, as a real crash leaves.
            _stream.Write(bytes, 0, half);
            FaultPoints.Hit("metrics.line");
            _stream.Write(bytes, half, bytes.Length - half);
        }

        /// <summary>Closes the file.</summary>
        public void Dispose() => _stream.Dispose();
    }
}
