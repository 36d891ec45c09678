using System.Text;

namespace TensorLite.Data;

/// <summary>
/// The embedded default dataset: text from a seeded, sparse first-order Markov source over invented
/// words. Because the source is known, so is its entropy rate, and a training run can print the loss
/// floor beside the loss it reached.
///
/// Construction (all from one seed): <c>WordCount</c> distinct lower-case words of 2–7 letters built
/// from consonant–vowel syllables; each word gets <c>SuccessorsPerWord</c> distinct successors (always
/// including the next word in index order, which makes the chain irreducible) with Zipf-like weights
/// 1, 1/2, 1/3, … normalized. Text is the word sequence joined by single spaces.
///
/// Entropy: the byte stream is an invertible function of the word stream (spaces delimit words), so
/// its entropy rate per byte is H_w / L, where H_w = Σ_i π_i H(P[i, ·]) is the chain's entropy rate
/// per word (π the stationary distribution) and L = Σ_i π_i (|w_i| + 1) the mean bytes per word
/// including its space (renewal argument). That is the floor of the byte-level cross-entropy.
/// </summary>
public sealed class SyntheticLanguage
{
    private const string Consonants = "bdfghklmnprstvz";
    private const string Vowels = "aeiou";

    /// <summary>Builds the language of <paramref name="seed"/>: <paramref name="wordCount"/> invented words, each followed by one of <paramref name="successorsPerWord"/> successors with Zipf weights.</summary>
    public SyntheticLanguage(ulong seed = 1234, int wordCount = 160, int successorsPerWord = 4)
    {
        if (wordCount < 2) throw new ArgumentOutOfRangeException(nameof(wordCount), "A language needs at least two words.");
        if (successorsPerWord < 1 || successorsPerWord > wordCount)
            throw new ArgumentOutOfRangeException(nameof(successorsPerWord), $"Successors per word must be in [1, {wordCount}].");
        Seed = seed;
        var gen = new Generator(seed);
        Words = MakeWords(gen, wordCount);
        Successors = new int[wordCount][];
        Probabilities = new double[wordCount][];
        for (int i = 0; i < wordCount; i++)
        {
            var next = new List<int> { (i + 1) % wordCount };
            while (next.Count < successorsPerWord)
            {
                int candidate = gen.NextInt(wordCount);
                if (!next.Contains(candidate)) next.Add(candidate);
            }
            // Shuffle so the guaranteed successor does not always get the largest weight.
            for (int k = next.Count - 1; k > 0; k--)
            {
                int j = gen.NextInt(k + 1);
                (next[k], next[j]) = (next[j], next[k]);
            }
            double norm = Enumerable.Range(1, successorsPerWord).Sum(r => 1.0 / r);
            Successors[i] = next.ToArray();
            Probabilities[i] = Enumerable.Range(1, successorsPerWord).Select(r => 1.0 / r / norm).ToArray();
        }
        Stationary = StationaryDistribution();
        EntropyPerWordNats = Enumerable.Range(0, wordCount)
            .Sum(i => Stationary[i] * -Probabilities[i].Sum(p => p * Math.Log(p)));
        MeanBytesPerWord = Enumerable.Range(0, wordCount).Sum(i => Stationary[i] * (Words[i].Length + 1));
    }

    /// <summary>The seed the words and the chain were drawn from.</summary>
    public ulong Seed { get; }
    /// <summary>The invented words, by index.</summary>
    public string[] Words { get; }
    /// <summary>For each word, the indices of the words that may follow it.</summary>
    public int[][] Successors { get; }
    /// <summary>For each word, the probabilities of its successors, in the order of <see cref="Successors"/>.</summary>
    public double[][] Probabilities { get; }
    /// <summary>The chain's stationary distribution over words.</summary>
    public double[] Stationary { get; }
    /// <summary>The entropy rate of the word chain, in nats per word.</summary>
    public double EntropyPerWordNats { get; }
    /// <summary>The mean length of a word with its space, in bytes, under the stationary distribution.</summary>
    public double MeanBytesPerWord { get; }

    /// <summary>The entropy rate of the byte stream in nats per byte: the cross-entropy floor.</summary>
    public double EntropyPerByteNats => EntropyPerWordNats / MeanBytesPerWord;

    /// <summary>Generates about <paramref name="byteCount"/> bytes of text (whole words) from the stationary start.</summary>
    public string Generate(int byteCount, ulong streamSeed)
    {
        var gen = new Generator(streamSeed);
        var sb = new StringBuilder(byteCount + 16);
        int word = Sample(Stationary, gen);
        while (sb.Length < byteCount)
        {
            sb.Append(Words[word]).Append(' ');
            word = Successors[word][Sample(Probabilities[word], gen)];
        }
        return sb.ToString();
    }

    private static int Sample(double[] probabilities, Generator gen)
    {
        double u = gen.NextDouble(), acc = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            acc += probabilities[i];
            if (u < acc) return i;
        }
        return probabilities.Length - 1;
    }

    private static string[] MakeWords(Generator gen, int count)
    {
        var words = new HashSet<string>(StringComparer.Ordinal);
        var ordered = new List<string>();
        while (ordered.Count < count)
        {
            int letters = 2 + gen.NextInt(6);
            var sb = new StringBuilder(letters);
            for (int k = 0; k < letters; k++)
                sb.Append(k % 2 == 0 ? Consonants[gen.NextInt(Consonants.Length)] : Vowels[gen.NextInt(Vowels.Length)]);
            var w = sb.ToString();
            if (words.Add(w)) ordered.Add(w);
        }
        return ordered.ToArray();
    }

    /// <summary>π by power iteration on the averaged chain ½(I + P), which converges for any irreducible chain.</summary>
    private double[] StationaryDistribution()
    {
        int n = Words.Length;
        var pi = Enumerable.Repeat(1.0 / n, n).ToArray();
        var next = new double[n];
        for (int iter = 0; iter < 100_000; iter++)
        {
            for (int i = 0; i < n; i++) next[i] = 0.5 * pi[i];
            for (int i = 0; i < n; i++)
                for (int k = 0; k < Successors[i].Length; k++)
                    next[Successors[i][k]] += 0.5 * pi[i] * Probabilities[i][k];
            double change = 0;
            for (int i = 0; i < n; i++) change += Math.Abs(next[i] - pi[i]);
            (pi, next) = (next, pi);
            if (change < 1e-14) break;
        }
        return pi;
    }
}
