namespace TensorLite.Nn;

/// <summary>
/// A building block with named parameters and sub-modules, named like HF checkpoints
/// ("layers.0.mlp.up_proj.weight"). Parameters are persistent leaves that require gradients.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = [];
    private readonly List<(string Name, Module Module)> _children = [];

    /// <summary>Adds a parameter under <paramref name="name"/>: it becomes a persistent leaf that requires gradients, counted as weights.</summary>
    protected Tensor RegisterParameter(string name, Tensor value)
    {
        value.RequireGrad().Persist().Tag(Memory.MemoryCategory.Weights);
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Adds a sub-module whose parameters are named with the prefix <paramref name="name"/>.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        _children.Add((name, module));
        return module;
    }

    /// <summary>Every parameter with its HF-style dotted name, this module's first, then each sub-module's in order.</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters()
    {
        foreach (var (name, p) in _parameters) yield return (name, p);
        foreach (var (prefix, child) in _children)
            foreach (var (name, p) in child.NamedParameters())
                yield return ($"{prefix}.{name}", p);
    }

    /// <summary>Every parameter, in the order of <see cref="NamedParameters"/>.</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(x => x.Parameter);

    /// <summary>The number of scalar parameters.</summary>
    public long ParameterCount() => Parameters().Sum(p => (long)p.Numel);
}
