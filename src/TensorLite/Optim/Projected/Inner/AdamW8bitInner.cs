using TensorLite.Autograd;
using TensorLite.Numerics;

namespace TensorLite.Optim.Projected;

/// <summary>
/// AdamW with 8-bit moments (Dettmers et al. 2022, arXiv:2110.02861): m and v are stored as one byte per element,
/// block-wise quantized with the dynamic maps of <see cref="BlockwiseQuantizer"/> (m signed, v unsigned, blocks of
/// <see cref="BlockSize"/> elements — 2048 unless chosen — with one float32 absmax per block). Each step dequantizes, updates in float32, computes the direction from the
/// float32 moments and requantizes, through the backend kernel <see cref="IBackend.AdamDirection8bit"/>.
/// </summary>
/// <remarks>
/// As bitsandbytes does, tensors with fewer than <see cref="MinQuantizedNumel"/> elements (norms, biases, small
/// projected R) keep float32 moments (exactly <see cref="AdamWInner"/>'s state): they cost little, and a block of a few
/// elements gains nothing from quantization. State bytes: 2·numel + 8·ceil(numel/blockSize) for a quantized tensor,
/// 8·numel below the threshold.
/// </remarks>
public sealed class AdamW8bitInner : IInnerOptimizer
{
    /// <summary>bitsandbytes' default threshold (its min_8bit_size).</summary>
    public const int DefaultMinQuantizedNumel = 4096;

    private readonly AdamWInner _fp32;

    /// <param name="beta1">Adam's β1.</param>
    /// <param name="beta2">Adam's β2.</param>
    /// <param name="eps">Adam's ε.</param>
    /// <param name="minQuantizedNumel">Tensors with fewer elements keep float32 moments; 0 quantizes everything.</param>
    /// <param name="blockSize">Elements per quantization block (<see cref="BlockwiseQuantizer.CheckBlockSize"/>).</param>
    public AdamW8bitInner(float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, int minQuantizedNumel = DefaultMinQuantizedNumel,
        int blockSize = BlockwiseQuantizer.DefaultBlockSize)
    {
        _fp32 = new AdamWInner(beta1, beta2, eps);
        if (minQuantizedNumel < 0) throw new ArgumentOutOfRangeException(nameof(minQuantizedNumel), "The 8-bit size threshold must be non-negative.");
        MinQuantizedNumel = minQuantizedNumel;
        BlockSize = BlockwiseQuantizer.CheckBlockSize(blockSize);
    }

    /// <summary>β1: the first moment's decay, in [0, 1).</summary>
    public float Beta1 => _fp32.Beta1;
    /// <summary>β2: the second moment's decay, in [0, 1).</summary>
    public float Beta2 => _fp32.Beta2;
    /// <summary>ε: added to √v̂ in the denominator (positive).</summary>
    public float Eps => _fp32.Eps;

    /// <summary>Tensors with fewer elements than this keep float32 moments.</summary>
    public int MinQuantizedNumel { get; }

    /// <summary>Elements per quantization block (one float32 absmax each, per moment).</summary>
    public int BlockSize { get; }

    /// <inheritdoc/>
    public string Name => "adamw8bit";

    /// <summary>Whether a tensor of <paramref name="numel"/> elements gets 8-bit moments.</summary>
    public bool Quantizes(long numel) => numel >= MinQuantizedNumel && numel > 0;

    /// <inheritdoc/>
    public IInnerState CreateState(int[] shape, IBackend backend) =>
        Quantizes(ShapeMath.Numel(shape)) ? new State(this, shape, backend) : _fp32.CreateState(shape, backend);

    /// <inheritdoc/>
    public long PredictStateBytes(ReadOnlySpan<int> shape)
    {
        long numel = ShapeMath.Numel(shape.ToArray());
        return Quantizes(numel) ? 2 * numel + 2L * 4 * BlockwiseQuantizer.BlockCount(numel, BlockSize) : _fp32.PredictStateBytes(shape);
    }

    private sealed class State : IInnerState
    {
        private readonly AdamW8bitInner _owner;
        private readonly int[] _shape;
        private readonly Tensor _mq, _ma, _vq, _va;

        public State(AdamW8bitInner owner, int[] shape, IBackend backend)
        {
            _owner = owner;
            _shape = shape.ToArray();
            int blocks = BlockwiseQuantizer.BlockCount(ShapeMath.Numel(shape), owner.BlockSize);
            _mq = Tensor.Full(shape, BlockwiseQuantizer.SignedZeroCode, DType.UInt8, backend).Persist();
            _vq = Tensor.Full(shape, BlockwiseQuantizer.UnsignedZeroCode, DType.UInt8, backend).Persist();
            _ma = Tensor.Zeros([blocks], DType.Float32, backend).Persist();
            _va = Tensor.Zeros([blocks], DType.Float32, backend).Persist();
        }

        public long StateBytes => _mq.Numel + _vq.Numel + 4L * (_ma.Numel + _va.Numel);

        public void Direction(Tensor grad, Tensor direction, long step) =>
            _mq.Backend.AdamDirection8bit(grad, _mq, _ma, _vq, _va, direction, _owner._fp32.Params(0f, 0f, step), Block);

        private int Block => _owner.BlockSize;

        /// <summary>Ranges start at block boundaries, so each range's blocks are whole blocks of the state.</summary>
        public int RangeGranule => Block;

        public void Apply(Tensor param, Tensor grad, float learningRate, float weightDecay, long step, ParamRounding rounding, long offset = 0)
        {
            long n = param.Numel;
            // A range must cover whole blocks: requantizing part of a block would rewrite the scale of codes outside it.
            if (offset % Block != 0 || ((offset + n) % Block != 0 && offset + n != _mq.Numel))
                throw new ArgumentException($"An 8-bit state is updated in whole blocks of {Block}; [{offset}, {offset + n}) of {_mq.Numel} elements is not.", nameof(offset));
            using var mq = InnerMath.StateRange(_mq, offset, n);
            using var vq = InnerMath.StateRange(_vq, offset, n);
            using var ma = InnerMath.StateRange(_ma, offset / Block, BlockwiseQuantizer.BlockCount(n, Block));
            using var va = InnerMath.StateRange(_va, offset / Block, BlockwiseQuantizer.BlockCount(n, Block));
            using var direction = Tensor.Empty(grad.Shape, DType.Float32, grad.Backend);
            grad.Backend.AdamDirection8bit(grad, mq, ma, vq, va, direction, _owner._fp32.Params(0f, 0f, step), Block);
            param.Backend.ApplyUpdate(param, direction, 1f - learningRate * weightDecay, learningRate, rounding with { FirstIndex = offset });
        }

        public void Reset()
        {
            _mq.Backend.Fill(_mq, BlockwiseQuantizer.SignedZeroCode);
            _vq.Backend.Fill(_vq, BlockwiseQuantizer.UnsignedZeroCode);
            _ma.Backend.Fill(_ma, 0);
            _va.Backend.Fill(_va, 0);
        }

        /// <summary>Dequantizes, applies <see cref="AdamWInner"/>'s change of basis (C·M, (C∘C)·V; transposed for a
        /// right projection) in float32, and requantizes with fresh block maxima.</summary>
        public void ChangeBasis(Tensor change, ProjectionSide side)
        {
            using var noGrad = GradMode.NoGrad();
            var backend = _mq.Backend;
            using var m = Tensor.Empty(_shape, DType.Float32, backend);
            using var v = Tensor.Empty(_shape, DType.Float32, backend);
            backend.BlockwiseDequantize(_mq, _ma, m, signed: true, Block);
            backend.BlockwiseDequantize(_vq, _va, v, signed: false, Block);
            using var c2 = change.Square();
            using var m2 = InnerMath.ChangeBasis(m, change, side);
            using var v2 = InnerMath.ChangeBasis(v, c2, side);
            backend.BlockwiseQuantize(m2, _mq, _ma, signed: true, Block);
            backend.BlockwiseQuantize(v2, _vq, _va, signed: false, Block);
        }

        public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
        {
            yield return ("exp_avg.q", _mq);
            yield return ("exp_avg.absmax", _ma);
            yield return ("exp_avg_sq.q", _vq);
            yield return ("exp_avg_sq.absmax", _va);
        }

        public void LoadState(IReadOnlyDictionary<string, Tensor> state, string prefix)
        {
            // The number of block scales gives the saved block size away; name it rather than a shape mismatch.
            if (state.TryGetValue(prefix + "exp_avg.absmax", out var savedScales) && savedScales.Numel != _ma.Numel)
                throw new TensorLiteException($"Optimizer state '{prefix}exp_avg' has {savedScales.Numel} block scales for {_mq.Numel} values, "
                    + $"not the {_ma.Numel} of blocks of {Block}: it was saved with another 8-bit block size.");
            Optimizer.CopyStateInto(state, prefix + "exp_avg.q", _mq);
            Optimizer.CopyStateInto(state, prefix + "exp_avg.absmax", _ma);
            Optimizer.CopyStateInto(state, prefix + "exp_avg_sq.q", _vq);
            Optimizer.CopyStateInto(state, prefix + "exp_avg_sq.absmax", _va);
        }

        public void Dispose()
        {
            _mq.Dispose();
            _ma.Dispose();
            _vq.Dispose();
            _va.Dispose();
        }
    }
}
