using TensorLite.Data;
using TensorLite.Models;

namespace TensorLite.Training;

/// <summary>
/// What makes a run folder self-contained: besides config.json, train.json and the checkpoints it keeps a copy of an HF
/// tokenizer (<c>tokenizer/</c>) and the tokenized --data (<c>tokens-KEY.bin</c> with <c>data.json</c>), so eval,
/// generate, export and resume work from any working directory and after the original files moved. The paths train.json
/// records are absolute (where the run came from; only an --init-from folder is read again, by a resume before the first
/// checkpoint).
/// </summary>
public static class RunFolder
{
    /// <summary>The run folder's copy of an HF tokenizer's files (<see cref="HfModelFolder.TokenizerFiles"/>).</summary>
    public const string TokenizerFolder = "tokenizer";

    /// <summary>The tokenizer of the run in <paramref name="runDir"/> whose train.json names <paramref name="tokenizer"/>:
    /// a built-in one by name, an HF tokenizer from the run folder's copy, or (a folder written before copies were kept)
    /// from the recorded path.</summary>
    public static ITokenizer OpenTokenizer(string runDir, string tokenizer) => Trainer.CreateTokenizer(TokenizerSource(runDir, tokenizer));

    /// <summary>Where the run's tokenizer is read from: a built-in name as it is, else the run folder's copy when there
    /// is one, else the recorded path.</summary>
    private static string TokenizerSource(string runDir, string tokenizer)
    {
        if (IsBuiltInTokenizer(tokenizer)) return tokenizer;
        string copy = Path.Combine(runDir, TokenizerFolder);
        return HfTokenizer.IsTokenizerPath(copy) ? copy : tokenizer;
    }

    /// <summary>The options of the run in <paramref name="runDir"/> as the planner must read them: the model from the
    /// run's own config.json and an HF tokenizer from the run's copy, so that neither the --init-from folder nor the
    /// original tokenizer files are needed once the run exists.</summary>
    public static TrainingOptions ForPlanning(string runDir, TrainingOptions options)
    {
        return options with
        {
            Model = Path.Combine(runDir, "config.json"),
            InitFrom = null,
            Tokenizer = TokenizerSource(runDir, options.Tokenizer),
        };
    }

    /// <summary>Whether a --tokenizer value names a built-in tokenizer (byte, cl100k, o200k) rather than a file or folder.</summary>
    public static bool IsBuiltInTokenizer(string tokenizer) => tokenizer is "byte" or "cl100k" or "o200k";

    /// <summary>The options of a run that has no checkpoint yet and so starts again from its --init-from folder: refused
    /// with one sentence when that folder is gone (after the first checkpoint it is not needed).</summary>
    internal static TrainingOptions RequireInitFrom(string runDir, TrainingOptions options)
    {
        if (options.InitFrom is { } dir && !Directory.Exists(dir))
            throw new TensorLiteException($"The run in '{runDir}' has no checkpoint yet, so it starts again from its --init-from folder '{dir}', which does not exist any more; restore that folder or start a new run.");
        return options;
    }

    /// <summary>The options with every path (--model config.json, --data, --tokenizer, --init-from) made absolute, as a
    /// new run records them: a relative path in train.json would depend on the working directory of later commands.</summary>
    internal static TrainingOptions WithAbsolutePaths(TrainingOptions o) => o with
    {
        Model = File.Exists(o.Model) ? Path.GetFullPath(o.Model) : o.Model, // else a named size (or, with --init-from, its folder)
        Data = o.Data.Select(Path.GetFullPath).ToArray(),
        Tokenizer = !IsBuiltInTokenizer(o.Tokenizer) ? Path.GetFullPath(o.Tokenizer) : o.Tokenizer,
        InitFrom = o.InitFrom == null ? null : Path.GetFullPath(o.InitFrom),
    };

    /// <summary>Writes what the run needs besides its options and checkpoints: the tokenized data (see
    /// <see cref="TrainingData.SaveCache"/>) and a copy of an HF tokenizer's files. Called under the run's lock when a
    /// run is created or resumed; a folder from before copies were kept gets them on its next resume.</summary>
    internal static void Complete(string runDir, TrainingOptions options, TrainingData data)
    {
        data.SaveCache();
        string copy = Path.Combine(runDir, TokenizerFolder);
        if (IsBuiltInTokenizer(options.Tokenizer) || HfTokenizer.IsTokenizerPath(copy)) return;
        // The folder the run's tokenizer.json was read from (the option names the file or its folder).
        string source = Directory.Exists(options.Tokenizer) ? options.Tokenizer : Path.GetDirectoryName(Path.GetFullPath(options.Tokenizer))!;
        // Copied into a temporary folder and renamed, so a crash never leaves a half-copied tokenizer that would be used.
        string temp = Path.Combine(runDir, $".{TokenizerFolder}-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            foreach (var name in HfModelFolder.TokenizerFiles)
                if (File.Exists(Path.Combine(source, name))) File.Copy(Path.Combine(source, name), Path.Combine(temp, name));
            if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true); // a tokenizer folder without tokenizer.json
            Directory.Move(temp, copy);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
    }
}
