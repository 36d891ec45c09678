using TensorLite.Models;
using TensorLite.Tests.Support;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The README's "fine-tuning from code" snippet, compiled and run on a tiny HF folder: <see cref="FineTune"/> is
/// the README's method word for word, and <see cref="ReadmeOptions"/> its options.</summary>
public sealed class ReadmeFineTuningTests
{
    // --- README.md, "Fine-tuning from code" (keep the two in step) ---
    private static TrainingOptions ReadmeOptions() => new()
    {
        InitFrom = "Llama-3.2-1B", Tokenizer = "Llama-3.2-1B",  // an HF folder: config.json, safetensors, tokenizer.json
        Data = ["train.jsonl"],                                // {"prompt", "completion"} rows: the loss is on completions
        Optimizer = "galore", Rank = 128, LearningRate = 2e-5f, Weights = "bf16", Steps = 500,
    };

    private static string FineTune(TrainingOptions options, string runDir, string exportDir, string question)
    {
        using var trainer = Trainer.Create(options, runDir);    // refuses bad input before it writes anything
        trainer.Progress += p => Console.WriteLine($"step {p.Step}/{p.TotalSteps}: loss {p.Loss:F3}, val {p.ValidationLoss}");
        trainer.Run();                                          // checkpoints in runDir; resume with Trainer.Resume(runDir)

        // Answer greedily with the model's tokenizer, stopping at its end-of-sequence tokens.
        var tokenizer = RunFolder.OpenTokenizer(runDir, options.Tokenizer);
        int[] prompt = tokenizer.Encode(question);
        var stop = new HashSet<int>(trainer.Model.Config.EosTokenId ?? []);
        int[] output = Sampling.Generate(trainer.Model, prompt, newTokens: 40, temperature: 0, topK: 0, new Generator(1), options.Seq, stop);

        // An HF folder again: transformers and InitFrom read it.
        HfModelFolder.Save(trainer.Model, exportDir, DType.BFloat16, tokenizerDir: Path.Combine(runDir, RunFolder.TokenizerFolder));
        return tokenizer.Decode(output[prompt.Length..]);
    }
    // --- end of the README snippet ---

    [Fact]
    public void TheReadmeSnippet_FineTunesATinyFolder_AnswersAndExports()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "model"), tokenizer = Path.Combine(dir.Path, "tokenizer");
        SelfContainedRunTests.WriteTokenizer(tokenizer);
        var config = LlamaConfig.FromName("tiny") with { VocabSize = 259, EosTokenId = [258] };
        HfModelFolder.Save(new LlamaModel(config, new Generator(3)), model, tokenizerDir: tokenizer);
        string data = Path.Combine(dir.Path, "train.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 40).Select(i => $"{{\"prompt\": \"Shout: the {i}\\n\", \"completion\": \"THE {i}!\"}}"));

        var readme = ReadmeOptions();
        var options = readme with
        {
            InitFrom = model, Tokenizer = model, Data = [data], Rank = 8, LearningRate = 1e-2f, Steps = 3,
            Seq = 16, Batch = 2, Warmup = 1, EvalEvery = 3, EvalBatches = 1,
        };
        string exported = Path.Combine(dir.Path, "exported");
        string answer = FineTune(options, Path.Combine(dir.Path, "run"), exported, "Shout: the 7\n");

        Assert.False(string.IsNullOrEmpty(answer));
        var back = HfModelFolder.Load(exported);
        Assert.Equal(259, back.Config.VocabSize);
        Assert.True(File.Exists(Path.Combine(exported, "tokenizer.json")));
        Assert.Equal(3, Checkpoints.ReadState(Checkpoints.Latest(Path.Combine(dir.Path, "run"))!).Step);
    }
}
