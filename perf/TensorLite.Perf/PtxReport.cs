using TensorLite.Ilgpu;
using TensorLite.Ilgpu.Ptx;

namespace TensorLite.Perf;

/// <summary>
/// `ptx-report`: every kernel of <see cref="IlgpuKernels.All"/> compiled to PTX and assembled by ptxas for sm_80 and
/// sm_90, one markdown row per kernel and architecture: registers, stack frame, spill bytes, shared memory and the SASS
/// mix (HMMA, LDL/STL, LDG). Needs ptxas and cuobjdump (tools/ptx-report.sh fetches them); docs/gpu.md holds the table.
/// </summary>
public static class PtxReport
{
    public static void Run(string[] args)
    {
        // ptx-report --dump KERNEL SM: print that kernel's PTX (for reading what ILGPU generates).
        if (args.Length > 3 && args[1] == "--dump")
        {
            using var dump = new OfflinePtxCompiler(int.Parse(args[3]));
            var (kernel, explicitlyGrouped) = IlgpuKernels.All().First(k => OfflinePtxCompiler.NameOf(k.Method) == args[2]);
            Console.Write(dump.Compile(kernel, explicitlyGrouped));
            return;
        }
        string bin = PtxAssembler.Find() ?? throw new InvalidOperationException(
            "ptxas and cuobjdump were not found ($TL_CUDA_BIN, ~/.cache/tensorlite/cuda-11.8/usr/bin or the PATH); run tools/get-ptxas.sh.");
        var assembler = new PtxAssembler(bin);
        Console.WriteLine("| kernel | sm | registers | stack B | spill st/ld B | smem B | SASS instr. | HMMA | LDL | STL | global loads |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int sm in new[] { 80, 90 })
        {
            using var compiler = new OfflinePtxCompiler(sm);
            foreach (var (method, grouped) in IlgpuKernels.All())
            {
                string name = OfflinePtxCompiler.NameOf(method);
                var code = assembler.Assemble(name, compiler.Compile(method, grouped), sm);
                Console.WriteLine($"| {name} | {sm} | {code.Registers} | {code.StackFrameBytes} | {code.SpillStoreBytes}/{code.SpillLoadBytes} | " +
                    $"{code.SharedBytes} | {code.Instructions} | {code.Hmma} | {code.LocalLoads} | {code.LocalStores} | {code.GlobalLoads} |");
            }
        }
    }
}
