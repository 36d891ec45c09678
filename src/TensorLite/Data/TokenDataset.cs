namespace TensorLite.Data;

/// <summary>
/// A tokenized corpus split deterministically into training and validation parts (the last
/// <c>validationFraction</c> of the tokens), from which random contiguous windows are drawn.
/// </summary>
public sealed class TokenDataset
{
    public TokenDataset(int[] tokens, int vocabSize, double validationFraction = 0.1)
    {
        if (validationFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(validationFraction), "The validation fraction must be in (0, 1).");
        int validation = (int)(tokens.Length * validationFraction);
        Train = tokens[..^validation];
        Validation = tokens[^validation..];
        VocabSize = vocabSize;
    }

    public int[] Train { get; }
    public int[] Validation { get; }
    public int VocabSize { get; }

    /// <summary>Checks both splits can hold at least one window of <paramref name="seq"/>+1 tokens.</summary>
    public void RequireWindows(int seq)
    {
        if (Train.Length < seq + 1 || Validation.Length < seq + 1)
            throw new TensorLiteException($"The data has too few tokens ({Train.Length} train, {Validation.Length} validation) for sequences of {seq}; use more text or a shorter --seq.");
    }

    /// <summary>A batch of random windows: inputs [batch, seq] and the next-token targets [batch, seq] (int32).</summary>
    public (Tensor Inputs, Tensor Targets) SampleBatch(bool validation, int batch, int seq, Generator generator, IBackend? backend = null)
    {
        var source = validation ? Validation : Train;
        RequireWindows(seq);
        var inputs = new int[batch * seq];
        var targets = new int[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            int start = generator.NextInt(source.Length - seq);
            Array.Copy(source, start, inputs, b * seq, seq);
            Array.Copy(source, start + 1, targets, b * seq, seq);
        }
        return (Tensor.FromSpan<int>(inputs, [batch, seq], DType.Int32, backend),
                Tensor.FromSpan<int>(targets, [batch, seq], DType.Int32, backend));
    }
}
