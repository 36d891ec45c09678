using TensorLite.IO;

namespace TensorLite.Models;

/// <summary>HF-format weights: <c>model.safetensors</c> with HF tensor names, in float32, bfloat16 or float16.</summary>
public static class LlamaWeights
{
    /// <summary>Tensors HF checkpoints may carry that are derived, not learned (safe to skip on load).</summary>
    private static bool IsDerived(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>Writes the model's weights; with <paramref name="requireFinite"/> a NaN or infinity aborts the write
    /// (<see cref="NonFiniteTensorException"/>).</summary>
    public static void Save(LlamaModel model, string path, DType dtype = DType.Float32, bool requireFinite = false)
    {
        if (!dtype.IsFloatingPoint()) throw new ArgumentException($"Weights are saved as a floating-point dtype, not {dtype.Name()}.");
        var converted = model.NamedParameters().Select(p => (p.Name, Tensor: p.Parameter.DType == dtype ? p.Parameter.Alias() : p.Parameter.To(dtype))).ToList();
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
    public static void Load(LlamaModel model, string path, bool requireFinite = false)
    {
        var tensors = SafeTensors.Load(path, requireFinite: requireFinite);
        try
        {
            var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
            foreach (var (name, p) in parameters)
            {
                if (!tensors.TryGetValue(name, out var t))
                    throw new TensorLiteException($"'{path}' has no tensor '{name}'; it was saved from a different model.");
                if (!ShapeMath.SameShape(t.Shape, p.Shape))
                    throw new TensorLiteException($"'{path}': tensor '{name}' has shape {ShapeMath.Format(t.Shape)} but the model needs {ShapeMath.Format(p.Shape)}.");
                if (!t.DType.IsFloatingPoint())
                    throw new TensorLiteException($"'{path}': tensor '{name}' is {t.DType.Name()}, not a floating-point weight.");
            }
            foreach (var name in tensors.Keys)
                if (!parameters.ContainsKey(name) && !IsDerived(name) && !(name == "lm_head.weight" && model.Config.TieWordEmbeddings))
                    throw new TensorLiteException($"'{path}' has tensor '{name}', which this model does not have; check the config.");
            foreach (var (name, p) in parameters) p.Backend.Copy(tensors[name], p);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
