namespace TensorLite.Optim.Projected;

/// <summary>The optimizers a training run can name; each projected one is a preset of <see cref="ProjectedOptions"/>.</summary>
public enum OptimizerMethod
{
    /// <summary>Dense AdamW (the identity projection when its states are not float32).</summary>
    AdamW,
    /// <summary>GaLore: the gradient projected on its top singular vectors, refreshed every update gap.</summary>
    GaLore,
    /// <summary>Online Subspace Descent.</summary>
    Osd,
    /// <summary>GRASS: a sparse projection onto selected rows or columns of the gradient.</summary>
    Grass,
    /// <summary>FRUGAL: AdamW on a state-full subspace, a state-free rule (signSGD by default) on the rest of the
    /// gradient.</summary>
    Frugal,
    /// <summary>The LoRA baseline (adapters on the projected matrices, base frozen; <see cref="Lora.LoraOptimizer"/>).</summary>
    Lora,
    /// <summary>LSP_Offload's learned sparse two-sided projection (<see cref="ProjectedOptions.Lsp"/>).</summary>
    Lsp,
}
