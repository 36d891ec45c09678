using TensorLite.Models;

namespace TensorLite.Training;

/// <summary>The trainer's part of the deferred offload schedule (<c>--offload-schedule deferred</c>, docs/offload.md).</summary>
public sealed partial class Trainer
{
    /// <summary>The layers a deferred schedule defers when --offload-defer-layers is not given: a quarter of the
    /// decoder layers, rounded up (the reference's 1.3B setting defers 40 of 168 linear layers, about a quarter).</summary>
    public static int DefaultDeferLayers(int layers) => (layers + 3) / 4;

    /// <summary>The decoder layers <paramref name="options"/> defer on a model of <paramref name="layers"/> layers; 0
    /// without the deferred schedule.</summary>
    public static int DeferredLayers(TrainingOptions options, int layers) =>
        options.Offload == "none" || options.OffloadSchedule != "deferred" ? 0 : options.OffloadDeferLayers ?? DefaultDeferLayers(layers);

    /// <summary>A deferral deeper than the model is a mistake, refused before the run folder is touched.</summary>
    private static void CheckDeferLayers(LlamaConfig config, TrainingOptions options)
    {
        if (options.OffloadDeferLayers > config.NumHiddenLayers)
            throw new TensorLiteException($"--offload-defer-layers {options.OffloadDeferLayers} exceeds the model's {config.NumHiddenLayers} decoder layers.");
    }

    /// <summary>
    /// With the deferred schedule: the embedding (forward stage 0) and the first N decoder layers (stages 1 … N) have
    /// their updates' device phase deferred into the next forward, and the model lands them at the start of each stage.
    /// Parameters are matched to stages by identity, so a tied LM head lands with the embedding, before its first use.
    /// </summary>
    private void DeferUpdatesNearTheInput()
    {
        int deferred = DeferredLayers(Options, Model.Layers.Length);
        if (deferred == 0 || Offload is not { Overlap: true } engine) return;
        var stageOf = new Dictionary<Tensor, int>(ReferenceEqualityComparer.Instance) { [Model.EmbedTokens] = 0 };
        for (int i = 0; i < deferred; i++)
            foreach (var p in Model.Layers[i].Parameters())
                stageOf.TryAdd(p, i + 1);
        foreach (var (name, p) in _named)
            if (stageOf.TryGetValue(p, out int stage)) engine.DeferToForward(name, stage);
        Model.BeforeForwardStage = engine.LandDeferred;
    }

    /// <summary>Applies every pending offloaded update (those deferred into the next forward too) on the run's device.</summary>
    private void FlushOffload()
    {
        if (Offload is not { } engine) return;
        using var onDevice = Backend.Use(Device);
        engine.Flush();
    }
}
