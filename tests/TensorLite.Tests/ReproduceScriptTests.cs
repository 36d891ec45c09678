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
        float scripted = float.Parse(MethodsScript("default_lr", OptimizerSpec.WordOf(method)), CultureInfo.InvariantCulture);
        Assert.Equal(ProjectedOptions.HyperParametersOf(method).LearningRate, scripted);
    }

    /// <summary>A method's name carries a projection after a dash and flags after an @, and its lr is its optimizer's.</summary>
    [Theory]
    [InlineData("adamw", "--optimizer adamw")]
    [InlineData("grass-norm+norepl", "--optimizer grass --rank 64 --projection norm+norepl")]
    [InlineData("grass@scale=0.25", "--optimizer grass --rank 64 --scale 0.25")]
    [InlineData("frugal-blocks@density=0.5,scale=2", "--optimizer frugal --projection blocks --density 0.5 --scale 2")]
    public void MethodsScript_Flags_FollowTheName(string method, string flags)
    {
        Assert.Equal(flags, MethodsScript("method_flags", method).ReplaceLineEndings(" ").Trim());
        Assert.Equal(MethodsScript("default_lr", method.Split('-', '@')[0]), MethodsScript("default_lr", method));
    }

    public static TheoryData<OptimizerMethod> Methods() => new(Enum.GetValues<OptimizerMethod>());

    /// <summary>Runs one function of docs/reproduce/methods.sh on a method name and returns what it prints.</summary>
    private static string MethodsScript(string function, string method)
    {
        string script = Path.Combine(Repository.Root, "docs", "reproduce", "methods.sh");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", ". \"$1\" && \"$2\" \"$3\"", "bash", script, function, method }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{function} {method} failed: {stderr.Result}");
        return stdout.Trim();
    }
}
