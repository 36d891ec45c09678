namespace TensorLite.Optim.Projected;

/// <summary>FRUGAL's whole-matrix mode: no projection inside a matrix; the optimizer gives round(ρ·k) of the k projected
/// matrices AdamW and the rest the state-free rule, choosing them in <paramref name="Order"/> at each refresh. The
/// projector holds no state; the AdamW moments of an active matrix are freed when it turns inactive.</summary>
public sealed record WholeMatrixProjectorFactory(MatrixOrder Order = MatrixOrder.Random) : ProjectorFactory
{
    /// <inheritdoc/>
    public override ProjectionKind Kind => ProjectionKind.WholeMatrix;

    /// <inheritdoc/>
    public override IProjector Create(ProjectionSide side, int m, int n, int rank, int updateGap, Generator generator, DType basisDType) =>
        new WholeMatrixProjector(m, n, updateGap);

    /// <inheritdoc/>
    public override long PredictStateBytes(ProjectionSide side, int m, int n, int rank, DType basisDType) => 0;

    /// <inheritdoc/>
    public override void Validate()
    {
        if (!Enum.IsDefined(Order)) throw new ArgumentOutOfRangeException(nameof(Order), $"Unknown matrix order {Order}.");
    }

    /// <summary>Which of <paramref name="count"/> matrices are state-full after refresh number <paramref name="refresh"/>
    /// (0, 1, …) when <paramref name="active"/> of them are: a function of its arguments alone, so nothing needs to be
    /// checkpointed.</summary>
    public bool[] ActiveSet(int count, int active, long refresh, ulong seed)
    {
        var result = new bool[count];
        if (count == 0 || active == 0) return result;
        switch (Order)
        {
            case MatrixOrder.Random:
            {
                var gen = new Generator(unchecked(seed ^ 0xF2A6A1C3D5E7B9UL ^ (ulong)refresh * 0x9E3779B97F4A7C15UL));
                var perm = Enumerable.Range(0, count).ToArray();
                for (int i = 0; i < active; i++)
                {
                    int j = i + gen.NextInt(count - i);
                    (perm[i], perm[j]) = (perm[j], perm[i]);
                    result[perm[i]] = true;
                }
                break;
            }
            case MatrixOrder.Ascending:
            {
                long start = refresh * active % count;
                for (int i = 0; i < active; i++) result[(start + i) % count] = true;
                break;
            }
            case MatrixOrder.Mirror:
            {
                RequireEvenActiveCount(active, count);
                int half = count / 2, pairs = active / 2;
                if (pairs == 0) break;
                long start = refresh * pairs % half;
                for (int i = 0; i < pairs; i++)
                {
                    int j = (int)((start + i) % half);
                    result[j] = result[count - 1 - j] = true;
                }
                break;
            }
            default:
            {
                long start = count - 1 - refresh * active % count;
                for (int i = 0; i < active; i++) result[((start - i) % count + count) % count] = true;
                break;
            }
        }
        return result;
    }

    /// <summary>Checks what the mirror order needs of <paramref name="active"/> state-full matrices out of
    /// <paramref name="count"/>: an even number (pairs); throws an argument exception with one sentence otherwise.</summary>
    public void RequireEvenActiveCount(int active, int count)
    {
        if (Order == MatrixOrder.Mirror && active % 2 != 0)
            throw new ArgumentException($"FRUGAL's mirror order activates matrices in pairs, but round(ρ·k) = {active} of the k = {count} projected matrices is odd; pick another density.");
    }

    /// <summary>round(ρ·k) with Python's rounding (half to even), as the reference computes it.</summary>
    public static int ActiveCount(float density, int count) => (int)Math.Round((double)density * count, MidpointRounding.ToEven);
}
