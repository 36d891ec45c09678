namespace TensorLite.Optim.Projected;

/// <summary>A projector whose own step size follows the main learning-rate schedule (OSD's online PCA: the reference sets
/// its AdamW's lr to (1/T)·lr_t/lr_peak at every step). The optimizer sets the ratio before each refresh.</summary>
public interface IFollowsLearningRateSchedule
{
    /// <summary>lr_t / lr_peak of the current step.</summary>
    float ScheduleRatio { set; }
}
