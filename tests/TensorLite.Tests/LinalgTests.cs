using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using TensorLite.Optim.Projected;
using TensorLite.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Tests;

/// <summary>A dense matrix problem: shape, seed, whether the input arrives as a transposed view, and a spectrum kind
/// (0: Gaussian entries, 1: geometrically decaying singular values, 2: rank-deficient).</summary>
public sealed record MatrixCase(int M, int N, ulong Seed, bool Transposed, int Kind)
{
    public override string ToString() => $"[{M}, {N}] seed {Seed}{(Transposed ? " (transposed view)" : "")} kind {Kind}";
}

public static class LinalgArbitraries
{
    public static Arbitrary<MatrixCase> MatrixCase() =>
        (from m in Gen.Choose(1, 14)
         from n in Gen.Choose(1, 14)
         from seed in Gen.Choose(0, 1_000_000)
         from transposed in Gen.Elements(true, false)
         from kind in Gen.Elements(0, 0, 1, 2)
         select new MatrixCase(m, n, (ulong)seed, transposed, kind)).ToArbitrary();
}

/// <summary>QR, exact and randomized SVD, online PCA, row selection with gather/scatter and principal angles:
/// reconstruction and orthonormality errors, singular values against double-precision references (a Jacobi
/// eigen-solver on the Gram matrix, and constructed spectra), the Halko–Martinsson–Tropp bounds, finite differences,
/// convergence of the online PCA, and the errors bad inputs raise.</summary>
[Properties(Arbitrary = [typeof(LinalgArbitraries)], MaxTest = 40)]
public class LinalgTests(ITestOutputHelper output)
{
    // ---- double-precision helpers (test-side references) ----------------------------------------

    /// <summary>Row-major host matrix in double.</summary>
    private static double[] Host(Tensor t) => t.ToArray().Select(v => (double)v).ToArray();

    private static Tensor ToTensor(double[] rowMajor, int m, int n) =>
        Tensor.FromArray(rowMajor.Select(v => (float)v).ToArray(), m, n);

    /// <summary>C = A·B for row-major doubles, A [m, k], B [k, n].</summary>
    private static double[] Mul(double[] a, double[] b, int m, int k, int n)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
            {
                double aip = a[i * k + p];
                if (aip == 0) continue;
                for (int j = 0; j < n; j++) c[i * n + j] += aip * b[p * n + j];
            }
        return c;
    }

    private static double[] Transpose(double[] a, int m, int n)
    {
        var t = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
        return t;
    }

    private static double Frobenius(double[] a) => Math.Sqrt(a.Sum(v => v * v));

    private static double FrobeniusDiff(double[] a, double[] b) => Math.Sqrt(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum());

    /// <summary>max |XᵀX − I| for the columns of a row-major [m, k] matrix.</summary>
    private static double OrthonormalityError(double[] x, int m, int k)
    {
        var g = Mul(Transpose(x, m, k), x, k, m, k);
        double worst = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) worst = Math.Max(worst, Math.Abs(g[i * k + j] - (i == j ? 1 : 0)));
        return worst;
    }

    /// <summary>A random [m, k] matrix with orthonormal columns (Gaussian, then modified Gram–Schmidt twice, in double).</summary>
    private static double[] RandomOrthonormal(int m, int k, Generator gen)
    {
        var raw = new float[m * k];
        gen.FillNormal(raw, 0, 1);
        var q = raw.Select(v => (double)v).ToArray();
        for (int j = 0; j < k; j++)
            for (int pass = 0; pass < 2; pass++)
            {
                for (int p = 0; p < j; p++)
                {
                    double d = 0;
                    for (int i = 0; i < m; i++) d += q[i * k + p] * q[i * k + j];
                    for (int i = 0; i < m; i++) q[i * k + j] -= d * q[i * k + p];
                }
                double norm = 0;
                for (int i = 0; i < m; i++) norm += q[i * k + j] * q[i * k + j];
                norm = Math.Sqrt(norm);
                for (int i = 0; i < m; i++) q[i * k + j] /= norm;
            }
        return q;
    }

    /// <summary>A = U·diag(s)·Vᵀ with random orthonormal U [m, k], V [n, k], k = s.Length; returns A and the factors.</summary>
    private static (double[] A, double[] U, double[] V) WithSpectrum(int m, int n, double[] s, Generator gen)
    {
        int k = s.Length;
        var u = RandomOrthonormal(m, k, gen);
        var v = RandomOrthonormal(n, k, gen);
        var us = (double[])u.Clone();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < k; j++) us[i * k + j] *= s[j];
        return (Mul(us, Transpose(v, n, k), m, k, n), u, v);
    }

    /// <summary>Eigenvalues (descending) of a symmetric k×k matrix by cyclic two-sided Jacobi in double.</summary>
    private static double[] SymmetricEigenvalues(double[] s, int k)
    {
        var a = (double[])s.Clone();
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < k; p++)
                for (int q = p + 1; q < k; q++) off += a[p * k + q] * a[p * k + q];
            if (off < 1e-30) break;
            for (int p = 0; p < k; p++)
                for (int q = p + 1; q < k; q++)
                {
                    double apq = a[p * k + q];
                    if (apq == 0) continue;
                    double theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double c = 1 / Math.Sqrt(t * t + 1), sn = t * c;
                    for (int r = 0; r < k; r++) // columns p, q
                    {
                        double arp = a[r * k + p], arq = a[r * k + q];
                        a[r * k + p] = c * arp - sn * arq;
                        a[r * k + q] = sn * arp + c * arq;
                    }
                    for (int r = 0; r < k; r++) // rows p, q
                    {
                        double apr = a[p * k + r], aqr = a[q * k + r];
                        a[p * k + r] = c * apr - sn * aqr;
                        a[q * k + r] = sn * apr + c * aqr;
                    }
                }
        }
        return Enumerable.Range(0, k).Select(i => a[i * k + i]).OrderByDescending(v => v).ToArray();
    }

    /// <summary>Reference singular values of a row-major [m, n] matrix: square roots of the Gram matrix's eigenvalues.</summary>
    private static double[] ReferenceSingularValues(double[] a, int m, int n)
    {
        bool tall = m >= n;
        int k = Math.Min(m, n);
        var gram = tall ? Mul(Transpose(a, m, n), a, n, m, n) : Mul(a, Transpose(a, m, n), m, n, m);
        return SymmetricEigenvalues(gram, k).Select(v => Math.Sqrt(Math.Max(0, v))).ToArray();
    }

    /// <summary>The matrix of a property case, as a float tensor (possibly a transposed view) and its row-major doubles.</summary>
    private static (Tensor T, double[] A) CaseMatrix(MatrixCase c)
    {
        var gen = new Generator(c.Seed);
        int m = c.M, n = c.N, k = Math.Min(m, n);
        double[] a;
        switch (c.Kind)
        {
            case 1:
                a = WithSpectrum(m, n, Enumerable.Range(0, k).Select(i => Math.Pow(0.3, i)).ToArray(), gen).A;
                break;
            case 2:
                int rank = Math.Max(0, k / 2);
                a = rank == 0 ? new double[m * n] : WithSpectrum(m, n, Enumerable.Range(0, rank).Select(i => 1.0 + i).ToArray(), gen).A;
                break;
            default:
                var raw = new float[m * n];
                gen.FillNormal(raw, 0, 1);
                a = raw.Select(v => (double)v).ToArray();
                break;
        }
        a = a.Select(v => (double)(float)v).ToArray(); // exactly what the float tensor holds
        if (!c.Transposed) return (ToTensor(a, m, n), a);
        var stored = ToTensor(Transpose(a, m, n), n, m);
        return (stored.T, a);
    }

    // ---- QR -------------------------------------------------------------------------------------

    [Property]
    public void Qr_ReconstructsWithOrthonormalQAndUpperTriangularR(MatrixCase c)
    {
        var (m, n) = (Math.Max(c.M, c.N), Math.Min(c.M, c.N));
        var (t, a) = CaseMatrix(c with { M = m, N = n });
        var (q, r) = LA.Qr(t);
        Assert.Equal([m, n], q.ShapeArray);
        Assert.Equal([n, n], r.ShapeArray);
        var qd = Host(q);
        var rd = Host(r);
        for (int i = 0; i < n; i++)
        {
            Assert.True(rd[i * n + i] >= 0, $"R[{i},{i}] = {rd[i * n + i]} is negative");
            for (int j = 0; j < i; j++) Assert.Equal(0.0, rd[i * n + j]);
        }
        double scale = Math.Max(Frobenius(a), 1e-30);
        double reconstruction = FrobeniusDiff(Mul(qd, rd, m, n, n), a) / scale;
        Assert.True(reconstruction <= 1e-6, $"‖A − QR‖/‖A‖ = {reconstruction}");
        double orth = OrthonormalityError(qd, m, n);
        Assert.True(orth <= 1e-6, $"max|QᵀQ − I| = {orth}");
    }

    [Fact]
    public void Qr_RankDeficientInputKeepsQOrthonormal()
    {
        const int m = 64, n = 48;
        var gen = new Generator(7);
        var raw = new float[m * n];
        gen.FillNormal(raw, 0, 1);
        for (int i = 0; i < m; i++)
        {
            raw[i * n + 5] = raw[i * n + 3];      // a repeated column
            raw[i * n + 10] = 0;                  // a zero column
            raw[i * n + 20] = 2 * raw[i * n + 1] - raw[i * n + 2];
        }
        using var a = Tensor.FromArray(raw, m, n);
        var (q, r) = LA.Qr(a);
        var ad = raw.Select(v => (double)v).ToArray();
        double reconstruction = FrobeniusDiff(Mul(Host(q), Host(r), m, n, n), ad) / Frobenius(ad);
        double orth = OrthonormalityError(Host(q), m, n);
        output.WriteLine($"QR 64×48 rank-deficient: ‖A−QR‖/‖A‖ = {reconstruction:E2}, max|QᵀQ−I| = {orth:E2}");
        Assert.True(reconstruction <= 1e-6, $"‖A − QR‖/‖A‖ = {reconstruction}");
        Assert.True(orth <= 1e-6, $"max|QᵀQ − I| = {orth}");
        Assert.True(Math.Abs(r.ToArray()[10 * n + 10]) <= 1e-5, "the zero column gives R[10,10] ≈ 0");
        using var o = LA.Orthonormalize(a);
        Assert.Equal(q.ToArray(), o.ToArray());
    }

    [Fact]
    public void Qr_DoesNotRecordGradients()
    {
        using var a = Tensor.Rand([6, 4], new Generator(1));
        a.RequiresGrad = true;
        var (q, r) = LA.Qr(a);
        Assert.False(q.RequiresGrad);
        Assert.False(r.RequiresGrad);
        var (u, s, vt) = LA.Svd(a);
        Assert.False(u.RequiresGrad || s.RequiresGrad || vt.RequiresGrad);
    }

    /// <summary>
    /// The blocked QR (panels of 48 columns, float32 GEMM updates) on tall ill-conditioned inputs: singular values
    /// from 1 down to 1e-7 (condition number 1e7), or the same with a repeated, a zero and a dependent column. Q must
    /// stay orthonormal and span the input: ‖A − QR‖/‖A‖ and ‖A − QQᵀA‖/‖A‖ are float32 rounding level.
    /// </summary>
    [Theory]
    [InlineData(1500, 200, false)]
    [InlineData(1500, 200, true)]
    [InlineData(700, 97, true)]
    public void Qr_IllConditionedTallMatrixIsOrthonormalAndSpansTheInput(int m, int n, bool rankDeficient)
    {
        var s = Enumerable.Range(0, n).Select(i => Math.Pow(1e-7, i / (n - 1.0))).ToArray();
        var (a, _, _) = WithSpectrum(m, n, s, new Generator(17));
        if (rankDeficient)
            for (int i = 0; i < m; i++)
            {
                a[i * n + 60] = a[i * n + 3];
                a[i * n + 61] = 0;
                a[i * n + n - 1] = 2 * a[i * n + 1] - a[i * n + 2];
            }
        a = a.Select(v => (double)(float)v).ToArray();
        using var t = ToTensor(a, m, n);
        var (q, r) = LA.Qr(t);
        var qd = Host(q);
        var rd = Host(r);
        double scale = Frobenius(a);
        double reconstruction = FrobeniusDiff(Mul(qd, rd, m, n, n), a) / scale;
        double orth = OrthonormalityError(qd, m, n);
        var qta = Mul(Transpose(qd, m, n), a, n, m, n);
        double span = FrobeniusDiff(Mul(qd, qta, m, n, n), a) / scale;
        output.WriteLine($"QR {m}×{n}, κ = 1e7{(rankDeficient ? ", rank-deficient" : "")}: ‖A−QR‖/‖A‖ = {reconstruction:E2}, " +
            $"max|QᵀQ−I| = {orth:E2}, ‖A−QQᵀA‖/‖A‖ = {span:E2}");
        Assert.True(orth <= 1e-5, $"max|QᵀQ − I| = {orth}");
        Assert.True(reconstruction <= 1e-6, $"‖A − QR‖/‖A‖ = {reconstruction}");
        Assert.True(span <= 1e-6, $"‖A − QQᵀA‖/‖A‖ = {span}");
        for (int i = 0; i < n; i++) Assert.True(rd[i * n + i] >= 0, $"R[{i},{i}] is negative");
        q.Dispose();
        r.Dispose();
    }

    // ---- exact SVD ------------------------------------------------------------------------------

    [Property]
    public void Svd_MatchesDoublePrecisionReference(MatrixCase c)
    {
        var (t, a) = CaseMatrix(c);
        int m = c.M, n = c.N, k = Math.Min(m, n);
        var (u, s, vt) = LA.Svd(t);
        Assert.Equal([m, k], u.ShapeArray);
        Assert.Equal([k], s.ShapeArray);
        Assert.Equal([k, n], vt.ShapeArray);
        var sd = Host(s);
        var reference = ReferenceSingularValues(a, m, n);
        double smax = Math.Max(reference[0], 1e-30);
        for (int i = 0; i < k; i++)
        {
            Assert.True(Math.Abs(sd[i] - reference[i]) <= 2e-6 * smax, $"σ{i} = {sd[i]}, reference {reference[i]}");
            if (i > 0) Assert.True(sd[i] <= sd[i - 1], "singular values descend");
        }
        var ud = Host(u);
        var vtd = Host(vt);
        Assert.True(OrthonormalityError(ud, m, k) <= 1e-6, $"U orthonormality {OrthonormalityError(ud, m, k)}");
        Assert.True(OrthonormalityError(Transpose(vtd, k, n), n, k) <= 1e-6, "Vᵀ rows orthonormal");
        var us = (double[])ud.Clone();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < k; j++) us[i * k + j] *= sd[j];
        double err = FrobeniusDiff(Mul(us, vtd, m, k, n), a) / Math.Max(Frobenius(a), 1e-30);
        Assert.True(err <= 1e-6, $"‖A − USVᵀ‖/‖A‖ = {err}");
    }

    [Theory]
    [InlineData(64, 96)]
    [InlineData(96, 64)]
    [InlineData(64, 64)]
    public void Svd_RecoversConstructedSpectrumAndVectors(int m, int n)
    {
        int k = Math.Min(m, n);
        var gen = new Generator(42);
        // Well-separated singular values spanning four decades: 1, 0.86, …, 1e-4.
        var s = Enumerable.Range(0, k).Select(i => Math.Pow(1e-4, i / (double)(k - 1))).ToArray();
        var (a, uRef, vRef) = WithSpectrum(m, n, s, gen);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (u, sv, vt) = LA.Svd(ToTensor(a, m, n));
        sw.Stop();
        var sd = Host(sv);
        double worstValue = Enumerable.Range(0, k).Max(i => Math.Abs(sd[i] - s[i]));
        var ud = Host(u);
        var vtd = Host(vt);
        // Leading singular vectors match the constructed ones up to sign.
        double worstVector = 0;
        for (int j = 0; j < 8; j++)
        {
            double du = Math.Abs(Enumerable.Range(0, m).Sum(i => ud[i * k + j] * uRef[i * k + j]));
            double dv = Math.Abs(Enumerable.Range(0, n).Sum(i => vtd[j * n + i] * vRef[i * k + j]));
            worstVector = Math.Max(worstVector, Math.Max(1 - du, 1 - dv));
        }
        double orthU = OrthonormalityError(ud, m, k), orthV = OrthonormalityError(Transpose(vtd, k, n), n, k);
        output.WriteLine($"SVD {m}×{n}: max|σ − σ_true| = {worstValue:E2} (σ1 = 1), 1 − |⟨u,u_true⟩| ≤ {worstVector:E2}, " +
                         $"orth U {orthU:E2}, V {orthV:E2}, {sw.ElapsedMilliseconds} ms");
        Assert.True(worstValue <= 1e-6, $"max |σ − σ_true| = {worstValue}");
        Assert.True(worstVector <= 1e-5, $"leading singular vectors deviate by {worstVector}");
        Assert.True(orthU <= 1e-6 && orthV <= 1e-6, $"orthonormality U {orthU}, V {orthV}");

        // Truncation returns the leading triplets of the full decomposition.
        var (ur, sr, vtr) = LA.Svd(ToTensor(a, m, n), rank: 5);
        Assert.Equal([m, 5], ur.ShapeArray);
        Assert.Equal([5, n], vtr.ShapeArray);
        Assert.Equal(sd.Take(5).Select(v => (float)v).ToArray(), sr.ToArray());
    }

    [Fact]
    public void Svd_OfZeroMatrixHasOrthonormalFactors()
    {
        using var a = Tensor.Zeros([7, 5]);
        var (u, s, vt) = LA.Svd(a);
        Assert.All(s.ToArray(), v => Assert.Equal(0f, v));
        Assert.True(OrthonormalityError(Host(u), 7, 5) <= 1e-6);
        Assert.True(OrthonormalityError(Transpose(Host(vt), 5, 5), 5, 5) <= 1e-6);
    }

    // ---- randomized SVD -------------------------------------------------------------------------

    private static double[] Spectrum(string kind, int k) => kind switch
    {
        "geometric" => Enumerable.Range(0, k).Select(i => Math.Pow(0.9, i)).ToArray(),
        "polynomial" => Enumerable.Range(1, k).Select(i => 1.0 / (i * (double)i)).ToArray(),
        "flat" => Enumerable.Repeat(1.0, k).ToArray(),
        "flat-tail" => Enumerable.Range(0, k).Select(i => i < 8 ? 1.0 : 0.5).ToArray(),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>‖A − U·diag(S)·Vt‖_F for a row-major double A.</summary>
    private static double ApproximationError(double[] a, int m, int n, Tensor u, Tensor s, Tensor vt)
    {
        int r = s.Numel;
        var us = Host(u);
        var sd = Host(s);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < r; j++) us[i * r + j] *= sd[j];
        return FrobeniusDiff(Mul(us, Host(vt), m, r, n), a);
    }

    /// <summary>
    /// Halko, Martinsson &amp; Tropp (2011), Thm 10.5: a Gaussian sketch with ℓ = r + p columns (p ≥ 2) and no power
    /// iteration gives E‖A − QQᵀA‖_F ≤ (1 + r/(p−1))^{1/2}·(Σ_{j&gt;r} σ_j²)^{1/2}. Asking RandomizedSvd for rank ℓ with
    /// zero oversampling returns exactly QQᵀA (B = QᵀA is not truncated). The bound holds in expectation, so the test
    /// checks the mean over 8 sketches against it (with 10% slack for the sample mean) and every single sketch against
    /// the deviation bound of Thm 10.7 with t = 2, u = 3 (failure probability ≤ 2·2^−p + e^−4.5 ≈ 1.3% each, and the
    /// seeds are fixed):
    /// ‖A − QQᵀA‖_F ≤ (1 + 2·√(3r/(p+1)))·(Σ_{j&gt;r} σ_j²)^{1/2} + 6e·√(r+p)/(p+1)·σ_{r+1}.
    /// </summary>
    [Theory]
    [InlineData("geometric")]
    [InlineData("polynomial")]
    [InlineData("flat")]
    [InlineData("flat-tail")]
    public void RandomizedSvd_SketchMeetsHalkoBound(string kind)
    {
        const int m = 64, n = 96, r = 8, p = 10, seeds = 8;
        int k = Math.Min(m, n);
        var s = Spectrum(kind, k);
        var (a, _, _) = WithSpectrum(m, n, s, new Generator(3));
        using var t = ToTensor(a, m, n);
        double optimal = Math.Sqrt(s.Skip(r).Sum(v => v * v));
        double expected = Math.Sqrt(1 + r / (p - 1.0)) * optimal;
        double deviation = (1 + 2 * Math.Sqrt(3.0 * r / (p + 1))) * optimal + 6 * Math.E * Math.Sqrt(r + p) / (p + 1) * s[r];
        var errors = new List<double>();
        for (ulong seed = 0; seed < seeds; seed++)
        {
            var (u, sv, vt) = LA.RandomizedSvd(t, r + p, new Generator(100 + seed), oversampling: 0, powerIterations: 0);
            double err = ApproximationError(a, m, n, u, sv, vt);
            Assert.True(err <= deviation, $"{kind}: sketch error {err} exceeds the Thm 10.7 bound {deviation}");
            errors.Add(err);
        }
        output.WriteLine($"{kind}: mean ‖A − QQᵀA‖/opt_r = {errors.Average() / optimal:F3} (Thm 10.5 factor {expected / optimal:F3}), worst {errors.Max() / optimal:F3}");
        Assert.True(errors.Average() <= 1.1 * expected, $"{kind}: mean sketch error {errors.Average()} exceeds the expected bound {expected}");
    }

    /// <summary>
    /// The truncated rank-r output Â = Q·[B]_r: ‖A − Â‖_F ≤ ‖A − QQᵀA‖_F + ‖B − [B]_r‖_F, and B = QᵀA has singular
    /// values no larger than A's, so E‖A − Â‖_F ≤ (1 + (1 + r/(p−1))^{1/2})·opt_r. Power iterations only tighten it;
    /// with q = 2 on decaying spectra the error is within a few percent of optimal (asserted ≤ 1.1·opt_r, with the
    /// measured ratios printed).
    /// </summary>
    [Theory]
    [InlineData("geometric")]
    [InlineData("polynomial")]
    [InlineData("flat")]
    [InlineData("flat-tail")]
    public void RandomizedSvd_TruncatedErrorIsNearOptimal(string kind)
    {
        const int m = 64, n = 96, r = 8, p = 10, seeds = 5;
        int k = Math.Min(m, n);
        var s = Spectrum(kind, k);
        var (a, _, _) = WithSpectrum(m, n, s, new Generator(5));
        using var t = ToTensor(a, m, n);
        double optimal = Math.Sqrt(s.Skip(r).Sum(v => v * v));
        double bound = 1 + Math.Sqrt(1 + r / (p - 1.0));
        foreach (int q in new[] { 0, 1, 2 })
        {
            var ratios = new List<double>();
            for (ulong seed = 0; seed < seeds; seed++)
            {
                var (u, sv, vt) = LA.RandomizedSvd(t, r, new Generator(200 + seed), p, q);
                Assert.Equal([m, r], u.ShapeArray);
                Assert.Equal([r], sv.ShapeArray);
                Assert.Equal([r, n], vt.ShapeArray);
                Assert.True(OrthonormalityError(Host(u), m, r) <= 1e-5, "U orthonormal");
                Assert.True(OrthonormalityError(Transpose(Host(vt), r, n), n, r) <= 1e-5, "V orthonormal");
                var sd = sv.ToArray();
                for (int i = 1; i < r; i++) Assert.True(sd[i] <= sd[i - 1], "descending");
                ratios.Add(ApproximationError(a, m, n, u, sv, vt) / optimal);
            }
            output.WriteLine($"{kind}, q = {q}: ‖A − USVᵀ‖/opt_r mean {ratios.Average():F4}, worst {ratios.Max():F4} (bound {bound:F3})");
            Assert.True(ratios.Average() <= bound, $"{kind}, q = {q}: mean ratio {ratios.Average()} > {bound}");
            if (q == 2) Assert.True(ratios.Max() <= 1.1, $"{kind}, q = 2: ratio {ratios.Max()} is not near optimal");
        }
    }

    [Fact]
    public void RandomizedSvd_IsDeterministicPerSeedAndExactOnLowRank()
    {
        const int m = 40, n = 30;
        var (a, _, _) = WithSpectrum(m, n, [5, 3, 2, 1], new Generator(9));
        using var t = ToTensor(a, m, n);
        var (u1, s1, v1) = LA.RandomizedSvd(t, 4, new Generator(1));
        var (u2, s2, v2) = LA.RandomizedSvd(t, 4, new Generator(1));
        Assert.Equal(u1.ToArray(), u2.ToArray());
        Assert.Equal(s1.ToArray(), s2.ToArray());
        Assert.Equal(v1.ToArray(), v2.ToArray());
        var sd = s1.ToArray();
        double[] expected = [5, 3, 2, 1];
        for (int i = 0; i < 4; i++) Approx.Close(expected[i], sd[i], 1e-5, $"σ{i}");
        double err = ApproximationError(a, m, n, u1, s1, v1) / Frobenius(a);
        Assert.True(err <= 1e-6, $"rank-4 matrix reconstructed to {err}");
    }

    /// <summary>
    /// RandomizedSvd at a size where every QR (ℓ = 110 columns) and the QR of Bᵀ use several blocked panels, on a
    /// spectrum decaying geometrically to 1e-6: U and V orthonormal, the truncated error within 1.1× the optimal rank-r
    /// error (q = 2) and within Halko's (1 + (1 + r/(p−1))^½)·opt_r for q = 0, and σ_1 accurate to 1e-5 for q = 2.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void RandomizedSvd_IllConditionedBlockedSizeMeetsBounds(int q)
    {
        const int m = 400, n = 600, r = 100, p = 10;
        int k = Math.Min(m, n);
        var s = Enumerable.Range(0, k).Select(i => Math.Pow(1e-6, i / (k - 1.0))).ToArray();
        var (a, _, _) = WithSpectrum(m, n, s, new Generator(23));
        a = a.Select(v => (double)(float)v).ToArray();
        using var t = ToTensor(a, m, n);
        double optimal = Math.Sqrt(s.Skip(r).Sum(v => v * v));
        var (u, sv, vt) = LA.RandomizedSvd(t, r, new Generator(29), p, q);
        double ratio = ApproximationError(a, m, n, u, sv, vt) / optimal;
        double orthU = OrthonormalityError(Host(u), m, r);
        double orthV = OrthonormalityError(Transpose(Host(vt), r, n), n, r);
        double sigma1 = Math.Abs(sv.ToArray()[0] - s[0]);
        output.WriteLine($"rSVD {m}×{n}, r = {r}, q = {q}: error/opt_r = {ratio:F4}, max|UᵀU−I| = {orthU:E2}, max|VᵀV−I| = {orthV:E2}, |σ_1 − 1| = {sigma1:E2}");
        Assert.True(orthU <= 1e-5, $"U orthonormality {orthU}");
        Assert.True(orthV <= 1e-5, $"V orthonormality {orthV}");
        Assert.True(sigma1 <= (q == 2 ? 1e-5 : 1e-3), $"σ_1 error {sigma1}"); // without power iterations σ_1 is underestimated
        Assert.True(ratio <= (q == 2 ? 1.1 : 1 + Math.Sqrt(1 + r / (p - 1.0))), $"error ratio {ratio}");
        u.Dispose(); sv.Dispose(); vt.Dispose();
    }

    // ---- online PCA -----------------------------------------------------------------------------

    /// <summary>‖G − P·Pᵀ·G‖²_F in double for row-major P [m, r], G [m, n].</summary>
    private static double LossDouble(double[] p, double[] g, int m, int r, int n)
    {
        var w = Mul(Transpose(p, m, r), g, r, m, n);
        var pw = Mul(p, w, m, r, n);
        return g.Zip(pw, (x, y) => (x - y) * (x - y)).Sum();
    }

    [Fact]
    public void OnlinePcaGradient_MatchesFiniteDifferences()
    {
        const int m = 9, r = 3, n = 7;
        var gen = new Generator(11);
        using var pt = Tensor.RandN([m, r], gen, 0.5f); // not orthonormal: both gradient terms matter
        using var gt = Tensor.RandN([m, n], gen);
        var p = Host(pt);
        var g = Host(gt);
        var grad = Host(LA.OnlinePcaGradient(pt, gt));
        const double h = 1e-5;
        double worst = 0, scale = grad.Max(Math.Abs);
        for (int i = 0; i < p.Length; i++)
        {
            var plus = (double[])p.Clone();
            var minus = (double[])p.Clone();
            plus[i] += h;
            minus[i] -= h;
            double fd = (LossDouble(plus, g, m, r, n) - LossDouble(minus, g, m, r, n)) / (2 * h);
            worst = Math.Max(worst, Math.Abs(fd - grad[i]));
        }
        output.WriteLine($"online PCA gradient: max |analytic − FD| / max|∇| = {worst / scale:E2}");
        Assert.True(worst <= 1e-5 * scale, $"gradient differs from finite differences by {worst} (scale {scale})");
        Approx.Close(LossDouble(p, g, m, r, n), LA.ReconstructionLoss(pt, gt), 1e-5 * LossDouble(p, g, m, r, n), "loss");
    }

    [Fact]
    public void OnlinePcaStep_DecreasesLossAndCanReorthonormalize()
    {
        const int m = 12, r = 3, n = 20;
        var gen = new Generator(12);
        using var g = Tensor.RandN([m, n], gen);
        using var p0 = LA.Orthonormalize(Tensor.RandN([m, r], gen));
        double before = LA.ReconstructionLoss(p0, g);
        using var p1 = LA.OnlinePcaStep(p0, g, 1e-3f);
        Assert.True(LA.ReconstructionLoss(p1, g) < before, "a small step decreases the loss");
        using var p2 = LA.OnlinePcaStep(p0, g, 1e-2f, reorthonormalize: true);
        Assert.True(OrthonormalityError(Host(p2), m, r) <= 1e-6);
        Assert.True(LA.ReconstructionLoss(p2, g) < before);
    }

    /// <summary>A stationary stream G = L·Z (Z standard normal [m, n]) with covariance L·Lᵀ whose top-r eigenspace is
    /// span(U[:, :r]); the online PCA's projection must converge to it (all principal angles small).</summary>
    [Theory]
    [InlineData(OnlinePcaOptimizer.Adam, false)]
    [InlineData(OnlinePcaOptimizer.Adam, true)]
    [InlineData(OnlinePcaOptimizer.Sgd, true)]
    public void OnlinePca_ConvergesToTopPrincipalSubspace(OnlinePcaOptimizer optimizer, bool reorthonormalize)
    {
        const int m = 24, r = 4, n = 32, steps = 400;
        var gen = new Generator(21);
        var scales = Enumerable.Range(0, m).Select(i => i < r ? 2.0 - 0.2 * i : 0.5).ToArray();
        var (lmat, u, _) = WithSpectrum(m, m, scales, gen);
        using var l = ToTensor(lmat, m, m);
        var top = ToTensor(Enumerable.Range(0, m * r).Select(i => u[(i / r) * m + i % r]).ToArray(), m, r);
        float lr0 = optimizer == OnlinePcaOptimizer.Adam ? 0.05f : 2e-3f;
        using var pca = OnlinePca.RandomInit(m, r, new Generator(22), lr0, optimizer, reorthonormalize);
        double initial = LA.PrincipalAngles(pca.Projection, top).Max();
        for (int step = 0; step < steps; step++)
        {
            pca.LearningRate = lr0 * (1 - step / (float)steps) + lr0 * 0.02f; // linear decay
            using var scope = TensorScope.Enter();
            var z = Tensor.RandN([m, n], gen);
            pca.Update(l.MatMul(z));
        }
        var angles = LA.PrincipalAngles(pca.Projection, top);
        output.WriteLine($"{optimizer}{(reorthonormalize ? " + QR" : "")}: largest principal angle {initial:F3} → {angles.Max():F4} rad after {steps} steps");
        Assert.Equal(steps, pca.StepCount);
        Assert.True(angles.Max() <= 0.1, $"largest principal angle {angles.Max()} rad after {steps} steps");
    }

    // ---- principal angles -----------------------------------------------------------------------

    [Fact]
    public void PrincipalAngles_RecoverConstructedAngles()
    {
        const int m = 10;
        double[] thetas = [1e-4, 0.3, 1.2];
        var a = new double[m * 3];
        var b = new double[m * 3];
        for (int j = 0; j < 3; j++)
        {
            a[j * 3 + j] = 1;                                 // e_j
            b[j * 3 + j] = Math.Cos(thetas[j]);               // cos θ e_j + sin θ e_{j+3}
            b[(j + 3) * 3 + j] = Math.Sin(thetas[j]);
        }
        // Mix the bases so the columns are not the principal vectors themselves.
        double[] mix = [1, 2, 0, 0, 1, 1, 1, 0, 3];
        var angles = LA.PrincipalAngles(ToTensor(Mul(a, mix, m, 3, 3), m, 3), ToTensor(b, m, 3));
        for (int i = 0; i < 3; i++) Approx.Close(thetas[i], angles[i], 2e-6, $"angle {i}");
        var self = LA.PrincipalAngles(ToTensor(a, m, 3), ToTensor(a, m, 3).T.T);
        Assert.All(self, v => Assert.True(v <= 1e-7));
        // Different column counts: min(ka, kb) angles.
        Assert.Equal(2, LA.PrincipalAngles(ToTensor(a, m, 3), ToTensor(b.Take(m * 3).Where((_, i) => i % 3 < 2).ToArray(), m, 2)).Length);
    }

    // ---- row selection, gather and scatter ------------------------------------------------------

    /// <summary>A [m, n] matrix whose row i is scaled by weights[i].</summary>
    private static Tensor RowsScaled(double[] weights, int n, Generator gen)
    {
        int m = weights.Length;
        var data = new float[m * n];
        for (int i = 0; i < m; i++)
        {
            var row = new float[n];
            gen.FillNormal(row, 0, 1);
            double norm = Math.Sqrt(row.Sum(v => (double)v * v));
            for (int j = 0; j < n; j++) data[i * n + j] = (float)(row[j] / norm * weights[i]);
        }
        return Tensor.FromArray(data, m, n);
    }

    [Property(MaxTest = 30)]
    public void SelectRows_TopNormPicksTheLargestRows(MatrixCase c)
    {
        var (t, a) = CaseMatrix(c with { Kind = 0 });
        int k = 1 + (int)(c.Seed % (ulong)c.M);
        var idx = LA.SelectRows(t, k, RowSelection.TopNorm).ToArray<int>();
        var norms = Enumerable.Range(0, c.M).Select(i => Math.Sqrt(Enumerable.Range(0, c.N).Sum(j => a[i * c.N + j] * a[i * c.N + j]))).ToArray();
        Assert.Equal(k, idx.Length);
        Assert.True(idx.Zip(idx.Skip(1), (x, y) => x < y).All(b => b), "ascending and distinct");
        double smallestPicked = idx.Min(i => norms[i]);
        double largestLeft = Enumerable.Range(0, c.M).Except(idx).Select(i => norms[i]).DefaultIfEmpty(0).Max();
        Assert.True(smallestPicked >= largestLeft * (1 - 1e-5), $"picked norm {smallestPicked} < unpicked {largestLeft}");
        var cols = LA.SelectColumns(t, 1, RowSelection.TopNorm).ToArray<int>();
        var colNorms = Enumerable.Range(0, c.N).Select(j => Enumerable.Range(0, c.M).Sum(i => a[i * c.N + j] * a[i * c.N + j])).ToArray();
        Assert.True(colNorms[cols[0]] >= colNorms.Max() * (1 - 1e-5));
    }

    [Theory]
    [InlineData(RowSelection.NormProportional)]
    [InlineData(RowSelection.NormSquaredProportional)]
    [InlineData(RowSelection.Uniform)]
    public void SelectRows_SamplingIsDeterministicAndProportional(RowSelection method)
    {
        double[] weights = [4, 2, 1, 1, 0.5, 0.5, 3, 0];
        using var a = RowsScaled(weights, 6, new Generator(1));
        // Deterministic per seed, distinct, ascending.
        var first = LA.SelectRows(a, 3, method, new Generator(77)).ToArray<int>();
        var again = LA.SelectRows(a, 3, method, new Generator(77)).ToArray<int>();
        Assert.Equal(first, again);
        Assert.True(first.Zip(first.Skip(1), (x, y) => x < y).All(b => b));
        // Single draws: frequencies follow the weights.
        const int draws = 4000;
        var counts = new int[weights.Length];
        var gen = new Generator(5);
        for (int d = 0; d < draws; d++) counts[LA.SelectRows(a, 1, method, gen).ToArray<int>()[0]]++;
        var w = weights.Select(x => method switch
        {
            RowSelection.NormProportional => x,
            RowSelection.NormSquaredProportional => x * x,
            _ => 1.0,
        }).ToArray();
        double total = w.Sum();
        for (int i = 0; i < weights.Length; i++)
        {
            double expected = draws * w[i] / total;
            double sd = Math.Sqrt(draws * (w[i] / total) * (1 - w[i] / total));
            Assert.True(Math.Abs(counts[i] - expected) <= 4 * sd + 1, $"{method}: row {i} drawn {counts[i]} times, expected ≈ {expected:F0}");
        }
        if (method != RowSelection.Uniform)
        {
            Assert.Equal(0, counts[7]);
            // The zero-norm row fills in only when every nonzero row is taken.
            var all = LA.SelectRows(a, 8, method, new Generator(3)).ToArray<int>();
            Assert.Equal(Enumerable.Range(0, 8), all);
            Assert.DoesNotContain(7, LA.SelectRows(a, 7, method, new Generator(3)).ToArray<int>());
        }
    }

    [Fact]
    public void SelectRows_BlockCyclesThroughTheRows()
    {
        using var a = Tensor.Rand([10, 3], new Generator(1));
        var seen = new List<int>();
        for (int b = 0; b < 5; b++)
        {
            var idx = LA.SelectRows(a, 2, RowSelection.Block, blockIndex: b).ToArray<int>();
            Assert.Equal([2 * b, 2 * b + 1], idx);
            seen.AddRange(idx);
        }
        Assert.Equal(Enumerable.Range(0, 10), seen);
        Assert.Equal([0, 1], LA.SelectRows(a, 2, RowSelection.Block, blockIndex: 5).ToArray<int>());
        // k not dividing m: the block wraps around the end (rows 9, 0, 1 sorted).
        Assert.Equal([0, 1, 9], LA.SelectRows(a, 3, RowSelection.Block, blockIndex: 3).ToArray<int>());
        Assert.Equal([7, 8, 9], LA.SelectRows(a, 3, RowSelection.Block, blockIndex: -1).ToArray<int>());
    }

    [Property(MaxTest = 30)]
    public void GatherScatter_RoundTrip(MatrixCase c)
    {
        var (t, a) = CaseMatrix(c with { Kind = 0 });
        int k = 1 + (int)(c.Seed % (ulong)c.M);
        using var idx = LA.SelectRows(t, k, RowSelection.Uniform, new Generator(c.Seed));
        var ids = idx.ToArray<int>();
        using var rows = LA.GatherRows(t, idx);
        Assert.Equal([k, c.N], rows.ShapeArray);
        var rd = rows.ToArray();
        for (int j = 0; j < k; j++)
            for (int col = 0; col < c.N; col++) Assert.Equal((float)a[ids[j] * c.N + col], rd[j * c.N + col]);
        // Replace the gathered rows into zeros: only those rows come back.
        using var zeros = Tensor.Zeros([c.M, c.N]);
        var back = LA.ScatterRows(zeros, idx, rows, ScatterMode.Replace).ToArray();
        for (int i = 0; i < c.M; i++)
            for (int col = 0; col < c.N; col++)
                Assert.Equal(ids.Contains(i) ? (float)a[i * c.N + col] : 0f, back[i * c.N + col]);
        // Replace into the original is the identity; Add doubles the selected rows.
        Assert.Equal(t.ToArray(), LA.ScatterRows(t, idx, rows, ScatterMode.Replace).ToArray());
        var added = LA.ScatterRows(t, idx, rows).ToArray();
        for (int i = 0; i < c.M; i++)
            for (int col = 0; col < c.N; col++)
                Assert.Equal((float)a[i * c.N + col] * (ids.Contains(i) ? 2 : 1), added[i * c.N + col]);
        // In place.
        using var target = t.Contiguous();
        LA.ScatterAddRowsInPlace(target, idx, rows);
        Assert.Equal(added, target.ToArray());
        // Columns.
        int kc = 1 + (int)(c.Seed % (ulong)c.N);
        using var cidx = LA.SelectColumns(t, kc, RowSelection.Block, blockIndex: 1);
        using var colsG = LA.GatherColumns(t, cidx);
        Assert.Equal([c.M, kc], colsG.ShapeArray);
        Assert.Equal(t.ToArray(), LA.ScatterColumns(t, cidx, colsG, ScatterMode.Replace).ToArray());
        using var tt = t.T;
        using var viaT = LA.GatherRows(tt, cidx);
        using var viaTT = viaT.T;
        Assert.Equal(colsG.ToArray(), viaTT.Contiguous().ToArray());
    }

    // ---- errors ---------------------------------------------------------------------------------

    [Fact]
    public void BadInputsRaiseClearErrors()
    {
        using var v = Tensor.Rand([5], new Generator(1));
        using var cube = Tensor.Rand([2, 3, 4], new Generator(1));
        using var wide = Tensor.Rand([3, 5], new Generator(1));
        using var ints = Tensor.FromArray([1, 2, 3, 4], 2, 2);
        var gen = new Generator(1);

        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.Qr(v)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.Qr(wide)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.Svd(cube)));
        AssertMessage(Assert.Throws<DTypeMismatchException>(() => LA.Svd(ints)));
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.Svd(wide, rank: 4)));
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.Svd(wide, rank: 0)));
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.RandomizedSvd(wide, 4, gen)));
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.RandomizedSvd(wide, 2, gen, oversampling: -1)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.RandomizedSvd(v, 1, gen)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.OnlinePcaGradient(Tensor.Rand([4, 2], gen), wide)));
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.SelectRows(wide, 4, RowSelection.TopNorm)));
        AssertMessage(Assert.Throws<ArgumentNullException>(() => LA.SelectRows(wide, 2, RowSelection.Uniform)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.SelectRows(cube, 1, RowSelection.TopNorm)));
        using var dup = Tensor.FromArray([1, 1], 2);
        using var two = Tensor.Rand([2, 5], gen);
        AssertMessage(Assert.Throws<ArgumentException>(() => LA.ScatterRows(wide, dup, two, ScatterMode.Replace)));
        using var outOfRange = Tensor.FromArray([0, 3], 2);
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.ScatterRows(wide, outOfRange, two)));
        using var target = Tensor.Zeros([3, 5]);
        AssertMessage(Assert.Throws<ArgumentOutOfRangeException>(() => LA.ScatterAddRowsInPlace(target, outOfRange, two)));
        AssertMessage(Assert.Throws<ShapeMismatchException>(() => LA.PrincipalAngles(wide, Tensor.Rand([4, 1], gen))));
    }

    private static void AssertMessage(Exception e)
    {
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.DoesNotContain('\n', e.Message);
    }
}
