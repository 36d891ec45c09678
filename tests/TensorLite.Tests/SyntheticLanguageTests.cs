using TensorLite.Data;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

public class SyntheticLanguageTests
{
    [Fact]
    public void EntropyRate_MatchesTheEmpiricalRateOfGeneratedText()
    {
        var lang = new SyntheticLanguage(seed: 5);
        Approx.Close(1.0, lang.Stationary.Sum(), 1e-9);
        string text = lang.Generate(3_000_000, streamSeed: 9);
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var index = lang.Words.Select((w, i) => (w, i)).ToDictionary(x => x.w, x => x.i);
        // Plug-in estimate of the conditional entropy H(next word | word) from transition counts.
        var counts = new Dictionary<(int, int), int>();
        var from = new int[lang.Words.Length];
        for (int t = 0; t + 1 < words.Length; t++)
        {
            var key = (index[words[t]], index[words[t + 1]]);
            counts[key] = counts.GetValueOrDefault(key) + 1;
            from[key.Item1]++;
        }
        double total = words.Length - 1, empiricalWordEntropy = 0;
        foreach (var ((a, _), c) in counts) empiricalWordEntropy -= c / total * Math.Log((double)c / from[a]);
        double empiricalBytesPerWord = (double)text.Length / words.Length;
        Approx.Close(lang.EntropyPerWordNats, empiricalWordEntropy, 0.01, "entropy per word");
        Approx.Close(lang.MeanBytesPerWord, empiricalBytesPerWord, 0.05, "bytes per word");
        Assert.InRange(lang.EntropyPerByteNats / (empiricalWordEntropy / empiricalBytesPerWord), 0.99, 1.01);
    }

    [Fact]
    public void Generation_IsDeterministicPerSeed()
    {
        Assert.Equal(new SyntheticLanguage(1).Generate(5000, 2), new SyntheticLanguage(1).Generate(5000, 2));
        Assert.NotEqual(new SyntheticLanguage(1).Generate(5000, 2), new SyntheticLanguage(1).Generate(5000, 3));
        Assert.NotEqual(new SyntheticLanguage(1).Words, new SyntheticLanguage(2).Words);
    }
}

public class TokenizerTests
{
    [Theory]
    [InlineData("byte")]
    [InlineData("cl100k")]
    [InlineData("o200k")]
    public void Tokenizers_RoundTripText(string name)
    {
        var tok = TensorLite.Training.Trainer.CreateTokenizer(name);
        const string text = "Hello, TensorLite — naïve café 🚀 tokens!";
        var ids = tok.Encode(text);
        Assert.All(ids, id => Assert.InRange(id, 0, tok.VocabSize - 1));
        Assert.Equal(text, tok.Decode(ids));
        if (name != "byte") Assert.True(ids.Length < System.Text.Encoding.UTF8.GetByteCount(text) / 2);
    }

    [Fact]
    public void TiktokenVocabularies_HaveTheirPublishedSizes()
    {
        Assert.Equal(100_277, TensorLite.Training.Trainer.CreateTokenizer("cl100k").VocabSize);
        Assert.Equal(200_019, TensorLite.Training.Trainer.CreateTokenizer("o200k").VocabSize);
    }

    [Fact]
    public void UnknownTokenizer_IsRejected() =>
        Assert.Contains("available: byte, cl100k, o200k", Assert.Throws<TensorLiteException>(() => TensorLite.Training.Trainer.CreateTokenizer("bpe")).Message);
}
