using System.CommandLine;

namespace TensorLite.Cli;

/// <summary>`tensorlite plot`: validation curves of several runs in one PNG.</summary>
public static class PlotCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders to compare.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "PNG file to write.", Required = true };
        var title = new Option<string>("--title") { Description = "Plot title.", DefaultValueFactory = _ => "" };
        var cmd = new Command("plot", "Plot the validation loss of several runs in one picture.") { runs, output, title };
        cmd.SetAction(r =>
        {
            string file = CliPaths.OutputFile(r.GetValue(output)!, "--out");
            if (!file.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--out must name a .png file, got '{file}'.");
            Console.Write(LossPlot.Compare(r.GetValue(runs)!.Select(run => CliPaths.ExistingRun(run, "Run")).ToList(), file, r.GetValue(title)!));
            Console.WriteLine($"wrote {file}");
            return 0;
        });
        return cmd;
    }
}
