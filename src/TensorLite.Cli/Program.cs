using System.CommandLine;
using TensorLite.Cli;

var root = new RootCommand("TensorLite: memory-efficient LLM training in pure .NET.");
root.Subcommands.Add(DemoCommand.Create());
return CliErrors.Run(() => root.Parse(args).Invoke());
