using TensorLite.Autograd;
using TensorLite.Nn;
using TensorLite.Optim;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

public class EndToEndTests
{
    private sealed class TwoLayerMlp : Module
    {
        private readonly Linear _hidden, _out;

        public TwoLayerMlp(int input, int width, int output, Generator g)
        {
            _hidden = RegisterModule("hidden", new Linear(input, width, g));
            _out = RegisterModule("out", new Linear(width, output, g));
        }

        public Tensor Forward(Tensor x) => _out.Forward(_hidden.Forward(x).Tanh());
    }

    [Fact]
    public void TinyMlp_LearnsAProductOfInputs_ThroughThePublicApi()
    {
        // The target x0·x1 is not linear in the inputs: a linear model stays at loss ≈ 1.
        var gen = new Generator(42);
        var model = new TwoLayerMlp(4, 32, 1, gen);
        var opt = new AdamW(model.Parameters(), learningRate: 1e-2f, weightDecay: 0f);
        float first = 0, last = 0;
        for (int step = 0; step < 300; step++)
        {
            using var scope = TensorScope.Enter();
            var x = Tensor.RandN([64, 4], gen);
            var xs = x.ToArray();
            var y = Enumerable.Range(0, 64).Select(i => xs[i * 4] * xs[i * 4 + 1]).ToArray();
            var target = Tensor.FromArray(y, 64, 1);
            var loss = (model.Forward(x) - target).Square().Mean();
            if (step == 0) first = loss.Item();
            last = loss.Item();
            loss.Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        Assert.True(first > 0.5f, $"initial loss {first} should be near the target variance 1");
        Assert.True(last < 0.05f * first, $"loss went {first} → {last}; the MLP did not learn the product");
    }

    [Fact]
    public void AdamW_MatchesADoublePrecisionReference()
    {
        var gen = new Generator(8);
        var init = new float[37];
        gen.FillNormal(init, 0, 1);
        var w = Tensor.FromArray((float[])init.Clone(), 37).RequireGrad();
        const float lr = 0.05f, b1 = 0.8f, b2 = 0.95f, eps = 1e-6f, wd = 0.1f;
        var opt = new AdamW([w], lr, b1, b2, eps, wd);
        double[] p = init.Select(v => (double)v).ToArray(), m = new double[37], v = new double[37];
        for (int t = 1; t <= 5; t++)
        {
            // loss = sum(w^3)/3  → grad = w^2
            (w.Pow(3f).Sum() * (1f / 3)).Backward();
            opt.Step();
            opt.ZeroGrad();
            for (int i = 0; i < 37; i++)
            {
                double g = p[i] * p[i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.Pow(b1, t)), vh = v[i] / (1 - Math.Pow(b2, t));
                p[i] = p[i] - lr * wd * p[i] - lr * mh / (Math.Sqrt(vh) + eps);
            }
        }
        var got = w.ToArray();
        for (int i = 0; i < 37; i++) Approx.Close(p[i], got[i], 1e-4, $"w[{i}]");
        Assert.Equal(2 * 37 * 4, opt.StateBytes);
    }

    [Fact]
    public void Optimizer_RejectsParametersWithoutGradients()
    {
        var frozen = Tensor.Ones([3]);
        Assert.Throws<TensorLiteException>(() => new AdamW([frozen]));
    }

    [Fact]
    public void BackwardTwice_OverAFreedGraph_ExplainsWhatToDo()
    {
        var w = Tensor.Ones([3]).RequireGrad();
        var loss = (w * w).Sum();
        loss.Backward();
        var e = Assert.Throws<TensorLiteException>(() => loss.Backward());
        Assert.Contains("forward pass again", e.Message);
    }
}
