namespace TensorLite.Ilgpu;

/// <summary>Registers the ILGPU backends as `--device` names: "cuda" (the first CUDA device) and "ilgpu-cpu" (the same
/// kernels on ILGPU's CPU accelerator). Programs that want GPU devices call <see cref="Register"/> once at start-up.</summary>
public static class IlgpuDevices
{
    public static void Register()
    {
        Devices.Register("cuda", () => IlgpuBackend.Create(DeviceKind.Cuda));
        Devices.Register("ilgpu-cpu", () => IlgpuBackend.Create(DeviceKind.Cpu));
    }
}
