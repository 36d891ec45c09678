using System.Diagnostics;
using System.Globalization;
using TensorLite.Optim.Projected;
using TensorLite.Tests.Support;
using Xunit;

namespace TensorLite.Tests;

/// <summary>The scripts under docs/reproduce train each method the way the library defines it: the comparison's sweep
/// multiplies a default lr that docs/reproduce/methods.sh writes down, so it must be the library's.</summary>
public sealed class ReproduceScriptTests
{
    [Theory]
    [MemberData(nameof(Methods))]
    public void MethodsScript_DefaultLr_IsTheLibrarys(OptimizerMethod method)
    {
        string name = method.ToString().ToLowerInvariant();
        string script = Path.Combine(Repository.Root, "docs", "reproduce", "methods.sh");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", ". \"$1\" && default_lr \"$2\"", "bash", script, name }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"default_lr {name} failed: {stderr}");

        float scripted = float.Parse(stdout.Trim(), CultureInfo.InvariantCulture);
        Assert.Equal(ProjectedOptions.HyperParametersOf(method).LearningRate, scripted);
    }

    public static TheoryData<OptimizerMethod> Methods() => new(Enum.GetValues<OptimizerMethod>());
}
