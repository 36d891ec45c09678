using System.Text;

namespace TensorLite.IO;

/// <summary>
/// Reading files a user or another process may have tampered with: regular files only (a FIFO, a device or
/// <c>/proc</c> entry reports length 0 and is refused before it is opened, so reading never blocks or runs forever),
/// optionally no symbolic links, and never more bytes than the file's size or a stated limit.
/// </summary>
public static class SafeFile
{
    /// <summary>The file at <paramref name="path"/> if it is a non-empty regular file no longer than
    /// <paramref name="maxBytes"/>; otherwise one clear sentence naming <paramref name="what"/>.</summary>
    public static FileInfo RequireRegular(string path, string what, long maxBytes = long.MaxValue, bool allowSymlink = true)
    {
        var info = new FileInfo(path);
        if (Directory.Exists(path)) throw new TensorLiteException($"{what} '{path}' is a directory, not a file.");
        if (!info.Exists) throw new FileNotFoundException($"{what} '{path}' does not exist.", path);
        if (info.LinkTarget != null)
        {
            if (!allowSymlink) throw new TensorLiteException($"{what} '{path}' is a symbolic link; a run folder holds regular files only.");
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            if (target is not FileInfo { Exists: true } file) throw new TensorLiteException($"{what} '{path}' is a symbolic link to nothing readable.");
            info = file;
        }
        // FIFOs, character and block devices and procfs entries report a size of 0: opening or reading them could block
        // forever or never end, so they are refused here, together with empty files.
        if (info.Length == 0) throw new TensorLiteException($"{what} '{path}' is empty or not a regular file.");
        if (info.Length > maxBytes)
            throw new TensorLiteException($"{what} '{path}' is {info.Length:N0} bytes, over the limit of {maxBytes:N0} bytes.");
        return info;
    }

    /// <summary>All bytes of a regular file (see <see cref="RequireRegular"/>), reading no more than its size.</summary>
    public static byte[] ReadAllBytes(string path, string what, long maxBytes, bool allowSymlink = true)
    {
        var info = RequireRegular(path, what, maxBytes, allowSymlink);
        using var stream = new FileStream(info.FullName, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        var bytes = new byte[info.Length];
        int read = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        if (read != bytes.Length) throw new TensorLiteException($"{what} '{path}' shrank while it was read; try again.");
        return bytes;
    }

    /// <summary>A small UTF-8 text file (a run's JSON files, <c>latest</c>), refusing invalid UTF-8.</summary>
    public static string ReadAllText(string path, string what, long maxBytes, bool allowSymlink = true)
    {
        var bytes = ReadAllBytes(path, what, maxBytes, allowSymlink);
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new TensorLiteException($"{what} '{path}' is not valid UTF-8 text.");
        }
    }
}
