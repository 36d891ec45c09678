using TensorLite.Autograd;

namespace TensorLite;

public sealed partial class Tensor
{
    internal static void RequireFloat32(Tensor t, string op)
    {
        t.ThrowIfDisposed();
        if (t.DType != DType.Float32)
            throw new DTypeMismatchException($"{op} computes in float32 but got {t.Describe()}; convert with To(DType.Float32) first.");
    }

    internal static void RequireSameBackend(Tensor a, Tensor b, string op)
    {
        if (!ReferenceEquals(a.Backend, b.Backend))
            throw new TensorLiteException($"{op}: operands live on different backends ({a.Backend.Name} and {b.Backend.Name}).");
    }

    // ---- unary ----------------------------------------------------------------------------------

    /// <summary>Unary ops compute in float32; a bfloat16 or float16 input is widened for the kernel and the result (and
    /// the input's gradient) rounded back into its dtype.</summary>
    private Tensor Unary(UnaryOp op, string name, float p0 = 0, float p1 = 0)
    {
        RequireFloatingPoint(this, name);
        var y32 = Empty(Shape, DType.Float32, Backend);
        using (var x = Float32ContiguousNoGrad()) Backend.Unary(op, x, y32, p0, p1);
        var y = NarrowedNoGrad(y32, DType)!;
        var input = this;
        return Recorder.Record(y, name, [this], g =>
        {
            using var xc = input.Float32ContiguousNoGrad();
            using var yc = y.Float32ContiguousNoGrad();
            using var gc = g.Float32ContiguousNoGrad();
            var gx = Empty(input.Shape, DType.Float32, input.Backend);
            input.Backend.UnaryBackward(op, xc, yc, gc, gx, p0, p1);
            return [NarrowedNoGrad(gx, input.DType)];
        });
    }

    /// <summary>-x.</summary>
    public Tensor Neg() => Unary(UnaryOp.Neg, "neg");
    /// <summary>eˣ.</summary>
    public Tensor Exp() => Unary(UnaryOp.Exp, "exp");
    /// <summary>The natural logarithm.</summary>
    public Tensor Log() => Unary(UnaryOp.Log, "log");
    /// <summary>√x.</summary>
    public Tensor Sqrt() => Unary(UnaryOp.Sqrt, "sqrt");
    /// <summary>1/√x.</summary>
    public Tensor Rsqrt() => Unary(UnaryOp.Rsqrt, "rsqrt");
    /// <summary>|x|.</summary>
    public Tensor Abs() => Unary(UnaryOp.Abs, "abs");
    /// <summary>-1, 0 or 1; its gradient is zero.</summary>
    public Tensor Sign() => Unary(UnaryOp.Sign, "sign");
    /// <summary>max(x, 0).</summary>
    public Tensor Relu() => Unary(UnaryOp.Relu, "relu");
    /// <summary>x·sigmoid(x), the activation of LLaMA's SwiGLU.</summary>
    public Tensor Silu() => Unary(UnaryOp.Silu, "silu");
    /// <summary>GELU, tanh approximation (as in GPT-2).</summary>
    public Tensor Gelu() => Unary(UnaryOp.Gelu, "gelu");
    /// <summary>1/(1 + e⁻ˣ).</summary>
    public Tensor Sigmoid() => Unary(UnaryOp.Sigmoid, "sigmoid");
    /// <summary>The hyperbolic tangent.</summary>
    public Tensor Tanh() => Unary(UnaryOp.Tanh, "tanh");
    /// <summary>x².</summary>
    public Tensor Square() => Unary(UnaryOp.Square, "square");
    /// <summary>x raised to <paramref name="exponent"/>.</summary>
    public Tensor Pow(float exponent) => Unary(UnaryOp.Pow, "pow", exponent);
    /// <summary>x limited to [<paramref name="min"/>, <paramref name="max"/>]; the gradient is zero outside.</summary>
    public Tensor Clamp(float min, float max)
    {
        if (min > max) throw new ArgumentException($"clamp: min {min} is greater than max {max}.");
        return Unary(UnaryOp.Clamp, "clamp", min, max);
    }
    /// <summary>scale·x + shift.</summary>
    public Tensor Affine(float scale, float shift) => Unary(UnaryOp.Affine, "affine", scale, shift);

    // ---- binary with broadcasting ---------------------------------------------------------------

    /// <summary>
    /// Binary ops accept float32, bfloat16 and float16 operands. The math is float32; the result is the operands'
    /// dtype when both have the same one, float32 otherwise (comparisons always give a float32 0/1 mask). Each
    /// input's gradient comes back in that input's dtype (computed in float32, rounded once).
    /// </summary>
    private static Tensor Binary(BinaryOp op, Tensor a, Tensor b, string name)
    {
        RequireFloatingPoint(a, name);
        RequireFloatingPoint(b, name);
        RequireSameBackend(a, b, name);
        var shape = ShapeMath.Broadcast(a.Shape, b.Shape, name);
        bool comparison = op is BinaryOp.Greater or BinaryOp.Less or BinaryOp.Equal;
        var yType = comparison || a.DType != b.DType ? DType.Float32 : a.DType;
        var y = Empty(shape, yType, a.Backend);
        using (var av = a.BroadcastView(shape))
        using (var bv = b.BroadcastView(shape))
            a.Backend.Binary(op, av, bv, y);
        if (comparison) return y; // piecewise constant: no gradient
        var aShape = a._shape;
        var bShape = b._shape;
        DType aType = a.DType, bType = b.DType;
        return Recorder.Record(y, name, [a, b], gIn =>
        {
            // Half-precision gradients are formed in float32 and rounded once into each input's dtype.
            using var g = gIn.DType == DType.Float32 ? gIn.Alias() : gIn.To(DType.Float32);
            Tensor?[] grads = op switch
            {
                BinaryOp.Add => [a.RequiresGrad ? SumToShapeOwned(g, aShape) : null, b.RequiresGrad ? SumToShapeOwned(g, bShape) : null],
                BinaryOp.Sub => [a.RequiresGrad ? SumToShapeOwned(g, aShape) : null, b.RequiresGrad ? Reduced(g.Neg(), bShape) : null],
                BinaryOp.Mul => [a.RequiresGrad ? Reduced(g * b, aShape) : null, b.RequiresGrad ? Reduced(g * a, bShape) : null],
                BinaryOp.Div => [a.RequiresGrad ? Reduced(g / b, aShape) : null, b.RequiresGrad ? DivisorGrad(g, y, b, bShape) : null],
                BinaryOp.Maximum or BinaryOp.Minimum => SelectionGrads(op, g, a, b, aShape, bShape),
                _ => throw new InvalidOperationException(op.ToString()),
            };
            return [CastGrad(grads[0], aType), CastGrad(grads[1], bType)];
        });
    }

    internal static void RequireFloatingPoint(Tensor t, string op)
    {
        t.ThrowIfDisposed();
        if (!t.DType.IsFloatingPoint())
            throw new DTypeMismatchException($"{op} computes in float32 from float32, bfloat16 or float16 operands but got {t.Describe()}; convert with To(DType.Float32) first.");
    }

    /// <summary>SumToShape whose result is always a tensor of its own (the caller disposes <paramref name="g"/>).</summary>
    private static Tensor SumToShapeOwned(Tensor g, ReadOnlySpan<int> shape)
    {
        var r = SumToShape(g, shape);
        return ReferenceEquals(r, g) ? g.Alias() : r;
    }

    /// <summary>Converts a float32 gradient to its input's dtype (disposing the float32 one when it converted).</summary>
    private static Tensor? CastGrad(Tensor? grad, DType dtype)
    {
        if (grad == null || grad.DType == dtype) return grad;
        var converted = grad.To(dtype);
        grad.Dispose();
        return converted;
    }

    /// <summary>SumToShape that disposes its full-size input when it reduced it.</summary>
    private static Tensor Reduced(Tensor full, ReadOnlySpan<int> shape)
    {
        var r = SumToShape(full, shape);
        if (!ReferenceEquals(r, full)) full.Dispose();
        return r;
    }

    private static Tensor DivisorGrad(Tensor g, Tensor y, Tensor b, int[] bShape)
    {
        // d(a/b)/db = -a/b² = -y/b
        using var yOverB = y / b;
        using var prod = g * yOverB;
        return Reduced(prod.Neg(), bShape);
    }

    private static Tensor?[] SelectionGrads(BinaryOp op, Tensor g, Tensor a, Tensor b, int[] aShape, int[] bShape)
    {
        // The gradient goes to the selected operand; ties go to a.
        using var bWins = op == BinaryOp.Maximum ? Binary(BinaryOp.Greater, b, a, "maximum") : Binary(BinaryOp.Less, b, a, "minimum");
        using var aWins = bWins.Affine(-1f, 1f);
        return [a.RequiresGrad ? Reduced(g * aWins, aShape) : null, b.RequiresGrad ? Reduced(g * bWins, bShape) : null];
    }

    /// <summary>a + b, broadcast.</summary>
    public static Tensor Add(Tensor a, Tensor b) => Binary(BinaryOp.Add, a, b, "add");
    /// <summary>a − b, broadcast.</summary>
    public static Tensor Sub(Tensor a, Tensor b) => Binary(BinaryOp.Sub, a, b, "sub");
    /// <summary>a · b element-wise, broadcast.</summary>
    public static Tensor Mul(Tensor a, Tensor b) => Binary(BinaryOp.Mul, a, b, "mul");
    /// <summary>a / b element-wise, broadcast.</summary>
    public static Tensor Div(Tensor a, Tensor b) => Binary(BinaryOp.Div, a, b, "div");
    /// <summary>The larger of a and b element-wise (the gradient goes to a on ties).</summary>
    public static Tensor Maximum(Tensor a, Tensor b) => Binary(BinaryOp.Maximum, a, b, "maximum");
    /// <summary>The smaller of a and b element-wise (the gradient goes to a on ties).</summary>
    public static Tensor Minimum(Tensor a, Tensor b) => Binary(BinaryOp.Minimum, a, b, "minimum");
    /// <summary>1 where a &gt; b, else 0 (no gradient).</summary>
    public static Tensor Greater(Tensor a, Tensor b) => Binary(BinaryOp.Greater, a, b, "greater");
    /// <summary>1 where a &lt; b, else 0 (no gradient).</summary>
    public static Tensor Less(Tensor a, Tensor b) => Binary(BinaryOp.Less, a, b, "less");
    /// <summary>1 where a = b, else 0 (no gradient).</summary>
    public static Tensor Equal(Tensor a, Tensor b) => Binary(BinaryOp.Equal, a, b, "equal");

    /// <summary><see cref="Add"/>.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Add(a, b);
    /// <summary><see cref="Sub"/>.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Sub(a, b);
    /// <summary><see cref="Mul"/>.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Mul(a, b);
    /// <summary><see cref="Div"/>.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Div(a, b);
    /// <summary><see cref="Neg"/>.</summary>
    public static Tensor operator -(Tensor a) => a.Neg();
    /// <summary>a + s.</summary>
    public static Tensor operator +(Tensor a, float s) => a.Affine(1f, s);
    /// <summary>s + a.</summary>
    public static Tensor operator +(float s, Tensor a) => a.Affine(1f, s);
    /// <summary>a − s.</summary>
    public static Tensor operator -(Tensor a, float s) => a.Affine(1f, -s);
    /// <summary>s − a.</summary>
    public static Tensor operator -(float s, Tensor a) => a.Affine(-1f, s);
    /// <summary>a · s.</summary>
    public static Tensor operator *(Tensor a, float s) => a.Affine(s, 0f);
    /// <summary>s · a.</summary>
    public static Tensor operator *(float s, Tensor a) => a.Affine(s, 0f);
    /// <summary>a / s.</summary>
    public static Tensor operator /(Tensor a, float s) => a.Affine(1f / s, 0f);
}
