namespace TensorLite.Cli;

/// <summary>Turns user-caused errors into one line on stderr and a non-zero exit code, without a stack trace.</summary>
public static class CliErrors
{
    public const int UserError = 2;

    /// <summary>Exit code of a failure that is not the user's (a bug): still one line, never a stack trace.</summary>
    public const int InternalError = 70;

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is TensorLiteException or ArgumentException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return UserError;
        }
        catch (OutOfMemoryException)
        {
            Console.Error.WriteLine("error: out of memory; check the model size and --batch/--seq with `tensorlite plan`.");
            return UserError;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: internal error ({e.GetType().Name}): {OneLine(e.Message)}");
            return InternalError;
        }
    }

    /// <summary>The message on one line (file names and parser messages may carry line breaks).</summary>
    public static string OneLine(string message) => string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries));

    /// <summary>Refuses a float flag that is NaN or infinite (or below <paramref name="min"/>).</summary>
    public static float Finite(float value, string flag, float min = float.NegativeInfinity)
    {
        if (!float.IsFinite(value) || value < min)
            throw new ArgumentException(min == float.NegativeInfinity ? $"{flag} must be a finite number, got {value}." : $"{flag} must be a finite number of at least {min}, got {value}.");
        return value;
    }
}
