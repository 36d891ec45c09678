using TensorLite.IO;
using TensorLite.Models;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The fine-tuning path from the command line: export a run as an HF folder, start a run from one, refuse bad
/// folders with one line. Console redirection is process-wide, so these run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class FinetuneCliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-finetune-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static (int Code, string Stderr) Run(params string[] args) => CliTests.Run(args);

    private static readonly string[] Small = ["--seq", "16", "--batch", "2", "--eval-every", "1", "--eval-batches", "1", "--log-every", "1", "--synthetic-bytes", "4000"];

    [Fact]
    public void ExportedRun_IsTheCheckpoint_AndInitFromStartsFromIt()
    {
        string pre = Path.Combine(_root, "pre"), hf = Path.Combine(_root, "hf"), ft = Path.Combine(_root, "ft");
        Assert.Equal(0, Run(["train", "--model", "tiny", "--steps", "2", "--out", pre, .. Small]).Code);
        Assert.Equal(0, Run("export", "--run", pre, "--out", hf, "--max-shard-mb", "1").Code);

        // The export holds exactly the checkpoint's weights.
        var checkpoint = new LlamaModel(LlamaConfig.Load(Path.Combine(pre, "config.json")), null);
        LlamaWeights.Load(checkpoint, Path.Combine(Checkpoints.Latest(pre)!, Checkpoints.ModelFile));
        var exported = HfModelFolder.Load(hf);
        var expected = checkpoint.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.ToArray());
        foreach (var (name, p) in exported.NamedParameters()) Assert.Equal(expected[name], p.ToArray());

        // A run created from the folder starts with its weights, from instruction data.
        string data = Path.Combine(_root, "qa.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 30).Select(i => $"{{\"prompt\": \"{i}+1=\", \"completion\": \"{i + 1}\"}}"));
        var options = new TrainingOptions { InitFrom = hf, Data = [data], Steps = 1, Seq = 16, Batch = 2 };
        using (var trainer = Trainer.Create(options, ft))
            foreach (var (name, p) in trainer.Model.NamedParameters()) Assert.Equal(expected[name], p.ToArray());
        Directory.Delete(ft, recursive: true);
        Assert.Equal(0, Run(["train", "--init-from", hf, "--data", data, "--steps", "1", "--out", ft, .. Small]).Code);
        Assert.Equal(hf, TrainingOptions.FromJson(File.ReadAllText(Path.Combine(ft, "train.json")), "train.json").InitFrom);
    }

    [Fact]
    public void BadFinetuneInputs_GiveOneErrorLine()
    {
        string never = Path.Combine(_root, "never");
        string file = Path.Combine(_root, "file.txt");
        File.WriteAllText(file, "x");
        string nonEmpty = Path.Combine(_root, "full");
        Directory.CreateDirectory(nonEmpty);
        File.WriteAllText(Path.Combine(nonEmpty, "x"), "x");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["train", "--init-from", Path.Combine(_root, "missing"), "--out", never], "does not exist"),
            (["train", "--init-from", file, "--out", never], "is a file"),
            (["train", "--init-from", _root, "--out", never], "no config.json"),
            (["train", "--init-from", _root, "--model", "tiny", "--out", never], "--model and --init-from"),
            (["train", "--tokenizer", "wordpiece", "--out", never], "Unknown tokenizer 'wordpiece'"),
            (["export", "--run", Path.Combine(_root, "no-run"), "--out", never], "not a run folder"),
            (["export", "--run", _root, "--out", never, "--dtype", "int8"], "--dtype must be"),
        })
        {
            var (code, stderr) = Run(args);
            Assert.Equal(2, code);
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.TrimEnd().Split('\n'));
            Assert.False(Directory.Exists(never));
        }
    }
}
