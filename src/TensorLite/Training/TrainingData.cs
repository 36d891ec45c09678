using System.Security.Cryptography;
using System.Text;
using TensorLite.Data;

namespace TensorLite.Training;

/// <summary>The tokenized corpus of a run and what is known about it.</summary>
public sealed record TrainingData(TokenDataset Dataset, string Description, double UnigramEntropyNats, double? EntropyFloorNats)
{
    /// <summary>
    /// Builds the corpus: the embedded synthetic language when no files are given, otherwise the files'
    /// text, tokenized once and cached in the run folder (keyed by tokenizer and content hash).
    /// </summary>
    public static TrainingData Build(TrainingOptions options, ITokenizer tokenizer, string runDir)
    {
        if (options.Data.Length == 0)
        {
            var language = new SyntheticLanguage(seed: 1234);
            var tokens = tokenizer.Encode(language.Generate(options.SyntheticBytes, streamSeed: options.Seed));
            double? floor = tokenizer is ByteTokenizer ? language.EntropyPerByteNats : null;
            return Make(tokens, tokenizer, $"embedded synthetic language ({language.Words.Length} words, {tokens.Length:N0} tokens)", floor);
        }
        var texts = options.Data.Select(ReadTextFile).ToArray();
        string key = CacheKey(tokenizer, texts);
        string cache = Path.Combine(runDir, $"tokens-{key}.bin");
        int[] ids;
        if (File.Exists(cache))
        {
            var bytes = File.ReadAllBytes(cache);
            ids = new int[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, ids, 0, ids.Length * 4);
        }
        else
        {
            ids = tokenizer.Encode(string.Join("\n", texts));
            var bytes = new byte[ids.Length * 4];
            Buffer.BlockCopy(ids, 0, bytes, 0, bytes.Length);
            IO.AtomicFile.Write(cache, s => s.Write(bytes));
        }
        return Make(ids, tokenizer, $"{string.Join(", ", options.Data.Select(Path.GetFileName))} ({ids.Length:N0} tokens)", null);
    }

    private static TrainingData Make(int[] tokens, ITokenizer tokenizer, string description, double? floor)
    {
        var dataset = new TokenDataset(tokens, tokenizer.VocabSize);
        return new TrainingData(dataset, description, UnigramEntropy(dataset.Train, tokenizer.VocabSize), floor);
    }

    /// <summary>Reads a training text file, refusing missing, empty and binary files with one sentence each.</summary>
    public static string ReadTextFile(string path)
    {
        if (!File.Exists(path)) throw new TensorLiteException($"Data file '{path}' does not exist.");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new TensorLiteException($"Data file '{path}' is empty.");
        int probe = Math.Min(bytes.Length, 1 << 16);
        if (Array.IndexOf(bytes, (byte)0, 0, probe) >= 0)
            throw new TensorLiteException($"Data file '{path}' looks binary (it contains NUL bytes); give a UTF-8 text file.");
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new TensorLiteException($"Data file '{path}' is not valid UTF-8 text.");
        }
    }

    private static string CacheKey(ITokenizer tokenizer, string[] texts)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes(tokenizer.Name + "\0"));
        foreach (var t in texts)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(t));
            sha.AppendData([0]);
        }
        return Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    private static double UnigramEntropy(int[] tokens, int vocab)
    {
        var counts = new long[vocab];
        foreach (var t in tokens) counts[t]++;
        double h = 0;
        foreach (var c in counts)
            if (c > 0)
            {
                double p = (double)c / tokens.Length;
                h -= p * Math.Log(p);
            }
        return h;
    }
}
