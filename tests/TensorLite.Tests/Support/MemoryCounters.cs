namespace TensorLite.Tests.Support;

/// <summary>Process-wide pool counters also move when finalizers release storages that other tests never
/// disposed; settling the garbage collector first makes readings depend on the test alone.</summary>
public static class MemoryCounters
{
    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
