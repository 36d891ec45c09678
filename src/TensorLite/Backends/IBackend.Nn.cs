namespace TensorLite;

// Fused neural-network kernels: softmax, cross-entropy, RMSNorm, rotary embeddings and the SwiGLU gate.
// Inputs are contiguous float32 tensors; apart from softmax (any axis) the kernels work row-wise on the
// last dimension (SwiGLU is element-wise). The ops in Ops/Softmax.cs, Ops/CrossEntropy.cs, Ops/RmsNorm.cs,
// Ops/Rope.cs and Ops/SwiGlu.cs validate
// shapes, make inputs contiguous and allocate outputs before calling in.
public partial interface IBackend
{
    /// <summary>y = softmax(x) (or log_softmax(x) when <paramref name="log"/>) along <paramref name="axis"/> of
    /// contiguous x; y has x's shape.</summary>
    void Softmax(Tensor x, Tensor y, int axis, bool log);

    /// <summary>Gradient of <see cref="Softmax"/> from its output y and output gradient gy (all contiguous):
    /// softmax: gx = y·(gy − Σgy·y); log_softmax: gx = gy − exp(y)·Σgy, sums along <paramref name="axis"/>.</summary>
    void SoftmaxBackward(Tensor y, Tensor gy, Tensor gx, int axis, bool log);

    /// <summary>
    /// Cross-entropy of logits [N, V] (any shape whose last dim is V) against integer targets (int32 or
    /// int64, N elements). Saves per row the max logit into <paramref name="rowMax"/> [N] and
    /// log Σ exp(x − max) into <paramref name="rowLogSum"/> [N] (both 0 for ignored rows), and writes the
    /// mean loss over non-ignored rows into the scalar <paramref name="loss"/> (0 when every row is
    /// ignored). Returns the number of non-ignored rows. A target that is neither
    /// <paramref name="ignoreIndex"/> nor in [0, V) raises an <see cref="ArgumentOutOfRangeException"/>.
    /// </summary>
    int CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor loss);

    /// <summary>gLogits = (softmax(logits) − onehot(target))·gLoss/count on non-ignored rows, 0 elsewhere,
    /// with softmax = exp((x − rowMax) − rowLogSum). <paramref name="gLoss"/> is the scalar output gradient;
    /// <paramref name="count"/> the value <see cref="CrossEntropy"/> returned.</summary>
    void CrossEntropyBackward(Tensor logits, Tensor targets, int ignoreIndex, Tensor rowMax, Tensor rowLogSum, Tensor gLoss, int count, Tensor gLogits);

    /// <summary>
    /// <see cref="CrossEntropy"/> and, in the same call, the gradient of the mean loss: gLogits = (softmax(logits) −
    /// onehot(target))/count on non-ignored rows, 0 elsewhere (what <see cref="CrossEntropyBackward"/> gives for
    /// gLoss = 1). Returns the count. A backend that computes both in one pass exponentiates each logit once instead of
    /// again in backward; <see cref="ReferenceKernels.CrossEntropyWithGradient"/> runs the two kernels.
    /// </summary>
    int CrossEntropyWithGradient(Tensor logits, Tensor targets, int ignoreIndex, Tensor loss, Tensor gLogits);

    /// <summary>y = x·rstd·weight with rstd = 1/sqrt(mean(x²) + eps) per row of the last dim (D);
    /// weight is [D], <paramref name="rstd"/> receives one value per row.</summary>
    void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd);

    /// <summary>Gradients of <see cref="RmsNorm"/> for x (into gx) and, when not null, the weight (into
    /// <paramref name="gWeight"/>, summed over rows).</summary>
    void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gy, Tensor? gx, Tensor? gWeight);

    /// <summary>
    /// Rotary position embedding in the rotate_half convention: x is [..., seq, headDim], cos and sin are
    /// [seq, headDim/2] tables; for each pair (i, i+h), h = headDim/2:
    /// y_i = x_i·cos − x_{i+h}·sin, y_{i+h} = x_{i+h}·cos + x_i·sin. With <paramref name="inverse"/> the
    /// rotation runs backwards (sin negated), which is the gradient of the forward rotation.
    /// </summary>
    void Rope(Tensor x, Tensor cos, Tensor sin, Tensor y, bool inverse);

    /// <summary>The SwiGLU gate of LLaMA's MLP, element-wise over contiguous tensors of one shape:
    /// y = silu(gate)·up with silu(g) = g·σ(g). Unlike the other members here, the operands may be float32, bfloat16 or
    /// float16 (all of one dtype): the kernel widens half-precision elements as it reads them, computes in float32
    /// (silu first, then the product) and rounds the result once, so no float32 copy of a whole tensor is made.</summary>
    void SwiGlu(Tensor gate, Tensor up, Tensor y);

    /// <summary>Gradients of <see cref="SwiGlu"/> from the output gradient gy, recomputing silu from gate:
    /// gGate = (σ·(1 − silu) + silu)·(gy·up) and gUp = gy·silu, in float32, each rounded once into the operands' dtype.
    /// Either output may be null (not wanted).</summary>
    void SwiGluBackward(Tensor gate, Tensor up, Tensor gy, Tensor? gGate, Tensor? gUp);
}
