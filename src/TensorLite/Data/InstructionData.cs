using System.Text;
using System.Text.Json;

namespace TensorLite.Data;

/// <summary>
/// Instruction data in JSON Lines, one example a line, in one of three shapes:
/// <c>{"text": ...}</c> (every token trained), <c>{"prompt": ..., "completion": ...}</c> (the loss only on the
/// completion) or <c>{"messages": [{"role": ..., "content": ...}, ...]}</c> (the loss only on assistant turns).
/// Each example is tokenized on its own (prompt and completion separately, so the mask boundary is exact), starts with
/// the tokenizer's BOS when it has one and ends with its end-of-sequence token, which is trained so the model learns
/// to stop; tokenizers without one (byte, cl100k, o200k) end an example with a newline instead. Examples are packed
/// back to back into one token stream (no padding); training windows are cut from that stream, so a window may span
/// two examples and attention is not reset between them.
/// </summary>
public static class InstructionData
{
    /// <summary>Tokens and, per token, whether it is a training target (predicted with loss) or context only.</summary>
    public sealed record Tokens(int[] Ids, bool[] Trained);

    /// <summary>Tokenizes <paramref name="jsonl"/>; a bad line throws one sentence naming <paramref name="source"/> and the line number.</summary>
    public static Tokens Tokenize(string jsonl, ITokenizer tokenizer, string source)
    {
        var ids = new List<int>();
        var trained = new List<bool>();
        var chat = new Lazy<ChatTemplate>(() => ChatTemplate.For(tokenizer));
        int? bos = (tokenizer as HfTokenizer)?.BosTokenId;
        int[] end = (tokenizer as HfTokenizer)?.EosTokenId is int eos ? [eos] : tokenizer.Encode("\n");
        void Add(IEnumerable<int> tokens, bool train)
        {
            foreach (int t in tokens)
            {
                ids.Add(t);
                trained.Add(train);
            }
        }

        int lineNumber = 0, examples = 0;
        foreach (var rawLine in jsonl.Split('\n'))
        {
            lineNumber++;
            string line = rawLine.TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line)) continue;
            TensorLiteException Bad(string why) => new($"{source}, line {lineNumber}: {why}.");
            JsonElement row;
            try
            {
                using var doc = JsonDocument.Parse(line);
                row = doc.RootElement.Clone();
            }
            catch (JsonException)
            {
                throw Bad("not valid JSON (each line must be one JSON object)");
            }
            if (row.ValueKind != JsonValueKind.Object) throw Bad("not a JSON object");
            var keys = row.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            string Text(string key) => row.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String
                ? v.GetString()! : throw Bad($"\"{key}\" must be a string");

            if (bos is int b) Add([b], false);
            if (keys.SetEquals(["text"]))
                Add(tokenizer.Encode(Text("text")), true);
            else if (keys.SetEquals(["prompt", "completion"]))
            {
                Add(tokenizer.Encode(Text("prompt")), false);
                string completion = Text("completion");
                if (completion.Length == 0) throw Bad("\"completion\" is empty, so the example has nothing to learn");
                Add(tokenizer.Encode(completion), true);
            }
            else if (keys.SetEquals(["messages"]))
            {
                foreach (var (text, train) in chat.Value.Render(Messages(row, Bad))) Add(tokenizer.Encode(text), train);
                examples++;
                continue; // each turn ends with the template's own end marker
            }
            else
                throw Bad($"expected the keys \"text\", \"prompt\" and \"completion\", or \"messages\"; got {string.Join(", ", keys.Select(k => $"\"{k}\""))}");
            Add(end, true);
            examples++;
        }
        if (examples == 0) throw new TensorLiteException($"{source} holds no examples (one JSON object a line).");
        return new Tokens(ids.ToArray(), trained.ToArray());
    }

    private static List<(string Role, string Content)> Messages(JsonElement row, Func<string, TensorLiteException> bad)
    {
        var messages = row.GetProperty("messages");
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0) throw bad("\"messages\" must be a non-empty list");
        var list = new List<(string, string)>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String ||
                !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                throw bad($"message {i} must be an object with string \"role\" and \"content\"");
            if (role.GetString() is not ("system" or "user" or "assistant"))
                throw bad($"message {i} has role '{role.GetString()}' (expected system, user or assistant)");
            list.Add((role.GetString()!, content.GetString()!));
            i++;
        }
        if (!list.Any(m => m.Item1 == "assistant")) throw bad("\"messages\" has no assistant turn, so the example has nothing to learn");
        return list;
    }
}

/// <summary>
/// The built-in chat formats, chosen by the tokenizer's special tokens (the Jinja template in tokenizer_config.json is not
/// run: no maintained .NET Jinja engine is available here). ChatML (Qwen: &lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n)
/// and Llama 3 (&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;). An assistant turn's content and
/// its end marker are trained; headers and the other turns are context. Neither adds a default system prompt.
/// </summary>
internal sealed class ChatTemplate
{
    private readonly Func<string, string> _header;
    private readonly string _endOfTurn;

    private ChatTemplate(Func<string, string> header, string endOfTurn)
    {
        _header = header;
        _endOfTurn = endOfTurn;
    }

    public static ChatTemplate For(ITokenizer tokenizer)
    {
        var added = (tokenizer as HfTokenizer)?.AddedTokens;
        if (added?.ContainsKey("<|im_start|>") == true && added.ContainsKey("<|im_end|>"))
            return new ChatTemplate(role => $"<|im_start|>{role}\n", "<|im_end|>\n");
        if (added?.ContainsKey("<|start_header_id|>") == true && added.ContainsKey("<|eot_id|>"))
            return new ChatTemplate(role => $"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>");
        throw new TensorLiteException($"Chat \"messages\" need a chat tokenizer (ChatML or Llama 3 special tokens); the {tokenizer.Name} tokenizer has neither. Use \"prompt\"/\"completion\" rows.");
    }

    /// <summary>The pieces of a conversation, each with whether it is trained.</summary>
    public IEnumerable<(string Text, bool Trained)> Render(List<(string Role, string Content)> messages)
    {
        foreach (var (role, content) in messages)
        {
            yield return (_header(role), false);
            bool assistant = role == "assistant";
            yield return (content, assistant);
            yield return (_endOfTurn, assistant);
        }
    }
}
