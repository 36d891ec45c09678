using System.Text;

namespace TensorLite.Data;

/// <summary>Turns text into token ids and back.</summary>
public interface ITokenizer
{
    /// <summary>A stable name, recorded in run folders and token caches.</summary>
    string Name { get; }
    /// <summary>The number of token ids (every id is below it).</summary>
    int VocabSize { get; }
    /// <summary>The token ids of <paramref name="text"/>.</summary>
    int[] Encode(string text);
    /// <summary>The text of <paramref name="ids"/>.</summary>
    string Decode(ReadOnlySpan<int> ids);
}

/// <summary>UTF-8 bytes as tokens (vocabulary 256): no files, no training, the default for small models.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>The one instance (the tokenizer has no state).</summary>
    public static ByteTokenizer Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "byte";
    /// <inheritdoc/>
    public int VocabSize => 256;

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    /// <inheritdoc/>
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

/// <summary>OpenAI's tiktoken vocabularies (cl100k_base, o200k_base) through Microsoft.ML.Tokenizers; the
/// vocabulary data ships inside NuGet packages, so no download happens at run time.</summary>
public sealed class TiktokenTokenizer : ITokenizer
{
    private readonly Microsoft.ML.Tokenizers.TiktokenTokenizer _inner;

    private TiktokenTokenizer(string name, string model)
    {
        Name = name;
        _inner = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel(model);
        // Special tokens follow the ordinary ones, so ids run up to the largest special token
        // (<|endofprompt|> = 100276 in cl100k, 200018 in o200k).
        VocabSize = (_inner.SpecialTokens?.Values.DefaultIfEmpty(0).Max() ?? 0) + 1;
    }

    /// <summary>OpenAI's cl100k_base vocabulary (GPT-4), loaded from its NuGet data package.</summary>
    public static TiktokenTokenizer Cl100k() => new("cl100k", "gpt-4");
    /// <summary>OpenAI's o200k_base vocabulary (GPT-4o), loaded from its NuGet data package.</summary>
    public static TiktokenTokenizer O200k() => new("o200k", "gpt-4o");

    /// <inheritdoc/>
    public string Name { get; }
    /// <inheritdoc/>
    public int VocabSize { get; }
    /// <inheritdoc/>
    public int[] Encode(string text) => _inner.EncodeToIds(text).ToArray();
    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => _inner.Decode(ids.ToArray()) ?? "";
}
