using System.CommandLine;
using TensorLite.Cli;

var root = new RootCommand("TensorLite: memory-efficient LLM training in pure .NET.");
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(PlotCommand.Create());
// Errors are reported by CliErrors (one line, exit code 2), not by System.CommandLine's stack-trace printer.
return CliErrors.Run(() => root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
