using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>A path option naming a file where a folder is expected, or a folder where a file is expected, gets one line
/// naming the option and what it must be, exit code 2, and nothing written. Console redirection is process-wide, so these
/// run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class CliPathTests
{
    [Fact]
    public void FileForAFolder_OrFolderForAFile_IsOneClearLine()
    {
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, "notes.txt"), folder = Path.Combine(dir.Path, "folder"), never = Path.Combine(dir.Path, "never");
        File.WriteAllText(file, "some text");
        Directory.CreateDirectory(folder);
        string png = Directory.CreateDirectory(Path.Combine(dir.Path, "plot.png")).FullName;
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["train", "--data", folder, "--out", never], $"Data file '{folder}' is a directory"),
            (["plan", "--data", folder], $"Data file '{folder}' is a directory"),
            (["train", "--tokenizer", file, "--out", never], $"--tokenizer '{file}' is a file but not a tokenizer.json"),
            (["train", "--tokenizer", folder, "--out", never], $"--tokenizer '{folder}' is a folder without a tokenizer.json"),
            (["train", "--model", folder, "--out", never], $"--model '{folder}' is a folder"),
            (["train", "--init-from", file, "--out", never], "is a file; give an HF model folder"),
            (["train", "--model", "tiny", "--out", file], $"--out '{file}' is a file"),
            (["train", "--resume", file], $"--resume '{file}' is a file; give a run folder"),
            (["eval", "--run", file], $"--run '{file}' is a file; give a run folder"),
            (["generate", "--run", file], $"--run '{file}' is a file; give a run folder"),
            (["export", "--run", folder, "--out", file], $"--out '{file}' is a file"),
            (["plot", file, "--out", Path.Combine(dir.Path, "x.png")], $"Run '{file}' is a file"),
            (["plot", folder, "--out", png], $"--out '{png}' is a folder"),
        })
        {
            var (code, stderr) = CliTests.Run(args);
            Assert.Equal(2, code);
            Assert.StartsWith($"error: ", stderr);
            Assert.Contains(expected, Assert.Single(stderr.TrimEnd().Split('\n')));
        }
        Assert.False(Directory.Exists(never));
        Assert.Equal("some text", File.ReadAllText(file));
    }
}
