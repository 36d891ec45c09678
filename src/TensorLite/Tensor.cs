using System.Runtime.InteropServices;
using TensorLite.Autograd;

namespace TensorLite;

/// <summary>
/// An N-dimensional view (shape, strides, offset) over reference-counted backend memory, with the
/// autograd fields of reverse-mode differentiation. Views share memory; <see cref="Dispose"/> releases
/// this tensor's reference deterministically (or let a <see cref="TensorScope"/> do it).
/// Ops live in the partial files under Ops/.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private readonly int[] _shape;
    private readonly int[] _strides;
    private bool _disposed;

    internal Tensor(Storage storage, int[] shape, int[] strides, int offset, DType dtype)
    {
        Storage = storage;
        _shape = shape;
        _strides = strides;
        Offset = offset;
        DType = dtype;
        Numel = ShapeMath.Numel(shape);
        TensorScope.Register(this);
    }

    /// <summary>The memory this tensor views (shared with its views).</summary>
    public Storage Storage { get; }
    /// <summary>The backend that holds the memory and runs the ops.</summary>
    public IBackend Backend => Storage.Backend;
    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>Offset of the first element in the storage, in elements.</summary>
    public int Offset { get; }
    /// <summary>The number of elements.</summary>
    public int Numel { get; }
    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;
    /// <summary>The size of each dimension.</summary>
    public ReadOnlySpan<int> Shape => _shape;
    /// <summary>The step between neighbours of each dimension, in elements (0 for a broadcast dimension).</summary>
    public ReadOnlySpan<int> Strides => _strides;
    /// <summary>A copy of <see cref="Shape"/>.</summary>
    public int[] ShapeArray => (int[])_shape.Clone();
    /// <summary>Whether <see cref="Dispose"/> was called on this tensor.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>An optional name, used in error messages (e.g. a parameter's HF tensor name).</summary>
    public string? Name { get; set; }

    /// <summary>The size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => _shape[ShapeMath.NormalizeDim(dim, Rank)];

    /// <summary>Whether the elements lie in row-major order without gaps.</summary>
    public bool IsContiguous => ShapeMath.IsContiguous(_shape, _strides);

    // ---- creation -------------------------------------------------------------------------------

    /// <summary>A new contiguous tensor with uninitialized contents.</summary>
    public static Tensor Empty(ReadOnlySpan<int> shape, DType dtype = DType.Float32, IBackend? backend = null)
    {
        var dims = shape.ToArray();
        ShapeMath.Validate(dims);
        long numel = ShapeMath.Numel(dims);
        backend ??= TensorLite.Backend.Default;
        var storage = backend.Allocate(Math.Max(1, numel) * dtype.SizeInBytes());
        return new Tensor(storage, dims, ShapeMath.ContiguousStrides(dims), 0, dtype);
    }

    /// <summary>A new tensor with every element <paramref name="value"/>.</summary>
    public static Tensor Full(ReadOnlySpan<int> shape, double value, DType dtype = DType.Float32, IBackend? backend = null)
    {
        var t = Empty(shape, dtype, backend);
        t.Backend.Fill(t, value);
        return t;
    }

    /// <summary>A new tensor of zeros.</summary>
    public static Tensor Zeros(ReadOnlySpan<int> shape, DType dtype = DType.Float32, IBackend? backend = null) =>
        Full(shape, 0, dtype, backend);

    /// <summary>A new tensor of ones.</summary>
    public static Tensor Ones(ReadOnlySpan<int> shape, DType dtype = DType.Float32, IBackend? backend = null) =>
        Full(shape, 1, dtype, backend);

    /// <summary>A new float32 scalar (rank 0).</summary>
    public static Tensor Scalar(float value, IBackend? backend = null) => Full([], value, DType.Float32, backend);

    /// <summary>Zeros of <paramref name="t"/>'s shape, dtype and backend.</summary>
    public static Tensor ZerosLike(Tensor t) => Zeros(t.Shape, t.DType, t.Backend);
    /// <summary>Ones of <paramref name="t"/>'s shape, dtype and backend.</summary>
    public static Tensor OnesLike(Tensor t) => Ones(t.Shape, t.DType, t.Backend);

    /// <summary>A float32 tensor holding a copy of <paramref name="data"/> in <paramref name="shape"/> (row-major), on the default backend.</summary>
    public static Tensor FromArray(float[] data, params int[] shape) => FromSpan<float>(data, shape, DType.Float32);
    /// <summary>An int32 tensor holding a copy of <paramref name="data"/> in <paramref name="shape"/>.</summary>
    public static Tensor FromArray(int[] data, params int[] shape) => FromSpan<int>(data, shape, DType.Int32);
    /// <summary>An int64 tensor holding a copy of <paramref name="data"/> in <paramref name="shape"/>.</summary>
    public static Tensor FromArray(long[] data, params int[] shape) => FromSpan<long>(data, shape, DType.Int64);
    /// <summary>An int8 tensor holding a copy of <paramref name="data"/> in <paramref name="shape"/>.</summary>
    public static Tensor FromArray(sbyte[] data, params int[] shape) => FromSpan<sbyte>(data, shape, DType.Int8);
    /// <summary>A uint8 tensor holding a copy of <paramref name="data"/> in <paramref name="shape"/>.</summary>
    public static Tensor FromArray(byte[] data, params int[] shape) => FromSpan<byte>(data, shape, DType.UInt8);

    /// <summary>Wraps host data of an unmanaged element type into a new tensor on a backend.</summary>
    public static Tensor FromSpan<T>(ReadOnlySpan<T> data, ReadOnlySpan<int> shape, DType dtype, IBackend? backend = null)
        where T : unmanaged
    {
        if (!HostTypeMatches<T>(dtype))
            throw new DTypeMismatchException($"Host element type {typeof(T).Name} does not match dtype {dtype.Name()}.");
        long numel = ShapeMath.Numel(shape.ToArray());
        if (numel != data.Length)
            throw new ShapeMismatchException($"Data has {data.Length} elements but shape {ShapeMath.Format(shape)} needs {numel}.");
        var t = Empty(shape, dtype, backend);
        t.Backend.CopyFromHost(MemoryMarshal.AsBytes(data), t);
        return t;
    }

    /// <summary>Standard normal samples (times <paramref name="std"/>) from a seeded generator, stored as
    /// <paramref name="dtype"/> (rounded to nearest from float32 draws).</summary>
    public static Tensor RandN(ReadOnlySpan<int> shape, Generator generator, float std = 1f, IBackend? backend = null,
        DType dtype = DType.Float32) => Draw(shape, backend, dtype, chunk => generator.FillNormal(chunk, 0f, std));

    /// <summary>Uniform samples in [low, high) from a seeded generator, stored as <paramref name="dtype"/>.</summary>
    public static Tensor Rand(ReadOnlySpan<int> shape, Generator generator, float low = 0f, float high = 1f, IBackend? backend = null,
        DType dtype = DType.Float32) => Draw(shape, backend, dtype, chunk => generator.FillUniform(chunk, low, high));

    /// <summary>
    /// Fills a new tensor with host-drawn float32 values a chunk at a time, so drawing a 7B model's weights never holds
    /// more than one chunk on the host, nor a float32 copy of a bf16 weight. Chunks have an even length, so a generator
    /// that draws pairs (Box–Muller) produces exactly the sequence of one whole-tensor draw.
    /// </summary>
    private static Tensor Draw(ReadOnlySpan<int> shape, IBackend? backend, DType dtype, Action<Span<float>> draw)
    {
        var t = Empty(shape, dtype, backend);
        // A planned program never reads the values, and drawing billions of them on the host would be the plan's cost.
        if (!t.Backend.ComputesValues) return t;
        const int Chunk = 1 << 20;
        var host = new float[Math.Min(Chunk, Math.Max(1, t.Numel))];
        using var flat = t.Reshape(t.Numel);
        for (int offset = 0; offset < t.Numel; offset += Chunk)
        {
            int length = Math.Min(Chunk, t.Numel - offset);
            var span = host.AsSpan(0, length);
            draw(span);
            using var slice = flat.Narrow(0, offset, length);
            if (dtype == DType.Float32)
            {
                t.Backend.CopyFromHost(MemoryMarshal.AsBytes(span), slice);
                continue;
            }
            using var drawn = FromSpan<float>(span, [length], DType.Float32, t.Backend);
            using var converted = drawn.To(dtype);
            t.Backend.Copy(converted, slice);
        }
        return t;
    }

    /// <summary>0, 1, ..., <paramref name="count"/> − 1 as a vector.</summary>
    public static Tensor Arange(int count, DType dtype = DType.Float32, IBackend? backend = null)
    {
        var host = new float[count];
        for (int i = 0; i < count; i++) host[i] = i;
        using var f = FromSpan<float>(host, [count], DType.Float32, backend);
        return dtype == DType.Float32 ? f.Clone() : f.To(dtype);
    }

    // ---- reading back ---------------------------------------------------------------------------

    /// <summary>Copies the elements (in row-major order) to a new host array of the tensor's own element type.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        if (!HostTypeMatches<T>(DType))
            throw new DTypeMismatchException($"Cannot read a {DType.Name()} tensor as {typeof(T).Name}.");
        var result = new T[Numel];
        using var c = ContiguousNoGrad();
        Backend.CopyToHost(c, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>The elements converted to float32, in row-major order.</summary>
    public float[] ToArray()
    {
        if (DType == DType.Float32) return ToArray<float>();
        using var f = To(DType.Float32);
        return f.ToArray<float>();
    }

    /// <summary>The value of a one-element tensor.</summary>
    public float Item()
    {
        if (Numel != 1)
            throw new ShapeMismatchException($"Item() needs a one-element tensor, got shape {ShapeMath.Format(Shape)}.");
        return ToArray()[0];
    }

    /// <summary>Whether host elements of type T hold a dtype's bits (16-bit floats travel as ushort or Half).</summary>
    private static bool HostTypeMatches<T>(DType dtype) where T : unmanaged => dtype switch
    {
        DType.Float32 => typeof(T) == typeof(float),
        DType.BFloat16 => typeof(T) == typeof(ushort),
        DType.Float16 => typeof(T) == typeof(ushort) || typeof(T) == typeof(Half),
        DType.Int8 => typeof(T) == typeof(sbyte),
        DType.UInt8 => typeof(T) == typeof(byte),
        DType.Int32 => typeof(T) == typeof(int),
        DType.Int64 => typeof(T) == typeof(long),
        _ => false,
    };

    // ---- ownership ------------------------------------------------------------------------------

    /// <summary>A new tensor object over the same memory, shape and strides (no autograd history).</summary>
    internal Tensor Alias()
    {
        ThrowIfDisposed();
        Storage.AddRef();
        return new Tensor(Storage, _shape, _strides, Offset, DType);
    }

    /// <summary>Removes this tensor from the current <see cref="TensorScope"/> so it outlives it
    /// (parameters, optimizer states, anything kept across steps). Returns the tensor.</summary>
    public Tensor Persist()
    {
        TensorScope.Unregister(this);
        return this;
    }

    internal TensorScope? OwnerScope { get; set; }

    /// <summary>Counts this tensor's memory (shared with its views) under <paramref name="category"/> in its backend's
    /// ledger, and returns the tensor.</summary>
    public Tensor Tag(Memory.MemoryCategory category)
    {
        Storage.Recategorize(category);
        return this;
    }

    /// <summary>Drops this tensor's reference to its memory (and frees its gradients); the memory goes back to the pool when no view or graph node holds it.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Grad?.Dispose();
        Grad = null;
        FactoredGrad?.Dispose(); // a parameter's gradient kept as factors holds the layer's input and output gradient
        FactoredGrad = null;
        Storage.Release();
    }

    /// <summary>Fails when the memory is gone. A disposed tensor whose memory is still held (by a view or
    /// by the autograd graph) stays readable, which is what lets Backward run after intermediates are disposed.</summary>
    internal void ThrowIfDisposed()
    {
        if (Storage.IsReleased)
            throw new ObjectDisposedException(Name ?? "Tensor", $"Tensor {Describe()} was used after Dispose().");
    }

    /// <summary>Name (if any), shape and dtype, for messages.</summary>
    public string Describe() => $"{(Name is null ? "" : Name + " ")}{ShapeMath.Format(Shape)} {DType.Name()}";

    /// <summary>The description and the first values.</summary>
    public override string ToString()
    {
        if (_disposed) return $"Tensor({Describe()}, disposed)";
        const int preview = 8;
        var values = Numel <= 4096 ? ToArray() : [];
        string body = values.Length == 0 ? "…" :
            string.Join(", ", values.Take(preview).Select(v => v.ToString("G5"))) + (values.Length > preview ? ", …" : "");
        return $"Tensor({Describe()}{(RequiresGrad ? ", requires_grad" : "")}: [{body}])";
    }
}
