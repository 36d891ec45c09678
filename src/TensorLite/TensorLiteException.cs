namespace TensorLite;

/// <summary>Base of every error a user of TensorLite can cause; the message is one clear sentence.</summary>
public class TensorLiteException : Exception
{
    /// <summary>An error described by <paramref name="message"/> (one sentence).</summary>
    public TensorLiteException(string message) : base(message) { }
    /// <summary>An error described by <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public TensorLiteException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Operand shapes that an op cannot combine; the message names both shapes.</summary>
public sealed class ShapeMismatchException : TensorLiteException
{
    /// <summary>Shapes described by <paramref name="message"/> do not fit together.</summary>
    public ShapeMismatchException(string message) : base(message) { }
}

/// <summary>An operand of a dtype the op does not accept.</summary>
public sealed class DTypeMismatchException : TensorLiteException
{
    /// <summary>An operand's dtype, described by <paramref name="message"/>, is not accepted.</summary>
    public DTypeMismatchException(string message) : base(message) { }
}
