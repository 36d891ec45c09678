using TensorLite.Cli;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The command line turns every bad input into one "error:" line on stderr and exit code 2, writing nothing.
/// Console redirection is process-wide, so these run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class CliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-cli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static (int Code, string Stderr) Run(params string[] args)
    {
        var err = new StringWriter();
        var originalErr = Console.Error;
        var originalOut = Console.Out;
        Console.SetError(err);
        Console.SetOut(new StringWriter());
        try
        {
            return (TensorLiteCli.Run(args), err.ToString());
        }
        finally
        {
            Console.SetError(originalErr);
            Console.SetOut(originalOut);
        }
    }

    [Fact]
    public void BadInputs_GiveOneErrorLineAndExitCode2()
    {
        var empty = Path.Combine(_root, "empty.txt");
        File.WriteAllText(empty, "");
        var never = Path.Combine(_root, "never");
        foreach (var args in new[]
        {
            new[] { "train", "--model", "llama_2b", "--out", never },
            ["train", "--data", Path.Combine(_root, "missing.txt"), "--out", never],
            ["train", "--data", empty, "--out", never],
            ["train", "--steps", "0", "--out", never],
            ["train", "--optimizer", "lion", "--model", "tiny", "--out", never],
            ["eval", "--run", Path.Combine(_root, "no-run")],
            ["generate", "--run", Path.Combine(_root, "no-run")],
            ["plot", Path.Combine(_root, "no-run"), "--out", Path.Combine(_root, "x.png")],
        })
        {
            var (code, stderr) = Run(args);
            Assert.Equal(2, code);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith("error: ", lines[0]);
        }
        Assert.False(Directory.Exists(never));
    }

    [Fact]
    public void UnknownFlags_AreUsageErrors() => Assert.Equal(1, Run("train", "--bogus").Code);
}
