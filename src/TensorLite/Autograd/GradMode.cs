namespace TensorLite.Autograd;

/// <summary>Whether ops record the autograd graph on this thread. Use <see cref="NoGrad"/> to switch it off.</summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Within the returned scope no op records history (inference, optimizer updates).</summary>
    public static NoGradScope NoGrad() => new(disable: true);

    /// <summary>Re-enables recording inside a NoGrad region (used by activation checkpointing).</summary>
    internal static NoGradScope EnableGrad() => new(disable: false);

    public readonly struct NoGradScope : IDisposable
    {
        private readonly int _savedDepth;

        internal NoGradScope(bool disable)
        {
            _savedDepth = _disabledDepth;
            _disabledDepth = disable ? _disabledDepth + 1 : 0;
        }

        public void Dispose() => _disabledDepth = _savedDepth;
    }
}
