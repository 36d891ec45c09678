using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace TensorLite.Data;

/// <summary>
/// SentencePiece-style BPE as HF's tokenizer.json writes it for Llama 2 and Mistral 7B: the normalizer prepends "▁" to
/// each piece of text between added tokens and turns every space into "▁"; the BPE merges run in Microsoft.ML.Tokenizers
/// (<see cref="BpeTokenizer"/> without byte-level mapping or pre-tokenizer, so a piece is one word); characters the
/// vocabulary lacks become their UTF-8 bytes' &lt;0xXX&gt; tokens (byte_fallback, which the library's BPE does not do: it
/// yields the unknown token there, and this class replaces it with the bytes of the text that token covers).
/// Decoding is the tokenizer.json decoder chain: "▁" back to space, byte tokens back to bytes, one leading space removed.
/// <para>With no pre-tokenizer a whole text is one BPE word, and the library's merge loop grows faster than linearly with
/// its length (figures in docs/finetune.md). So the word is cut where no token can cross: between two characters
/// that never stand side by side inside any vocabulary token, no merge can join them (a merge makes a vocabulary token),
/// and the pieces on either side merge independently, giving the same ids as the uncut word.</para>
/// </summary>
internal sealed class SentencePieceBpe
{
    private const char Meta = '\u2581';
    private readonly BpeTokenizer _bpe;
    private readonly int _unknownId;
    private readonly Dictionary<string, int> _added;
    /// <summary>Matches any added token (longest first), so the text is cut around them before normalization, as HF does
    /// for added tokens that are not normalized.</summary>
    private readonly Regex? _addedSplit;
    /// <summary>The id of the &lt;0xXX&gt; token of each byte value, or -1 where the vocabulary lacks it.</summary>
    private readonly int[] _byteIds = new int[256];
    /// <summary>The byte each &lt;0xXX&gt; token's id stands for.</summary>
    private readonly Dictionary<int, byte> _byteOfId = [];
    private readonly Dictionary<int, string> _tokenOfId = [];
    /// <summary>Every pair of adjacent characters (code points) inside a vocabulary token; a word may be cut between any
    /// other pair. Null when some merge joins a byte token, whose text is not the text it stands for: then no cuts.</summary>
    private readonly HashSet<long>? _joinedPairs;

    public SentencePieceBpe(List<KeyValuePair<string, int>> vocab, List<string> merges, string unknownToken, Dictionary<string, int> added)
    {
        _bpe = BpeTokenizer.Create(new BpeOptions(vocab) { Merges = merges, UnknownToken = unknownToken, FuseUnknownTokens = true });
        _unknownId = vocab.First(kv => kv.Key == unknownToken).Value;
        _added = added;
        if (added.Count > 0)
            _addedSplit = new Regex("(" + string.Join("|", added.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)) + ")", RegexOptions.Compiled);
        Array.Fill(_byteIds, -1);
        foreach (var (token, id) in vocab.Concat(added))
        {
            _tokenOfId[id] = token;
            if (ByteToken(token) is byte b)
            {
                _byteIds[b] = id;
                _byteOfId[id] = b;
            }
        }
        if (!merges.Any(m => m.Split(' ').Any(part => ByteToken(part) != null)))
        {
            _joinedPairs = [];
            foreach (var (token, _) in vocab)
            {
                int previous = -1;
                foreach (var rune in token.EnumerateRunes())
                {
                    if (previous >= 0) _joinedPairs.Add(Pair(previous, rune.Value));
                    previous = rune.Value;
                }
            }
        }
    }

    /// <summary>The byte a token such as &lt;0x0A&gt; stands for, or null for any other token.</summary>
    private static byte? ByteToken(string token) =>
        token.Length == 6 && token.StartsWith("<0x") && token[5] == '>' &&
        byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b) ? b : null;

    private static long Pair(int first, int second) => ((long)first << 21) | (uint)second;

    public int[] Encode(string text)
    {
        var ids = new List<int>();
        foreach (string piece in _addedSplit?.Split(text) ?? [text])
        {
            if (piece.Length == 0) continue;
            if (_added.TryGetValue(piece, out int addedId))
            {
                ids.Add(addedId);
                continue;
            }
            string normalized = Meta + piece.Replace(' ', Meta);
            int start = 0, previous = -1;
            for (int i = 0; i < normalized.Length;)
            {
                // A lone surrogate is no character: no cut next to it.
                bool valid = Rune.DecodeFromUtf16(normalized.AsSpan(i), out var rune, out int length) == System.Buffers.OperationStatus.Done;
                if (valid && previous >= 0 && _joinedPairs != null && !_joinedPairs.Contains(Pair(previous, rune.Value)))
                {
                    EncodeWord(normalized[start..i], ids);
                    start = i;
                }
                previous = valid ? rune.Value : -1;
                i += length;
            }
            EncodeWord(normalized[start..], ids);
        }
        return ids.ToArray();
    }

    private void EncodeWord(string word, List<int> ids)
    {
        foreach (var token in _bpe.EncodeToTokens(word, out _, false, false))
        {
            if (token.Id == _unknownId && ByteFallback(word[token.Offset], ids)) continue;
            ids.Add(token.Id);
        }
    }

    /// <summary>Appends the byte tokens of <paramref name="chars"/>; false (nothing appended) when one is missing, so the
    /// unknown token stays, as in HF.</summary>
    private bool ByteFallback(string chars, List<int> ids)
    {
        var bytes = Encoding.UTF8.GetBytes(chars);
        if (bytes.Any(b => _byteIds[b] < 0)) return false;
        ids.AddRange(bytes.Select(b => _byteIds[b]));
        return true;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (_byteOfId.TryGetValue(id, out byte b)) bytes.Add(b);
            else if (_tokenOfId.TryGetValue(id, out string? token)) bytes.AddRange(Encoding.UTF8.GetBytes(token.Replace(Meta, ' ')));
        }
        string text = Encoding.UTF8.GetString(bytes.ToArray());
        return text.StartsWith(' ') ? text[1..] : text;
    }
}
