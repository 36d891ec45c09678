using TensorLite.Data;
using TensorLite.Models;
using TensorLite.Training;

namespace TensorLite.Cli;

/// <summary>One clear sentence, before anything is loaded or written, when a path option names a file where a folder is
/// expected or a folder where a file is expected. A path that does not exist is left to the command, which says what it
/// needed there.</summary>
public static class CliPaths
{
    /// <summary>--run, --resume and plot's run arguments: an existing path must be a folder.</summary>
    public static string ExistingRun(string path, string option)
    {
        if (File.Exists(path))
            throw new ArgumentException($"{option} '{path}' is a file; give a run folder (the --out folder of `tensorlite train`).");
        return path;
    }

    /// <summary>Output folders (train --out, export --out): an existing path must be a folder.</summary>
    public static string OutputFolder(string path, string option)
    {
        if (File.Exists(path)) throw new ArgumentException($"{option} '{path}' is a file; give a folder (new or empty) to write into.");
        return path;
    }

    /// <summary>Output files (plot --out): an existing path must not be a folder.</summary>
    public static string OutputFile(string path, string option)
    {
        if (Directory.Exists(path)) throw new ArgumentException($"{option} '{path}' is a folder; give the name of a file to write.");
        return path;
    }

    /// <summary>The input paths of a new run (train and plan): --data files, a --model config.json, a --tokenizer file or
    /// folder and an --init-from folder, each of the kind it must be.</summary>
    public static TrainingOptions TrainingInputs(TrainingOptions options)
    {
        foreach (var file in options.Data) TrainingData.RequireTextFile(file);
        if (options.InitFrom == null && !LlamaConfig.Named.ContainsKey(options.Model) && Directory.Exists(options.Model))
            throw new ArgumentException($"--model '{options.Model}' is a folder; give a config.json file or a named size (an HF model folder is given with --init-from).");
        if (options.InitFrom is { } init && File.Exists(init))
            throw new ArgumentException($"--init-from '{init}' is a file; give an HF model folder (config.json and model.safetensors).");
        string tokenizer = options.Tokenizer;
        if (Training.RunFolder.IsBuiltInTokenizer(tokenizer)) return options; // built-in names, whatever files share them
        if (File.Exists(tokenizer) && Path.GetFileName(tokenizer) != HfTokenizer.FileName)
            throw new ArgumentException($"--tokenizer '{tokenizer}' is a file but not a {HfTokenizer.FileName}; give an HF {HfTokenizer.FileName} or the folder holding one.");
        if (Directory.Exists(tokenizer) && !HfTokenizer.IsTokenizerPath(tokenizer))
            throw new ArgumentException($"--tokenizer '{tokenizer}' is a folder without a {HfTokenizer.FileName}.");
        return options;
    }
}
