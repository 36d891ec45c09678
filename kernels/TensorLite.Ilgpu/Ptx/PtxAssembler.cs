using System.Diagnostics;
using System.Text.RegularExpressions;

namespace TensorLite.Ilgpu.Ptx;

/// <summary>What NVIDIA's assembler made of one kernel for one architecture: ptxas's resource report and the SASS
/// instruction mix (GlobalLoads: LDG and generic LD instructions).</summary>
public sealed record KernelMachineCode(
    string Kernel, int Sm, int Registers, int StackFrameBytes, int SpillStoreBytes, int SpillLoadBytes, int SharedBytes,
    int Instructions, int Hmma, int LocalLoads, int LocalStores, int GlobalLoads)
{
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>
/// Runs NVIDIA's PTX assembler and SASS disassembler (ptxas and cuobjdump from CUDA 11.8) on PTX text, offline: no GPU
/// or driver is involved. The tools come from Debian's nvidia-cuda-toolkit package, extracted without installing it
/// by tools/get-ptxas.sh; <see cref="Find"/> looks for them.
/// </summary>
public sealed partial class PtxAssembler(string binDirectory)
{
    /// <summary>Where tools/get-ptxas.sh puts the tools by default (a per-user cache, so a CI cache can keep it).</summary>
    public static string DefaultCacheDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "tensorlite", "cuda-11.8");

    /// <summary>The folder holding ptxas and cuobjdump: $TL_CUDA_BIN, else the default cache, else the PATH; null when
    /// none has both.</summary>
    public static string? Find()
    {
        var candidates = new List<string?>
        {
            Environment.GetEnvironmentVariable("TL_CUDA_BIN"),
            Path.Combine(DefaultCacheDirectory, "usr", "bin"),
        };
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator));
        return candidates.FirstOrDefault(d => !string.IsNullOrEmpty(d)
            && File.Exists(Path.Combine(d, "ptxas")) && File.Exists(Path.Combine(d, "cuobjdump")));
    }

    public string BinDirectory { get; } = binDirectory;

    /// <summary>Assembles <paramref name="ptx"/> for sm_<paramref name="sm"/> and reads back its resources and (unless
    /// <paramref name="withSass"/> is false, which leaves the instruction counts at 0) its SASS.</summary>
    public KernelMachineCode Assemble(string kernel, string ptx, int sm, bool withSass = true)
    {
        string work = Directory.CreateTempSubdirectory("tl-ptxas-").FullName;
        try
        {
            string ptxFile = Path.Combine(work, "k.ptx"), cubin = Path.Combine(work, "k.cubin");
            File.WriteAllText(ptxFile, ptx);
            string report = Run("ptxas", $"-arch=sm_{sm} -v -o {cubin} {ptxFile}");
            string sass = withSass ? Run("cuobjdump", $"-sass {cubin}") : "";
            return Parse(kernel, sm, report, sass);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Reads ptxas's "-v" lines and counts SASS instructions (one per line that starts with an address
    /// comment such as "/*0090*/").</summary>
    public static KernelMachineCode Parse(string kernel, int sm, string report, string sass)
    {
        int Field(Regex pattern) => pattern.Match(report) is { Success: true } m ? int.Parse(m.Groups[1].Value) : 0;
        int instructions = 0, hmma = 0, ldl = 0, stl = 0, ldg = 0;
        foreach (Match m in SassInstruction().Matches(sass))
        {
            string op = m.Groups[1].Value;
            instructions++;
            if (op.StartsWith("HMMA", StringComparison.Ordinal)) hmma++;
            else if (op.StartsWith("LDL", StringComparison.Ordinal)) ldl++;
            else if (op.StartsWith("STL", StringComparison.Ordinal)) stl++;
            // ILGPU addresses ArrayViews generically, so global loads are mostly LD (generic) rather than LDG.
            else if (op.StartsWith("LDG", StringComparison.Ordinal) || op == "LD" || op.StartsWith("LD.", StringComparison.Ordinal)) ldg++;
        }
        return new KernelMachineCode(kernel, sm, Field(Registers()), Field(StackFrame()), Field(SpillStores()), Field(SpillLoads()),
            Field(Shared()), instructions, hmma, ldl, stl, ldg);
    }

    private string Run(string tool, string arguments)
    {
        var start = new ProcessStartInfo(Path.Combine(BinDirectory, tool), arguments)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {tool}.");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{tool} {arguments} failed (exit code {process.ExitCode}): {stderr.Result.Trim()}");
        return stdout + stderr.Result;
    }

    [GeneratedRegex(@"Used (\d+) registers")] private static partial Regex Registers();
    [GeneratedRegex(@"(\d+) bytes stack frame")] private static partial Regex StackFrame();
    [GeneratedRegex(@"(\d+) bytes spill stores")] private static partial Regex SpillStores();
    [GeneratedRegex(@"(\d+) bytes spill loads")] private static partial Regex SpillLoads();
    [GeneratedRegex(@"(\d+) bytes smem")] private static partial Regex Shared();
    [GeneratedRegex(@"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)")] private static partial Regex SassInstruction();
}
