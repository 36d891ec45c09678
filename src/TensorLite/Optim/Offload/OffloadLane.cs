namespace TensorLite.Optim.Offload;

/// <summary>Where a timeline event of an offloaded step ran.</summary>
public enum OffloadLane
{
    /// <summary>The device's forward and backward of a micro-batch (recorded by the trainer).</summary>
    DeviceCompute,
    /// <summary>The device copies a parameter's projected gradient (or gradient) to the host.</summary>
    ToHost,
    /// <summary>The host updates the optimizer state and computes the direction.</summary>
    HostUpdate,
    /// <summary>The device waits for a host update that has not finished.</summary>
    DeviceWait,
    /// <summary>The device copies the direction (or the updated weights) back and applies it.</summary>
    ToDeviceAndApply,
    /// <summary>The device copies back and applies a previous step's update deferred into this forward, just before the
    /// parameter's layer runs (<c>--offload-schedule deferred</c>).</summary>
    DeferredApply,
}
