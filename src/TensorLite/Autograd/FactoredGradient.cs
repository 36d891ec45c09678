using TensorLite.Memory;

namespace TensorLite.Autograd;

/// <summary>
/// The gradient of a weight W [m, n] used as y = x·Wᵀ, kept as its factors instead of the m×n matrix:
/// G = Scale · Σᵢ dYᵢᵀ·Xᵢ over the recorded pairs (Xᵢ [b, n] the layer's input rows, dYᵢ [b, m] the output gradient's
/// rows; several pairs come from several uses of the weight in one backward, or from several micro-batches), plus
/// optionally <see cref="Folded"/>: the projected gradient of earlier micro-batches, computed by an optimizer under a
/// projection that stays fixed for the step. Products are computed through the b dimension, so G itself is formed only
/// by <see cref="ToDense"/>. Every product accumulates in float32 whatever the factors' dtype (bf16 activations).
/// </summary>
public sealed class FactoredGradient : IDisposable
{
    private readonly List<(Tensor Input, Tensor OutputGrad)> _pairs = [];

    /// <summary>An empty factored gradient of an m×n weight (<paramref name="rows"/> = m output features, <paramref name="columns"/> = n input features).</summary>
    public FactoredGradient(int rows, int columns)
    {
        Rows = rows;
        Columns = columns;
    }

    /// <summary>m: the weight's output features.</summary>
    public int Rows { get; }

    /// <summary>n: the weight's input features.</summary>
    public int Columns { get; }

    /// <summary>A factor every product is multiplied by (gradient clipping scales this, never the shared factors).</summary>
    public float Scale { get; set; } = 1f;

    /// <summary>The recorded (X [b, n], dY [b, m]) pairs, owned by this object.</summary>
    public IReadOnlyList<(Tensor Input, Tensor OutputGrad)> Pairs => _pairs;

    /// <summary>The projected gradient of the pairs already folded away (float32, unscaled by <see cref="Scale"/>),
    /// and the key of the projection that produced it; null when nothing was folded.</summary>
    public Tensor? Folded { get; private set; }

    /// <summary>The key of the projection <see cref="Folded"/> was computed under; folding under another key first refuses.</summary>
    public object? FoldedUnder { get; private set; }

    /// <summary>The backend the factors live on.</summary>
    public IBackend Backend => _pairs.Count > 0 ? _pairs[0].Input.Backend
        : Folded?.Backend ?? throw new InvalidOperationException("An empty factored gradient has no backend.");

    /// <summary>Total rows b over all pairs.</summary>
    public long BatchRows => _pairs.Sum(p => (long)p.Input.Shape[0]);

    /// <summary>Takes ownership of aliases of x [b, n] and dY [b, m] (the caller keeps its own tensors).</summary>
    public void Add(Tensor input, Tensor outputGrad)
    {
        if (input.Rank != 2 || outputGrad.Rank != 2 || input.Shape[1] != Columns || outputGrad.Shape[1] != Rows || input.Shape[0] != outputGrad.Shape[0])
            throw new ShapeMismatchException($"A factored gradient of a [{Rows}, {Columns}] weight needs X [b, {Columns}] and dY [b, {Rows}], got {ShapeMath.Format(input.Shape)} and {ShapeMath.Format(outputGrad.Shape)}.");
        if (Scale != 1f)
            throw new InvalidOperationException("A factored gradient that was already scaled cannot take more pairs.");
        _pairs.Add((Keep(input), Keep(outputGrad)));
    }

    /// <summary>Moves <paramref name="other"/>'s pairs into this one (which may hold a folded part) and disposes it.</summary>
    public void Absorb(FactoredGradient other)
    {
        if (other.Rows != Rows || other.Columns != Columns || other.Folded != null || other.Scale != 1f || Scale != 1f)
            throw new InvalidOperationException("Only unscaled factored gradients of the same shape can be merged, the added one unfolded.");
        _pairs.AddRange(other._pairs);
        other._pairs.Clear();
        other.Dispose();
    }

    /// <summary>An alias that outlives the backward's scope. Not re-tagged: X is the activation the graph saved and dY
    /// the backward's own gradient, and their memory keeps the category it was counted under.</summary>
    private static Tensor Keep(Tensor t) => t.Alias().Persist();

    /// <summary>Replaces the pairs by their projection: Folded += <paramref name="projected"/> (which this object takes).
    /// <paramref name="projectionKey"/> identifies the projection; folding under a different one is refused.</summary>
    public void Fold(Tensor projected, object projectionKey)
    {
        if (Scale != 1f) throw new InvalidOperationException("A scaled factored gradient cannot be folded.");
        if (Folded != null && !Equals(FoldedUnder, projectionKey))
            throw new InvalidOperationException("A factored gradient was folded under another projection in the same step.");
        projected.Persist().Tag(MemoryCategory.Gradients);
        if (Folded == null) Folded = projected;
        else
        {
            using (projected) Folded.Backend.Binary(BinaryOp.Add, Folded, projected, Folded);
        }
        FoldedUnder = projectionKey;
        DisposePairs();
    }

    /// <summary>G·Q [m, r] = Σ dYᵀ·(X·Q) for q [n, r], times <see cref="Scale"/>.</summary>
    public Tensor Times(Tensor q) => Sum(p =>
    {
        using var xq = p.Input.MatMul(q, DType.Float32);
        using var dyt = p.OutputGrad.T;
        return dyt.MatMul(xq, DType.Float32);
    });

    /// <summary>Gᵀ·Z [n, r] = Σ Xᵀ·(dY·Z) for z [m, r], times <see cref="Scale"/>.</summary>
    public Tensor TransposeTimes(Tensor z) => Sum(p =>
    {
        using var dyz = p.OutputGrad.MatMul(z, DType.Float32);
        using var xt = p.Input.T;
        return xt.MatMul(dyz, DType.Float32);
    });

    /// <summary>Bᵀ·G [r, n] = Σ (dY·B)ᵀ·X for b [m, r], times <see cref="Scale"/>.</summary>
    public Tensor LeftProject(Tensor b) => Sum(p =>
    {
        using var dyb = p.OutputGrad.MatMul(b, DType.Float32);
        using var t = dyb.T;
        return t.MatMul(p.Input, DType.Float32);
    });

    /// <summary>Lᵀ·G·R [r, r] = Σ (dY·L)ᵀ·(X·R) for l [m, r] and r [n, r] (GaLore's two-sided "full" projection), times
    /// <see cref="Scale"/>: b·r·(m + n) + b·r² multiply-adds instead of b·m·n.</summary>
    public Tensor BothSidesProject(Tensor left, Tensor right) => Sum(p =>
    {
        using var dyl = p.OutputGrad.MatMul(left, DType.Float32);
        using var xr = p.Input.MatMul(right, DType.Float32);
        using var t = dyl.T;
        return t.MatMul(xr, DType.Float32);
    });

    /// <summary>The rows G[index, :] [r, n] = Σ dY[:, index]ᵀ·X: r/m of the dense product.</summary>
    public Tensor SelectedRows(Tensor index) => Sum(p =>
    {
        using var picked = p.OutputGrad.IndexSelect(1, index);
        using var t = picked.T;
        return t.MatMul(p.Input, DType.Float32);
    });

    /// <summary>The columns G[:, index] [m, r] = Σ dYᵀ·X[:, index]: r/n of the dense product.</summary>
    public Tensor SelectedColumns(Tensor index) => Sum(p =>
    {
        using var picked = p.Input.IndexSelect(1, index);
        using var dyt = p.OutputGrad.T;
        return dyt.MatMul(picked, DType.Float32);
    });

    /// <summary>G [m, n] in <paramref name="dtype"/> (accumulated in float32, rounded once). Refused once pairs were
    /// folded, because a projection cannot be undone.</summary>
    public Tensor ToDense(DType dtype)
    {
        if (Folded != null) throw new InvalidOperationException("A folded factored gradient has no dense form.");
        var g = Sum(p =>
        {
            using var dyt = p.OutputGrad.T;
            return dyt.MatMul(p.Input, DType.Float32);
        }, [Rows, Columns]);
        if (dtype == DType.Float32) return g;
        using (g) return g.To(dtype);
    }

    /// <summary>Whether every factor (and the folded part) is free of NaN and infinity: then G is finite unless a product
    /// overflows float32. Checking the factors costs b·(m + n) reads instead of the m·n·b product.</summary>
    public bool FactorsAreFinite()
    {
        foreach (var (x, dy) in _pairs)
            if (!IsFinite(x) || !IsFinite(dy)) return false;
        return Folded == null || IsFinite(Folded);
    }

    private static bool IsFinite(Tensor t)
    {
        using var noGrad = GradMode.NoGrad();
        using var c = t.ContiguousNoGrad();
        return double.IsFinite(c.Backend.SumOfSquares(c));
    }

    private Tensor Sum(Func<(Tensor Input, Tensor OutputGrad), Tensor> term, int[]? emptyShape = null)
    {
        using var noGrad = GradMode.NoGrad();
        if (_pairs.Count == 0)
        {
            if (emptyShape == null) throw new InvalidOperationException("A factored gradient without pairs has no products.");
            return Tensor.Zeros(emptyShape, DType.Float32, Folded?.Backend ?? TensorLite.Backend.Default);
        }
        var total = term(_pairs[0]);
        for (int i = 1; i < _pairs.Count; i++)
        {
            using var next = term(_pairs[i]);
            total.Backend.Binary(BinaryOp.Add, total, next, total);
        }
        if (Scale != 1f) total.Backend.Unary(UnaryOp.Affine, total, total, Scale, 0f);
        return total;
    }

    private void DisposePairs()
    {
        foreach (var (x, dy) in _pairs)
        {
            x.Dispose();
            dy.Dispose();
        }
        _pairs.Clear();
    }

    /// <summary>Frees the recorded factors and the folded gradient.</summary>
    public void Dispose()
    {
        DisposePairs();
        Folded?.Dispose();
        Folded = null;
    }
}
