using TensorLite.IO;

namespace TensorLite.Models;

/// <summary>HF-format weights: <c>model.safetensors</c> (or the shards of one) with HF tensor names, in float32, bfloat16
/// or float16.</summary>
public static class LlamaWeights
{
    /// <summary>Tensors HF checkpoints may carry that are derived, not learned (safe to skip on load).</summary>
    private static bool IsDerived(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>Writes the model's weights; with <paramref name="requireFinite"/> a NaN or infinity aborts the write
    /// (<see cref="NonFiniteTensorException"/>).</summary>
    public static void Save(LlamaModel model, string path, DType dtype = DType.Float32, bool requireFinite = false) =>
        Save(path, model.NamedParameters().Select(p => (p.Name, p.Parameter)), dtype, requireFinite);

    /// <summary>Writes the given weights converted to <paramref name="dtype"/> (converted copies exist only during the write).</summary>
    internal static void Save(string path, IEnumerable<(string Name, Tensor Parameter)> weights, DType dtype, bool requireFinite = false)
    {
        if (!dtype.IsFloatingPoint()) throw new ArgumentException($"Weights are saved as a floating-point dtype, not {dtype.Name()}.");
        var converted = weights.Select(p => (p.Name, Tensor: p.Parameter.DType == dtype ? p.Parameter.Alias() : p.Parameter.To(dtype))).ToList();
        try
        {
            SafeTensors.Save(path, converted, new Dictionary<string, string> { ["format"] = "pt" }, requireFinite);
        }
        finally
        {
            foreach (var (_, t) in converted) t.Dispose();
        }
    }

    /// <summary>Copies weights from a safetensors file into the model, converting dtypes; every parameter must be
    /// present with its exact shape, and no unknown tensor may be left over. With <paramref name="requireFinite"/>, a NaN
    /// or infinity is refused (<see cref="NonFiniteTensorException"/>).</summary>
    public static void Load(LlamaModel model, string path, bool requireFinite = false) =>
        Load(model, [path], path, requireFinite);

    /// <summary>Copies weights from the safetensors <paramref name="files"/> of one checkpoint (the shards of an HF model
    /// folder) into the model, tensor by tensor: only one checkpoint tensor is in memory at a time. Everything is checked
    /// from the headers before a weight is touched; <paramref name="source"/> names the checkpoint in messages.</summary>
    public static void Load(LlamaModel model, IReadOnlyList<string> files, string source, bool requireFinite = false)
    {
        var where = new Dictionary<string, (string File, SafeTensorInfo Info)>(StringComparer.Ordinal);
        foreach (var file in files)
            foreach (var info in SafeTensors.ReadHeader(file).Tensors)
                if (!where.TryAdd(info.Name, (file, info)))
                    throw new TensorLiteException($"'{source}': tensor '{info.Name}' appears in both '{Path.GetFileName(where[info.Name].File)}' and '{Path.GetFileName(file)}'.");
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, p) in parameters)
        {
            if (!where.TryGetValue(name, out var found))
                throw new TensorLiteException($"'{source}' has no tensor '{name}'; it was saved from a different model.");
            if (!ShapeMath.SameShape(found.Info.Shape, p.Shape))
                throw new TensorLiteException($"'{source}': tensor '{name}' has shape {ShapeMath.Format(found.Info.Shape)} but the model needs {ShapeMath.Format(p.Shape)}.");
            if (!found.Info.DType.IsFloatingPoint())
                throw new TensorLiteException($"'{source}': tensor '{name}' is {found.Info.DType.Name()}, not a floating-point weight.");
        }
        foreach (var name in where.Keys)
            if (!parameters.ContainsKey(name) && !IsDerived(name) && !(name == "lm_head.weight" && model.Config.TieWordEmbeddings))
                throw new TensorLiteException($"'{source}' has tensor '{name}', which this model does not have; check the config.");
        using var noGrad = Autograd.GradMode.NoGrad();
        foreach (var file in files)
            SafeTensors.Stream(file, info => parameters.ContainsKey(info.Name),
                (info, t) => parameters[info.Name].Backend.Copy(t, parameters[info.Name]), requireFinite: requireFinite);
    }
}
