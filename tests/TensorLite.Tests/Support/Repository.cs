namespace TensorLite.Tests.Support;

/// <summary>The checkout the tests were built from, for tests that read its scripts and sources.</summary>
internal static class Repository
{
    /// <summary>The folder holding TensorLite.sln, found above the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TensorLite.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"No TensorLite.sln above {AppContext.BaseDirectory}.");
    }
}
