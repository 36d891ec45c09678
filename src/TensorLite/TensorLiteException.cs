namespace TensorLite;

/// <summary>Base of every error a user of TensorLite can cause; the message is one clear sentence.</summary>
public class TensorLiteException : Exception
{
    public TensorLiteException(string message) : base(message) { }
    public TensorLiteException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Operand shapes that an op cannot combine; the message names both shapes.</summary>
public sealed class ShapeMismatchException : TensorLiteException
{
    public ShapeMismatchException(string message) : base(message) { }
}

/// <summary>An operand of a dtype the op does not accept.</summary>
public sealed class DTypeMismatchException : TensorLiteException
{
    public DTypeMismatchException(string message) : base(message) { }
}
