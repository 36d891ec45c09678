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
        root.Subcommands.Add(ExportCommand.Create());
        return root;
    }

    /// <summary>Runs a command line; returns the process exit code (0 ok, 2 any user error: a malformed command line or
    /// bad input, 70 an internal error).</summary>
    public static int Run(string[] args) =>
        // Errors are reported by CliErrors (one line, exit code 2), not by System.CommandLine's stack-trace printer or its
        // usage screen.
        CliErrors.Run(() =>
        {
            var parsed = CreateRoot().Parse(args);
            if (parsed.Errors.Count > 0)
            {
                Console.Error.WriteLine($"error: {CliErrors.OneLine(parsed.Errors[0].Message)} (see --help)");
                return CliErrors.UserError;
            }
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        });
}
