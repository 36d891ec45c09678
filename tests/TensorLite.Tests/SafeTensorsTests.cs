using System.Buffers.Binary;
using System.Text;
using TensorLite.IO;
using Xunit;

namespace TensorLite.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tl-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public void SaveThenLoad_RoundTripsEveryDTypeAndLayout()
    {
        var gen = new Generator(1);
        var f = Tensor.RandN([3, 5], gen);
        var tensors = new (string, Tensor)[]
        {
            ("model.layers.0.self_attn.q_proj.weight", f),
            ("transposed", f.T), // a strided view is written in row-major order
            ("bf16", f.To(DType.BFloat16)),
            ("f16", f.To(DType.Float16)),
            ("i8", Tensor.FromArray(new sbyte[] { -128, 0, 127 }, 3)),
            ("u8", Tensor.FromArray(new byte[] { 0, 255 }, 2)),
            ("i32", Tensor.FromArray([1, -2, 3], 3)),
            ("i64", Tensor.FromArray([long.MaxValue, -1L], 2)),
            ("scalar", Tensor.Scalar(2.5f)),
        };
        var path = PathOf("model.safetensors");
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var loaded = SafeTensors.Load(path);
        Assert.Equal(tensors.Length, loaded.Count);
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.DType, loaded[name].DType);
            Assert.Equal(t.ShapeArray, loaded[name].ShapeArray);
            Assert.Equal(t.ToArray(), loaded[name].ToArray());
        }
        Assert.Equal("pt", SafeTensors.ReadHeader(path).Metadata["format"]);
        Assert.Equal(0, (8 + BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path))) % 8);
    }

    private string WriteRaw(string header, int dataBytes, long? claimedHeaderLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, claimedHeaderLength ?? json.Length);
        json.CopyTo(bytes, 8);
        var path = PathOf($"raw{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "truncated")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "overlaps")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4, "needs 8")]
    [InlineData("""{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}""", 8, "unsupported dtype")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "invalid shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "unused bytes")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, "after the last tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,4]}}""", 4, "more than")]
    [InlineData("""{"a":[1,2]}""", 0, "not an object")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]""", 0, "not valid JSON")]
    [InlineData("""[]""", 0, "not a JSON object")]
    public void HostileHeaders_AreRejectedWithAClearMessage(string header, int dataBytes, string expected)
    {
        var path = WriteRaw(header, dataBytes);
        var e = Assert.Throws<TensorLiteException>(() => SafeTensors.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains("not a valid safetensors file", e.Message);
    }

    [Fact]
    public void HugeOrTruncatedHeaderLengths_AreRejectedBeforeAllocating()
    {
        var huge = WriteRaw("{}", 0, claimedHeaderLength: long.MaxValue);
        Assert.Contains("limit", Assert.Throws<TensorLiteException>(() => SafeTensors.Load(huge)).Message);
        var beyond = WriteRaw("{}", 0, claimedHeaderLength: 1000);
        Assert.Contains("only 2 follow", Assert.Throws<TensorLiteException>(() => SafeTensors.Load(beyond)).Message);
        var tiny = PathOf("tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        Assert.Contains("shorter than", Assert.Throws<TensorLiteException>(() => SafeTensors.Load(tiny)).Message);
        Assert.Throws<FileNotFoundException>(() => SafeTensors.Load(PathOf("missing.safetensors")));
    }

    [Fact]
    public void FailedSave_LeavesThePreviousFileIntactAndNoTemporaries()
    {
        var path = PathOf("ckpt.safetensors");
        SafeTensors.Save(path, [("w", Tensor.Ones([4]))]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(path, [("w", Tensor.Zeros([4])), ("w", Tensor.Zeros([4]))]));
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s => { s.WriteByte(1); throw new InvalidOperationException("disk died"); }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_dir));
    }
}
