using TensorLite.Backends.Cpu;
using TensorLite.Ilgpu;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The ILGPU indexing, selection, dropout and dtype-converting copy kernels against the CPU backend, on
/// ILGPU's CPU accelerator. Results are compared bit for bit: the kernels move raw bits or add in the CPU
/// backend's order, so there is no tolerance to hide behind. (Their PTX compile is covered by
/// <see cref="IlgpuBackendTests.EveryKernel_CompilesToPtxOffline"/>; <see cref="IndexingKernels_AreListedForThePtxCheck"/>
/// checks they are listed.)</summary>
public sealed class IlgpuIndexingTests(IlgpuCpuFixture fixture) : IClassFixture<IlgpuCpuFixture>
{
    private readonly IlgpuBackend _gpu = fixture.Backend;
    private static readonly IBackend Cpu = CpuBackend.Instance;

    private static float[] Data(int n, int seed)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = (float)(rng.NextDouble() * 6 - 3);
        return d;
    }

    /// <summary>k index values in [0, n) with repeats (k > n forces them; the first and last rows always occur).</summary>
    private static long[] Indices(int k, int n, int seed)
    {
        var rng = new Random(seed);
        var v = new long[k];
        for (int i = 0; i < k; i++) v[i] = rng.Next(n);
        if (k > 0) v[0] = n - 1;
        if (k > 2) { v[1] = 0; v[2] = n - 1; }   // a repeat of the last row
        return v;
    }

    private static int Numel(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    private static Tensor Floats(IBackend be, float[] data, params int[] shape) => Tensor.FromSpan<float>(data, shape, DType.Float32, be);

    private static Tensor IndexTensor(IBackend be, long[] values, DType dtype, params int[] shape) => dtype == DType.Int64
        ? Tensor.FromSpan<long>(values, shape, DType.Int64, be)
        : Tensor.FromSpan<int>(values.Select(v => (int)v).ToArray(), shape, DType.Int32, be);

    /// <summary>A tensor of any dtype holding the given raw bytes.</summary>
    private static Tensor Raw(IBackend be, byte[] bytes, DType dtype, params int[] shape)
    {
        var t = Tensor.Empty(shape, dtype, be);
        be.CopyFromHost(bytes, t);
        return t;
    }

    private static byte[] RawOf(Tensor t)
    {
        var bytes = new byte[t.Numel * t.DType.SizeInBytes()];
        t.Backend.CopyToHost(t, bytes);
        return bytes;
    }

    private static void AssertBitwise(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]),
                $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    /// <summary>Runs <paramref name="compute"/> on both backends and asserts the results are identical.</summary>
    private void SameBits(Func<IBackend, float[]> compute, string what) => AssertBitwise(compute(Cpu), compute(_gpu), what);

    // ---- FindIndexOutOfRange ----------------------------------------------------------------------

    public static TheoryData<long[], long, DType> RangeCases() => new()
    {
        { [0, 3, 4, 1], 5, DType.Int32 },                 // all in range
        { [0, 3, 4, 1], 5, DType.Int64 },
        { [2, 7, -1, 9], 5, DType.Int32 },                // first bad wins over later ones
        { [-3, 0, 1], 5, DType.Int64 },                   // negative at position 0
        { [1, 2, 1L << 40, 5], 3, DType.Int64 },          // an int64 value beyond int range comes back whole
        { [long.MinValue, 0], 3, DType.Int64 },
        { [4], 5, DType.Int32 },
        { [5], 5, DType.Int32 },                          // size itself is out of range
    };

    [Theory]
    [MemberData(nameof(RangeCases))]
    public void FindIndexOutOfRange_FirstPositionAndValue_MatchCpu(long[] values, long size, DType dtype)
    {
        (long Position, long Value) Run(IBackend be)
        {
            using var idx = IndexTensor(be, values, dtype, values.Length);
            long p = be.FindIndexOutOfRange(idx, size, out long v);
            return (p, v);
        }
        Assert.Equal(Run(Cpu), Run(_gpu));
    }

    [Fact]
    public void FindIndexOutOfRange_LongIndex_ManyBad_FindsTheMinimumPosition()
    {
        // Many threads find bad entries; the atomic minimum must still report the first one.
        var values = Indices(3001, 50, 7);
        foreach (int p in new[] { 2999, 1777, 640, 2001 }) values[p] = 50 + p;
        foreach (var dtype in new[] { DType.Int32, DType.Int64 })
        {
            using var idx = IndexTensor(_gpu, values, dtype, 3001);
            Assert.Equal(640, _gpu.FindIndexOutOfRange(idx, 50, out long v));
            Assert.Equal(690, v);
        }
    }

    [Fact]
    public void FindIndexOutOfRange_EmptyIndex_ReturnsMinusOne()
    {
        using var idx = Tensor.Empty([0], DType.Int64, _gpu);
        Assert.Equal(-1, _gpu.FindIndexOutOfRange(idx, 4, out _));
    }

    [Fact]
    public void OutOfRangeIndex_ThroughPublicOps_ThrowsTheCpuException()
    {
        string Message(IBackend be, Func<Tensor, Tensor, Tensor> op, long[] ids, DType dtype, params int[] idShape)
        {
            using var w = Floats(be, Data(12, 1), 4, 3);
            using var idx = IndexTensor(be, ids, dtype, idShape);
            return Assert.Throws<ArgumentOutOfRangeException>(() => op(w, idx).Dispose()).Message;
        }
        Func<Tensor, Tensor, Tensor>[] ops =
        [
            (w, i) => Tensor.Embedding(w, i),
            (w, i) =>
            {
                using var flat = i.Reshape(i.Numel);
                return w.IndexSelect(1, flat);
            },
            (w, i) => w.Gather(0, i),
        ];
        foreach (var op in ops)
        foreach (var dtype in new[] { DType.Int32, DType.Int64 })
            Assert.Equal(Message(Cpu, op, [1, 2, 0, 9, 2, -1], dtype, 2, 3), Message(_gpu, op, [1, 2, 0, 9, 2, -1], dtype, 2, 3));
    }

    // ---- IndexSelect / IndexAdd ---------------------------------------------------------------------

    public static TheoryData<int[], int, DType, DType, int> SelectCases() => new()
    {
        { [5, 3], 0, DType.Float32, DType.Int32, 7 },     // rows, repeated
        { [4, 5, 3], 1, DType.Float32, DType.Int64, 6 },  // middle axis
        { [3, 7], 1, DType.Float32, DType.Int32, 9 },     // last axis (inner = 1)
        { [6, 5], 0, DType.BFloat16, DType.Int64, 8 },    // a bf16 embedding table
        { [2, 5, 3], 2, DType.Float16, DType.Int32, 4 },
        { [5, 3], 1, DType.UInt8, DType.Int64, 5 },
        { [4, 3], 0, DType.Int64, DType.Int32, 3 },
        { [1, 9], 0, DType.Float32, DType.Int32, 3 },     // a single row, picked three times
        { [7], 0, DType.Int8, DType.Int64, 1 },           // rank 1, one index
        { [3, 4], 1, DType.Float32, DType.Int32, 0 },     // no indices: nothing to write
    };

    [Theory]
    [MemberData(nameof(SelectCases))]
    public void IndexSelect_AnyAxisAndDtype_MatchesCpuBitwise(int[] shape, int axis, DType dtype, DType indexType, int k)
    {
        var rng = new Random(shape.Sum() + axis + k);
        var bytes = new byte[Numel(shape) * dtype.SizeInBytes()];
        rng.NextBytes(bytes);
        var index = Indices(k, shape[axis], k + axis);
        var outShape = (int[])shape.Clone();
        outShape[axis] = k;
        byte[] Run(IBackend be)
        {
            using var x = Raw(be, bytes, dtype, shape);
            using var idx = IndexTensor(be, index, indexType, k);
            using var y = Tensor.Zeros(outShape, dtype, be);
            be.IndexSelect(x, axis, idx, y);
            return RawOf(y);
        }
        Assert.Equal(Run(Cpu), Run(_gpu));
    }

    public static TheoryData<int[], int, DType, int> AddCases() => new()
    {
        { [5, 3], 0, DType.Int32, 9 },      // rows, many repeats
        { [3, 4, 5], 1, DType.Int64, 7 },   // middle axis
        { [4, 6], 1, DType.Int32, 10 },     // last axis (inner = 1)
        { [3, 2, 4], 0, DType.Int64, 5 },   // first axis with outer = 1 and inner > 1
        { [1, 7], 0, DType.Int32, 4 },      // one target row hit four times
        { [2, 3], 1, DType.Int64, 0 },      // no indices: y unchanged
    };

    [Theory]
    [MemberData(nameof(AddCases))]
    public void IndexAdd_RepeatedIndices_AccumulateInIndexOrder_MatchCpuBitwise(int[] shape, int axis, DType indexType, int k)
    {
        var srcShape = (int[])shape.Clone();
        srcShape[axis] = k;
        var y0 = Data(Numel(shape), 11);
        var src = Data(Numel(srcShape), 12);
        var index = Indices(k, shape[axis], 13 + k);
        SameBits(be =>
        {
            using var y = Floats(be, y0, shape);
            using var s = Floats(be, src, srcShape);
            using var idx = IndexTensor(be, index, indexType, k);
            be.IndexAdd(y, axis, idx, s);
            return y.ToArray();
        }, "y");
    }

    // ---- Gather / ScatterAdd ------------------------------------------------------------------------

    public static TheoryData<int[], int[], int, DType> GatherCases() => new()
    {
        { [4, 5], [3, 2], 0, DType.Int32 },           // first axis, index smaller off the axis
        { [4, 5], [4, 7], 1, DType.Int64 },           // last axis, more entries than the axis is long
        { [3, 4, 5], [2, 6, 3], 1, DType.Int32 },     // middle axis
        { [3, 4, 5], [3, 2, 5], 2, DType.Int64 },
        { [3, 4, 5], [5, 4, 5], 0, DType.Int32 },
        { [6], [9], 0, DType.Int64 },                 // rank 1
        { [2, 1, 3], [2, 4, 3], 1, DType.Int32 },     // an axis of length 1: every entry is 0
    };

    [Theory]
    [MemberData(nameof(GatherCases))]
    public void Gather_AnyAxis_MatchesCpuBitwise(int[] xShape, int[] indexShape, int axis, DType indexType)
    {
        var x = Data(Numel(xShape), 21);
        var index = Indices(Numel(indexShape), xShape[axis], 22);
        SameBits(be =>
        {
            using var xt = Floats(be, x, xShape);
            using var idx = IndexTensor(be, index, indexType, indexShape);
            using var y = Tensor.Empty(indexShape, DType.Float32, be);
            be.Gather(xt, axis, idx, y);
            return y.ToArray();
        }, "y");
    }

    [Theory]
    [MemberData(nameof(GatherCases))]
    public void ScatterAdd_RepeatedTargets_AccumulateInAxisOrder_MatchCpuBitwise(int[] yShape, int[] indexShape, int axis, DType indexType)
    {
        var y0 = Data(Numel(yShape), 31);
        var src = Data(Numel(indexShape), 32);
        var index = Indices(Numel(indexShape), yShape[axis], 33);
        SameBits(be =>
        {
            using var y = Floats(be, y0, yShape);
            using var s = Floats(be, src, indexShape);
            using var idx = IndexTensor(be, index, indexType, indexShape);
            be.ScatterAdd(y, axis, idx, s);
            return y.ToArray();
        }, "y");
    }

    [Fact]
    public void GatherAndScatterAdd_ThroughPublicOpsAndAutograd_MatchCpu()
    {
        var x = Data(3 * 4 * 5, 41);
        var src = Data(3 * 6 * 5, 42);
        var index = Indices(2 * 6 * 3, 4, 43);
        var weights = Data(3 * 4 * 5, 44);
        (float[] Y, float[] Gx, float[] Gsrc) Run(IBackend be)
        {
            using var xt = Floats(be, x, 3, 4, 5);
            using var st = Floats(be, src, 3, 6, 5);
            using var w = Floats(be, weights, 3, 4, 5);
            using var idx = IndexTensor(be, index, DType.Int64, 2, 6, 3);
            xt.RequiresGrad = st.RequiresGrad = true;
            using var scattered = xt.ScatterAdd(1, idx, st);       // src larger than the index: its leading box is used
            using var gathered = scattered.Gather(1, idx);
            using var weighted = scattered * w;
            using var a = weighted.Sum();
            using var b = gathered.Sum();
            using var loss = a + b;
            loss.Backward();
            var result = (scattered.ToArray(), xt.Grad!.ToArray(), st.Grad!.ToArray());
            xt.Grad.Dispose(); st.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertBitwise(cpu.Y, gpu.Y, "y");
        AssertBitwise(cpu.Gx, gpu.Gx, "dx");
        AssertBitwise(cpu.Gsrc, gpu.Gsrc, "dsrc");
    }

    // ---- embedding through the public ops -----------------------------------------------------------

    [Theory]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    public void Embedding_ForwardAndBackward_ThroughAutograd_MatchCpu(DType indexType)
    {
        const int vocab = 7, dim = 5;
        var table = Data(vocab * dim, 51);
        var ids = Indices(2 * 6, vocab, 52);                // repeated ids: the gradient rows accumulate
        var weights = Data(2 * 6 * dim, 53);
        var rows = new long[] { 2, 0, 2, 1 };
        (float[] Y, float[] Gw, float[] Z, float[] Gz) Run(IBackend be)
        {
            using var w = Floats(be, table, vocab, dim);
            using var c = Floats(be, weights, 2, 6, dim);
            using var idx = IndexTensor(be, ids, indexType, 2, 6);
            w.RequiresGrad = true;
            using var y = Tensor.Embedding(w, idx);             // [2, 6, dim]
            using var weighted = y * c;
            using var loss = weighted.Sum();
            loss.Backward();
            var gw = w.Grad!.ToArray();
            w.Grad.Dispose();

            // index_select along the middle axis (the column picks of a sparse projector), forward and backward.
            using var x3 = Floats(be, weights, 2, 6, dim);
            x3.RequiresGrad = true;
            using var r = IndexTensor(be, rows, indexType, rows.Length);
            using var z = x3.IndexSelect(1, r);
            using var zz = z * z;
            using var zl = zz.Sum();
            zl.Backward();
            var gz = x3.Grad!.ToArray();
            x3.Grad.Dispose();
            return (y.ToArray(), gw, z.ToArray(), gz);
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertBitwise(cpu.Y, gpu.Y, "y");
        AssertBitwise(cpu.Gw, gpu.Gw, "dW");
        AssertBitwise(cpu.Z, gpu.Z, "z");
        AssertBitwise(cpu.Gz, gpu.Gz, "dx");
    }

    [Fact]
    public void Embedding_Bf16Table_MatchesCpuBitwise()
    {
        var table = Data(9 * 6, 61);
        var ids = Indices(10, 9, 62);
        byte[] Run(IBackend be)
        {
            using var w32 = Floats(be, table, 9, 6);
            using var w = w32.To(DType.BFloat16);
            using var idx = IndexTensor(be, ids, DType.Int64, 10);
            using var y = Tensor.Embedding(w, idx);
            Assert.Equal(DType.BFloat16, y.DType);
            return RawOf(y);
        }
        Assert.Equal(Run(Cpu), Run(_gpu));
    }

    // ---- Where --------------------------------------------------------------------------------------

    /// <summary>Condition values with ±0, NaN and ±∞ for the float dtypes and zero / nonzero bit patterns for the
    /// integers, as raw bytes of <paramref name="count"/> elements.</summary>
    private static byte[] ConditionBytes(DType dtype, int count)
    {
        float[] floats = [0f, -0f, 1f, float.NaN, -2.5f, float.PositiveInfinity, 0f, 1e-40f, float.NegativeInfinity, -0f, 3f];
        long[] ints = [0, 1, -1, 0, 256, 0, 7, long.MinValue, 0, 1L << 40, 2];
        var bytes = new List<byte>();
        for (int i = 0; i < count; i++)
        {
            float f = floats[i % floats.Length];
            long v = ints[i % ints.Length];
            switch (dtype)
            {
                case DType.Float32: bytes.AddRange(BitConverter.GetBytes(f)); break;
                case DType.BFloat16: bytes.AddRange(BitConverter.GetBytes(HalfPrecision.FloatToBFloat16(f))); break;
                case DType.Float16: bytes.AddRange(BitConverter.GetBytes(HalfPrecision.FloatToFloat16(f))); break;
                case DType.Int8 or DType.UInt8: bytes.Add((byte)(v == 256 ? 0 : v)); break;   // 256 would wrap to 0 anyway
                case DType.Int32: bytes.AddRange(BitConverter.GetBytes((int)v)); break;
                default: bytes.AddRange(BitConverter.GetBytes(v)); break;
            }
        }
        return bytes.ToArray();
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float16)]
    [InlineData(DType.Int8)]
    [InlineData(DType.UInt8)]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    public void Where_AnyConditionDtype_BroadcastAndTransposedViews_MatchCpuBitwise(DType conditionType)
    {
        var condition = ConditionBytes(conditionType, 5 * 7);
        var a = Data(7, 71);
        var b = Data(7 * 5, 72);
        SameBits(be =>
        {
            using var c = Raw(be, condition, conditionType, 5, 7);
            using var at = Floats(be, a, 1, 7);
            using var av = at.Expand(5, 7);                       // zero stride along rows
            using var bt = Floats(be, b, 7, 5);
            using var bv = bt.T;                                  // transposed
            using var y = Tensor.Empty([5, 7], DType.Float32, be);
            be.Where(c, av, bv, y);
            return y.ToArray();
        }, "y");
    }

    [Fact]
    public void WhereAndMaskedFill_ThroughPublicOpsAndAutograd_MatchCpu()
    {
        var mask = ConditionBytes(DType.UInt8, 3 * 4);
        var a = Data(3 * 4, 81);
        var b = Data(4, 82);
        (float[] Y, float[] Ga, float[] Gb) Run(IBackend be)
        {
            using var m = Raw(be, mask, DType.UInt8, 3, 4);
            using var at = Floats(be, a, 3, 4);
            using var bt = Floats(be, b, 4);                      // broadcast over rows
            at.RequiresGrad = bt.RequiresGrad = true;
            using var y = Tensor.Where(m, at, bt);
            using var f = y.MaskedFill(m, -1f);
            using var sq = f * y;
            using var loss = sq.Sum();
            loss.Backward();
            var result = (y.ToArray(), at.Grad!.ToArray(), bt.Grad!.ToArray());
            at.Grad.Dispose(); bt.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertBitwise(cpu.Y, gpu.Y, "y");
        AssertBitwise(cpu.Ga, gpu.Ga, "da");
        AssertBitwise(cpu.Gb, gpu.Gb, "db");
    }

    // ---- Dropout ------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0.1f, 0x0123_4567_89AB_CDEFUL, 1001)]
    [InlineData(0.5f, 0xFFFF_FFFF_0000_0001UL, 777)]
    [InlineData(0.9f, 42UL, 64)]
    [InlineData(0f, 7UL, 5)]
    [InlineData(0.3f, 3UL, 1)]
    public void Dropout_SameMaskAndValuesAsCpu_Bitwise(float p, ulong seed, int n)
    {
        var x = Data(n, (int)(seed % 1000));
        SameBits(be =>
        {
            using var xt = Floats(be, x, n);
            using var y = Tensor.Empty([n], DType.Float32, be);
            be.Dropout(xt, y, p, seed);
            return y.ToArray();
        }, "y");
    }

    [Fact]
    public void Dropout_ThroughPublicOpAndAutograd_MatchesCpu()
    {
        var x = Data(6 * 11, 91);
        (float[] Y, float[] Gx) Run(IBackend be)
        {
            using var xt = Floats(be, x, 6, 11);
            xt.RequiresGrad = true;
            using var xT = xt.T;                                  // non-contiguous input
            using var y = xT.Dropout(0.4f, new Generator(1234));
            using var sq = y * y;
            using var loss = sq.Sum();
            loss.Backward();
            var result = (y.ToArray(), xt.Grad!.ToArray());
            xt.Grad.Dispose();
            return result;
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        AssertBitwise(cpu.Y, gpu.Y, "y");
        AssertBitwise(cpu.Gx, gpu.Gx, "dx");
        Assert.Contains(0f, gpu.Y);
    }

    // ---- Copy between dtypes ------------------------------------------------------------------------

    private static readonly DType[] AllDTypes =
        [DType.Float32, DType.BFloat16, DType.Float16, DType.Int8, DType.UInt8, DType.Int32, DType.Int64];

    public static TheoryData<DType, DType> ConversionPairs()
    {
        var data = new TheoryData<DType, DType>();
        foreach (var s in AllDTypes)
        foreach (var d in AllDTypes)
            if (s != d) data.Add(s, d);
        return data;
    }

    /// <summary>24 values of <paramref name="dtype"/> as raw bytes: ties for round-half-even, values past every
    /// integer range, NaN, ±∞, subnormals and int64 values a double cannot hold exactly.</summary>
    private static byte[] ConversionSource(DType dtype)
    {
        float[] floats = [0f, -0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 127.5f, 128f, 255.5f, 256f, -129f, 3e9f, -3e9f,
            1e20f, -1e20f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, 65520f, 7.3f, -7.7f];
        long[] ints = [0, 1, -1, 127, 128, -128, -129, 255, 256, 65504, 65520, 16_777_217, -16_777_217, int.MaxValue,
            int.MinValue, (1L << 53) + 1, -(1L << 53) - 1, long.MaxValue, long.MinValue, long.MaxValue - 1023, 1L << 40,
            3_000_000_000, 99, -7];
        var bytes = new List<byte>();
        for (int i = 0; i < 24; i++)
        {
            switch (dtype)
            {
                case DType.Float32: bytes.AddRange(BitConverter.GetBytes(floats[i])); break;
                case DType.BFloat16: bytes.AddRange(BitConverter.GetBytes(HalfPrecision.FloatToBFloat16(floats[i]))); break;
                case DType.Float16: bytes.AddRange(BitConverter.GetBytes(HalfPrecision.FloatToFloat16(floats[i]))); break;
                case DType.Int8: bytes.Add(unchecked((byte)(sbyte)ints[i])); break;
                case DType.UInt8: bytes.Add(unchecked((byte)ints[i])); break;
                case DType.Int32: bytes.AddRange(BitConverter.GetBytes(unchecked((int)ints[i]))); break;
                default: bytes.AddRange(BitConverter.GetBytes(ints[i])); break;
            }
        }
        return bytes.ToArray();
    }

    [Theory]
    [MemberData(nameof(ConversionPairs))]
    public void Copy_BetweenDtypes_ContiguousAndTransposed_MatchCpuBitwise(DType source, DType destination)
    {
        var bytes = ConversionSource(source);
        (byte[] Flat, byte[] Transposed) Run(IBackend be)
        {
            using var s = Raw(be, bytes, source, 4, 6);
            using var flat = Tensor.Zeros([4, 6], destination, be);
            be.Copy(s, flat);
            using var sT = s.T;                                   // strided source
            using var transposed = Tensor.Zeros([6, 4], destination, be);
            be.Copy(sT, transposed);
            return (RawOf(flat), RawOf(transposed));
        }
        var cpu = Run(Cpu);
        var gpu = Run(_gpu);
        Assert.Equal(cpu.Flat, gpu.Flat);
        Assert.Equal(cpu.Transposed, gpu.Transposed);
    }

    [Fact]
    public void Copy_IntoStridedDestination_Converts()
    {
        var ints = new int[] { -3, 0, 5, 1 << 30, 17, -1 };
        float[] Run(IBackend be)
        {
            using var s = Tensor.FromSpan<int>(ints, [2, 3], DType.Int32, be);
            using var d = Tensor.Zeros([3, 2], DType.Float32, be);
            using var dT = d.T;                                   // write through a transposed view
            be.Copy(s, dT);
            return d.ToArray();
        }
        AssertBitwise(Run(Cpu), Run(_gpu), "d");
    }

    [Fact]
    public void IndexingKernels_AreListedForThePtxCheck()
    {
        var names = TensorLite.Ilgpu.IlgpuKernels.All().Where(k => !k.ExplicitlyGrouped).Select(k => k.Method.Name).ToList();
        foreach (var name in new[] { "FindIndexOutOfRange", "FetchOutOfRangeValue", "IndexAddColumns", "GatherElements",
                     "ScatterAddLines", "WhereSelect", "DropoutMask", "CopyConvert" })
            Assert.Contains(name, names);
        Assert.Equal(4, names.Count(n => n == "IndexSelectElements"));
    }

    [Fact]
    public void Copy_IntegersBeyondFloat32Precision_KeepTheirValuesOnBothBackends()
    {
        var ints = new[] { 16_777_217, -16_777_219, int.MaxValue, int.MinValue };
        foreach (var be in new IBackend[] { Backend.Cpu, _gpu })
        {
            using var s = Tensor.FromSpan<int>(ints, [4], DType.Int32, be);
            using var wide = s.To(DType.Int64);
            Assert.Equal(ints.Select(v => (long)v), wide.ToArray<long>());
            using var back = wide.To(DType.Int32);
            Assert.Equal(ints, back.ToArray<int>());
        }
    }
}
