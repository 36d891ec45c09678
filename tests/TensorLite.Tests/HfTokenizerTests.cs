using System.IO.Compression;
using System.Text;
using System.Text.Json;
using TensorLite.Data;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>A real model tokenizer (Qwen3's tokenizer.json) gives the reference implementation's ids.</summary>
public class HfTokenizerTests
{
    internal static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    /// <summary>Qwen3's tokenizer unpacked into a temporary folder once (loading parses 151k merges).</summary>
    internal static readonly Lazy<HfTokenizer> Qwen3 = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("tl-qwen3-").FullName;
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(Fixtures, "qwen3", "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var output = File.Create(Path.Combine(dir, "tokenizer.json")))
            gz.CopyTo(output);
        File.Copy(Path.Combine(Fixtures, "qwen3", "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
        return HfTokenizer.Load(dir);
    });

    /// <summary>A fixture of reference rows (make-token-ids.js): each text, its ids and the reference's decoding of them.</summary>
    internal static (string Text, int[] Ids, string Decoded)[] ReferenceRows(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, file))).RootElement.EnumerateArray()
            .Select(r => (r.GetProperty("text").GetString()!, r.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray(),
                          r.GetProperty("decoded").GetString()!)).ToArray();

    internal static TheoryData<int> RowNumbers(int count)
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < count; i++) data.Add(i);
        return data;
    }

    private static readonly Lazy<(string Text, int[] Ids, string Decoded)[]> Qwen3Rows = new(() => ReferenceRows("qwen3-token-ids.json"));

    public static TheoryData<int> FixtureRows() => RowNumbers(Qwen3Rows.Value.Length);

    [Theory]
    [MemberData(nameof(FixtureRows))]
    public void Qwen3_EncodesAsTheReference_AndDecodesBack(int row)
    {
        var (text, expected, decoded) = Qwen3Rows.Value[row];
        var ids = Qwen3.Value.Encode(text);
        Assert.Equal(expected, ids);
        Assert.Equal(decoded, Qwen3.Value.Decode(ids));
        Assert.Equal(text.Normalize(NormalizationForm.FormC), decoded);
    }

    [Fact]
    public void Qwen3_KnowsItsSpecialTokensAndSize()
    {
        var t = Qwen3.Value;
        Assert.Equal(151_669, t.VocabSize); // 151,643 BPE entries and 26 added tokens
        Assert.Equal(151_645, t.EosTokenId); // tokenizer_config.json: eos_token <|im_end|>
        Assert.Null(t.BosTokenId);
        Assert.Equal([151_644], t.Encode("<|im_start|>"));
        Assert.StartsWith("hf-", t.Name);
        Assert.True(HfTokenizer.IsTokenizerPath(t.Directory));
    }

    [Theory]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {}}}""", "model type 'WordPiece'")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}}""", "byte_fallback BPE whose normalizer")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}, "pre_tokenizer": {"type": "Metaspace"}}""",
                "pre-tokenizer 'Metaspace' with byte_fallback")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}}""", "pre-tokenizer 'Metaspace'")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "ByteLevel"}}""", "normalizer 'Lowercase'")]
    [InlineData("""{"model": """, "not valid JSON")]
    public void UnsupportedTokenizerFiles_AreRefusedByName(string json, string expected)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), json);
        var e = Assert.Throws<TensorLiteException>(() => HfTokenizer.Load(dir.Path));
        Assert.Contains(expected, e.Message);
    }
}
