namespace TensorLite.Autograd;

/// <summary>Whether ops record the autograd graph on this thread. Use <see cref="NoGrad"/> to switch it off.</summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    /// <summary>Whether ops on this thread record the autograd graph (false inside <see cref="NoGrad"/>).</summary>
    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Within the returned scope no op records history (inference, optimizer updates).</summary>
    public static NoGradScope NoGrad() => new(disable: true);

    /// <summary>Re-enables recording inside a NoGrad region (used by activation checkpointing).</summary>
    internal static NoGradScope EnableGrad() => new(disable: false);

    /// <summary>Restores the previous recording mode when disposed (from <see cref="NoGrad"/>).</summary>
    public readonly struct NoGradScope : IDisposable
    {
        private readonly int _savedDepth;

        internal NoGradScope(bool disable)
        {
            _savedDepth = _disabledDepth;
            _disabledDepth = disable ? _disabledDepth + 1 : 0;
        }

        /// <summary>Restores the recording mode that was active when the scope began.</summary>
        public void Dispose() => _disabledDepth = _savedDepth;
    }
}
