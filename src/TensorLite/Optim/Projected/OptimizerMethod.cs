namespace TensorLite.Optim.Projected;

/// <summary>The optimizers a training run can name; each projected one is a preset of <see cref="ProjectedOptions"/>.</summary>
public enum OptimizerMethod
{
    /// <summary>Dense AdamW (the identity projection when its states are not float32).</summary>
    AdamW,
    GaLore,
    /// <summary>Online Subspace Descent.</summary>
    Osd,
    Grass,
    Frugal,
    /// <summary>The LoRA baseline (adapters on the projected matrices, base frozen; <see cref="Lora.LoraOptimizer"/>).</summary>
    Lora,
    /// <summary>LSP_Offload's learned sparse two-sided projection (<see cref="ProjectedOptions.Lsp"/>).</summary>
    Lsp,
}
