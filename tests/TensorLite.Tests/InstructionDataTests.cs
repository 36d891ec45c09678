using TensorLite.Data;
using TensorLite.Tests.Support;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>Instruction data: which tokens carry loss, and one sentence with the line number for a bad row.</summary>
public class InstructionDataTests
{
    private static HfTokenizer Qwen3 => HfTokenizerTests.Qwen3.Value;

    [Fact]
    public void PromptCompletion_TrainsOnlyTheCompletionAndTheEndToken()
    {
        var t = InstructionData.Tokenize("""{"prompt": "Translate to French: cat", "completion": " chat"}""" + "\n", Qwen3, "d.jsonl");
        var prompt = Qwen3.Encode("Translate to French: cat");
        var completion = Qwen3.Encode(" chat");
        Assert.Equal([.. prompt, .. completion, 151_645], t.Ids); // <|im_end|>: tokenizer_config.json's eos_token
        Assert.Equal([.. prompt.Select(_ => false), .. completion.Select(_ => true), true], t.Trained);
    }

    [Fact]
    public void ChatMessages_UseChatMl_AndTrainOnlyAssistantTurns()
    {
        const string row = """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}""";
        var t = InstructionData.Tokenize(row, Qwen3, "chat.jsonl");
        Assert.Equal(Qwen3.Encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"), t.Ids);
        var trained = t.Ids.Where((_, i) => t.Trained[i]).ToArray();
        Assert.Equal(Qwen3.Encode("4<|im_end|>\n"), trained);
    }

    [Fact]
    public void TextRows_AreTrainedWhole_AndByteTokenizersEndExamplesWithANewline()
    {
        var t = InstructionData.Tokenize("{\"text\": \"ab\"}\n\n{\"prompt\": \"q\", \"completion\": \"r\"}\r\n", ByteTokenizer.Instance, "d.jsonl");
        Assert.Equal("ab\nqr\n", ByteTokenizer.Instance.Decode(t.Ids));
        Assert.Equal([true, true, true, false, true, true], t.Trained);
    }

    [Fact]
    public void Batches_IgnoreExactlyTheTargetsOfContextTokens()
    {
        var tokens = Enumerable.Range(0, 200).Select(i => i % 50).ToArray();
        var trained = Enumerable.Range(0, 200).Select(i => i % 7 < 3).ToArray();
        var dataset = new TokenDataset(tokens, 50, 0.25, trained);
        var (inputs, targets) = dataset.SampleBatch(false, 4, 16, new Generator(3));
        var x = inputs.ToArray<int>();
        var y = targets.ToArray<int>();
        int ignored = 0;
        for (int i = 0; i < y.Length; i++)
        {
            Assert.True(y[i] == TokenDataset.IgnoreIndex || y[i] == (x[i] + 1) % 50, $"target {i}");
            if (y[i] == TokenDataset.IgnoreIndex) ignored++;
        }
        Assert.InRange(ignored, 1, y.Length - 1);
        // The exact positions: reproduce the windows' starts with the same generator and read the mask.
        var g = new Generator(3);
        for (int b = 0; b < 4; b++)
        {
            int start = g.NextInt(dataset.Train.Length - 16);
            for (int j = 0; j < 16; j++)
                Assert.Equal(trained[start + 1 + j] ? tokens[start + 1 + j] : TokenDataset.IgnoreIndex, y[b * 16 + j]);
        }
    }

    [Theory]
    [InlineData("{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{oops}", "line 3: not valid JSON")]
    [InlineData("[1, 2]", "line 1: not a JSON object")]
    [InlineData("{\"text\": \"ok\"}\n{\"prompt\": \"q\"}", "line 2: expected the keys")]
    [InlineData("{\"text\": 5}", "line 1: \"text\" must be a string")]
    [InlineData("{\"prompt\": \"q\", \"completion\": \"\"}", "line 1: \"completion\" is empty")]
    [InlineData("{\"messages\": []}", "line 1: \"messages\" must be a non-empty list")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "line 1: \"messages\" has no assistant turn")]
    [InlineData("{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}", "line 1: message 0 has role 'robot'")]
    [InlineData("\n\n", "holds no examples")]
    public void BadRows_NameTheLine(string jsonl, string expected)
    {
        var e = Assert.Throws<TensorLiteException>(() => InstructionData.Tokenize(jsonl, Qwen3, "data.jsonl"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("data.jsonl", e.Message);
    }

    [Fact]
    public void ChatMessages_WithoutAChatTokenizer_AreRefused()
    {
        var e = Assert.Throws<TensorLiteException>(() => InstructionData.Tokenize("""{"messages": [{"role": "assistant", "content": "x"}]}""", ByteTokenizer.Instance, "d.jsonl"));
        Assert.Contains("need a chat tokenizer", e.Message);
    }

    [Fact]
    public void JsonlRuns_CacheTheMask()
    {
        using var dir = new TempDir();
        string data = Path.Combine(dir.Path, "qa.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 40).Select(i => $"{{\"prompt\": \"{i} plus one is\", \"completion\": \" {i + 1}.\"}}"));
        var options = new TrainingOptions { Data = [data], Seq = 8 };
        var first = TrainingData.Build(options, ByteTokenizer.Instance, dir.Path);
        first.SaveCache();
        Assert.Single(Directory.GetFiles(dir.Path, "tokens-*.bin"));
        var again = TrainingData.Build(options, ByteTokenizer.Instance, dir.Path);
        Assert.Equal(first.Dataset.Train, again.Dataset.Train);
        Assert.Equal(first.Dataset.TrainMask, again.Dataset.TrainMask);
        Assert.Contains(false, again.Dataset.TrainMask!);

        File.WriteAllText(Path.Combine(dir.Path, "plain.txt"), "text");
        Assert.Contains("mix .jsonl", Assert.Throws<TensorLiteException>(() =>
            TrainingData.Build(options with { Data = [data, Path.Combine(dir.Path, "plain.txt")] }, ByteTokenizer.Instance, dir.Path)).Message);
    }
}
