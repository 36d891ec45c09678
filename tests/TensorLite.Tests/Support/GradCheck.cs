using TensorLite.Autograd;
using Xunit;

namespace TensorLite.Tests.Support;

/// <summary>
/// Finite-difference gradient checks. The function's output is contracted with a fixed random tensor
/// so every output element matters; each input element's analytic gradient is compared with a central
/// difference computed in float32 (hence the loose, scale-aware tolerance).
/// </summary>
public static class GradCheck
{
    public static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, float eps = 1e-2f, float rtol = 3e-2f, float atol = 3e-3f, int maxChecksPerInput = 24, ulong seed = 7)
    {
        var gen = new Generator(seed);
        var leaves = inputs.Select(x => x.DType == DType.Float32 ? x.Detach().RequireGrad() : x).ToArray();
        Tensor probe;
        using (var y0 = f(leaves))
        {
            probe = Tensor.RandN(y0.Shape, gen);
            using var loss = (y0 * probe).Sum();
            loss.Backward();
        }
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i].DType != DType.Float32) continue;
            var analytic = leaves[i].Grad?.ToArray() ?? new float[inputs[i].Numel];
            var baseValues = inputs[i].ToArray();
            var order = Enumerable.Range(0, baseValues.Length).OrderBy(_ => gen.NextUInt64()).Take(maxChecksPerInput);
            foreach (int e in order)
            {
                double plus = Evaluate(f, inputs, i, baseValues, e, +eps, probe);
                double minus = Evaluate(f, inputs, i, baseValues, e, -eps, probe);
                double numeric = (plus - minus) / (2 * eps);
                double diff = Math.Abs(numeric - analytic[e]);
                Assert.True(diff <= atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(analytic[e])),
                    $"input {i} element {e}: analytic {analytic[e]} vs numeric {numeric} (shape {ShapeMath.Format(inputs[i].Shape)})");
            }
        }
    }

    private static double Evaluate(Func<Tensor[], Tensor> f, Tensor[] inputs, int which, float[] baseValues, int element, float delta, Tensor probe)
    {
        using var noGrad = GradMode.NoGrad();
        var values = (float[])baseValues.Clone();
        values[element] += delta;
        var args = inputs.ToArray();
        args[which] = Tensor.FromArray(values, inputs[which].ShapeArray);
        using var y = f(args);
        using var p = y * probe;
        double sum = 0;
        foreach (var v in p.ToArray()) sum += v;
        return sum;
    }
}

/// <summary>Finite-difference checks of a scalar loss with respect to parameters, perturbed in place.</summary>
public static class ParameterGradCheck
{
    public static void Check(Func<Tensor> loss, IEnumerable<(string Name, Tensor Parameter)> parameters, int checksPerParameter = 3,
        float eps = 1e-2f, float rtol = 5e-2f, float atol = 2e-3f, ulong seed = 3)
    {
        var gen = new Generator(seed);
        var list = parameters.ToList();
        foreach (var (_, p) in list) p.ZeroGrad();
        using (var l = loss()) l.Backward();
        foreach (var (name, p) in list)
        {
            var analytic = p.Grad?.ToArray() ?? new float[p.Numel];
            var values = p.ToArray();
            for (int c = 0; c < checksPerParameter; c++)
            {
                int e = gen.NextInt(values.Length);
                double plus = Evaluate(loss, p, values, e, eps), minus = Evaluate(loss, p, values, e, -eps);
                Set(p, values);
                double numeric = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(numeric - analytic[e]) <= atol + rtol * Math.Max(Math.Abs(numeric), Math.Abs(analytic[e])),
                    $"{name}[{e}]: analytic {analytic[e]} vs numeric {numeric}");
            }
        }
    }

    private static double Evaluate(Func<Tensor> loss, Tensor p, float[] values, int element, float delta)
    {
        var perturbed = (float[])values.Clone();
        perturbed[element] += delta;
        Set(p, perturbed);
        using var noGrad = TensorLite.Autograd.GradMode.NoGrad();
        using var l = loss();
        return l.Item();
    }

    private static void Set(Tensor p, float[] values) =>
        p.Backend.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), p);
}
