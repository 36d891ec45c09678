using System.Text.Json;
using System.Text.Json.Serialization;

namespace TensorLite.Models;

/// <summary>Reads a token id field HF writes either as one number or as a list of numbers (eos_token_id in Llama 3
/// configs), and writes one id back as a number and several as a list, as HF does.</summary>
internal sealed class TokenIdsConverter : JsonConverter<int[]?>
{
    public override int[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.Number:
                return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException("a token id list must hold numbers");
                    ids.Add(reader.GetInt32());
                }
                return ids.ToArray();
            default:
                throw new JsonException("a token id must be a number or a list of numbers");
        }
    }

    public override void Write(Utf8JsonWriter writer, int[]? value, JsonSerializerOptions options)
    {
        if (value == null) writer.WriteNullValue();
        else if (value.Length == 1) writer.WriteNumberValue(value[0]);
        else
        {
            writer.WriteStartArray();
            foreach (int id in value) writer.WriteNumberValue(id);
            writer.WriteEndArray();
        }
    }
}
