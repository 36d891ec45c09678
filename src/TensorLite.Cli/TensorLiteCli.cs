using System.CommandLine;

namespace TensorLite.Cli;

/// <summary>The `tensorlite` command tree and its entry point (also called by the tests).</summary>
public static class TensorLiteCli
{
    // --device cuda / ilgpu-cpu resolve to the ILGPU backends; the core library knows only the CPU.
    static TensorLiteCli() => Ilgpu.IlgpuDevices.Register();

    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("TensorLite: memory-efficient LLM training in pure .NET.");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(PlanCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(PlotCommand.Create());
        return root;
    }

    /// <summary>Runs a command line; returns the process exit code (0 ok, 1 usage error, 2 bad input).</summary>
    public static int Run(string[] args) =>
        // Errors are reported by CliErrors (one line, exit code 2), not by System.CommandLine's stack-trace printer.
        CliErrors.Run(() => CreateRoot().Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
}
