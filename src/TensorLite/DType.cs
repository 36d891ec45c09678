using System.Runtime.CompilerServices;

namespace TensorLite;

/// <summary>Element types a tensor can store. Compute happens in <see cref="Float32"/>; the others are
/// storage formats (half precision weights, quantized optimizer states, token ids and indices).</summary>
public enum DType
{
    /// <summary>32-bit IEEE float: every op computes in it.</summary>
    Float32,
    /// <summary>bfloat16: float32's exponent with 8 bits of mantissa (weights, activations).</summary>
    BFloat16,
    /// <summary>IEEE half precision (weights read from checkpoints).</summary>
    Float16,
    /// <summary>Signed byte (8-bit optimizer states).</summary>
    Int8,
    /// <summary>Unsigned byte.</summary>
    UInt8,
    /// <summary>32-bit integer (token ids, indices).</summary>
    Int32,
    /// <summary>64-bit integer (indices).</summary>
    Int64,
}

/// <summary>Size and naming of <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes one element of <paramref name="dtype"/> takes.</summary>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.BFloat16 or DType.Float16 => 2,
        DType.Int8 or DType.UInt8 => 1,
        DType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>Whether <paramref name="dtype"/> is float32, bfloat16 or float16.</summary>
    public static bool IsFloatingPoint(this DType dtype) =>
        dtype is DType.Float32 or DType.BFloat16 or DType.Float16;

    /// <summary>The lower-case name used in error messages and in safetensors-like headers.</summary>
    public static string Name(this DType dtype) => dtype switch
    {
        DType.Float32 => "float32",
        DType.BFloat16 => "bfloat16",
        DType.Float16 => "float16",
        DType.Int8 => "int8",
        DType.UInt8 => "uint8",
        DType.Int32 => "int32",
        DType.Int64 => "int64",
        _ => dtype.ToString(),
    };
}

/// <summary>Scalar conversions between float32 and the 16-bit storage formats.</summary>
internal static class HalfPrecision
{
    /// <summary>float32 → bfloat16 with round-to-nearest-even; NaN stays a (quiet) NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
            return (ushort)((bits >> 16) | 0x0040u); // keep the sign, force a quiet NaN
        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BFloat16ToFloat(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToFloat16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Float16ToFloat(ushort value) => (float)BitConverter.UInt16BitsToHalf(value);
}
