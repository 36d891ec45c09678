using System.Security.Cryptography;
using System.Text;
using TensorLite.Data;

namespace TensorLite.Training;

/// <summary>The tokenized corpus of a run and what is known about it.</summary>
public sealed record TrainingData(TokenDataset Dataset, string Description, double UnigramEntropyNats, double? EntropyFloorNats)
{
    /// <summary>The most text a run reads from its --data files together: the corpus is decoded and tokenized in memory
    /// (a string of up to twice the bytes, then four bytes per token), so larger inputs are refused up front instead of
    /// exhausting memory.</summary>
    public const long MaxDataBytes = 256L << 20;

    /// <summary>The token cache file this corpus belongs in (in the run folder) and whether it still has to be written.</summary>
    private string? _cacheFile;
    private bool _cacheMissing;

    /// <summary>
    /// Builds the corpus: the embedded synthetic language when no files are given, otherwise the files'
    /// text, tokenized once and cached in the run folder (keyed by tokenizer and content hash).
    /// </summary>
    /// The cache is written by <see cref="SaveCache"/>, so building writes nothing: a refused run leaves no folder.
    /// A cache that does not hold valid token ids of this tokenizer is ignored and rebuilt.
    public static TrainingData Build(TrainingOptions options, ITokenizer tokenizer, string runDir)
    {
        if (options.Data.Length == 0)
        {
            var language = new SyntheticLanguage(seed: 1234);
            var tokens = tokenizer.Encode(language.Generate(options.SyntheticBytes, streamSeed: options.Seed));
            double? floor = tokenizer is ByteTokenizer ? language.EntropyPerByteNats : null;
            return Make(tokens, tokenizer, $"embedded synthetic language ({language.Words.Length} words, {tokens.Length:N0} tokens)", floor);
        }
        long total = 0;
        foreach (var path in options.Data)
        {
            total += RequireTextFile(path).Length;
            if (total > MaxDataBytes)
                throw new TensorLiteException($"The --data files hold more than {MaxDataBytes >> 20} MiB together (at '{path}'); the corpus is tokenized in memory, so use a smaller sample.");
        }
        var texts = options.Data.Select(ReadTextFile).ToArray();
        bool instructions = IsInstructionData(options.Data);
        string key = CacheKey(tokenizer, texts);
        string cache = Path.Combine(runDir, $"tokens-{key}.bin");
        var cached = ReadCache(cache, tokenizer.VocabSize);
        bool missing = cached == null;
        var (ids, trained) = cached ?? (instructions ? Instructions(options.Data, texts, tokenizer) : (tokenizer.Encode(string.Join("\n", texts)), null));
        string what = trained == null ? "" : $", {trained.Count(t => t):N0} of them trained";
        var data = Make(ids, tokenizer, $"{string.Join(", ", options.Data.Select(Path.GetFileName))} ({ids.Length:N0} tokens{what})", null, trained);
        data._cacheFile = cache;
        data._cacheMissing = missing;
        return data;
    }

    /// <summary>Whether the --data files are instruction data (.jsonl); text and .jsonl files are not mixed in one run.</summary>
    private static bool IsInstructionData(string[] files)
    {
        static bool IsJsonl(string f) => f.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);
        if (files.All(IsJsonl)) return true;
        if (files.Any(IsJsonl))
            throw new TensorLiteException("The --data files mix .jsonl instruction data and plain text; give one kind (plain text can be {\"text\": ...} rows).");
        return false;
    }

    private static (int[] Ids, bool[]? Trained) Instructions(string[] files, string[] texts, ITokenizer tokenizer)
    {
        var parts = files.Select((f, i) => InstructionData.Tokenize(texts[i], tokenizer, f)).ToArray();
        return (parts.SelectMany(p => p.Ids).ToArray(), parts.SelectMany(p => p.Trained).ToArray());
    }

    /// <summary>Writes the token cache into the run folder if it is not there yet (call it once the run is accepted). A
    /// context-only token (no loss) is stored as its bitwise complement, a negative number.</summary>
    public void SaveCache()
    {
        if (_cacheFile == null || !_cacheMissing) return;
        var ids = Dataset.Train.Concat(Dataset.Validation).ToArray();
        if (Dataset.TrainMask is { } trainMask)
        {
            var mask = trainMask.Concat(Dataset.ValidationMask!).ToArray();
            for (int i = 0; i < ids.Length; i++) if (!mask[i]) ids[i] = ~ids[i];
        }
        var bytes = new byte[(long)ids.Length * 4];
        Buffer.BlockCopy(ids, 0, bytes, 0, bytes.Length);
        IO.AtomicFile.Write(_cacheFile, s => s.Write(bytes));
        _cacheMissing = false;
    }

    /// <summary>The cached ids and trained mask (null when every token is trained), or null when there is no usable cache
    /// (missing, not a regular file, a size that is not whole ids or implausibly large, or an id outside the vocabulary).</summary>
    private static (int[] Ids, bool[]? Trained)? ReadCache(string cache, int vocab)
    {
        var info = new FileInfo(cache);
        if (!info.Exists || info.LinkTarget != null || info.Length == 0 || info.Length % 4 != 0 || info.Length > 4 * MaxDataBytes) return null;
        var bytes = IO.SafeFile.ReadAllBytes(cache, "Token cache", 4 * MaxDataBytes, allowSymlink: false);
        var ids = new int[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, ids, 0, bytes.Length);
        bool[]? trained = ids.Any(id => id < 0) ? new bool[ids.Length] : null;
        for (int i = 0; i < ids.Length; i++)
        {
            if (trained != null)
            {
                trained[i] = ids[i] >= 0;
                if (ids[i] < 0) ids[i] = ~ids[i];
            }
            if ((uint)ids[i] >= (uint)vocab) return null;
        }
        return (ids, trained);
    }

    private static TrainingData Make(int[] tokens, ITokenizer tokenizer, string description, double? floor, bool[]? trained = null)
    {
        var dataset = new TokenDataset(tokens, tokenizer.VocabSize, trained: trained);
        return new TrainingData(dataset, description, UnigramEntropy(dataset.Train, tokenizer.VocabSize), floor);
    }

    /// <summary>Checks a --data path names a non-empty regular file of at most <see cref="MaxDataBytes"/> (not a
    /// directory, FIFO or device such as /dev/zero, which would block or never end) without reading it.</summary>
    public static FileInfo RequireTextFile(string path)
    {
        if (Directory.Exists(path)) throw new TensorLiteException($"Data file '{path}' is a directory; give text files (--data a.txt b.txt).");
        if (!File.Exists(path)) throw new TensorLiteException($"Data file '{path}' does not exist.");
        return IO.SafeFile.RequireRegular(path, "Data file", MaxDataBytes);
    }

    /// <summary>Reads a training text file, refusing missing, empty, oversized, non-regular and binary files with one
    /// sentence each.</summary>
    public static string ReadTextFile(string path)
    {
        RequireTextFile(path);
        var bytes = IO.SafeFile.ReadAllBytes(path, "Data file", MaxDataBytes);
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
