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

    /// <summary>The token file this corpus belongs in (in the run folder), whether it still has to be written, and the
    /// fingerprints of the --data files it was tokenized from (recorded in the run's data.json).</summary>
    private string? _cacheFile;
    private bool _cacheMissing;
    private DataManifest.Source[]? _sources;

    /// <summary>A note about the --data files when a run is opened: set when one of them changed since the run stored
    /// its tokens (the run still uses the stored tokens); null otherwise.</summary>
    public string? Warning { get; private init; }

    /// <summary>
    /// Builds the corpus of a new run: the embedded synthetic language when no files are given, otherwise the files'
    /// text, tokenized once and stored in the run folder (tokens-KEY.bin, keyed by tokenizer and content hash, with
    /// data.json recording the files' sizes and SHA-256).
    /// </summary>
    /// The token file is written by <see cref="SaveCache"/>, so building writes nothing: a refused run leaves no folder.
    /// A token file that does not hold valid token ids of this tokenizer is ignored and rebuilt.
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
        var read = options.Data.Select(ReadSource).ToArray();
        var texts = read.Select(r => r.Text).ToArray();
        bool instructions = IsInstructionData(options.Data);
        string cache = Path.Combine(runDir, $"tokens-{CacheKey(tokenizer, texts)}.bin");
        var cached = ReadCache(cache, tokenizer.VocabSize);
        bool missing = cached == null;
        var (ids, trained) = cached ?? (instructions ? Instructions(options.Data, texts, tokenizer) : (tokenizer.Encode(string.Join("\n", texts)), null));
        return Make(ids, tokenizer, Describe(options.Data, ids, trained), null, trained) with
        {
            _cacheFile = cache, _cacheMissing = missing, _sources = read.Select(r => r.Source).ToArray(),
        };
    }

    /// <summary>
    /// The corpus of an existing run, from the tokens its folder stores (data.json names them), so the --data files may
    /// have moved, changed or gone: a changed file is reported in <see cref="Warning"/> and the run keeps its stored
    /// tokens. Folders written before data.json existed (and the synthetic language) are built as <see cref="Build"/> does.
    /// </summary>
    public static TrainingData Open(TrainingOptions options, ITokenizer tokenizer, string runDir)
    {
        var manifest = options.Data.Length == 0 ? null : DataManifest.Read(runDir);
        if (manifest == null) return Build(options, tokenizer, runDir);
        string cache = Path.Combine(runDir, manifest.TokensFile);
        var changed = manifest.Sources.Where(s => s.Changed()).Select(s => s.Path).ToList();
        var stored = manifest.Matches(cache) ? ReadCache(cache, tokenizer.VocabSize) : null;
        if (stored == null)
        {
            // The stored tokens are gone or damaged: the files give the same tokens again only if none of them changed.
            if (changed.Count > 0 || manifest.Sources.Any(s => !File.Exists(s.Path)))
                throw new TensorLiteException($"The run's stored tokens '{cache}' are missing or damaged and its --data files changed or moved, so the run cannot continue on the data it started with.");
            return Build(options with { Data = manifest.Sources.Select(s => s.Path).ToArray() }, tokenizer, runDir);
        }
        var (ids, trained) = stored.Value;
        return Make(ids, tokenizer, Describe(manifest.Sources.Select(s => s.Path), ids, trained) + ", stored in the run folder", null, trained) with
        {
            Warning = changed.Count == 0 ? null :
                $"the data file '{changed[0]}'{(changed.Count > 1 ? $" (and {changed.Count - 1} more)" : "")} changed since the run started " +
                $"(its size or SHA-256 differs from {DataManifest.FileName}); the run continues on the tokens it stored then ({manifest.TokensFile}).",
        };
    }

    private static string Describe(IEnumerable<string> files, int[] ids, bool[]? trained) =>
        $"{string.Join(", ", files.Select(Path.GetFileName))} ({ids.Length:N0} tokens{(trained == null ? "" : $", {trained.Count(t => t):N0} of them trained")})";

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

    /// <summary>Writes the tokens into the run folder if they are not there yet, and data.json recording them and the
    /// --data files' fingerprints (call it once the run is accepted). A context-only token (no loss) is stored as its
    /// bitwise complement, a negative number.</summary>
    public void SaveCache()
    {
        if (_cacheFile == null) return;
        if (_cacheMissing)
        {
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
        string runDir = Path.GetDirectoryName(_cacheFile)!;
        if (_sources != null && DataManifest.Read(runDir) == null) DataManifest.Write(runDir, _cacheFile, _sources);
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
    public static string ReadTextFile(string path) => ReadSource(path).Text;

    /// <summary>A training text file's text and its fingerprint (full path, size, SHA-256 of the bytes read).</summary>
    private static (string Text, DataManifest.Source Source) ReadSource(string path)
    {
        RequireTextFile(path);
        var bytes = IO.SafeFile.ReadAllBytes(path, "Data file", MaxDataBytes);
        int probe = Math.Min(bytes.Length, 1 << 16);
        if (Array.IndexOf(bytes, (byte)0, 0, probe) >= 0)
            throw new TensorLiteException($"Data file '{path}' looks binary (it contains NUL bytes); give a UTF-8 text file.");
        try
        {
            string text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return (text, new DataManifest.Source(Path.GetFullPath(path), bytes.Length, DataManifest.Sha256(bytes)));
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
