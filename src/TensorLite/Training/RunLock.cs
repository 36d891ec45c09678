using System.Runtime.InteropServices;
using System.Text;

namespace TensorLite.Training;

/// <summary>A run folder is already being written by another process (or another trainer in this one).</summary>
public sealed class RunFolderInUseException(string message) : TensorLiteException(message);

/// <summary>
/// One writer per run folder: an exclusive OS lock on <c>RUN/.lock</c> (flock on Linux and macOS, a share-none handle
/// on Windows), held while a trainer may write the folder. The OS drops it when the process dies, however it dies, so a
/// <c>kill -9</c> leaves no stale lock. The holder writes its process id into the file so the refused process can say
/// who holds it.
/// </summary>
internal sealed class RunLock : IDisposable
{
    public const string FileName = ".lock";

    private FileStream? _stream;

    private RunLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock of <paramref name="runDir"/> (which must exist), or throws naming the holder.</summary>
    public static RunLock Acquire(string runDir)
    {
        string path = Path.Combine(runDir, FileName);
        if (Directory.Exists(path) || new FileInfo(path).LinkTarget != null)
            throw new TensorLiteException($"'{path}' is not a regular file; remove it (it is the run folder's lock).");
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && !IsNoSpace(e))
        {
            string holder = ReadHolder(path) is int pid ? $"process {pid}" : "another process";
            throw new RunFolderInUseException($"Run folder '{runDir}' is in use by {holder} (another train or --resume); " +
                                              "wait for it to finish or stop it, then try again.");
        }
        try
        {
            stream.SetLength(0);
            stream.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            stream.Flush();
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new RunLock(stream);
    }

    private static bool IsNoSpace(IOException e) => e.HResult == IO.FaultPoints.NoSpaceHResult;

    public void Dispose()
    {
        _stream?.Dispose();
        _stream = null;
    }

    /// <summary>The pid written into a lock file that another process holds. .NET's own readers would take a shared
    /// flock and be refused too, so on Linux the file is read through libc directly.</summary>
    private static int? ReadHolder(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            int fd = Open(path, 0 /* O_RDONLY */);
            if (fd < 0) return null;
            try
            {
                var buffer = new byte[32];
                long n = Read(fd, buffer, buffer.Length);
                if (n <= 0) return null;
                return int.TryParse(Encoding.ASCII.GetString(buffer, 0, (int)n).Trim(), out int pid) && pid > 0 ? pid : null;
            }
            finally
            {
                Close(fd);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport("libc.so.6", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc.so.6", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, byte[] buffer, nint count);

    [DllImport("libc.so.6", EntryPoint = "close")]
    private static extern int Close(int fd);
}
