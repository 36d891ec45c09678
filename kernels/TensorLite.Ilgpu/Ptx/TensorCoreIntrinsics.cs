using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.PTX;
using ILGPU.IR;
using ILGPU.IR.Intrinsics;
using ILGPU.IR.Values;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Ilgpu.Ptx;

/// <summary>
/// Teaches ILGPU's PTX backend the tensor-core instruction the GEMM needs: one mma.sync.m16n8k16 whose four result
/// registers are the registers ILGPU gives the returned <c>MmaTile</c>. <see cref="CudaAsm"/> cannot express this: its
/// inline assembly has at most one output, and ILGPU hands every output (and every <c>EmitRef</c> operand) over
/// through a local-memory slot that ptxas does not promote to registers, so a 4-register result meant either four
/// local-memory round trips per mma or two asm statements that each repeat the mma (see docs/gpu.md, "Machine code").
/// An ILGPU code-generation intrinsic writes the instruction itself, with the operands' own registers.
/// </summary>
public static class TensorCoreIntrinsics
{
    /// <summary>Registers the intrinsics with a context under construction; the CUDA context and the offline PTX
    /// compiler both need them (other accelerators run the kernels' emulated path and never call them).</summary>
    public static Context.Builder EnableTensorCoreMma(this Context.Builder builder)
    {
        var manager = builder.GetIntrinsicManager();
        Register(manager, nameof(GemmKernels.MmaBf16), nameof(GenerateBf16));
        Register(manager, nameof(GemmKernels.MmaF16), nameof(GenerateF16));
        return builder;
    }

    private static void Register(IntrinsicImplementationManager manager, string kernelMethod, string generator)
    {
        var target = typeof(GemmKernels).GetMethod(kernelMethod, BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"GemmKernels.{kernelMethod} is missing.");
        // mma.sync.m16n8k16 with bf16/f16 inputs exists from sm_80 on.
        manager.RegisterMethod(target, new PTXIntrinsic(typeof(TensorCoreIntrinsics), generator,
            IntrinsicImplementationMode.GenerateCode, CudaArchitecture.SM_80));
    }

    private static void GenerateBf16(PTXBackend backend, PTXCodeGenerator codeGenerator, Value value) =>
        GenerateMma(codeGenerator, value, "bf16");

    private static void GenerateF16(PTXBackend backend, PTXCodeGenerator codeGenerator, Value value) =>
        GenerateMma(codeGenerator, value, "f16");

    /// <summary>
    /// d = a·b + c for a call <c>MmaXx(c, a, b)</c>: c and d are four f32 registers (an <c>MmaTile</c>), a four and b
    /// two 32-bit registers of packed halves (<c>MmaFragmentA</c>, <c>MmaFragmentB</c>), in the PTX ISA's fragment
    /// layout for .m16n8k16 with row-major A and column-major B.
    /// </summary>
    private static void GenerateMma(PTXCodeGenerator codeGenerator, Value value, string inputType)
    {
        var call = (MethodCall)value;
        var c = Registers(codeGenerator.Load(call.Nodes[0]), 4);
        var a = Registers(codeGenerator.Load(call.Nodes[1]), 4);
        var b = Registers(codeGenerator.Load(call.Nodes[2]), 2);
        var d = Registers(codeGenerator.Allocate(call), 4);
        using var command = codeGenerator.BeginCommand($"mma.sync.aligned.m16n8k16.row.col.f32.{inputType}.{inputType}.f32");
        command.AppendVectorArgument(d);
        command.AppendVectorArgument(a);
        command.AppendVectorArgument(b);
        command.AppendVectorArgument(c);
    }

    /// <summary>The registers of a struct of <paramref name="count"/> 32-bit fields, in field order.</summary>
    private static RegisterAllocator<PTXRegisterKind>.PrimitiveRegister[] Registers(
        RegisterAllocator<PTXRegisterKind>.Register register, int count)
    {
        if (register is not RegisterAllocator<PTXRegisterKind>.CompoundRegister compound || compound.NumChildren != count
            || compound.Children.Any(r => r is not RegisterAllocator<PTXRegisterKind>.PrimitiveRegister))
            throw new InvalidOperationException($"An mma operand must be a struct of {count} 32-bit fields, not {register.Type}.");
        return compound.Children.Cast<RegisterAllocator<PTXRegisterKind>.PrimitiveRegister>().ToArray();
    }
}
