using TensorLite.Memory;
using TensorLite.Optim.Projected;

namespace TensorLite.Optim.Offload;

/// <summary>
/// An inner optimizer's state kept on the host, with the host buffers a transfer needs. Its updates come in three
/// phases (<see cref="OffloadEngine"/>): the device sends the gradient (<see cref="SendGradient"/>,
/// <see cref="SendForApply"/>), the host updates (<see cref="HostDirection"/>, <see cref="HostApply"/>), the device
/// receives the result (<see cref="ReceiveDirection"/>, <see cref="ReceiveParameter"/>). <see cref="Direction"/> and
/// <see cref="Apply"/> run the three at once, so the state also works wherever the optimizer needs its result at once.
/// <para>The fused dense update (<see cref="Apply"/>) runs on a host copy of the parameter, as ZeRO-Offload keeps the
/// weights it updates on the host: the gradient goes to the host, the updated weights come back. The copy is filled
/// from the device once (after creation or a load) and kept equal to the device weights by every update after.</para>
/// </summary>
public sealed class HostOffloadedState : IInnerState
{
    private readonly IInnerState _host;
    private readonly int[] _shape;
    private readonly OffloadEngine _engine;
    private Tensor? _gradient, _direction, _parameter;
    /// <summary>Elements of the host parameter copy filled from the device so far (ranges arrive in order).</summary>
    private long _filled;

    internal HostOffloadedState(IInnerState host, int[] shape, OffloadEngine engine)
    {
        _host = host;
        _shape = shape;
        _engine = engine;
        Label = ShapeMath.Format(shape);
    }

    /// <summary>The name the timeline shows for this state's updates (the optimizer sets the parameter's name).</summary>
    public string Label { get; set; }

    /// <summary>The inner optimizer's state, on the host.</summary>
    public IInnerState HostState => _host;

    private long Numel => ShapeMath.Numel(_shape);

    /// <summary>A persistent host buffer, counted in the host's ledger under <paramref name="category"/>.</summary>
    private Tensor HostBuffer(ref Tensor? buffer, DType dtype, MemoryCategory category)
    {
        buffer ??= Tensor.Empty(_shape, dtype, _engine.Host).Persist().Tag(category);
        return buffer;
    }

    private static Tensor Range(Tensor t, long offset, long count) => InnerMath.StateRange(t, offset, count);

    // ---- the three phases of a direction ----------------------------------------------------------------------

    /// <summary>Device → host: copies the projected gradient R into the host buffer.</summary>
    public void SendGradient(Tensor r) =>
        _engine.CopyToHost(r, HostBuffer(ref _gradient, DType.Float32, MemoryCategory.Workspace));

    /// <summary>Host: the inner optimizer's direction of the sent gradient, into the host direction buffer.</summary>
    public void HostDirection(long step) => _host.Direction(_gradient!, DirectionBuffer(), step);

    /// <summary>Host → device: copies the direction into <paramref name="direction"/>.</summary>
    public void ReceiveDirection(Tensor direction) => _engine.CopyToDevice(DirectionBuffer(), direction);

    /// <summary>Where the host writes the direction: Adam's element-wise kernel reads each gradient element before it
    /// writes that element's direction, so it works in place in the gradient buffer (as the reference's fused CPU Adam
    /// does in its pinned buffer), halving the transfer buffers; other inner optimizers get a buffer of their own.</summary>
    private Tensor DirectionBuffer() =>
        _host is AdamMoments ? _gradient! : HostBuffer(ref _direction, DType.Float32, MemoryCategory.Workspace);

    // ---- the three phases of a fused dense update --------------------------------------------------------------

    /// <summary>Device → host: copies the float32 gradient (elements [offset, offset + n) of the flattened one) and,
    /// the first time, the parameter's range of weights.</summary>
    public void SendForApply(Tensor param, Tensor grad, long offset = 0)
    {
        using (var g = Range(HostBuffer(ref _gradient, DType.Float32, MemoryCategory.Workspace), offset, grad.Numel))
            _engine.CopyToHost(grad, g);
        if (_parameter != null && _parameter.DType != param.DType)
            throw new InvalidOperationException($"An offloaded state updates parameters of one dtype; got {param.DType.Name()} after {_parameter.DType.Name()}.");
        var hostParam = HostBuffer(ref _parameter, param.DType, MemoryCategory.Weights);
        if (offset < _filled) return;
        using (var w = Range(hostParam, offset, param.Numel))
            _engine.CopyToHost(param, w);
        _filled = offset + param.Numel;
    }

    /// <summary>Host: the inner optimizer's fused update of the host weights from the sent gradient.</summary>
    public void HostApply(long count, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
    {
        using var w = Range(_parameter!, offset, count);
        using var g = Range(_gradient!, offset, count);
        _host.Apply(w, g, learningRate, weightDecay, step, rounding, offset);
    }

    /// <summary>Host → device: copies the updated weights (the range at <paramref name="offset"/>) into <paramref name="param"/>.</summary>
    public void ReceiveParameter(Tensor param, long offset = 0)
    {
        using var w = Range(_parameter!, offset, param.Numel);
        _engine.CopyToDevice(w, param);
    }

    // ---- IInnerState ------------------------------------------------------------------------------------------

    /// <summary>Sends <paramref name="grad"/> to the host, computes the direction there and copies it back, serially.</summary>
    public void Direction(Tensor grad, Tensor direction, long step)
    {
        _engine.OnDevice(Label, OffloadLane.ToHost, () => SendGradient(grad));
        _engine.RunSerially(Label, () => HostDirection(step), () => ReceiveDirection(direction));
    }

    /// <summary>The fused update on the host copy of the weights, serially: gradient to the host, weights back.</summary>
    public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
    {
        _engine.OnDevice(Label, OffloadLane.ToHost, () => SendForApply(param, grad, offset));
        _engine.RunSerially(Label, () => HostApply(param.Numel, learningRate, weightDecay, step, rounding, offset), () => ReceiveParameter(param, offset));
    }

    /// <summary>The host state's granule.</summary>
    public int RangeGranule => _host.RangeGranule;

    /// <summary>Zeroes the host moments.</summary>
    public void Reset() => _host.Reset();

    /// <summary>Copies the change of basis to the host and carries the host moments into the new basis.</summary>
    public void ChangeBasis(Tensor change, ProjectionSide side)
    {
        using var hostChange = Tensor.Empty(change.Shape, DType.Float32, _engine.Host);
        using (var c = change.DType == DType.Float32 ? change.ContiguousNoGrad() : change.To(DType.Float32))
            _engine.CopyToHost(c, hostChange);
        _host.ChangeBasis(hostChange, side);
    }

    /// <summary>The host state's bytes (the moments; the transfer buffers are not optimizer state).</summary>
    public long StateBytes => _host.StateBytes;

    /// <summary>The host state's tensors (checkpoints hold the same names as without offload).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() => _host.StateTensors();

    /// <summary>Loads the host state; the host copy of the weights is filled again from the device at the next update.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix)
    {
        _host.LoadState(state, prefix);
        _filled = 0;
    }

    /// <summary>Frees the host state and buffers.</summary>
    public void Dispose()
    {
        _host.Dispose();
        _gradient?.Dispose();
        _direction?.Dispose();
        _parameter?.Dispose();
    }
}
