using System.Diagnostics;
using TensorLite.Ilgpu;
using TensorLite.Ilgpu.Ptx;
using Xunit;

namespace TensorLite.Tests;

/// <summary>
/// Every kernel's PTX assembled by NVIDIA's ptxas (CUDA 11.8) for sm_80 and sm_90, offline. When the tools are not on
/// this machine, the test fetches them once with tools/get-ptxas.sh into the user cache (no root, nothing installed;
/// ~85 MB from the Debian mirror the machine already uses). docs/gpu.md ("Machine code") has the full table, made by
/// tools/ptx-report.sh.
/// </summary>
public sealed class PtxAssemblyTests
{
    [Fact]
    public void EveryKernel_AssemblesForSm80AndSm90_WithoutSpills_AndTheGemmsMachineCodeIsAsExpected()
    {
        var assembler = new PtxAssembler(AssemblerFolder());
        foreach (int sm in new[] { 80, 90 })
        {
            var sources = new List<(string Name, string Ptx)>();
            using (var compiler = new OfflinePtxCompiler(sm))
                foreach (var (method, grouped) in IlgpuKernels.All())
                    sources.Add((OfflinePtxCompiler.NameOf(method), compiler.Compile(method, grouped)));
            // ptxas runs are independent processes: two at a time keeps the 2-core CI machine busy.
            var codes = new KernelMachineCode[sources.Count];
            Parallel.For(0, sources.Count, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
                codes[i] = assembler.Assemble(sources[i].Name, sources[i].Ptx, sm,
                    withSass: sources[i].Name is nameof(GemmKernels.GemmTensorCore) or nameof(GemmKernels.GemmBlocked)));

            var spilling = codes.Where(c => c.Spills).Select(c => $"{c.Kernel} ({c.SpillStoreBytes}/{c.SpillLoadBytes} B)").ToList();
            Assert.True(spilling.Count == 0, $"sm_{sm}: register spills in {string.Join(", ", spilling)}");
            Assert.All(codes, c => Assert.InRange(c.Registers, 1, 255));
            var tensorCore = codes.Single(c => c.Kernel == nameof(GemmKernels.GemmTensorCore));
            // 8 mma.sync m16n8k16 per k16 step, 2 steps per 32-deep slice (unrolled) = 16. Each mma is written twice
            // in the PTX (one asm statement per 64-bit output, see GemmKernels.Mma): ptxas merges the pair for sm_90,
            // not for sm_80 (docs/gpu.md, "Machine code").
            Assert.Equal(sm == 90 ? 16 : 32, tensorCore.Hmma);
            // The portable GEMM keeps its 4×4 accumulators in registers: no local memory at all.
            var blocked = codes.Single(c => c.Kernel == nameof(GemmKernels.GemmBlocked));
            Assert.Equal((0, 0, 0), (blocked.StackFrameBytes, blocked.LocalLoads, blocked.LocalStores));
        }
    }

    [Fact]
    public void AssemblerReports_AreParsed()
    {
        // A ptxas -v report and two SASS lines as CUDA 11.8 prints them.
        const string report = """
            ptxas info    : Compiling entry function 'Kernel' for 'sm_90'
            ptxas info    : Function properties for Kernel
                320 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 102 registers, 18432 bytes smem, 400 bytes cmem[0]
            """;
        const string sass = """
                /*0090*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;   /* 0x0000000c0804723c */
                /*00a0*/              @!P0 LDL.64 R2, [R1+0x10] ;                  /* 0x0000100001028983 */
                /*00b0*/                   STL [R1], R2 ;                          /* 0x0000000201007387 */
                /*00c0*/                   LDG.E R5, [R2.64] ;                     /* 0x0000000402057981 */
                /*00d0*/                   LD.E R6, [R2.64+0x4] ;                  /* 0x0000040402067980 */
            """;
        var code = PtxAssembler.Parse("Kernel", 90, report, sass);
        Assert.Equal(new KernelMachineCode("Kernel", 90, 102, 320, 8, 4, 18432, 5, 1, 1, 1, 2), code);
        Assert.True(code.Spills);
    }

    /// <summary>The folder with ptxas and cuobjdump, fetched into the user cache by tools/get-ptxas.sh when missing.</summary>
    private static string AssemblerFolder()
    {
        if (PtxAssembler.Find() is { } found) return found;
        string script = Path.Combine(RepositoryRoot(), "tools", "get-ptxas.sh");
        var start = new ProcessStartInfo("bash", $"\"{script}\" \"{PtxAssembler.DefaultCacheDirectory}\"")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0 && PtxAssembler.Find() is not null,
            $"ptxas is not on this machine and tools/get-ptxas.sh could not fetch it (exit code {process.ExitCode}): {stderr.Result.Trim()} " +
            "Set TL_CUDA_BIN to a folder with ptxas and cuobjdump (CUDA 11.8 or newer).");
        return PtxAssembler.Find()!;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "tools", "get-ptxas.sh"))) return dir.FullName;
        throw new InvalidOperationException($"No tools/get-ptxas.sh above {AppContext.BaseDirectory}.");
    }
}
