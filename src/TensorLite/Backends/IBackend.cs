namespace TensorLite;

/// <summary>Element-wise functions of one tensor. Parameters p0/p1 are documented per member.</summary>
public enum UnaryOp
{
    /// <summary>−x.</summary>
    Neg,
    /// <summary>eˣ.</summary>
    Exp,
    /// <summary>ln x.</summary>
    Log,
    /// <summary>√x.</summary>
    Sqrt,
    /// <summary>1/√x.</summary>
    Rsqrt,
    /// <summary>|x|.</summary>
    Abs,
    /// <summary>−1, 0 or 1.</summary>
    Sign,
    /// <summary>max(x, 0).</summary>
    Relu,
    /// <summary>x·sigmoid(x).</summary>
    Silu,
    /// <summary>GELU, tanh approximation.</summary>
    Gelu,
    /// <summary>1/(1 + e⁻ˣ).</summary>
    Sigmoid,
    /// <summary>tanh x.</summary>
    Tanh,
    /// <summary>x².</summary>
    Square,
    /// <summary>x^p0.</summary>
    Pow,
    /// <summary>min(max(x, p0), p1).</summary>
    Clamp,
    /// <summary>p0·x + p1 (scalar multiply and add).</summary>
    Affine,
}

/// <summary>Element-wise functions of two (broadcast) tensors. Comparisons yield 1 or 0.</summary>
public enum BinaryOp
{
    /// <summary>a + b.</summary>
    Add,
    /// <summary>a − b.</summary>
    Sub,
    /// <summary>a · b.</summary>
    Mul,
    /// <summary>a / b.</summary>
    Div,
    /// <summary>max(a, b).</summary>
    Maximum,
    /// <summary>min(a, b).</summary>
    Minimum,
    /// <summary>1 where a &gt; b, else 0.</summary>
    Greater,
    /// <summary>1 where a &lt; b, else 0.</summary>
    Less,
    /// <summary>1 where a = b, else 0.</summary>
    Equal,
}

/// <summary>Reductions along axes.</summary>
public enum ReduceOp
{
    /// <summary>The sum of the elements.</summary>
    Sum,
    /// <summary>The largest element.</summary>
    Max,
}

/// <summary>
/// The backend seam: everything that touches tensor memory goes through this interface, so models and
/// optimizers never know whether they run on the CPU or a GPU. Ops validate shapes and allocate their
/// outputs before calling in; a backend only computes. Unless a member says otherwise, outputs are
/// contiguous float32 tensors of the right shape and inputs are contiguous float32 tensors.
/// The interface is partial: each group of ops declares its kernels in IBackend.X.cs, and every backend implements
/// them in its own X.cs partial file (CpuBackend.X.cs, IlgpuBackend.X.cs, MetaBackend.X.cs). No member has a default
/// body: every backend implements every member (BackendContractTests checks it); a backend without a fused kernel calls
/// <see cref="ReferenceKernels"/> explicitly.
/// </summary>
public partial interface IBackend
{
    /// <summary>A short name (cpu, ilgpu-cuda, meta, ...) for messages and metrics.</summary>
    string Name { get; }

    /// <summary>What computes, in words (shown when a run starts).</summary>
    string Description { get; }

    /// <summary>False for a backend that only counts bytes (the meta backend: nothing is stored, values read back are
    /// zeros), so host work whose only product is values (drawing initial weights) can be skipped.</summary>
    bool ComputesValues { get; }

    /// <summary>Gives the memory its allocator keeps cached for reuse back to the system or device (the meta backend
    /// forgets its simulated cache).</summary>
    void TrimCache();

    /// <summary>Live and peak bytes of this backend's tensors, by category.</summary>
    Memory.MemoryLedger Memory { get; }

    /// <summary>Allocates <paramref name="byteLength"/> bytes of this backend's memory for a tensor (contents undefined), counted in <see cref="Memory"/> under the current category.</summary>
    Storage Allocate(long byteLength);

    /// <summary>Copies a contiguous tensor's bytes to host memory.</summary>
    void CopyToHost(Tensor source, Span<byte> destination);

    /// <summary>Copies host bytes into a contiguous tensor; <paramref name="source"/> holds exactly the tensor's bytes
    /// (an <see cref="ArgumentException"/> otherwise, on every backend).</summary>
    void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination);

    /// <summary>Sets every element of a contiguous tensor (any dtype) to <paramref name="value"/>.</summary>
    void Fill(Tensor destination, double value);

    /// <summary>Copies any strided view into a contiguous tensor of the same shape, converting dtypes.</summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>y = f(x) element-wise for the function <paramref name="op"/>; <paramref name="p0"/> and <paramref name="p1"/> are its parameters where it has any (see <see cref="UnaryOp"/>).</summary>
    void Unary(UnaryOp op, Tensor x, Tensor y, float p0, float p1);

    /// <summary>gx = gy · f'(x), given the forward input x and output y.</summary>
    void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx, float p0, float p1);

    /// <summary>y = a op b, where a and b are float32 views already broadcast to y's shape (zero strides
    /// allowed, any strides).</summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y);

    /// <summary>Reduces contiguous x along one axis into y (x's shape with that axis of size 1).</summary>
    void Reduce(ReduceOp op, Tensor x, int axis, Tensor y);
}
