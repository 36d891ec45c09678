using TensorLite.Autograd;
using TensorLite.Numerics;

namespace TensorLite;

public sealed partial class Tensor
{
    /// <summary>
    /// Matrix product over the last two dimensions with NumPy batch broadcasting: [..., m, k] @ [..., k, n].
    /// Transposed views (e.g. <c>w.T</c>) are consumed without copying. 1-D operands are treated as a row
    /// (left) or column (right) vector and that dimension is removed from the result.
    /// <para>Mixed precision: each operand may be float32, bfloat16 or float16. Half operands are converted to
    /// float32 inside the GEMM (while packing, never as a whole copy) and products accumulate in float32. The
    /// result is float32 when either operand is float32 (or the two are different half formats), otherwise the
    /// operands' dtype (rounded to nearest even once, at the end). Each input's gradient has that input's dtype,
    /// computed in float32 and rounded once; the backward keeps only the inputs themselves alive.</para>
    /// </summary>
    public Tensor MatMul(Tensor other) => MatMul(other, MatMulResultType(DType, other.DType));

    /// <summary>The dtype <see cref="MatMul(Tensor)"/> returns for operands of these dtypes.</summary>
    public static DType MatMulResultType(DType a, DType b) => a == b ? a : DType.Float32;

    /// <summary><see cref="MatMul(Tensor)"/> with an explicit result dtype (float32, bfloat16 or float16): the
    /// float32 accumulator is rounded once into it.</summary>
    public Tensor MatMul(Tensor other, DType resultType)
    {
        RequireGemmOperand(this, "matmul");
        RequireGemmOperand(other, "matmul");
        if (!resultType.IsFloatingPoint())
            throw new DTypeMismatchException($"matmul: the result dtype must be float32, bfloat16 or float16, got {resultType.Name()}.");
        RequireSameBackend(this, other, "matmul");
        if (Rank == 0 || other.Rank == 0)
            throw new ShapeMismatchException($"matmul: scalars are not matrices ({ShapeMath.Format(Shape)} @ {ShapeMath.Format(other.Shape)}).");
        if (Rank == 1)
        {
            using var row = Unsqueeze(0);
            using var r = row.MatMul(other, resultType);
            return r.Squeeze(-2);
        }
        if (other.Rank == 1)
        {
            using var col = other.Unsqueeze(1);
            using var r = MatMul(col, resultType);
            return r.Squeeze(-1);
        }
        if (other.Rank == 2 && Rank > 2 && _shape[^1] == other._shape[0])
        {
            // [..., m, k] @ [k, n] (a shared weight): one GEMM over all rows instead of a batch of small
            // ones, and the weight gradient becomes one GEMM too.
            using var rows = Reshape(-1, _shape[^1]);
            using var product = MatMul2D(rows, other, resultType);
            return product.Reshape([.. _shape[..^1], other._shape[1]]);
        }
        return MatMul2D(this, other, resultType);
    }

    /// <summary>
    /// x·Wᵀ for a weight W [m, n] stored as in PyTorch (this is x [..., n]; the result [..., m] has
    /// <paramref name="resultType"/>): exactly <c>MatMul(weight.T, resultType)</c>. When the weight captures factored
    /// gradients (<see cref="CaptureFactoredGradient"/>), the backward does not form dW = dYᵀ·X: it hands X and dY (as
    /// [b, n] and [b, m] rows) to the engine, which keeps them as the weight's <see cref="FactoredGradient"/> until an
    /// optimizer consumes them. The input gradient is the same product as MatMul's either way.
    /// </summary>
    public Tensor LinearProduct(Tensor weight, DType resultType)
    {
        if (!weight.CaptureFactoredGradient || !weight.RequiresGrad || !GradMode.IsEnabled || Rank < 2 || weight.Rank != 2
            || _shape[^1] != weight._shape[1])
        {
            using var wt = weight.T;
            return MatMul(wt, resultType);
        }
        RequireGemmOperand(this, "linear");
        RequireGemmOperand(weight, "linear");
        RequireSameBackend(this, weight, "linear");
        int m = weight._shape[0], n = weight._shape[1];
        var x = this;
        var xShape = _shape;
        Tensor rows, y;
        using (GradMode.NoGrad())
        {
            rows = Reshape(-1, n);
            using var wt = weight.T;
            using var product = rows.MatMul(wt, resultType);
            y = product.Reshape([.. _shape[..^1], m]);
        }
        var result = Recorder.Record(y, "linear", [this, weight], g =>
        {
            using var dy = g.Reshape(-1, m);
            Tensor? gx = null, gw = null;
            if (x.RequiresGrad)
            {
                using var rowsGrad = dy.MatMul(weight, x.DType);
                gx = rowsGrad.Reshape(xShape);
            }
            if (!Engine.DeliverFactors(weight, rows, dy))
            {
                using var dyt = dy.T;
                gw = dyt.MatMul(rows, weight.DType);
            }
            return [gx, gw];
        }, saved: [rows]);
        rows.Dispose(); // the node keeps its memory until the backward has run
        return result;
    }

    private static void RequireGemmOperand(Tensor t, string op)
    {
        t.ThrowIfDisposed();
        if (!t.DType.IsFloatingPoint())
            throw new DTypeMismatchException($"{op} computes in float32 from float32, bfloat16 or float16 operands but got {t.Describe()}; convert with To(DType.Float32) first.");
    }

    private static Tensor MatMul2D(Tensor a, Tensor b, DType resultType)
    {
        int m = a._shape[^2], k = a._shape[^1], kb = b._shape[^2], n = b._shape[^1];
        if (k != kb)
            throw new ShapeMismatchException($"matmul: inner dimensions differ in {ShapeMath.Format(a.Shape)} @ {ShapeMath.Format(b.Shape)} ({k} vs {kb}).");
        var batch = ShapeMath.Broadcast(a._shape.AsSpan(0, a.Rank - 2), b._shape.AsSpan(0, b.Rank - 2), "matmul batch");
        var outShape = batch.Append(m).Append(n).ToArray();
        var c = Empty(outShape, resultType, a.Backend);
        using (var av = MatrixOperand(a, batch.Append(m).Append(k).ToArray()))
        using (var bv = MatrixOperand(b, batch.Append(k).Append(n).ToArray()))
            a.Backend.MatMul(av, bv, c, 1f, 0f);
        var aShape = a._shape;
        var bShape = b._shape;
        return Recorder.Record(c, "matmul", [a, b], g =>
        {
            Tensor? ga = null, gb = null;
            if (a.RequiresGrad)
            {
                using var bt = b.T;
                ga = ProductGrad(g, bt, aShape, a.DType);
            }
            if (b.RequiresGrad)
            {
                using var at = a.T;
                gb = ProductGrad(at, g, bShape, b.DType);
            }
            return [ga, gb];
        });
    }

    /// <summary>
    /// One operand's gradient, x·y summed down to <paramref name="shape"/>, in <paramref name="dtype"/>. Without a
    /// batch reduction the GEMM rounds straight into that dtype; with one, the product and the sum stay float32
    /// and are rounded once at the end.
    /// </summary>
    private static Tensor ProductGrad(Tensor x, Tensor y, int[] shape, DType dtype)
    {
        bool reduces = Math.Max(x.Rank, y.Rank) != shape.Length;
        if (!reduces)
        {
            var batch = ShapeMath.Broadcast(x._shape.AsSpan(0, x.Rank - 2), y._shape.AsSpan(0, y.Rank - 2), "matmul batch");
            for (int i = 0; i < batch.Length; i++) if (batch[i] != shape[i]) { reduces = true; break; }
        }
        if (!reduces) return x.MatMul(y, dtype);
        var full = x.MatMul(y, DType.Float32);
        var reduced = Reduced(full, shape);
        if (dtype == DType.Float32) return reduced;
        var converted = reduced.To(dtype);
        reduced.Dispose();
        return converted;
    }

    /// <summary>A broadcast view whose last two dims the GEMM can read directly (row-major or transposed),
    /// copying only when neither layout applies.</summary>
    private static Tensor MatrixOperand(Tensor t, int[] shape)
    {
        int rows = t._shape[^2], cols = t._shape[^1];
        if (!MatrixLayout.TryGet(rows, cols, t._strides[^2], t._strides[^1], out _, out _))
        {
            using var c = t.ContiguousNoGrad();
            return c.BroadcastView(shape);
        }
        return t.BroadcastView(shape);
    }
}
