using System.Runtime.InteropServices;
using TensorLite.Autograd;
using TensorLite.Numerics;

namespace TensorLite;

/// <summary>
/// Reference implementations of the fused <see cref="IBackend"/> members, composed from the generic ops or run on host
/// copies with the shared block routines of <see cref="BlockwiseQuantizer"/>. They live with the ops because they are
/// built from them (a layer above the backends), and they are opt-in: a backend without a
/// fused kernel implements the member by calling the method here explicitly, and tests compare the fused kernels with
/// them. Each works on any backend (the tensors' own).
/// </summary>
public static class ReferenceKernels
{
    /// <summary><see cref="IBackend.CrossEntropyWithGradient"/> as the backend's forward and backward kernels.</summary>
    public static int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits)
    {
        var backend = logits.Backend;
        using var rowMax = Tensor.Empty([targets.Numel], DType.Float32, backend);
        using var rowLogSum = Tensor.Empty([targets.Numel], DType.Float32, backend);
        using var one = Tensor.Scalar(1f, backend);
        int count = backend.CrossEntropy(logits, targets, ignoreIndex, rowMax, rowLogSum, loss);
        backend.CrossEntropyBackward(logits, targets, ignoreIndex, rowMax, rowLogSum, one, count, gLogits);
        return count;
    }

    /// <summary><see cref="IBackend.SumOfSquares"/>: chunks converted to float32 and reduced with the generic ops.</summary>
    public static double SumOfSquares(Tensor x)
    {
        using var noGrad = GradMode.NoGrad();
        const int chunk = 1 << 20;
        using var flat = x.Reshape(x.Numel);
        double total = 0;
        for (int start = 0; start < x.Numel; start += chunk)
        {
            using var part = flat.Narrow(0, start, Math.Min(chunk, x.Numel - start));
            using var f = part.To(DType.Float32);
            using var sq = f.Square();
            using var s = sq.Sum();
            total += s.Item();
        }
        return total;
    }

    /// <summary><see cref="IBackend.AdamDirection"/> composed from the generic ops.</summary>
    public static void AdamDirection(Tensor grad, Tensor m, Tensor v, Tensor direction, AdamWStepParams h)
    {
        var backend = direction.Backend;
        using var noGrad = GradMode.NoGrad();
        using (var m1 = m * h.Beta1)
        using (var g1 = grad * (1f - h.Beta1))
        using (var mn = m1 + g1) backend.Copy(mn, m);
        using (var g2 = grad.Square())
        using (var v1 = v * h.Beta2)
        using (var g3 = g2 * (1f - h.Beta2))
        using (var vn = v1 + g3) backend.Copy(vn, v);
        using var sq = v.Sqrt();
        using var denom = sq.Affine(1f / MathF.Sqrt(h.BiasCorrection2), h.Eps);
        using var num = m * (1f / h.BiasCorrection1);
        using var d = num / denom;
        backend.Copy(d, direction);
    }

    /// <summary><see cref="IBackend.ApplyUpdate(Tensor, Tensor, float, float, ParamRounding)"/> composed from the generic
    /// ops; supports only nearest rounding of a half-precision param.</summary>
    public static void ApplyUpdate(Tensor param, Tensor update, float decay, float stepSize, ParamRounding rounding)
    {
        var backend = param.Backend;
        if (param.DType != DType.Float32 && rounding.Mode != ParamRoundingMode.Nearest)
            throw new NotSupportedException($"The reference ApplyUpdate of backend {backend.Name} has no stochastic rounding.");
        using var noGrad = GradMode.NoGrad();
        using var p32 = param.DType == DType.Float32 ? param.Alias() : param.To(DType.Float32);
        using var u32 = update.DType == DType.Float32 ? update.Alias() : update.To(DType.Float32);
        using var a = p32 * decay;
        using var b = u32 * stepSize;
        using var c = a - b;
        backend.Copy(c, param);
    }

    /// <summary><see cref="IBackend.BlockwiseQuantize"/> on a host copy.</summary>
    public static void BlockwiseQuantize(Tensor x, Tensor codes, Tensor absmax, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        var host = x.ToArray<float>();
        var c = new byte[host.Length];
        var a = new float[absmax.Numel];
        BlockwiseQuantizer.Quantize(host, c, a, signed, blockSize);
        codes.Backend.CopyFromHost(c, codes);
        absmax.Backend.CopyFromHost(MemoryMarshal.AsBytes(a.AsSpan()), absmax);
    }

    /// <summary><see cref="IBackend.BlockwiseDequantize"/> on host copies.</summary>
    public static void BlockwiseDequantize(Tensor codes, Tensor absmax, Tensor x, bool signed, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.Check(x, codes, absmax, blockSize);
        var c = codes.ToArray<byte>();
        var a = absmax.ToArray<float>();
        var host = new float[c.Length];
        BlockwiseQuantizer.Dequantize(c, a, host, signed, blockSize);
        x.Backend.CopyFromHost(MemoryMarshal.AsBytes(host.AsSpan()), x);
    }

    /// <summary><see cref="IBackend.AdamDirection8bit"/> on host copies, one block at a time.</summary>
    public static void AdamDirection8bit(Tensor grad, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax, Tensor direction,
        AdamWStepParams h, int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        QuantizedChecks.CheckAdam(grad, mCodes, mAbsmax, vCodes, vAbsmax, direction, blockSize);
        var backend = direction.Backend;
        var g = grad.ToArray<float>();
        var mc = mCodes.ToArray<byte>();
        var vc = vCodes.ToArray<byte>();
        var ma = mAbsmax.ToArray<float>();
        var va = vAbsmax.ToArray<float>();
        var d = new float[g.Length];
        var scratch = new float[2 * blockSize];
        for (int b = 0; b < ma.Length; b++)
        {
            int start = b * blockSize, len = Math.Min(blockSize, g.Length - start);
            BlockwiseQuantizer.AdamBlock(g.AsSpan(start, len), mc.AsSpan(start, len), ref ma[b], vc.AsSpan(start, len), ref va[b],
                d.AsSpan(start, len), h, scratch);
        }
        backend.CopyFromHost(mc, mCodes);
        backend.CopyFromHost(vc, vCodes);
        backend.CopyFromHost(MemoryMarshal.AsBytes(ma.AsSpan()), mAbsmax);
        backend.CopyFromHost(MemoryMarshal.AsBytes(va.AsSpan()), vAbsmax);
        backend.CopyFromHost(MemoryMarshal.AsBytes(d.AsSpan()), direction);
    }
}
