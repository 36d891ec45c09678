namespace TensorLite.Nn;

/// <summary>
/// A building block with named parameters and sub-modules, named like HF checkpoints
/// ("layers.0.mlp.up_proj.weight"). Parameters are persistent leaves that require gradients.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = [];
    private readonly List<(string Name, Module Module)> _children = [];

    protected Tensor RegisterParameter(string name, Tensor value)
    {
        value.RequireGrad().Persist().Tag(Memory.MemoryCategory.Weights);
        _parameters.Add((name, value));
        return value;
    }

    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        _children.Add((name, module));
        return module;
    }

    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters()
    {
        foreach (var (name, p) in _parameters) yield return (name, p);
        foreach (var (prefix, child) in _children)
            foreach (var (name, p) in child.NamedParameters())
                yield return ($"{prefix}.{name}", p);
    }

    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(x => x.Parameter);

    public long ParameterCount() => Parameters().Sum(p => (long)p.Numel);
}
