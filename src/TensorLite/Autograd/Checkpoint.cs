namespace TensorLite.Autograd;

/// <summary>
/// Activation checkpointing: runs a block without keeping its intermediate activations, and recomputes
/// them during Backward. Trades one extra forward of the block for its activation memory. The block
/// must be deterministic (same inputs, same outputs), e.g. dropout must draw from a generator that the
/// block re-seeds itself.
/// </summary>
public static class Checkpoint
{
    /// <summary>Runs <paramref name="block"/> without recording its graph and recomputes it during backward (activation checkpointing): only the inputs are kept, not the block's intermediate activations.</summary>
    public static Tensor Run(Func<Tensor[], Tensor> block, params Tensor[] inputs)
    {
        if (!GradMode.IsEnabled) return block(inputs);

        Tensor output;
        HashSet<Tensor> external = Recorder.BeginCollectingExternalInputs();
        try
        {
            using var noGrad = GradMode.NoGrad();
            output = block(inputs);
        }
        finally
        {
            Recorder.EndCollectingExternalInputs();
        }
        foreach (var x in inputs) external.Remove(x);
        var extra = external.ToArray();
        var nodeInputs = inputs.Concat(extra).ToArray();

        return Recorder.Record(output, "checkpoint", nodeInputs, gradOutput =>
        {
            var detached = inputs.Select(x => x.RequiresGrad ? x.Detach().RequireGrad() : x.Detach()).ToArray();
            var targets = detached.Where(x => x.RequiresGrad).Concat(extra).ToArray();
            Tensor?[] grads;
            using (var scope = TensorScope.Enter())
            {
                Tensor recomputed;
                using (GradMode.EnableGrad()) recomputed = block(detached);
                grads = Engine.Grad(recomputed, gradOutput, targets);
            }
            var result = new Tensor?[nodeInputs.Length];
            int next = 0;
            for (int i = 0; i < inputs.Length; i++) result[i] = detached[i].RequiresGrad ? grads[next++] : null;
            for (int i = 0; i < extra.Length; i++) result[inputs.Length + i] = grads[next++];
            foreach (var d in detached) d.Dispose();
            return result;
        });
    }
}
