using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;
using TensorLite.Numerics;

namespace TensorLite.Ilgpu;

/// <summary>Adam hyper-parameters precomputed on the host, so every kernel rounds exactly as the CPU backend does
/// (the CPU backend also computes 1 − β, 1 − lr·wd, lr/bc1, 1/bc1 and 1/sqrt(bc2) once per call).</summary>
public struct AdamKernelParams
{
    public float Beta1, Beta2, OneMinusBeta1, OneMinusBeta2, Decay, StepSize, InvBc1, InvSqrtBc2, Eps;
}

/// <summary>How an update kernel reads its parameter and operand (a <see cref="FloatFormat"/> each) and how it
/// rounds a half-precision parameter back: stochastic rounding (bfloat16 only) keyed by Key0/Key1, element i drawing the
/// bits of element FirstIndex + i of the whole parameter (<see cref="ParamRounding.FirstIndex"/>, modulo 2³²).</summary>
public struct ParamUpdateFormat
{
    public int Param, Operand, Stochastic;
    public uint Key0, Key1, FirstIndex;
}

/// <summary>The element formats an update kernel reads through a byte view.</summary>
public static class FloatFormat
{
    public const int Float32 = 0, BFloat16 = 1, Float16 = 2;
}

/// <summary>Offsets into the one device buffer that holds both 8-bit code maps and their midpoints.</summary>
public static class CodeTables
{
    public const int SignedMap = 0, UnsignedMap = 256, SignedMidpoints = 512, UnsignedMidpoints = 768, Length = 1024;

    /// <summary>The table contents: each map, then each map's 255 midpoints 0.5·(map[i] + map[i+1]) computed in float32
    /// exactly as the CPU encoder computes them, padded with +∞ so a 256-entry search never counts the pad.</summary>
    public static float[] Build()
    {
        var t = new float[Length];
        Fill(t, SignedMap, SignedMidpoints, BlockwiseQuantizer.SignedMap);
        Fill(t, UnsignedMap, UnsignedMidpoints, BlockwiseQuantizer.UnsignedMap);
        return t;
    }

    private static void Fill(float[] t, int mapAt, int midAt, ReadOnlySpan<float> map)
    {
        map.CopyTo(t.AsSpan(mapAt, 256));
        for (int i = 0; i < 255; i++) t[midAt + i] = 0.5f * (map[i] + map[i + 1]);
        t[midAt + 255] = float.PositiveInfinity;
    }
}

// Optimizer kernels: AdamW, the Adam direction, the parameter update of the projected optimizers, the sum of squares
// (gradient norms) and the block-wise 8-bit quantization of optimizer states (Numerics/BlockwiseQuantization.cs).
//
// Every formula keeps the CPU backend's operation order (CpuBackend.Optim.cs, .Projected.cs, BlockwiseQuantizer), so
// float32 results agree with it; half-precision parameters are widened, updated in float32 and rounded back with the
// CPU backend's nearest-even or stochastic rounding (HalfKernels), so they agree bit for bit.
public static partial class IlgpuKernels
{
    /// <summary>Threads per group of the block kernels (quantization: one group per block of at most
    /// <see cref="BlockwiseQuantizer.MaxBlockSize"/> = 2048 elements, 32 per thread) and of the sum-of-squares reduction.
    /// 64, like the row kernels: larger groups make every barrier far slower on the CPU accelerator the tests run on;
    /// on a GPU, 8-bit states give one group per 2048 elements, so there are plenty of groups anyway.</summary>
    public const int OptimGroupSize = 64;

    /// <summary>Groups of the first sum-of-squares stage at most (each thread then strides through the tensor).</summary>
    public const int MaxSumPartials = 1024;

    /// <summary>Elements each sum-of-squares thread reads at least before its group reduces (fewer groups, so fewer
    /// barriers and partials, for tensors below MaxSumPartials·OptimGroupSize·this).</summary>
    public const int SumElementsPerThread = 16;

    // ---- rounding like the CPU backend --------------------------------------------------------------

    /// <summary>
    /// a·b, rounded by itself. ptxas contracts a plain mul.f32 feeding an add into one FMA (a single rounding),
    /// which the CPU backend never does; a mul.rn.f32 is never contracted. Every product that feeds an addition
    /// goes through here, so a GPU rounds each operation as the CPU backend does. The CPU accelerator runs the
    /// managed branch (already separately rounded).
    /// </summary>
    private static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float product, a, b);
            return product;
        }
        return a * b;
    }

    // ---- element formats ----------------------------------------------------------------------------

    private static float LoadAsFloat(ArrayView<byte> bytes, int format, int i)
    {
        if (format == FloatFormat.Float32) return bytes.Cast<float>()[i];
        ushort bits = bytes.Cast<ushort>()[i];
        return format == FloatFormat.BFloat16 ? Interop.IntAsFloat((uint)bits << 16) : HalfBitsToFloat(bits);
    }

    /// <summary>Writes element i of a buffer in any <see cref="FloatFormat"/>, rounded to nearest even.</summary>
    private static void StoreAsFloat(ArrayView<byte> bytes, int format, int i, float value)
    {
        if (format == FloatFormat.Float32) bytes.Cast<float>()[i] = value;
        else if (format == FloatFormat.BFloat16) bytes.Cast<ushort>()[i] = FloatToBFloat16(value);
        else bytes.Cast<ushort>()[i] = FloatToHalfBits(value);
    }

    /// <summary>Writes the updated float32 value of parameter element i in the parameter's format.</summary>
    private static void StoreParam(ArrayView<byte> bytes, ParamUpdateFormat f, int i, float value)
    {
        if (f.Param == FloatFormat.Float32) bytes.Cast<float>()[i] = value;
        else if (f.Param == FloatFormat.Float16) bytes.Cast<ushort>()[i] = FloatToHalfBits(value);
        else if (f.Stochastic != 0) bytes.Cast<ushort>()[i] = StochasticBFloat16(value, RandomBits(f.Key0, f.Key1, (uint)i + f.FirstIndex));
        else bytes.Cast<ushort>()[i] = FloatToBFloat16(value);
    }

    /// <summary>Stochastic rounding to bfloat16 with a 16-bit random number r (HalfKernels.StochasticBf16): adding r
    /// below the kept bits and truncating rounds up with probability (dropped bits)/2^16. NaN stays a quiet NaN,
    /// ±∞ stays ±∞.</summary>
    private static ushort StochasticBFloat16(float x, uint r)
    {
        uint bits = Interop.FloatAsInt(x);
        uint magnitude = bits & 0x7FFF_FFFFu;
        if (magnitude > 0x7F80_0000u) return (ushort)((bits >> 16) | 0x0040u);
        if (magnitude == 0x7F80_0000u) return (ushort)(bits >> 16);
        return (ushort)((bits + (r & 0xFFFFu)) >> 16);
    }

    /// <summary>The 16 random bits of element <paramref name="index"/> (HalfKernels.RandomBits): two keyed rounds of
    /// the murmur3 finalizer, a function of (key, index) only, so any launch shape draws the same bits.</summary>
    private static uint RandomBits(uint k0, uint k1, uint index) => Mix32(Mix32(index ^ k0) + k1) >> 16;

    // ---- element-wise updates -----------------------------------------------------------------------

    /// <summary>One fused AdamW element: m and v are float32, the parameter and gradient any <see cref="FloatFormat"/>.</summary>
    public static void AdamW(Index1D i, ArrayView<byte> p, ArrayView<byte> g, ArrayView<float> m, ArrayView<float> v,
        AdamKernelParams h, ParamUpdateFormat f)
    {
        float gi = LoadAsFloat(g, f.Operand, i);
        float mi = Mul(h.Beta1, m[i]) + Mul(h.OneMinusBeta1, gi);
        float vi = Mul(h.Beta2, v[i]) + Mul(h.OneMinusBeta2 * gi, gi);
        m[i] = mi;
        v[i] = vi;
        float pi = LoadAsFloat(p, f.Param, i);
        StoreParam(p, f, i, Mul(h.Decay, pi) - h.StepSize * mi / (Mul(XMath.Sqrt(vi), h.InvSqrtBc2) + h.Eps));
    }

    /// <summary>The Adam direction of one float32 element, moments updated in place.</summary>
    public static void AdamDirection(Index1D i, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<float> d,
        AdamKernelParams h)
    {
        float gi = g[i];
        float mi = Mul(h.Beta1, m[i]) + Mul(h.OneMinusBeta1, gi);
        float vi = Mul(h.Beta2, v[i]) + Mul(h.OneMinusBeta2 * gi, gi);
        m[i] = mi;
        v[i] = vi;
        d[i] = h.InvBc1 * mi / (Mul(XMath.Sqrt(vi), h.InvSqrtBc2) + h.Eps);
    }

    /// <summary>param ← decay·param − stepSize·update for one element of any formats.</summary>
    public static void ApplyUpdate(Index1D i, ArrayView<byte> p, ArrayView<byte> u, ParamUpdateFormat f, float decay, float stepSize)
    {
        float pi = LoadAsFloat(p, f.Param, i), ui = LoadAsFloat(u, f.Operand, i);
        StoreParam(p, f, i, Mul(decay, pi) - Mul(stepSize, ui));
    }

    // ---- sum of squares -----------------------------------------------------------------------------

    /// <summary>
    /// Stage one of Σ x²: each group's threads stride through the whole tensor (grid-stride, so a bounded number of
    /// groups covers any size), squaring in float32 and accumulating in double; the group's tree sum goes to
    /// partials[group]. Grid: at most <see cref="MaxSumPartials"/> groups of <see cref="OptimGroupSize"/>.
    /// </summary>
    public static void SumOfSquaresPartials(ArrayView<byte> x, int format, int n, ArrayView<double> partials)
    {
        var scratch = SharedMemory.Allocate<double>(OptimGroupSize);
        int tid = Group.IdxX;
        long stride = (long)Grid.DimX * Group.DimX;
        double acc = 0;
        for (long k = (long)Grid.IdxX * Group.DimX + tid; k < n; k += stride)
        {
            float value = LoadAsFloat(x, format, (int)k);
            acc += value * value;
        }
        double total = GroupSum(scratch, tid, acc);
        if (tid == 0) partials[Grid.IdxX] = total;
    }

    /// <summary>Stage two: one group adds the <paramref name="count"/> partials into result[0].</summary>
    public static void SumPartials(ArrayView<double> partials, int count, ArrayView<double> result)
    {
        var scratch = SharedMemory.Allocate<double>(OptimGroupSize);
        int tid = Group.IdxX;
        double acc = 0;
        for (int k = tid; k < count; k += Group.DimX) acc += partials[k];
        double total = GroupSum(scratch, tid, acc);
        if (tid == 0) result[0] = total;
    }

    // ---- block-wise 8-bit quantization --------------------------------------------------------------

    /// <summary>
    /// The code of a normalized value: how many midpoints of the map lie strictly below y, which is the CPU encoder's
    /// definition (nearest entry, ties to the lower code, out-of-range values clamped to the ends, NaN → 0). A
    /// branch-free binary search over the 256 padded midpoints at <paramref name="midpoints"/> in the code tables:
    /// eight steps for every value, so the threads of a warp stay together.
    /// </summary>
    private static byte Encode(float y, ArrayView<float> tables, int midpoints)
    {
        int count = 0;
        for (int step = 128; step > 0; step >>= 1)
            if (tables[midpoints + count + step - 1] < y) count += step;
        return (byte)count;
    }

    /// <summary>One group per block: the block's absmax by a shared-memory max reduction, then every element's code
    /// of x / absmax (the division is kept, as on the CPU: x·(1/absmax) can cross a midpoint), or the zero code
    /// everywhere when the block is all zeros (the code of 0 is the map's zero code: the midpoints below 0 are exactly
    /// those of the negative entries). Grid: one group of <see cref="OptimGroupSize"/> per block.</summary>
    public static void QuantizeBlocks(ArrayView<float> x, ArrayView<byte> codes, ArrayView<float> absmax, int n, int blockSize,
        ArrayView<float> tables, int midpoints)
    {
        var scratch = SharedMemory.Allocate<float>(OptimGroupSize);
        int tid = Group.IdxX, block = Grid.IdxX;
        int start = block * blockSize, len = XMath.Min(blockSize, n - start);
        float max = 0f;
        for (int k = tid; k < len; k += Group.DimX) max = XMath.Max(max, XMath.Abs(x[start + k]));
        max = GroupMax(scratch, tid, max, Group.DimX);
        if (tid == 0) absmax[block] = max;
        for (int k = tid; k < len; k += Group.DimX)
            codes[start + k] = Encode(max == 0f ? 0f : x[start + k] / max, tables, midpoints);
    }

    /// <summary>x[i] = map[codes[i]] · absmax[i / blockSize], one thread per element.</summary>
    public static void DequantizeBlocks(Index1D i, ArrayView<byte> codes, ArrayView<float> absmax, ArrayView<float> x, int blockSize,
        ArrayView<float> tables, int map) =>
        x[i] = tables[map + codes[i]] * absmax[i / blockSize];

    /// <summary>
    /// 8-bit Adam, one group per block (BlockwiseQuantizer.AdamBlock): dequantize m (signed map) and v (unsigned map),
    /// update them in float32, write the direction from the float32 values, reduce the new block maxima, and
    /// requantize both moments from the float32 values kept in shared memory. Every thread reads the old absmax
    /// before the reductions' barriers, and thread 0 writes the new one after them.
    /// </summary>
    public static void AdamBlocks8bit(ArrayView<float> g, ArrayView<byte> mCodes, ArrayView<float> mAbsmax,
        ArrayView<byte> vCodes, ArrayView<float> vAbsmax, ArrayView<float> d, int n, int blockSize, AdamKernelParams h, ArrayView<float> tables)
    {
        var mValues = SharedMemory.Allocate<float>(BlockwiseQuantizer.MaxBlockSize);
        var vValues = SharedMemory.Allocate<float>(BlockwiseQuantizer.MaxBlockSize);
        var scratch = SharedMemory.Allocate<float>(OptimGroupSize);
        int tid = Group.IdxX, block = Grid.IdxX;
        int start = block * blockSize, len = XMath.Min(blockSize, n - start);
        float ma = mAbsmax[block], va = vAbsmax[block];
        float maxM = 0f, maxV = 0f;
        for (int k = tid; k < len; k += Group.DimX)
        {
            int i = start + k;
            float gi = g[i];
            float mi = Mul(h.Beta1, tables[CodeTables.SignedMap + mCodes[i]] * ma) + Mul(h.OneMinusBeta1, gi);
            float vi = Mul(h.Beta2, tables[CodeTables.UnsignedMap + vCodes[i]] * va) + Mul(h.OneMinusBeta2 * gi, gi);
            mValues[k] = mi;
            vValues[k] = vi;
            d[i] = h.InvBc1 * mi / (Mul(XMath.Sqrt(vi), h.InvSqrtBc2) + h.Eps);
            maxM = XMath.Max(maxM, XMath.Abs(mi));
            maxV = XMath.Max(maxV, vi);
        }
        maxM = GroupMax(scratch, tid, maxM, Group.DimX);
        maxV = GroupMax(scratch, tid, maxV, Group.DimX);
        if (tid == 0)
        {
            mAbsmax[block] = maxM;
            vAbsmax[block] = maxV;
        }
        for (int k = tid; k < len; k += Group.DimX)
        {
            int i = start + k;
            mCodes[i] = Encode(maxM == 0f ? 0f : mValues[k] / maxM, tables, CodeTables.SignedMidpoints);
            vCodes[i] = Encode(maxV == 0f ? 0f : vValues[k] / maxV, tables, CodeTables.UnsignedMidpoints);
        }
    }

    /// <summary>The optimizer kernels for <see cref="All"/>.</summary>
    private static IEnumerable<(MethodInfo, bool)> OptimKernels()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        MethodInfo M(string name) => typeof(IlgpuKernels).GetMethod(name, flags)!;
        foreach (var name in new[] { nameof(AdamW), nameof(AdamDirection), nameof(ApplyUpdate), nameof(DequantizeBlocks) })
            yield return (M(name), false);
        foreach (var name in new[] { nameof(SumOfSquaresPartials), nameof(SumPartials), nameof(QuantizeBlocks), nameof(AdamBlocks8bit) })
            yield return (M(name), true);
    }
}
