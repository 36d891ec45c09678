namespace TensorLite.Backends.Meta;

// The members of IBackend.Nn.cs: nothing is computed.
internal sealed partial class MetaBackend
{
    public void Softmax(Tensor x, Tensor y, int axis, bool log) { }
    public void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log) { }
    public int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss) => Math.Max(1, targets.Numel);
    public void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor gLoss, int count, Tensor gLogits) { }
    public int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits) => Math.Max(1, targets.Numel);
    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd) { }
    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight) { }
    public void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse) { }
    public void SwiGlu(Tensor gate, Tensor up, Tensor y) { }
    public void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp) { }
}
