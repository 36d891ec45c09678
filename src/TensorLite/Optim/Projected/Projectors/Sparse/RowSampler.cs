using TensorLite.LinearAlgebra;
using LA = TensorLite.LinearAlgebra.Linalg;

namespace TensorLite.Optim.Projected;

/// <summary>
/// GRASS's sampled selections (Muhamed et al. 2024, §3): r rows of a [m, n] drawn from q with q_i ∝ ‖a_i‖
/// (<see cref="RowSelection.NormProportional"/>), ∝ ‖a_i‖² (<see cref="RowSelection.NormSquaredProportional"/>) or
/// uniform, with or without replacement, each with the re-scaling ρ_j = 1/√(r·q_j). With replacement, E[Σ_j ρ_j²·e_j·e_jᵀ]
/// = I, so the projected-and-back gradient PᵀP·G is an unbiased estimate of G; without replacement it is exactly
/// unbiased for the uniform selection only (ρ² = m/r is then the inverse inclusion probability) and approximately so
/// for the weighted ones.
/// </summary>
public static class RowSampler
{
    /// <summary>The selected row indices (ascending, repeats possible with replacement) and their scales ρ.</summary>
    public static (int[] Index, float[] Scale) Sample(Tensor a, int r, RowSelection selection, bool withReplacement, Generator generator)
    {
        if (selection is not (RowSelection.NormProportional or RowSelection.NormSquaredProportional or RowSelection.Uniform))
            throw new ArgumentOutOfRangeException(nameof(selection), $"Only the sampled selections are re-scaled, not {selection}.");
        var q = Probabilities(a, selection);
        int[] index;
        if (withReplacement)
        {
            var cumulative = new double[q.Length];
            double running = 0;
            for (int i = 0; i < q.Length; i++) cumulative[i] = running += q[i];
            index = new int[r];
            for (int j = 0; j < r; j++)
            {
                int i = Array.BinarySearch(cumulative, generator.NextDouble() * running);
                i = i < 0 ? ~i : i;
                // Skip zero-probability rows a boundary draw could land on.
                while (i < q.Length - 1 && q[i] == 0) i++;
                index[j] = Math.Min(i, q.Length - 1);
            }
            Array.Sort(index);
        }
        else
        {
            using var picked = LA.SelectRows(a, r, selection, generator);
            index = picked.ToArray<int>();
        }
        var scale = index.Select(i => q[i] > 0 ? (float)(1.0 / Math.Sqrt(r * q[i])) : 1f).ToArray();
        return (index, scale);
    }

    /// <summary>q over the rows of a: ∝ ‖a_i‖, ∝ ‖a_i‖² or uniform (uniform too when every row is zero).</summary>
    public static double[] Probabilities(Tensor a, RowSelection selection)
    {
        int m = a.Shape[0];
        var q = new double[m];
        if (selection != RowSelection.Uniform)
        {
            using var norms = LA.RowNorms(a);
            var host = norms.ToArray();
            for (int i = 0; i < m; i++)
            {
                double w = selection == RowSelection.NormSquaredProportional ? (double)host[i] * host[i] : host[i];
                q[i] = double.IsFinite(w) ? w : 0;
            }
        }
        double total = q.Sum();
        for (int i = 0; i < m; i++) q[i] = total > 0 ? q[i] / total : 1.0 / m;
        return q;
    }
}
