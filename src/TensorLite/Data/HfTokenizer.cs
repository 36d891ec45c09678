using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace TensorLite.Data;

/// <summary>
/// A model's own tokenizer from its HF <c>tokenizer.json</c>: byte-level BPE as in Llama 3 and Qwen (vocabulary, merges,
/// the pre-tokenizer's split regex, NFC normalization when asked for, added and special tokens), or SentencePiece-style
/// BPE with byte fallback in the layout of Llama 2 and Mistral 7B (<see cref="SentencePieceBpe"/>). The BPE itself runs in
/// Microsoft.ML.Tokenizers (<see cref="BpeTokenizer"/>, with <see cref="BpeOptions.ByteLevel"/> for the first); this class
/// reads the file into its options and refuses the tokenizer.json features it does not reproduce, so ids equal HF's or the
/// tokenizer is not loaded. <see cref="Encode"/> adds no BOS/EOS (HF's add_special_tokens=False); added tokens written
/// in the text (e.g. &lt;|im_end|&gt;) become their ids.
/// </summary>
public sealed class HfTokenizer : ITokenizer
{
    /// <summary>The file an HF tokenizer is read from.</summary>
    public const string FileName = "tokenizer.json";
    /// <summary>The file beside it that names the eos and bos tokens.</summary>
    public const string ConfigFileName = "tokenizer_config.json";
    private const long MaxFileBytes = 256L << 20;

    /// <summary>The byte-level BPE, or null for a SentencePiece-style tokenizer.</summary>
    private readonly BpeTokenizer? _byteLevel;
    private readonly SentencePieceBpe? _sentencePiece;
    private readonly Dictionary<string, int> _added;
    /// <summary>tokenizer.json asks for Unicode NFC before the split (Qwen). Applied here with string.Normalize, which
    /// needs ICU: a process in globalization-invariant mode cannot normalize, and such a tokenizer is then refused.</summary>
    private readonly bool _nfc;

    private HfTokenizer(BpeTokenizer? byteLevel, SentencePieceBpe? sentencePiece, Dictionary<string, int> added, bool nfc, int vocabSize,
                        string name, string directory, int? eos, int? bos)
    {
        _byteLevel = byteLevel;
        _sentencePiece = sentencePiece;
        _nfc = nfc;
        _added = added;
        VocabSize = vocabSize;
        Name = name;
        Directory = directory;
        EosTokenId = eos;
        BosTokenId = bos;
    }

    /// <summary>"hf-" and the start of tokenizer.json's SHA-256: names the vocabulary, not where the file lies.</summary>
    public string Name { get; }
    /// <inheritdoc/>
    public int VocabSize { get; }
    /// <summary>The folder holding tokenizer.json (and tokenizer_config.json when there is one).</summary>
    public string Directory { get; }
    /// <summary>tokenizer_config.json's eos_token as an id (ends an example in instruction data), if it names one.</summary>
    public int? EosTokenId { get; }
    /// <summary>tokenizer_config.json's bos_token as an id, if it names one.</summary>
    public int? BosTokenId { get; }

    /// <summary>The added (special) tokens by text, as tokenizer.json lists them; the encoder matches them whole.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => _added;

    /// <inheritdoc/>
    public int[] Encode(string text) =>
        _sentencePiece?.Encode(text) ?? _byteLevel!.EncodeToIds(_nfc ? text.Normalize(NormalizationForm.FormC) : text).ToArray();

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => _sentencePiece?.Decode(ids) ?? _byteLevel!.Decode(ids.ToArray()) ?? "";

    /// <summary>Whether <paramref name="path"/> is a tokenizer.json or a folder holding one.</summary>
    public static bool IsTokenizerPath(string path) =>
        (File.Exists(path) && Path.GetFileName(path) == FileName) || File.Exists(Path.Combine(path, FileName));

    /// <summary>Loads tokenizer.json from a file path or a model folder; one sentence naming what is not supported.</summary>
    public static HfTokenizer Load(string path)
    {
        string file = System.IO.Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new TensorLiteException($"Tokenizer '{path}' does not exist (give a tokenizer.json or a folder holding one).");
        var bytes = IO.SafeFile.ReadAllBytes(file, "Tokenizer file", MaxFileBytes);
        JsonNode root;
        try
        {
            root = JsonNode.Parse(bytes) ?? throw new TensorLiteException($"'{file}' is empty.");
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"'{file}' is not valid JSON: {Models.LlamaConfig.Where(e)}.");
        }
        TensorLiteException Unsupported(string what) => new($"'{file}': {what} is not supported (TensorLite reads byte-level BPE tokenizers " +
                                                             "such as Llama 3's and Qwen's, and SentencePiece-style BPE laid out as Llama 2's and Mistral 7B's).");

        var model = root["model"] as JsonObject ?? throw Unsupported("a tokenizer without a model");
        if ((string?)model["type"] != "BPE") throw Unsupported($"model type '{(string?)model["type"]}'");
        if (model["dropout"] is JsonValue dropout && dropout.GetValueKind() == JsonValueKind.Number && (double)dropout != 0) throw Unsupported("BPE dropout");
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model[affix] is JsonValue v && !string.IsNullOrEmpty((string?)v)) throw Unsupported(affix);

        var vocab = (model["vocab"] as JsonObject ?? throw Unsupported("a BPE model without a vocab"))
            .Select(kv => new KeyValuePair<string, int>(kv.Key, (int)kv.Value!)).ToList();
        var merges = (model["merges"] as JsonArray ?? throw Unsupported("a BPE model without merges")).Select(m => m switch
        {
            JsonArray pair when pair.Count == 2 => $"{(string?)pair[0]} {(string?)pair[1]}",
            JsonValue line => (string?)line ?? "",
            _ => throw Unsupported("a merge that is neither \"a b\" nor [\"a\", \"b\"]"),
        }).ToList();

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in root["added_tokens"] as JsonArray ?? [])
        {
            if (token?["content"] is not JsonValue content || token["id"] is not JsonValue id) throw Unsupported("an added token without content or id");
            foreach (var flag in new[] { "lstrip", "rstrip", "single_word" })
                if (token[flag] is JsonValue f && (bool)f) throw Unsupported($"added token '{(string?)content}' with {flag}");
            added[(string)content!] = (int)id;
        }

        int vocabSize = Math.Max(vocab.Max(kv => kv.Value), added.Count == 0 ? 0 : added.Values.Max()) + 1;
        string name = "hf-" + Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant();
        string directory = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var (eos, bos) = ConfigTokens(directory, added, vocab);
        if (model["byte_fallback"] is JsonValue fb && (bool)fb)
        {
            string unknown = SentencePieceLayout(root, vocab, Unsupported);
            return new HfTokenizer(null, new SentencePieceBpe(vocab, merges, unknown, added), added, false, vocabSize, name, directory, eos, bos);
        }

        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = added,
            PreTokenizer = new RegexPreTokenizer(new Regex(SplitPattern(root, Unsupported), RegexOptions.Compiled), added),
        };
        bool nfc = Normalization(root["normalizer"], Unsupported);
        if (nfc && "e\u0301".Normalize(NormalizationForm.FormC) != "\u00e9")
            throw new TensorLiteException($"'{file}' asks for Unicode NFC normalization, which this process cannot do: it runs in " +
                                          "globalization-invariant mode (set InvariantGlobalization to false, or DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=0, with ICU installed).");
        if ((root["decoder"] as JsonObject)?["type"] is JsonValue decoder && (string?)decoder != "ByteLevel") throw Unsupported($"decoder '{(string?)decoder}'");
        return new HfTokenizer(BpeTokenizer.Create(options), null, added, nfc, vocabSize, name, directory, eos, bos);
    }

    /// <summary>Checks that a byte_fallback BPE is laid out exactly as Llama 2's and Mistral 7B's tokenizer.json (the one
    /// SentencePiece-style layout <see cref="SentencePieceBpe"/> reproduces) and returns its unknown token.</summary>
    private static string SentencePieceLayout(JsonNode root, List<KeyValuePair<string, int>> vocab, Func<string, TensorLiteException> unsupported)
    {
        const string Layout = "byte_fallback BPE whose normalizer or decoder is not Llama 2's " +
                              "(normalizer Prepend ▁ + Replace ' ' → ▁, decoder Replace + ByteFallback + Fuse + Strip)";
        var normalizer = JsonNode.Parse("""
            {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                 {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
            """);
        var decoder = JsonNode.Parse("""
            {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                              {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
            """);
        if (root["pre_tokenizer"] is JsonObject pre) throw unsupported($"pre-tokenizer '{(string?)pre["type"]}' with byte_fallback BPE");
        if (!JsonNode.DeepEquals(root["normalizer"], normalizer) || !JsonNode.DeepEquals(root["decoder"], decoder)) throw unsupported(Layout);
        string unknown = (string?)root["model"]?["unk_token"] ?? throw unsupported("byte_fallback BPE without an unk_token");
        if (!vocab.Any(kv => kv.Key == unknown)) throw unsupported($"an unk_token '{unknown}' outside the vocabulary");
        return unknown;
    }

    /// <summary>The regex of the pre-tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex false)] as in
    /// Llama 3 and Qwen, or a lone ByteLevel with its GPT-2 regex.</summary>
    private static string SplitPattern(JsonNode root, Func<string, TensorLiteException> unsupported)
    {
        const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
        var pre = root["pre_tokenizer"] as JsonObject ?? throw unsupported("a tokenizer without a pre_tokenizer");
        var steps = (string?)pre["type"] == "Sequence" ? (pre["pretokenizers"] as JsonArray ?? []).OfType<JsonObject>().ToList() : [pre];
        string? pattern = null;
        foreach (var step in steps)
        {
            switch ((string?)step["type"])
            {
                case "Split":
                    if (pattern != null) throw unsupported("more than one Split pre-tokenizer");
                    if ((string?)step["behavior"] != "Isolated" || (step["invert"] is JsonValue inv && (bool)inv))
                        throw unsupported($"a Split pre-tokenizer with behavior '{(string?)step["behavior"]}'");
                    pattern = (string?)step["pattern"]?["Regex"] ?? throw unsupported("a Split pre-tokenizer without a regex");
                    break;
                case "ByteLevel":
                    if (step["add_prefix_space"] is JsonValue prefix && (bool)prefix) throw unsupported("ByteLevel add_prefix_space");
                    if (step["use_regex"] is not JsonValue useRegex || (bool)useRegex)
                    {
                        if (pattern != null) throw unsupported("a Split followed by a ByteLevel regex");
                        pattern = Gpt2;
                    }
                    break;
                default:
                    throw unsupported($"pre-tokenizer '{(string?)step["type"]}'");
            }
        }
        return pattern ?? throw unsupported("a pre-tokenizer without a split regex");
    }

    /// <summary>Whether the tokenizer normalizes to NFC (the one normalizer supported); none is fine too.</summary>
    private static bool Normalization(JsonNode? normalizer, Func<string, TensorLiteException> unsupported) => normalizer switch
    {
        null => false,
        JsonObject o when (string?)o["type"] == "NFC" => true,
        JsonObject o => throw unsupported($"normalizer '{(string?)o["type"]}'"),
        _ => throw unsupported("a normalizer that is not an object"),
    };

    /// <summary>The ids of tokenizer_config.json's eos_token and bos_token (a string or {"content": ...}), when given.</summary>
    private static (int? Eos, int? Bos) ConfigTokens(string directory, Dictionary<string, int> added, List<KeyValuePair<string, int>> vocab)
    {
        string path = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(path)) return (null, null);
        JsonNode? config;
        try
        {
            config = JsonNode.Parse(IO.SafeFile.ReadAllBytes(path, "Tokenizer config", MaxFileBytes));
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"'{path}' is not valid JSON: {Models.LlamaConfig.Where(e)}.");
        }
        int? Id(string field)
        {
            string? token = config?[field] switch
            {
                JsonValue v when v.GetValueKind() == JsonValueKind.String => (string?)v,
                JsonObject o => (string?)o["content"],
                _ => null,
            };
            if (token == null) return null;
            if (added.TryGetValue(token, out int id)) return id;
            foreach (var kv in vocab) if (kv.Key == token) return kv.Value;
            throw new TensorLiteException($"'{path}': {field} '{token}' is not in the tokenizer's vocabulary.");
        }
        return (Id("eos_token"), Id("bos_token"));
    }
}
