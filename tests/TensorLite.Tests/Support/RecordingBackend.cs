using TensorLite.Numerics;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using TensorLite.Memory;

namespace TensorLite.Tests.Support;

/// <summary>
/// An <see cref="IBackend"/> that forwards every member to another backend and records which members were called. Its
/// tensors live in storages that wrap the inner backend's, so ops on them dispatch here (tensors find their backend
/// through their storage) and each call is forwarded with the tensors re-viewed over the inner storages: the inner
/// backend computes exactly as it would without the recorder.
/// </summary>
public sealed class RecordingBackend(IBackend inner) : IBackend
{
    private static readonly Dictionary<MethodInfo, MethodInfo> ToInterface = BuildInterfaceMap();
    private readonly HashSet<MethodInfo> _called = new();

    public IBackend Inner { get; } = inner;

    /// <summary>The <see cref="IBackend"/> members (methods and property getters) called so far.</summary>
    public IReadOnlyCollection<MethodInfo> Called
    {
        get { lock (_called) return _called.ToArray(); }
    }

    private static Dictionary<MethodInfo, MethodInfo> BuildInterfaceMap()
    {
        var map = typeof(RecordingBackend).GetInterfaceMap(typeof(IBackend));
        var result = new Dictionary<MethodInfo, MethodInfo>();
        for (int i = 0; i < map.TargetMethods.Length; i++) result[map.TargetMethods[i]] = map.InterfaceMethods[i];
        return result;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Record(MethodBase? method)
    {
        lock (_called) _called.Add(ToInterface[(MethodInfo)method!]);
    }

    private sealed class RecordedStorage(RecordingBackend owner, Storage inner) : Storage(owner, inner.ByteLength)
    {
        public Storage Inner { get; } = inner;

        // From a finalizer the inner storage is unreachable too and its own finalizer returns it.
        protected override void Free(bool fromFinalizer)
        {
            if (!fromFinalizer) Inner.Release();
        }
    }

    /// <summary>The same view over the inner backend's storage (disposed after the call), or null for null.</summary>
    [return: NotNullIfNotNull(nameof(t))]
    private static Tensor? In(Tensor? t)
    {
        if (t == null) return null;
        if (t.Storage is not RecordedStorage s) return t.Alias();
        s.Inner.AddRef();
        return new Tensor(s.Inner, t.ShapeArray, t.Strides.ToArray(), t.Offset, t.DType);
    }

    public string Name { get { Record(MethodBase.GetCurrentMethod()); return "recording " + Inner.Name; } }
    public string Description { get { Record(MethodBase.GetCurrentMethod()); return Inner.Description; } }
    public bool ComputesValues { get { Record(MethodBase.GetCurrentMethod()); return Inner.ComputesValues; } }

    private readonly MemoryLedger _memory = new();
    public MemoryLedger Memory { get { Record(MethodBase.GetCurrentMethod()); return _memory; } }

    public Storage Allocate(long byteLength)
    {
        Record(MethodBase.GetCurrentMethod());
        return new RecordedStorage(this, Inner.Allocate(byteLength));
    }

    public void TrimCache() { Record(MethodBase.GetCurrentMethod()); Inner.TrimCache(); }

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        Record(MethodBase.GetCurrentMethod());
        using var s = In(source);
        Inner.CopyToHost(s, destination);
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        Record(MethodBase.GetCurrentMethod());
        using var d = In(destination);
        Inner.CopyFromHost(source, d);
    }

    public void Fill(Tensor destination, double value)
    {
        Record(MethodBase.GetCurrentMethod());
        using var d = In(destination);
        Inner.Fill(d, value);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor s = In(source), d = In(destination);
        Inner.Copy(s, d);
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y, float p0, float p1)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), b = In(y);
        Inner.Unary(op, a, b, p0, p1);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx, float p0, float p1)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), b = In(y), c = In(gy), d = In(gx);
        Inner.UnaryBackward(op, a, b, c, d, p0, p1);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a1 = In(a), b1 = In(b), y1 = In(y);
        Inner.Binary(op, a1, b1, y1);
    }

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), b = In(y);
        Inner.Reduce(op, a, axis, b);
    }

    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a1 = In(a), b1 = In(b), c1 = In(c);
        Inner.MatMul(a1, b1, c1, alpha, beta);
    }

    public void CausalAttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, float scale)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor q1 = In(q), k1 = In(k), v1 = In(v), o1 = In(o), l1 = In(lse);
        Inner.CausalAttentionForward(q1, k1, v1, o1, l1, scale);
    }

    public void CausalAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO, Tensor dq, Tensor dk, Tensor dv,
        float scale)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor q1 = In(q), k1 = In(k), v1 = In(v), o1 = In(o), l1 = In(lse), g1 = In(dO), dq1 = In(dq), dk1 = In(dk), dv1 = In(dv);
        Inner.CausalAttentionBackward(q1, k1, v1, o1, l1, g1, dq1, dk1, dv1, scale);
    }

    public long FindIndexOutOfRange(Tensor index, long size, out long value)
    {
        Record(MethodBase.GetCurrentMethod());
        using var i = In(index);
        return Inner.FindIndexOutOfRange(i, size, out value);
    }

    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), i = In(index), b = In(y);
        Inner.IndexSelect(a, axis, i, b);
    }

    public void IndexAdd(Tensor y, int axis, Tensor index, Tensor src)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(y), i = In(index), b = In(src);
        Inner.IndexAdd(a, axis, i, b);
    }

    public void Gather(Tensor x, int axis, Tensor index, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), i = In(index), b = In(y);
        Inner.Gather(a, axis, i, b);
    }

    public void ScatterAdd(Tensor y, int axis, Tensor index, Tensor src)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(y), i = In(index), b = In(src);
        Inner.ScatterAdd(a, axis, i, b);
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor c = In(condition), a1 = In(a), b1 = In(b), y1 = In(y);
        Inner.Where(c, a1, b1, y1);
    }

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), b = In(y);
        Inner.Dropout(a, b, p, seed);
    }

    public void HouseholderQr(Tensor a, Tensor q, Tensor r)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a1 = In(a), q1 = In(q), r1 = In(r);
        Inner.HouseholderQr(a1, q1, r1);
    }

    public void Svd(Tensor a, Tensor u, Tensor s, Tensor vt)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a1 = In(a), u1 = In(u), s1 = In(s), v1 = In(vt);
        Inner.Svd(a1, u1, s1, v1);
    }

    public void Softmax(Tensor x, Tensor y, int axis, bool log)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), b = In(y);
        Inner.Softmax(a, b, axis, log);
    }

    public void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(y), b = In(gy), c = In(gx);
        Inner.SoftmaxBackward(a, b, c, axis, log);
    }

    public int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor l = In(logits), t = In(targets), m = In(rowMax), s = In(rowLogSum), o = In(loss);
        return Inner.CrossEntropy(l, t, ignoreIndex, m, s, o);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor gLoss,
        int count, Tensor gLogits)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor l = In(logits), t = In(targets), m = In(rowMax), s = In(rowLogSum), g = In(gLoss), gl = In(gLogits);
        Inner.CrossEntropyBackward(l, t, ignoreIndex, m, s, g, count, gl);
    }

    public int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor l = In(logits), t = In(targets), o = In(loss), gl = In(gLogits);
        return Inner.CrossEntropyWithGradient(l, t, ignoreIndex, o, gl);
    }

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), w = In(weight), b = In(y), r = In(rstd);
        Inner.RmsNorm(a, w, eps, b, r);
    }

    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), w = In(weight), r = In(rstd), g = In(gy);
        using Tensor? gx1 = In(gx), gw1 = In(gWeight);
        Inner.RmsNormBackward(a, w, r, g, gx1, gw1);
    }

    public void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), c = In(cos), s = In(sin), b = In(y);
        Inner.Rope(a, c, s, b, inverse);
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor g = In(gate), u = In(up), b = In(y);
        Inner.SwiGlu(g, u, b);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor g = In(gate), u = In(up), b = In(gy);
        using Tensor? gg = In(gGate), gu = In(gUp);
        Inner.SwiGluBackward(g, u, b, gg, gu);
    }

    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStepParams h)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor p = In(param), g = In(grad), m1 = In(m), v1 = In(v);
        Inner.AdamWStep(p, g, m1, v1, h);
    }

    public double SumOfSquares(Tensor x)
    {
        Record(MethodBase.GetCurrentMethod());
        using var a = In(x);
        return Inner.SumOfSquares(a);
    }

    public void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor g = In(grad), m1 = In(m), v1 = In(v), d = In(direction);
        Inner.AdamDirection(g, m1, v1, d, h);
    }

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor p = In(param), u = In(update);
        Inner.ApplyUpdate(p, u, decay, stepSize);
    }

    public void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor p = In(param), u = In(update);
        Inner.ApplyUpdate(p, u, decay, stepSize, rounding);
    }

    public void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor a = In(x), c = In(codes), m = In(absmax);
        Inner.BlockwiseQuantize(a, c, m, signed, blockSize);
    }

    public void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor c = In(codes), m = In(absmax), a = In(x);
        Inner.BlockwiseDequantize(c, m, a, signed, blockSize);
    }

    public void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction,
        AdamWStepParams h, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        Record(MethodBase.GetCurrentMethod());
        using Tensor g = In(grad), mc = In(mCodes), ma = In(mAbsmax), vc = In(vCodes), va = In(vAbsmax), d = In(direction);
        Inner.AdamDirection8bit(g, mc, ma, vc, va, d, h, blockSize);
    }
}
