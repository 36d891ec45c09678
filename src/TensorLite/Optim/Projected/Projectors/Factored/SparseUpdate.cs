namespace TensorLite.Optim.Projected;

/// <summary>
/// A sparse projector's update written only where it lands: W[rows] ← (1 − lr·wd)·W[rows] − step·N for the selected
/// rows (left) or columns (right), every other element keeping its bits. Decoupled weight decay is therefore applied
/// only to the rows (columns) this step updates — GRASS's structured sparse update. A re-scaled selection writes ρ_j·N_j,
/// and a row drawn more than once gets the sum of its draws, as <see cref="SparseProjector.ProjectBack"/> places them.
/// </summary>
internal static class SparseUpdate
{
    public static void Apply(Tensor p, SparseProjector projector, Tensor selected, float decay, float stepSize, ParamRounding rounding)
    {
        var (index, direction) = projector.Landing(selected);
        using var indexOwned = index;
        using var directionOwned = direction;
        var backend = p.Backend;
        if (projector.Side == ProjectionSide.Left)
        {
            // Rows of a contiguous matrix are contiguous views: each is updated in place.
            var rows = index.ToArray<int>();
            for (int j = 0; j < rows.Length; j++)
            {
                using var row = p.Narrow(0, rows[j], 1);
                using var d = direction.Narrow(0, j, 1);
                backend.ApplyUpdate(row, d, decay, stepSize, rounding);
            }
            return;
        }
        // Columns are strided: update a gathered copy, then write it back over exactly those columns (a selection's
        // indices are distinct, so scattering into zeros places each column unchanged and a mask picks them).
        using var columns = p.IndexSelect(1, index);
        backend.ApplyUpdate(columns, direction, decay, stepSize, rounding);
        using var columns32 = columns.DType == DType.Float32 ? columns.Detach() : columns.To(DType.Float32);
        using var zeros = Tensor.Zeros(p.Shape, DType.Float32, backend);
        using var scattered = zeros.IndexAdd(1, index, columns32);
        using var maskZeros = Tensor.Zeros([1, p.Shape[1]], DType.Float32, backend);
        using var ones = Tensor.Ones([1, index.Shape[0]], DType.Float32, backend);
        using var mask = maskZeros.IndexAdd(1, index, ones);
        using var p32 = p.DType == DType.Float32 ? p.Detach() : p.To(DType.Float32);
        using var merged = Tensor.Where(mask, scattered, p32);
        backend.Copy(merged, p);
    }
}
