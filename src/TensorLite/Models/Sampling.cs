namespace TensorLite.Models;

/// <summary>Autoregressive sampling with temperature and top-k.</summary>
public static class Sampling
{
    /// <summary>Extends <paramref name="prompt"/> by <paramref name="newTokens"/> sampled tokens, attending to at most the
    /// last <paramref name="context"/> tokens. A key/value cache (<see cref="KvCache"/>) computes each new token from the
    /// cached positions; once the window is full, each step rebuilds the cache from the last context tokens, so every
    /// token sees the same window as a full recomputation would. Temperature 0 means greedy. Generation ends early after a
    /// token of <paramref name="stopTokens"/> (a model's end-of-sequence ids), which is kept as the last token.</summary>
    public static int[] Generate(LlamaModel model, int[] prompt, int newTokens, float temperature, int topK, Generator generator, int? context = null,
        IReadOnlySet<int>? stopTokens = null)
    {
        if (prompt.Length == 0) throw new ArgumentException("The prompt must contain at least one token.");
        if (temperature < 0) throw new ArgumentException($"--temperature must be non-negative, got {temperature}.");
        if (topK < 0) throw new ArgumentException($"--top-k must be non-negative (0 = no limit), got {topK}.");
        int window = Math.Min(context ?? model.Config.MaxPositionEmbeddings, model.Config.MaxPositionEmbeddings);
        var tokens = new List<int>(prompt);
        using var cache = new KvCache(model);
        for (int i = 0; i < newTokens; i++)
        {
            using var scope = TensorScope.Enter();
            int[] feed;
            if (cache.Length == 0 || cache.Length + 1 > window)
            {
                cache.Dispose();
                int start = Math.Max(0, tokens.Count - window);
                feed = tokens.GetRange(start, tokens.Count - start).ToArray();
            }
            else
                feed = [tokens[^1]];
            var logits = model.ForwardCached(Tensor.FromArray(feed, 1, feed.Length), cache);
            int next = Pick(logits.ToArray(), temperature, topK, generator);
            tokens.Add(next);
            if (stopTokens?.Contains(next) == true) break;
        }
        return tokens.ToArray();
    }

    private static int Pick(float[] logits, float temperature, int topK, Generator generator)
    {
        if (temperature == 0) return Array.IndexOf(logits, logits.Max());
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        if (topK > 0 && topK < order.Length) order = order[..topK];
        double max = logits[order[0]];
        var weights = order.Select(i => Math.Exp((logits[i] - max) / temperature)).ToArray();
        double u = generator.NextDouble() * weights.Sum(), acc = 0;
        for (int j = 0; j < order.Length; j++)
        {
            acc += weights[j];
            if (u < acc) return order[j];
        }
        return order[^1];
    }
}
