using TensorLite.Optim.Projected;

namespace TensorLite.Optim.Offload;

/// <summary>
/// Builds the optimizer of a run whose inner optimizer state lives on the host: the method's composition
/// (<see cref="OptimizerSpec.ToOptions"/>) with its inner optimizer wrapped in <see cref="HostOffloadedInner"/>. Dense
/// AdamW becomes the identity composition (no projection; ZeRO-Offload: whole gradients to the host, updated weights
/// back), a projected method moves only R and its direction. Dense parameters are updated whole (the host holds their
/// gradient anyway), which gives the same bits as updating them range by range.
/// </summary>
public static class OffloadedOptimizer
{
    /// <summary>The words of <c>--offload</c>: none; host (the chosen optimizer's states on the host); dense (host with
    /// dense AdamW: the ZeRO-Offload baseline); lsp (host with the LSP method).</summary>
    public static IReadOnlyList<string> Modes { get; } = ["none", "host", "dense", "lsp"];

    /// <summary>Why <paramref name="mode"/> cannot offload <paramref name="method"/> (the method's command-line word),
    /// or null when it can.</summary>
    public static string? Refusal(string mode, string method)
    {
        if (!Modes.Contains(mode)) return $"--offload must be one of {string.Join(", ", Modes)}, got '{mode}'.";
        if (mode == "none") return null;
        if (mode == "dense" && method != "adamw")
            return $"--offload dense is the dense baseline (AdamW with its states on the host); it needs --optimizer adamw, not {method} (use --offload host to offload {method}).";
        if (mode == "lsp" && method != "lsp")
            return $"--offload lsp offloads the LSP method; it needs --optimizer lsp, not {method} (use --offload host to offload {method}).";
        if (method is "frugal" or "lora")
            return $"--offload moves an inner optimizer's state to the host; {method} is not built for it (its {(method == "lora" ? "adapters" : "state-free residual")} need the dense gradient on the device). Use adamw, galore, osd, grass or lsp.";
        return null;
    }

    /// <summary>The offloaded optimizer <paramref name="spec"/> names over <paramref name="namedParameters"/>.</summary>
    public static ProjectedOptimizer Create(OptimizerSpec spec, IEnumerable<(string Name, Tensor Parameter)> namedParameters, DType basisDType, OffloadEngine engine)
    {
        if (spec.Method is OptimizerMethod.Lora or OptimizerMethod.Frugal)
            throw new TensorLiteException(Refusal("host", OptimizerSpec.WordOf(spec.Method))!);
        var options = spec.ToOptions();
        return new ProjectedOptimizer(namedParameters, options with
        {
            BasisDType = basisDType,
            Inner = new HostOffloadedInner(options.ResolveInner(), engine),
            DenseRangeElements = 0,
        });
    }
}
