using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace TensorLite.IO;

/// <summary>The header entry of one tensor in a safetensors file.</summary>
public sealed record SafeTensorInfo(string Name, DType DType, int[] Shape, long Begin, long End);

/// <summary>A floating-point tensor holds a NaN or an infinity where only finite values are accepted (checkpoints).</summary>
public sealed class NonFiniteTensorException(string tensorName, string message) : TensorLiteException(message)
{
    /// <summary>The name of the tensor that is not finite.</summary>
    public string TensorName { get; } = tensorName;
}

/// <summary>
/// Reads and writes the safetensors format (HF): an 8-byte little-endian header length, a JSON header
/// mapping names to dtype, shape and [begin, end) byte offsets, then the raw little-endian data.
/// The reader validates everything before it allocates a tensor, so hostile or truncated files fail
/// with one clear message instead of a crash or a huge allocation.
/// </summary>
public static class SafeTensors
{
    /// <summary>Headers larger than this are rejected (HF's reader uses the same order of magnitude).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    private static readonly (string Code, DType DType)[] Codes =
    [
        ("F32", DType.Float32), ("BF16", DType.BFloat16), ("F16", DType.Float16),
        ("I8", DType.Int8), ("U8", DType.UInt8), ("I32", DType.Int32), ("I64", DType.Int64),
    ];

    /// <summary>The safetensors dtype code of <paramref name="dtype"/> (F32, BF16, F16, I8, U8, I32, I64).</summary>
    public static string Code(DType dtype) => Codes.First(c => c.DType == dtype).Code;

    /// <summary>Reads and validates the header of a safetensors file.</summary>
    public static (IReadOnlyList<SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata, long DataStart) ReadHeader(string path)
    {
        using var stream = OpenForRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Loads every tensor (in its stored dtype; use To(DType.Float32) to compute). With
    /// <paramref name="requireFinite"/>, a floating-point tensor holding a NaN or an infinity is refused
    /// (<see cref="NonFiniteTensorException"/>).</summary>
    public static Dictionary<string, Tensor> Load(string path, IBackend? backend = null, bool requireFinite = false)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            Stream(path, _ => true, (info, t) => result[info.Name] = t.Alias(), backend, requireFinite);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Reads the tensors <paramref name="wanted"/> selects one at a time, in file order, handing each to
    /// <paramref name="consume"/> and disposing it afterwards (alias it to keep it): at most one tensor of the file is
    /// in memory at once, so a checkpoint loads into a model without a second copy of its weights.</summary>
    public static void Stream(string path, Func<SafeTensorInfo, bool> wanted, Action<SafeTensorInfo, Tensor> consume,
        IBackend? backend = null, bool requireFinite = false)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Big-endian hosts are not supported.");
        using var stream = OpenForRead(path);
        var (infos, _, dataStart) = ReadHeader(stream, path);
        foreach (var info in infos.OrderBy(i => i.Begin))
        {
            if (!wanted(info)) continue;
            var bytes = new byte[info.End - info.Begin];
            stream.Position = dataStart + info.Begin;
            stream.ReadExactly(bytes);
            if (requireFinite && FirstNonFinite(bytes, info.DType) >= 0)
                throw new NonFiniteTensorException(info.Name, $"'{path}': tensor '{info.Name}' holds NaN or infinite values.");
            using var t = Tensor.Empty(info.Shape, info.DType, backend);
            t.Backend.CopyFromHost(bytes, t);
            consume(info, t);
        }
    }

    /// <summary>Writes tensors (any dtype, any layout) atomically: the file is complete or untouched. With
    /// <paramref name="requireFinite"/>, a floating-point tensor holding a NaN or an infinity aborts the write
    /// (<see cref="NonFiniteTensorException"/>; the file is untouched): the check runs on the host copies the writer makes
    /// anyway, so it costs no extra pass over device memory.</summary>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        bool requireFinite = false)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in list)
            if (!names.Add(name)) throw new ArgumentException($"Tensor name '{name}' appears twice; safetensors names are unique.");
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long size = (long)t.Numel * t.DType.SizeInBytes();
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = Code(t.DType),
                ["shape"] = t.ShapeArray,
                ["data_offsets"] = new[] { offset, offset + size },
            };
            offset += size;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        // Pad the header with spaces to an 8-byte boundary so the data is aligned, as HF's writer does.
        int padded = (json.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            // One reusable buffer, a slice of a tensor at a time: writing a 7B checkpoint must not allocate gigabytes
            // of short-lived host arrays.
            const int ChunkBytes = 4 << 20;
            var buffer = new byte[ChunkBytes];
            using var noGrad = Autograd.GradMode.NoGrad();
            foreach (var (name, t) in list)
            {
                using var c = t.ContiguousNoGrad();
                using var flat = c.Reshape(c.Numel);
                int elementSize = c.DType.SizeInBytes(), perChunk = ChunkBytes / elementSize;
                for (int start = 0; start < c.Numel; start += perChunk)
                {
                    int count = Math.Min(perChunk, c.Numel - start);
                    using var slice = flat.Narrow(0, start, count);
                    var bytes = buffer.AsSpan(0, count * elementSize);
                    c.Backend.CopyToHost(slice, bytes);
                    if (requireFinite && FirstNonFinite(bytes, c.DType) >= 0)
                        throw new NonFiniteTensorException(name, $"tensor '{name}' holds NaN or infinite values; '{path}' was not written.");
                    stream.Write(bytes);
                }
            }
        });
    }

    /// <summary>The index of the first NaN or infinity among little-endian values of <paramref name="dtype"/> (-1 when all
    /// are finite or the dtype is not floating point).</summary>
    public static long FirstNonFinite(ReadOnlySpan<byte> bytes, DType dtype)
    {
        switch (dtype)
        {
            case DType.Float32:
            {
                var values = MemoryMarshal.Cast<byte, float>(bytes);
                // Max propagates NaN and Min/Max expose infinities: two vectorized passes decide the common, all-finite case.
                if (values.Length == 0 || (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.Max(values)) &&
                                           float.IsFinite(System.Numerics.Tensors.TensorPrimitives.Min(values)))) return -1;
                for (int i = 0; i < values.Length; i++)
                    if (!float.IsFinite(values[i])) return i;
                return -1;
            }
            case DType.BFloat16:
            case DType.Float16:
            {
                // All exponent bits set means an infinity or a NaN in both half formats.
                ushort mask = dtype == DType.BFloat16 ? (ushort)0x7F80 : (ushort)0x7C00;
                var values = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < values.Length; i++)
                    if ((values[i] & mask) == mask) return i;
                return -1;
            }
            default:
                return -1;
        }
    }

    private static FileStream OpenForRead(string path)
    {
        if (!File.Exists(path))
        {
            if (Directory.Exists(path)) throw Corrupt(path, "it is a directory");
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        }
        // A FIFO or device in place of the file would block or never end: regular files only.
        SafeFile.RequireRegular(path, "Safetensors file");
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
    }

    private static (IReadOnlyList<SafeTensorInfo>, IReadOnlyDictionary<string, string>, long) ReadHeader(Stream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw Corrupt(path, $"it is {fileLength} bytes long, shorter than the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLength > (ulong)MaxHeaderBytes) throw Corrupt(path, $"its header claims {headerLength} bytes (limit {MaxHeaderBytes})");
        if ((long)headerLength > fileLength - 8) throw Corrupt(path, $"its header claims {headerLength} bytes but only {fileLength - 8} follow");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        // JSON readers decode strings lazily; invalid UTF-8 inside a name would surface later as another exception type.
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw Corrupt(path, "its header is not valid UTF-8");
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Corrupt(path, $"its header is not valid JSON (at byte {e.BytePositionInLine ?? 0} of line {(e.LineNumber ?? 0) + 1})");
        }
        catch (ArgumentException)
        {
            throw Corrupt(path, "its header is not valid JSON");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Corrupt(path, "its header is not a JSON object");
            var infos = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw Corrupt(path, $"entry '{prop.Name}' appears twice");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Corrupt(path, "__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Corrupt(path, $"metadata value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                infos.Add(ParseEntry(prop, path));
            }
            ValidateLayout(infos, dataLength, path);
            return (infos, metadata, dataStart);
        }
    }

    private static SafeTensorInfo ParseEntry(JsonProperty prop, string path)
    {
        string name = prop.Name;
        var e = prop.Value;
        if (e.ValueKind != JsonValueKind.Object) throw Corrupt(path, $"entry '{name}' is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Corrupt(path, $"entry '{name}' has no dtype");
        string code = dt.GetString()!;
        var match = Codes.FirstOrDefault(c => c.Code == code);
        if (match.Code == null) throw Corrupt(path, $"entry '{name}' has unsupported dtype '{code}' (supported: {string.Join(", ", Codes.Select(c => c.Code))})");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Corrupt(path, $"entry '{name}' has no shape");
        var shape = new List<int>();
        long numel = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v < 0)
                throw Corrupt(path, $"entry '{name}' has an invalid shape dimension");
            shape.Add(v);
            numel *= v;
            if (numel > int.MaxValue) throw Corrupt(path, $"entry '{name}' has more than {int.MaxValue} elements");
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Corrupt(path, $"entry '{name}' has no [begin, end] data_offsets");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number ||
            !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Corrupt(path, $"entry '{name}' has invalid data_offsets");
        long expected = numel * match.DType.SizeInBytes();
        if (end - begin != expected)
            throw Corrupt(path, $"entry '{name}' spans {end - begin} bytes but {code} {ShapeMath.Format(shape.ToArray())} needs {expected}");
        return new SafeTensorInfo(name, match.DType, shape.ToArray(), begin, end);
    }

    /// <summary>Tensors must tile the data area exactly: in bounds, no overlaps, no holes.</summary>
    private static void ValidateLayout(List<SafeTensorInfo> infos, long dataLength, string path)
    {
        long cursor = 0;
        foreach (var info in infos.OrderBy(i => i.Begin).ThenBy(i => i.End))
        {
            if (info.Begin < cursor) throw Corrupt(path, $"entry '{info.Name}' overlaps another tensor's bytes");
            if (info.Begin > cursor) throw Corrupt(path, $"there are unused bytes before entry '{info.Name}'");
            cursor = info.End;
        }
        if (cursor > dataLength) throw Corrupt(path, $"the tensors need {cursor} data bytes but the file holds {dataLength} (truncated?)");
        if (cursor < dataLength) throw Corrupt(path, $"the file has {dataLength - cursor} bytes after the last tensor");
    }

    private static TensorLiteException Corrupt(string path, string why) =>
        new($"'{path}' is not a valid safetensors file: {why}.");
}
