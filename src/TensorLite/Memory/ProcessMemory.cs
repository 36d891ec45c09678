namespace TensorLite.Memory;

/// <summary>The process's resident memory as the operating system counts it (what /usr/bin/time -v reports).</summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size (Linux VmHWM), or the current working set where /proc is unavailable.</summary>
    public static long PeakResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Environment.WorkingSet;
    }
}
