namespace TensorLite.Optim.Projected;

/// <summary>What happens to the part of the gradient the projection leaves out, G − back(R).</summary>
public enum ResidualRule
{
    /// <summary>Discard it (GaLore, OSD, GRASS).</summary>
    Drop,
    /// <summary>Add ResidualScale·sign(G − back(R)) to the update (FRUGAL's state-free SignSGD).</summary>
    SignSgd,
    /// <summary>Add ResidualScale·(G − back(R)) to the update (FRUGAL with SGD).</summary>
    Sgd,
}
