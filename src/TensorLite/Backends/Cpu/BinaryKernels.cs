using System.Numerics.Tensors;

namespace TensorLite.Backends.Cpu;

/// <summary>One row of a broadcast binary op. Strides of 1 and 0 (a broadcast scalar) take the
/// vectorized TensorPrimitives paths; anything else a scalar loop. y is contiguous and may alias a.</summary>
internal static unsafe class BinaryKernels
{
    public static void Row(BinaryOp op, float* a, int sa, float* b, int sb, float* y, int n)
    {
        var ys = new Span<float>(y, n);
        if (sa == 1 && sb == 1)
        {
            var av = new ReadOnlySpan<float>(a, n);
            var bv = new ReadOnlySpan<float>(b, n);
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(av, bv, ys); return;
                case BinaryOp.Sub: TensorPrimitives.Subtract(av, bv, ys); return;
                case BinaryOp.Mul: TensorPrimitives.Multiply(av, bv, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(av, bv, ys); return;
                case BinaryOp.Maximum: TensorPrimitives.Max(av, bv, ys); return;
                case BinaryOp.Minimum: TensorPrimitives.Min(av, bv, ys); return;
            }
        }
        else if (sa == 1 && sb == 0)
        {
            var av = new ReadOnlySpan<float>(a, n);
            float s = *b;
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(av, s, ys); return;
                case BinaryOp.Sub: TensorPrimitives.Subtract(av, s, ys); return;
                case BinaryOp.Mul: TensorPrimitives.Multiply(av, s, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(av, s, ys); return;
                case BinaryOp.Maximum: TensorPrimitives.Max(av, s, ys); return;
                case BinaryOp.Minimum: TensorPrimitives.Min(av, s, ys); return;
            }
        }
        else if (sa == 0 && sb == 1)
        {
            var bv = new ReadOnlySpan<float>(b, n);
            float s = *a;
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(bv, s, ys); return;
                case BinaryOp.Sub: TensorPrimitives.Subtract(s, bv, ys); return;
                case BinaryOp.Mul: TensorPrimitives.Multiply(bv, s, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(s, bv, ys); return;
                case BinaryOp.Maximum: TensorPrimitives.Max(bv, s, ys); return;
                case BinaryOp.Minimum: TensorPrimitives.Min(bv, s, ys); return;
            }
        }
        for (int i = 0; i < n; i++)
            y[i] = Apply(op, a[(long)i * sa], b[(long)i * sb]);
    }

    private static float Apply(BinaryOp op, float a, float b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Maximum => MathF.Max(a, b),
        BinaryOp.Minimum => MathF.Min(a, b),
        BinaryOp.Greater => a > b ? 1f : 0f,
        BinaryOp.Less => a < b ? 1f : 0f,
        BinaryOp.Equal => a == b ? 1f : 0f,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };
}
