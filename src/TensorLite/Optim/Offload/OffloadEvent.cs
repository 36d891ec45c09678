namespace TensorLite.Optim.Offload;

/// <summary>One event of an offloaded step's timeline: the parameter, the lane, and its start and end in seconds
/// from the start of the step.</summary>
public readonly record struct OffloadEvent(string Name, OffloadLane Lane, double Start, double End);
