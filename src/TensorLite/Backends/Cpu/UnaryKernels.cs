using System.Numerics.Tensors;

namespace TensorLite.Backends.Cpu;

/// <summary>Element-wise functions and their derivatives over contiguous spans.</summary>
internal static class UnaryKernels
{
    // GELU tanh approximation constants: sqrt(2/pi) and the cubic coefficient.
    private const float GeluC = 0.7978845608f, GeluA = 0.044715f;

    public static void Forward(UnaryOp op, ReadOnlySpan<float> x, Span<float> y, float p0, float p1)
    {
        switch (op)
        {
            case UnaryOp.Neg: TensorPrimitives.Negate(x, y); break;
            case UnaryOp.Exp: TensorPrimitives.Exp(x, y); break;
            case UnaryOp.Log: TensorPrimitives.Log(x, y); break;
            case UnaryOp.Sqrt: TensorPrimitives.Sqrt(x, y); break;
            case UnaryOp.Rsqrt: TensorPrimitives.ReciprocalSqrt(x, y); break;
            case UnaryOp.Abs: TensorPrimitives.Abs(x, y); break;
            case UnaryOp.Sign:
                for (int i = 0; i < x.Length; i++) y[i] = x[i] > 0 ? 1f : x[i] < 0 ? -1f : 0f;
                break;
            case UnaryOp.Relu: TensorPrimitives.Max(x, 0f, y); break;
            case UnaryOp.Silu:
                TensorPrimitives.Sigmoid(x, y);
                TensorPrimitives.Multiply(x, y, y);
                break;
            case UnaryOp.Gelu:
                for (int i = 0; i < x.Length; i++)
                {
                    float v = x[i];
                    y[i] = 0.5f * v * (1f + MathF.Tanh(GeluC * (v + GeluA * v * v * v)));
                }
                break;
            case UnaryOp.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case UnaryOp.Tanh: TensorPrimitives.Tanh(x, y); break;
            case UnaryOp.Square: TensorPrimitives.Multiply(x, x, y); break;
            case UnaryOp.Pow: TensorPrimitives.Pow(x, p0, y); break;
            case UnaryOp.Clamp:
                TensorPrimitives.Max(x, p0, y);
                TensorPrimitives.Min(y, p1, y);
                break;
            case UnaryOp.Affine:
                TensorPrimitives.Multiply(x, p0, y);
                TensorPrimitives.Add(y, p1, y);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    public static void Backward(UnaryOp op, ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> gy, Span<float> gx, float p0, float p1)
    {
        int n = x.Length;
        switch (op)
        {
            case UnaryOp.Neg: TensorPrimitives.Negate(gy, gx); break;
            case UnaryOp.Exp: TensorPrimitives.Multiply(gy, y, gx); break;
            case UnaryOp.Log: TensorPrimitives.Divide(gy, x, gx); break;
            case UnaryOp.Sqrt:
                TensorPrimitives.Divide(gy, y, gx);
                TensorPrimitives.Multiply(gx, 0.5f, gx);
                break;
            case UnaryOp.Rsqrt:
                for (int i = 0; i < n; i++) gx[i] = -0.5f * gy[i] * y[i] * y[i] * y[i];
                break;
            case UnaryOp.Abs:
                for (int i = 0; i < n; i++) gx[i] = x[i] > 0 ? gy[i] : x[i] < 0 ? -gy[i] : 0f;
                break;
            case UnaryOp.Sign: gx.Clear(); break;
            case UnaryOp.Relu:
                for (int i = 0; i < n; i++) gx[i] = x[i] > 0 ? gy[i] : 0f;
                break;
            case UnaryOp.Silu:
            {
                // d/dx x·s(x) = s + x·s·(1 − s) = s·(1 − y) + y with y = x·s: four vectorized passes.
                var oneMinusY = System.Buffers.ArrayPool<float>.Shared.Rent(n);
                TensorPrimitives.Sigmoid(x, gx);
                TensorPrimitives.Subtract(1f, y, oneMinusY.AsSpan(0, n));
                TensorPrimitives.FusedMultiplyAdd(gx, oneMinusY.AsSpan(0, n), y, gx);
                TensorPrimitives.Multiply(gx, gy, gx);
                System.Buffers.ArrayPool<float>.Shared.Return(oneMinusY);
                break;
            }
            case UnaryOp.Gelu:
                for (int i = 0; i < n; i++)
                {
                    float v = x[i];
                    float t = MathF.Tanh(GeluC * (v + GeluA * v * v * v));
                    float dt = (1f - t * t) * GeluC * (1f + 3f * GeluA * v * v);
                    gx[i] = gy[i] * (0.5f * (1f + t) + 0.5f * v * dt);
                }
                break;
            case UnaryOp.Sigmoid:
                for (int i = 0; i < n; i++) gx[i] = gy[i] * y[i] * (1f - y[i]);
                break;
            case UnaryOp.Tanh:
                for (int i = 0; i < n; i++) gx[i] = gy[i] * (1f - y[i] * y[i]);
                break;
            case UnaryOp.Square:
                TensorPrimitives.Multiply(gy, x, gx);
                TensorPrimitives.Multiply(gx, 2f, gx);
                break;
            case UnaryOp.Pow:
                for (int i = 0; i < n; i++) gx[i] = gy[i] * p0 * MathF.Pow(x[i], p0 - 1f);
                break;
            case UnaryOp.Clamp:
                for (int i = 0; i < n; i++) gx[i] = x[i] >= p0 && x[i] <= p1 ? gy[i] : 0f;
                break;
            case UnaryOp.Affine: TensorPrimitives.Multiply(gy, p0, gx); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }
}
