namespace TensorLite.Optim.Projected;

/// <summary>Helpers shared by the inner optimizers.</summary>
internal static class InnerMath
{
    /// <summary>Elements [offset, offset + count) of a state tensor as a flat view (an alias when that is all of it).</summary>
    public static Tensor StateRange(Tensor state, long offset, long count)
    {
        if (offset == 0 && count == state.Numel) return state.Alias();
        using var flat = state.Reshape(state.Numel);
        return flat.Narrow(0, checked((int)offset), checked((int)count));
    }

    /// <summary>C·S for a left projection (rows are basis coordinates), S·Cᵀ for a right one; a new tensor.</summary>
    public static Tensor ChangeBasis(Tensor state, Tensor c, ProjectionSide side)
    {
        if (side == ProjectionSide.Right)
        {
            using var ct = c.T;
            return state.MatMul(ct);
        }
        return c.MatMul(state);
    }
}
