using System.Security.Cryptography;
using System.Text.Json;
using TensorLite.IO;

namespace TensorLite.Training;

/// <summary>
/// data.json in a run folder: which token file holds the run's tokenized --data (and its SHA-256), and a fingerprint
/// (full path, size, SHA-256) of each file the tokens came from. With it, eval, generate and resume read the stored
/// tokens instead of the original files, and a resume can tell the user that a file changed since the run started.
/// </summary>
internal sealed record DataManifest(string TokensFile, long TokensBytes, string TokensSha256, DataManifest.Source[] Sources)
{
    public const string FileName = "data.json";

    /// <summary>data.json is small; a larger file is not one.</summary>
    private const long MaxBytes = 16 << 20;

    /// <summary>One --data file as it was when the run tokenized it.</summary>
    public sealed record Source(string Path, long Bytes, string Sha256)
    {
        /// <summary>Whether the file still exists but no longer holds what the run tokenized (a moved, deleted or
        /// unreadable file is not a change: the run has its tokens).</summary>
        public bool Changed()
        {
            var info = new FileInfo(Path);
            if (!info.Exists) return false;
            try
            {
                return info.Length != Bytes || FileSha256(info) != Sha256;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string Sha256(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    private static string FileSha256(FileInfo file)
    {
        using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    /// <summary>Whether <paramref name="tokensPath"/> is the token file this manifest recorded (its size and SHA-256).</summary>
    public bool Matches(string tokensPath)
    {
        var info = new FileInfo(tokensPath);
        return info.Exists && info.LinkTarget == null && info.Length == TokensBytes && FileSha256(info) == TokensSha256;
    }

    /// <summary>The run folder's data.json, or null when it has none (a run started before data.json existed, or one
    /// on the synthetic language).</summary>
    public static DataManifest? Read(string runDir)
    {
        string path = System.IO.Path.Combine(runDir, FileName);
        if (!File.Exists(path) && new FileInfo(path).LinkTarget == null) return null;
        string text = SafeFile.ReadAllText(path, "Data manifest", MaxBytes, allowSymlink: false);
        DataManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<DataManifest>(text);
        }
        catch (JsonException e)
        {
            throw new TensorLiteException($"'{path}' is not a valid data manifest: {Models.LlamaConfig.Where(e)}.");
        }
        // The token file is named, not pointed to: it must be a plain file name inside the run folder.
        if (manifest is not { TokensFile: { } file, TokensSha256: not null, Sources: { Length: > 0 } sources } ||
            file != System.IO.Path.GetFileName(file) || !file.StartsWith("tokens-", StringComparison.Ordinal) ||
            sources.Any(s => s?.Path == null || s.Sha256 == null))
            throw new TensorLiteException($"'{path}' is not a valid data manifest (it must name a tokens-*.bin file in the run folder and the files it came from).");
        return manifest;
    }

    /// <summary>Writes data.json for the token file <paramref name="tokensPath"/> (already written) and its sources.</summary>
    public static void Write(string runDir, string tokensPath, Source[] sources)
    {
        var info = new FileInfo(tokensPath);
        var manifest = new DataManifest(info.Name, info.Length, FileSha256(info), sources);
        AtomicFile.Write(System.IO.Path.Combine(runDir, FileName), s => JsonSerializer.Serialize(s, manifest, Json));
    }
}
