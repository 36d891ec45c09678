using System.Diagnostics;
using TensorLite.Ilgpu;
using TensorLite.Ilgpu.Ptx;
using TensorLite.Tests.Support;
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
    /// <summary>The hot kernels whose per-thread state must stay in registers: their SASS is read, and any local-memory
    /// instruction (LDL/STL) or stack frame fails the test.</summary>
    private static readonly string[] RegisterResidentKernels =
    [
        nameof(GemmKernels.GemmBlocked), nameof(GemmKernels.GemmTensorCore),
        nameof(IlgpuKernels.AttentionForward), nameof(IlgpuKernels.AttentionBackwardQuery), nameof(IlgpuKernels.AttentionBackwardKeyValue),
    ];

    [Fact]
    public void EveryKernel_AssemblesForSm80AndSm90_WithoutSpills_AndTheHotKernelsUseNoLocalMemory()
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
                codes[i] = assembler.Assemble(sources[i].Name, sources[i].Ptx, sm, withSass: RegisterResidentKernels.Contains(sources[i].Name)));

            var spilling = codes.Where(c => c.Spills).Select(c => $"{c.Kernel} ({c.SpillStoreBytes}/{c.SpillLoadBytes} B)").ToList();
            Assert.True(spilling.Count == 0, $"sm_{sm}: register spills in {string.Join(", ", spilling)}");
            Assert.All(codes, c => Assert.InRange(c.Registers, 1, 255));
            // One HMMA per mma.sync: 8 m16n8k16 tiles per k16 step, once for bf16 and once for f16 inputs (the loop
            // over the slice's two steps stays a loop). Before the mma became an ILGPU intrinsic, each was written
            // twice and sm_80 got 32.
            Assert.Equal(16, codes.Single(c => c.Kernel == nameof(GemmKernels.GemmTensorCore)).Hmma);
            // Accumulators, fragments and per-thread output columns live in registers: no local memory at all.
            var local = codes.Where(c => RegisterResidentKernels.Contains(c.Kernel)
                    && (c.StackFrameBytes, c.LocalLoads, c.LocalStores) != (0, 0, 0))
                .Select(c => $"{c.Kernel} (stack {c.StackFrameBytes} B, {c.LocalLoads} LDL, {c.LocalStores} STL)").ToList();
            Assert.True(local.Count == 0, $"sm_{sm}: local memory in {string.Join(", ", local)}");
            Assert.Equal(RegisterResidentKernels.Length, codes.Count(c => RegisterResidentKernels.Contains(c.Kernel)));
        }
    }

    [Fact]
    public void TheTensorCoreGemmsPtx_HasOneMmaPerTile_WithItsOperandsInRegisters()
    {
        // ILGPU alone (no ptxas): the intrinsic writes each mma.sync once, with register operands, and nothing of the
        // kernel goes through local memory (CudaAsm.Emit's output did: an st.local after every mma).
        using var compiler = new OfflinePtxCompiler(80);
        var kernel = GemmKernels.All().Single(k => k.Method.Name == nameof(GemmKernels.GemmTensorCore));
        string ptx = compiler.Compile(kernel.Method, kernel.ExplicitlyGrouped);
        var mmas = ptx.Split('\n').Where(line => line.Contains("mma.sync")).ToList();
        Assert.Equal(8, mmas.Count(line => line.Contains(".f32.bf16.bf16.f32")));
        Assert.Equal(8, mmas.Count(line => line.Contains(".f32.f16.f16.f32")));
        Assert.All(mmas, line => Assert.Matches(
            @"^\s*mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.b?f16\.b?f16\.f32\s+\{(%f\d+, ){3}%f\d+\}, \{(%r\d+, ){3}%r\d+\}, \{%r\d+, %r\d+\}, \{(%f\d+, ){3}%f\d+\};$",
            line));
        Assert.DoesNotContain(".local", ptx);
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
        string script = Path.Combine(Repository.Root, "tools", "get-ptxas.sh");
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
}
