using System.Text;
using System.Text.Json.Nodes;
using TensorLite.Tests.Support;
using TensorLite.Training;
using Xunit;

namespace TensorLite.Tests;

/// <summary>A run folder keeps what it needs (tokenizer, tokenized data, absolute paths), so eval, generate, export and
/// resume work from another working directory after the files it was started from moved; a changed data file is noticed
/// on resume; folders written before these files existed still resume. These change the process's working directory and
/// redirect the console, so they run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class SelfContainedRunTests : IDisposable
{
    private readonly TempDir _root = new();
    private readonly string _cwd = Directory.GetCurrentDirectory();

    public void Dispose()
    {
        Directory.SetCurrentDirectory(_cwd);
        _root.Dispose();
    }

    private static readonly string[] Small =
        ["--model", "tiny", "--seq", "16", "--batch", "2", "--eval-every", "1", "--eval-batches", "2", "--log-every", "1", "--checkpoint-every", "1", "--warmup", "1"];

    private static readonly string Text = string.Concat(Enumerable.Range(0, 200).Select(i => $"the {i % 7} then there {i % 5}. "));

    /// <summary>Runs the CLI in-process; returns the exit code, stdout and stderr.</summary>
    private static (int Code, string Out, string Err) Cli(params string[] args) => RunFolderCliSafetyTests.Run(args);

    private static void Ok(params string[] args)
    {
        var (code, _, err) = Cli(args);
        Assert.True(code == 0, $"{string.Join(' ', args)} failed: {err}");
    }

    private string Folder(string name) => Directory.CreateDirectory(Path.Combine(_root.Path, name)).FullName;

    /// <summary>A small byte-level BPE tokenizer.json (the 256 byte symbols, two merges, one added end token) and a
    /// tokenizer_config.json naming that token as eos.</summary>
    internal static void WriteTokenizer(string dir)
    {
        Directory.CreateDirectory(dir);
        var vocab = new JsonObject();
        int id = 0;
        foreach (char c in ByteSymbols()) vocab[c.ToString()] = id++;
        vocab["Ġt"] = id++;
        vocab["he"] = id++;
        var tokenizer = new JsonObject
        {
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = id, ["content"] = "<|end|>", ["special"] = true }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray("Ġ t", "h e") },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "<|end|>"}""");
    }

    /// <summary>GPT-2's printable stand-ins for the 256 byte values, in byte order.</summary>
    private static IEnumerable<char> ByteSymbols()
    {
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            yield return printable ? (char)b : (char)(256 + shifted++);
        }
    }

    private static string Validation(string evalOutput) => evalOutput.Split("validation loss ")[1].Split(' ')[0];

    [Fact]
    public void FineTunedRun_WorksFromAnotherDirectory_AfterItsTokenizerDataAndModelFolderAreGone()
    {
        string work = Folder("work"), elsewhere = Folder("elsewhere");
        Directory.SetCurrentDirectory(work);
        WriteTokenizer("tok");
        File.WriteAllText("data.txt", Text);
        // Relative paths everywhere: a small model pretrained with the tokenizer, exported, then fine-tuned from the export.
        Ok(["train", "--tokenizer", "tok/tokenizer.json", "--data", "data.txt", "--steps", "1", "--out", "pre", .. Small]);
        Ok("export", "--run", "pre", "--out", "hf");
        Ok(["train", "--init-from", "hf", "--data", "data.txt", "--steps", "2", "--out", "ft", .. Small.Skip(2)]);

        var options = TrainingOptions.FromJson(File.ReadAllText(Path.Combine(work, "ft", "train.json")), "train.json");
        Assert.All(new[] { options.Data[0], options.Tokenizer, options.InitFrom!, options.Model }, p => Assert.True(Path.IsPathRooted(p), p));
        Assert.True(File.Exists(Path.Combine(work, "ft", RunFolder.TokenizerFolder, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(work, "ft", RunFolder.TokenizerFolder, "tokenizer_config.json")));
        Assert.True(File.Exists(Path.Combine(work, "ft", "data.json")));
        var (_, before, _) = Cli("eval", "--run", "ft");
        var (_, sample, _) = Cli("generate", "--run", "ft", "--prompt", "the", "--tokens", "8", "--temperature", "0");

        // Everything the run was started from goes away; the commands run from another directory.
        Directory.Delete(Path.Combine(work, "tok"), recursive: true);
        Directory.Delete(Path.Combine(work, "hf"), recursive: true);
        File.Delete(Path.Combine(work, "data.txt"));
        Directory.SetCurrentDirectory(elsewhere);
        string run = Path.Combine("..", "work", "ft");
        var (code, after, err) = Cli("eval", "--run", run);
        Assert.True(code == 0, err);
        Assert.Equal(Validation(before), Validation(after)); // the same stored validation tokens
        Assert.Equal(sample, Cli("generate", "--run", run, "--prompt", "the", "--tokens", "8", "--temperature", "0").Out);
        Ok("train", "--resume", run, "--steps", "3", "--memory-budget", "8GB"); // the plan reads the run's config, not --init-from's
        Ok("export", "--run", run, "--out", "exported");
        Assert.True(File.Exists(Path.Combine(elsewhere, "exported", "tokenizer.json")));
    }

    [Fact]
    public void ResumeBeforeTheFirstCheckpoint_WithoutItsInitFromFolder_SaysWhatItNeeds()
    {
        string work = Folder("work"), hf = Path.Combine(work, "hf"), run = Path.Combine(work, "run");
        string data = Path.Combine(work, "data.txt");
        File.WriteAllText(data, Text);
        Ok(["train", "--data", data, "--steps", "1", "--out", Path.Combine(work, "pre"), .. Small]);
        Ok("export", "--run", Path.Combine(work, "pre"), "--out", hf);
        // A run created but stopped before its first checkpoint (as a crash leaves it).
        Trainer.Create(RunFolders.Tiny() with { InitFrom = hf, Data = [data] }, run).Dispose();
        Directory.Delete(hf, recursive: true);

        var (code, _, err) = Cli("train", "--resume", run);
        Assert.Equal(2, code);
        Assert.Contains($"has no checkpoint yet, so it starts again from its --init-from folder '{hf}', which does not exist any more",
            Assert.Single(err.TrimEnd().Split('\n')));
    }

    [Fact]
    public void ResumeAfterTheDataFileChanged_WarnsOnce_AndContinuesOnTheStoredTokens()
    {
        string work = Folder("work");
        string data = Path.Combine(work, "data.txt");
        File.WriteAllText(data, Text);
        string straight = Path.Combine(work, "straight"), changed = Path.Combine(work, "changed");
        Ok(["train", "--data", data, "--steps", "2", "--out", straight, .. Small]);
        Ok("train", "--resume", straight, "--steps", "3");
        Ok(["train", "--data", data, "--steps", "2", "--out", changed, .. Small]);

        File.AppendAllText(data, "a different text that the run never saw. ");
        var (code, _, err) = Cli("train", "--resume", changed, "--steps", "3");
        Assert.Equal(0, code);
        var warning = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"warning: the data file '{data}' changed since the run started", warning);
        // The resumed run is the uninterrupted one, bit for bit: it trained on the tokens it stored at the start.
        Assert.Equal(File.ReadAllBytes(Path.Combine(Checkpoints.Latest(straight)!, Checkpoints.ModelFile)),
                     File.ReadAllBytes(Path.Combine(Checkpoints.Latest(changed)!, Checkpoints.ModelFile)));
        Assert.Single(Directory.GetFiles(changed, "tokens-*.bin"));

        // Without its stored tokens, a run whose data changed cannot continue: one line says why.
        foreach (var tokens in Directory.GetFiles(changed, "tokens-*.bin")) File.Delete(tokens);
        var refused = Cli("eval", "--run", changed);
        Assert.Equal(2, refused.Code);
        Assert.Contains("stored tokens", refused.Err);
        Assert.Contains("are missing or damaged and its --data files changed or moved", Assert.Single(refused.Err.TrimEnd().Split('\n')));
    }

    [Fact]
    public void RunFolderFromBeforeDataJson_StillResumes_AndGetsItsFilesThen()
    {
        string work = Folder("work");
        Directory.SetCurrentDirectory(work);
        WriteTokenizer("tok");
        File.WriteAllText("data.txt", Text);
        Ok(["train", "--tokenizer", "tok", "--data", "data.txt", "--steps", "2", "--out", "straight", .. Small]);
        Ok("train", "--resume", "straight", "--steps", "3");
        Ok(["train", "--tokenizer", "tok", "--data", "data.txt", "--steps", "2", "--out", "old", .. Small]);
        // What an older version wrote: paths as given (relative to the working directory), no data.json, no tokenizer copy.
        File.Delete(Path.Combine("old", "data.json"));
        Directory.Delete(Path.Combine("old", RunFolder.TokenizerFolder), recursive: true);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine("old", "train.json")))!;
        json["Data"] = new JsonArray("data.txt");
        json["Tokenizer"] = "tok";
        File.WriteAllText(Path.Combine("old", "train.json"), json.ToJsonString());

        Ok("eval", "--run", "old");
        Ok("train", "--resume", "old", "--steps", "3");
        Assert.Equal(File.ReadAllBytes(Path.Combine(Checkpoints.Latest("straight")!, Checkpoints.ModelFile)),
                     File.ReadAllBytes(Path.Combine(Checkpoints.Latest("old")!, Checkpoints.ModelFile)));
        Assert.True(File.Exists(Path.Combine("old", "data.json")));
        Assert.True(File.Exists(Path.Combine("old", RunFolder.TokenizerFolder, "tokenizer.json")));
    }
}
