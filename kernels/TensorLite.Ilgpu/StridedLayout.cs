namespace TensorLite.Ilgpu;

/// <summary>
/// Shape and up to three stride sets of a strided loop, coalesced on the host and padded at the front to six
/// dimensions so a kernel can turn a linear index into three element offsets without loops over arrays.
/// Passed to kernels by value.
/// </summary>
public struct StridedLayout
{
    public const int MaxRank = 6;

    public int D0, D1, D2, D3, D4, D5;
    public int A0, A1, A2, A3, A4, A5;
    public int B0, B1, B2, B3, B4, B5;
    public int C0, C1, C2, C3, C4, C5;

    /// <summary>Element offsets of linear index <paramref name="linear"/> (row-major over the shape) in each stride set.</summary>
    public readonly void Offsets(int linear, out int a, out int b, out int c)
    {
        int r = linear;
        int q = r / D5, i = r - q * D5; a = i * A5; b = i * B5; c = i * C5; r = q;
        q = r / D4; i = r - q * D4; a += i * A4; b += i * B4; c += i * C4; r = q;
        q = r / D3; i = r - q * D3; a += i * A3; b += i * B3; c += i * C3; r = q;
        q = r / D2; i = r - q * D2; a += i * A2; b += i * B2; c += i * C2; r = q;
        q = r / D1; i = r - q * D1; a += i * A1; b += i * B1; c += i * C1; r = q;
        a += r * A0; b += r * B0; c += r * C0;
    }

    /// <summary>Builds a layout from a shape and one to three stride sets (missing sets are all zero). Dimensions of size
    /// one are dropped and neighbours that every stride set steps through uniformly are merged first.</summary>
    public static StridedLayout Create(ReadOnlySpan<int> shape, ReadOnlySpan<int> a, ReadOnlySpan<int> b = default, ReadOnlySpan<int> c = default)
    {
        var dims = new List<int>();
        var sets = new List<int[]>();
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            int sa = a[d], sb = b.IsEmpty ? 0 : b[d], sc = c.IsEmpty ? 0 : c[d];
            int last = dims.Count - 1;
            if (last >= 0)
            {
                var prev = sets[last];
                int n = shape[d];
                if (prev[0] == sa * n && prev[1] == sb * n && prev[2] == sc * n)
                {
                    dims[last] *= n;
                    prev[0] = sa; prev[1] = sb; prev[2] = sc;
                    continue;
                }
            }
            dims.Add(shape[d]);
            sets.Add([sa, sb, sc]);
        }
        if (dims.Count > MaxRank)
            throw new NotSupportedException($"Strided views of more than {MaxRank} non-mergeable dimensions have no ILGPU kernel yet.");
        Span<int> dd = stackalloc int[MaxRank];
        Span<int> sa6 = stackalloc int[MaxRank], sb6 = stackalloc int[MaxRank], sc6 = stackalloc int[MaxRank];
        dd.Fill(1);
        int pad = MaxRank - dims.Count;
        for (int i = 0; i < dims.Count; i++)
        {
            dd[pad + i] = dims[i];
            sa6[pad + i] = sets[i][0];
            sb6[pad + i] = sets[i][1];
            sc6[pad + i] = sets[i][2];
        }
        return new StridedLayout
        {
            D0 = dd[0], D1 = dd[1], D2 = dd[2], D3 = dd[3], D4 = dd[4], D5 = dd[5],
            A0 = sa6[0], A1 = sa6[1], A2 = sa6[2], A3 = sa6[3], A4 = sa6[4], A5 = sa6[5],
            B0 = sb6[0], B1 = sb6[1], B2 = sb6[2], B3 = sb6[3], B4 = sb6[4], B5 = sb6[5],
            C0 = sc6[0], C1 = sc6[1], C2 = sc6[2], C3 = sc6[3], C4 = sc6[4], C5 = sc6[5],
        };
    }
}
