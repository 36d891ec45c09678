using ILGPU;
using ILGPU.Runtime;

namespace TensorLite.Ilgpu;

/// <summary>
/// Loads the implicitly grouped (element-wise) kernels. On CUDA they are auto-grouped (ILGPU picks the group size for
/// occupancy). On ILGPU's CPU accelerator they run in groups of one thread: the emulator ends every group with a
/// barrier across the group's OS threads, so an auto-sized group (one warp) cost about 2 µs per element on the 2-core
/// development machine, and a group of one costs a few tens of nanoseconds (docs/gpu.md, "The CPU emulator"). An
/// element-wise kernel uses no group memory or barrier, so the group size does not change its results.
/// </summary>
public static class ElementwiseKernelLoader
{
    public static Action<TIndex, T1> LoadElementwiseKernel<TIndex, T1>(this Accelerator a, Action<TIndex, T1> kernel)
        where TIndex : struct, IIndex where T1 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2> LoadElementwiseKernel<TIndex, T1, T2>(this Accelerator a, Action<TIndex, T1, T2> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3> LoadElementwiseKernel<TIndex, T1, T2, T3>(this Accelerator a, Action<TIndex, T1, T2, T3> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4> LoadElementwiseKernel<TIndex, T1, T2, T3, T4>(this Accelerator a, Action<TIndex, T1, T2, T3, T4> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5, T6> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5, T6>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5, T6> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5, T6, T7> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5, T6, T7>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5, T6, T7> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5, T6, T7, T8>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

    public static Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> LoadElementwiseKernel<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(this Accelerator a, Action<TIndex, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> kernel)
        where TIndex : struct, IIndex where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct =>
        a.AcceleratorType == AcceleratorType.CPU ? a.LoadImplicitlyGroupedStreamKernel(kernel, 1) : a.LoadAutoGroupedStreamKernel(kernel);

}
