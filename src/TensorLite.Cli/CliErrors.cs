namespace TensorLite.Cli;

/// <summary>Turns user-caused errors into one line on stderr and a non-zero exit code, without a stack trace.</summary>
public static class CliErrors
{
    public const int UserError = 2;

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is TensorLiteException or ArgumentException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return UserError;
        }
    }
}
