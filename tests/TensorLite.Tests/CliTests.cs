using System.Globalization;
using System.Text.RegularExpressions;
using TensorLite.Cli;
using TensorLite.Optim.Projected;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The command line turns every bad input into one "error:" line on stderr and exit code 2, writing nothing.
/// Console redirection is process-wide, so these run in the serial collection.</summary>
[Collection(nameof(SerialMemoryTests))]
public sealed class CliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tl-cli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    internal static (int Code, string Stderr) Run(params string[] args)
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

    /// <summary>The help of --lr, --weight-decay, --beta1 and --beta2 names every method's default, and it is the one
    /// training uses (<see cref="ProjectedOptions.HyperParametersOf"/>).</summary>
    [Theory]
    [InlineData("--lr"), InlineData("--weight-decay"), InlineData("--beta1"), InlineData("--beta2")]
    public void TrainHelp_GivesEachMethodsDefault(string optionName)
    {
        Func<MethodHyperParameters, float> number = optionName switch
        {
            "--lr" => h => h.LearningRate, "--weight-decay" => h => h.WeightDecay, "--beta1" => h => h.Beta1, _ => h => h.Beta2,
        };
        var train = TensorLiteCli.CreateRoot().Subcommands.Single(c => c.Name == "train");
        string help = train.Options.Single(o => o.Name == optionName).Description!;
        string defaults = help[(help.IndexOf("default", StringComparison.Ordinal))..];
        // "adamw 0.003, galore/osd/grass 0.01, ..." or, when every method shares it, the one value.
        var said = Regex.Matches(defaults, @"([a-z]+(?:/[a-z]+)*) ([0-9][0-9.eE+-]*)").ToList();
        foreach (var method in Enum.GetValues<OptimizerMethod>())
        {
            float expected = number(ProjectedOptions.HyperParametersOf(method));
            string name = OptimizerSpec.WordOf(method);
            string value = said.Count == 0
                ? Regex.Match(defaults, @"[0-9][0-9.eE+-]*").Value
                : said.Single(m => m.Groups[1].Value.Split('/').Contains(name)).Groups[2].Value;
            Assert.Equal(expected, float.Parse(value.TrimEnd('.'), CultureInfo.InvariantCulture));
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
            ["train", "--states", "4bit", "--out", never],
            ["train", "--states", "8bit", "--8bit-block-size", "100", "--out", never],
            ["train", "--8bit-block-size", "256", "--out", never],
            ["train", "--weights", "fp8", "--out", never],
            ["train", "--activations", "fp16", "--out", never],
            ["plan", "--activations", "int8"],
            ["train", "--stochastic-rounding", "--out", never],
            ["train", "--memory-budget", "lots", "--out", never],
            ["plan", "--states", "4bit"],
            ["plan", "--memory-budget", "-1GB"],
            ["train", "--device", "tpu", "--out", never],
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
    public void DeviceCuda_WithoutACudaDevice_IsRefusedBeforeAnythingIsCreated_AndAutoFallsBackToTheCpu()
    {
        var never = Path.Combine(_root, "never");
        var (code, stderr) = Run("train", "--device", "cuda", "--model", "tiny", "--out", never);
        var auto = Devices.Resolve("auto", out string note);
        if (auto.Name == "ilgpu-cuda")
        {
            Assert.StartsWith("auto → cuda", note); // a machine with a GPU: cuda resolves, nothing to refuse
            return;
        }
        Assert.Equal(2, code);
        Assert.StartsWith("error: --device cuda: No CUDA device is visible", stderr);
        Assert.False(Directory.Exists(never));
        Assert.Same(Backend.Cpu, auto);
        Assert.StartsWith("auto → cpu (No CUDA device", note);
    }

    [Fact]
    public void UnknownFlagsAndMissingRequiredOnes_AreUserErrors_OneLineExitCode2()
    {
        foreach (var args in new[] { new[] { "train", "--bogus" }, ["plot", Path.Combine(_root, "a")], ["train", "--steps", "many"], ["eval"] })
        {
            var (code, stderr) = Run(args);
            Assert.Equal(2, code);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith("error: ", lines[0]);
        }
    }

    [Fact]
    public void TrainOverMemoryBudget_IsRefusedBeforeAnythingIsCreated_WithTheBreakdownAndWhatToChange()
    {
        var never = Path.Combine(_root, "never");
        var (code, stderr) = Run("train", "--model", "llama_20m", "--seq", "256", "--batch", "4", "--memory-budget", "700MiB", "--out", never);
        Assert.Equal(2, code);
        Assert.StartsWith("error: the run would need", stderr);
        Assert.Contains("optimizer states", stderr);
        Assert.Contains("settings that fit:", stderr);
        Assert.Contains("--states 8bit", stderr);
        Assert.False(Directory.Exists(never));
    }

    [Fact]
    public void Plan_FitsOrNot_AgainstTheBudget()
    {
        Assert.Equal(0, Run("plan", "--model", "tiny", "--memory-budget", "1GB").Code);
        var (code, stderr) = Run("plan", "--model", "llama_7b", "--seq", "256", "--batch", "1", "--memory-budget", "24GB");
        Assert.Equal(2, code);
        Assert.StartsWith("error: the plan needs", stderr);
        Assert.Contains("settings that fit:", stderr);
    }

    [Fact]
    public void LspRun_SaysWhenTheFittedSketchesKeepAlmostNothing()
    {
        // tiny (hidden 64): rank 8 fits to an error of about 1 (the values shrink towards zero), rank 32 to about 0.3.
        string Summary(int rank)
        {
            var (code, stdout, _) = RunFolderCliSafetyTests.Run("train", "--model", "tiny", "--steps", "1", "--optimizer", "lsp",
                "--rank", rank.ToString(), "--out", Path.Combine(_root, $"lsp-r{rank}"));
            Assert.Equal(0, code);
            return stdout.Split('\n').Single(l => l.StartsWith("sketches"));
        }
        Assert.Contains("keep almost none of the gradient", Summary(8));
        Assert.DoesNotContain("keep almost none", Summary(32));
    }
}
