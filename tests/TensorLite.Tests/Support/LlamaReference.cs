using TensorLite.Models;

namespace TensorLite.Tests.Support;

/// <summary>A one-sequence LLaMA forward in plain double-precision loops, written from the HF definition,
/// as the reference the engine's model is checked against.</summary>
public static class LlamaReference
{
    /// <param name="inverseFrequencies">RoPE's per-pair frequencies when the config scales them (default: theta^(−2e/d)).</param>
    public static double[] Forward(LlamaModel model, int[] ids, double[]? inverseFrequencies = null)
    {
        var c = model.Config;
        int t = ids.Length, h = c.HiddenSize, nh = c.NumAttentionHeads, nkv = c.KeyValueHeads, d = c.HeadDim;
        var embed = Mat(model.EmbedTokens);
        inverseFrequencies ??= Enumerable.Range(0, d / 2).Select(e => Math.Pow(c.RopeTheta, -2.0 * e / d)).ToArray();
        var x = new double[t][];
        for (int i = 0; i < t; i++) x[i] = (double[])embed[ids[i]].Clone();
        foreach (var layer in model.Layers)
        {
            var normed = x.Select(r => RmsNorm(r, Vec(layer.InputNorm), c.RmsNormEps)).ToArray();
            var q = normed.Select(r => MatVec(Mat(layer.QProj), r)).ToArray();
            var k = normed.Select(r => MatVec(Mat(layer.KProj), r)).ToArray();
            var v = normed.Select(r => MatVec(Mat(layer.VProj), r)).ToArray();
            for (int i = 0; i < t; i++)
            {
                for (int head = 0; head < nh; head++) Rotate(q[i], head * d, d, i, inverseFrequencies);
                for (int head = 0; head < nkv; head++) Rotate(k[i], head * d, d, i, inverseFrequencies);
            }
            var attn = new double[t][];
            for (int i = 0; i < t; i++)
            {
                attn[i] = new double[nh * d];
                for (int head = 0; head < nh; head++)
                {
                    int kvh = head / (nh / nkv);
                    var s = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                    {
                        for (int e = 0; e < d; e++) s[j] += q[i][head * d + e] * k[j][kvh * d + e];
                        s[j] /= Math.Sqrt(d);
                    }
                    double max = s.Max(), z = s.Sum(a => Math.Exp(a - max));
                    for (int j = 0; j <= i; j++)
                        for (int e = 0; e < d; e++) attn[i][head * d + e] += Math.Exp(s[j] - max) / z * v[j][kvh * d + e];
                }
            }
            for (int i = 0; i < t; i++)
            {
                var o = MatVec(Mat(layer.OProj), attn[i]);
                for (int e = 0; e < h; e++) x[i][e] += o[e];
                var m = RmsNorm(x[i], Vec(layer.PostAttentionNorm), c.RmsNormEps);
                var gate = MatVec(Mat(layer.GateProj), m);
                var up = MatVec(Mat(layer.UpProj), m);
                var act = gate.Select((g, e) => g / (1 + Math.Exp(-g)) * up[e]).ToArray();
                var down = MatVec(Mat(layer.DownProj), act);
                for (int e = 0; e < h; e++) x[i][e] += down[e];
            }
        }
        var head_ = Mat(model.LmHead);
        return x.SelectMany(r => MatVec(head_, RmsNorm(r, Vec(model.Norm), c.RmsNormEps))).ToArray();
    }

    /// <summary>HF rotate_half: pairs (e, e + d/2) rotate by pos · inverseFrequencies[e].</summary>
    private static void Rotate(double[] v, int offset, int d, int pos, double[] inverseFrequencies)
    {
        int half = d / 2;
        for (int e = 0; e < half; e++)
        {
            double angle = pos * inverseFrequencies[e];
            double a = v[offset + e], b = v[offset + e + half];
            v[offset + e] = a * Math.Cos(angle) - b * Math.Sin(angle);
            v[offset + e + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
    }

    private static double[] RmsNorm(double[] x, double[] w, double eps)
    {
        double ms = x.Sum(a => a * a) / x.Length;
        return x.Select((a, i) => a / Math.Sqrt(ms + eps) * w[i]).ToArray();
    }

    private static double[] MatVec(double[][] m, double[] x) => m.Select(row => row.Zip(x, (a, b) => a * b).Sum()).ToArray();

    private static double[] Vec(Tensor t) => t.ToArray().Select(a => (double)a).ToArray();

    private static double[][] Mat(Tensor t)
    {
        var v = t.ToArray();
        int cols = t.Shape[1];
        return Enumerable.Range(0, t.Shape[0]).Select(r => v.Skip(r * cols).Take(cols).Select(a => (double)a).ToArray()).ToArray();
    }
}
