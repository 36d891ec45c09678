namespace TensorLite.Optim.Projected;

/// <summary>The precision of the optimizer's moments, dense and inner alike.</summary>
public enum OptimizerStates
{
    /// <summary>float32 AdamW moments (<see cref="AdamWInner"/>).</summary>
    Fp32,
    /// <summary>Block-wise 8-bit AdamW moments (<see cref="AdamW8bitInner"/>).</summary>
    EightBit,
    /// <summary>Adafactor's factored second moment (<see cref="AdafactorInner"/>).</summary>
    Factored,
}
