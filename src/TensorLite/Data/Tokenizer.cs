using System.Text;

namespace TensorLite.Data;

/// <summary>Turns text into token ids and back.</summary>
public interface ITokenizer
{
    /// <summary>A stable name, recorded in run folders and token caches.</summary>
    string Name { get; }
    int VocabSize { get; }
    int[] Encode(string text);
    string Decode(ReadOnlySpan<int> ids);
}

/// <summary>UTF-8 bytes as tokens (vocabulary 256): no files, no training, the default for small models.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    public static ByteTokenizer Instance { get; } = new();

    public string Name => "byte";
    public int VocabSize => 256;

    public int[] Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new byte[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] > 255) throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {ids[i]} is not a byte (0–255).");
            bytes[i] = (byte)ids[i];
        }
        return Encoding.UTF8.GetString(bytes);
    }
}
