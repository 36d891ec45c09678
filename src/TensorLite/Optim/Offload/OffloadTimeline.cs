using System.Text.Json;
using TensorLite.IO;

namespace TensorLite.Optim.Offload;

/// <summary>
/// The timeline of an offloaded run's latest logged step, kept in the run folder as offload-timeline.json (rewritten
/// at every logged step): per parameter, when the device copied its gradient to the host, when the host updated it,
/// how long the device waited for it and when the result was copied back and applied; per micro-batch, the device's
/// forward and backward. `tensorlite` draws it as offload-timeline.png when the run ends.
/// </summary>
public static class OffloadTimeline
{
    /// <summary>The file's name in the run folder.</summary>
    public const string FileName = "offload-timeline.json";

    /// <summary>One step's timeline as written.</summary>
    public sealed record Step(long StepNumber, long BytesToHost, long BytesToDevice, double HostSeconds, double WaitSeconds, OffloadEvent[] Events);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>Writes the engine's current step (numbered <paramref name="step"/>) to the run folder, atomically.</summary>
    public static void Write(string runDir, long step, OffloadEngine engine)
    {
        var record = new Step(step, engine.StepBytesToHost, engine.StepBytesToDevice, engine.StepHostSeconds, engine.StepWaitSeconds, engine.StepEvents.ToArray());
        var bytes = JsonSerializer.SerializeToUtf8Bytes(record, Json);
        AtomicFile.Write(Path.Combine(runDir, FileName), s => s.Write(bytes));
    }

    /// <summary>Reads a run folder's timeline; null when it has none or the file is not one.</summary>
    public static Step? Read(string runDir)
    {
        string path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<Step>(SafeFile.ReadAllBytes(path, "Offload timeline", 64L << 20, allowSymlink: false), Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
