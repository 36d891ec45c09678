namespace TensorLite.Data;

/// <summary>
/// A tokenized corpus split deterministically into training and validation parts (the last
/// <c>validationFraction</c> of the tokens), from which random contiguous windows are drawn. With a
/// <c>trained</c> mask (instruction data), a token the mask marks false is context only: its position's target is
/// <see cref="IgnoreIndex"/>, so it carries no loss.
/// </summary>
public sealed class TokenDataset
{
    /// <summary>The target of a position that carries no loss (the cross-entropy's ignore index).</summary>
    public const int IgnoreIndex = -100;

    /// <summary>Splits <paramref name="tokens"/> into training and validation parts (the last <paramref name="validationFraction"/>); <paramref name="trained"/>, when given, marks which tokens are targets.</summary>
    public TokenDataset(int[] tokens, int vocabSize, double validationFraction = 0.1, bool[]? trained = null)
    {
        if (validationFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(validationFraction), "The validation fraction must be in (0, 1).");
        if (trained != null && trained.Length != tokens.Length) throw new ArgumentException("The trained mask must have one entry per token.", nameof(trained));
        int validation = (int)(tokens.Length * validationFraction);
        Train = tokens[..^validation];
        Validation = tokens[^validation..];
        TrainMask = trained?[..^validation];
        ValidationMask = trained?[^validation..];
        VocabSize = vocabSize;
    }

    /// <summary>The training tokens (the first part of the corpus).</summary>
    public int[] Train { get; }
    /// <summary>The validation tokens (the last part of the corpus).</summary>
    public int[] Validation { get; }
    /// <summary>Per token of <see cref="Train"/>: whether it is a target; null when every token is.</summary>
    public bool[]? TrainMask { get; }
    /// <summary>Per token of <see cref="Validation"/>: whether it is a target; null when every token is.</summary>
    public bool[]? ValidationMask { get; }
    /// <summary>The tokenizer's vocabulary size: every id is below it.</summary>
    public int VocabSize { get; }

    /// <summary>Checks both splits can hold at least one window of <paramref name="seq"/>+1 tokens.</summary>
    public void RequireWindows(int seq)
    {
        if (Train.Length < seq + 1 || Validation.Length < seq + 1)
            throw new TensorLiteException($"The data has too few tokens ({Train.Length} train, {Validation.Length} validation) for sequences of {seq}; use more text or a shorter --seq.");
    }

    /// <summary>A batch of random windows: inputs [batch, seq] and the next-token targets [batch, seq] (int32;
    /// <see cref="IgnoreIndex"/> where the mask says the next token is context).</summary>
    public (Tensor Inputs, Tensor Targets) SampleBatch(bool validation, int batch, int seq, Generator generator, IBackend? backend = null)
    {
        var source = validation ? Validation : Train;
        RequireWindows(seq);
        var starts = new int[batch];
        for (int b = 0; b < batch; b++) starts[b] = generator.NextInt(source.Length - seq);
        var (inputs, targets, _) = Windows(validation, starts, seq, backend);
        return (inputs, targets);
    }

    /// <summary>How many consecutive, non-overlapping windows of <paramref name="seq"/> tokens (each with its next-token
    /// targets) the validation split holds: together they are the whole split, the same for every seed.</summary>
    public int ValidationWindowCount(int seq) => (Validation.Length - 1) / seq;

    /// <summary>Validation windows <paramref name="first"/> .. <paramref name="first"/> + <paramref name="count"/> − 1
    /// of <see cref="ValidationWindowCount"/> as one batch, with the number of its targets that carry loss (the weight
    /// of its mean loss in the split's mean).</summary>
    public (Tensor Inputs, Tensor Targets, int TargetCount) ValidationWindows(int first, int count, int seq, IBackend? backend = null)
    {
        RequireWindows(seq);
        if (first < 0 || count <= 0 || first + count > ValidationWindowCount(seq))
            throw new ArgumentOutOfRangeException(nameof(count), $"Windows {first}..{first + count - 1} are outside the {ValidationWindowCount(seq)} validation windows of {seq} tokens.");
        return Windows(true, Enumerable.Range(first, count).Select(w => w * seq).ToArray(), seq, backend);
    }

    private (Tensor Inputs, Tensor Targets, int TargetCount) Windows(bool validation, int[] starts, int seq, IBackend? backend)
    {
        var source = validation ? Validation : Train;
        var mask = validation ? ValidationMask : TrainMask;
        int batch = starts.Length, targetCount = batch * seq;
        var inputs = new int[batch * seq];
        var targets = new int[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(source, starts[b], inputs, b * seq, seq);
            Array.Copy(source, starts[b] + 1, targets, b * seq, seq);
            if (mask != null)
                for (int j = 0; j < seq; j++)
                    if (!mask[starts[b] + 1 + j]) { targets[b * seq + j] = IgnoreIndex; targetCount--; }
        }
        return (Tensor.FromSpan<int>(inputs, [batch, seq], DType.Int32, backend),
                Tensor.FromSpan<int>(targets, [batch, seq], DType.Int32, backend), targetCount);
    }
}
