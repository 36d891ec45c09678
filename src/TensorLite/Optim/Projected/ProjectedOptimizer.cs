using System.Runtime.InteropServices;
using TensorLite.Autograd;
using TensorLite.LinearAlgebra;
using TensorLite.Memory;

namespace TensorLite.Optim.Projected;

/// <summary>
/// One optimizer for GaLore, Online Subspace Descent, GRASS, FRUGAL (and AdamW as the identity case), built as a
/// composition per projected 2-D parameter W [m, n] with gradient G:
/// <list type="number">
/// <item>refresh the projector when due (every T steps; every step for OSD), then apply the moment policy
/// (keep / reset / rotate the inner moments into the new basis);</item>
/// <item>R = Project(G) (small), N = inner direction of R (Adam: m̂/(√v̂ + ε), state only for R's shape);</item>
/// <item>U = α·back(N) + α·ResidualScale·f(G − back(R)), with f = 0 (drop), sign (SignSGD) or identity (SGD), as
/// FRUGAL's reference scales both parts by its proj_params_lr_scale (α);</item>
/// <item>W ← (1 − lr·wd)·W − lr·U (decoupled weight decay, as AdamW).</item>
/// </list>
/// Parameters the predicate does not select (embeddings, norms, the LM head by default) get the inner optimizer densely
/// (AdamW), with bias correction from the optimizer's step count exactly as <see cref="Optim.AdamW"/> does.
/// </summary>
public sealed partial class ProjectedOptimizer : Optimizer, IDisposable
{
    private const int CounterCount = 3; // parameter steps, inner steps since the last reset, refreshes

    private sealed class Slot
    {
        public required string Name;
        public required Tensor Parameter;
        public bool Projected;
        public int M, N, Rank;
        public ProjectionSide Side;
        public IProjector? Projector;
        public IInnerState? Inner;
        public long ParamSteps, InnerSteps;
        public Tensor? Counters;
        /// <summary>The projector's own random stream, so results do not depend on the order parameters are stepped in
        /// (per-layer updates step them in backward order).</summary>
        public Generator? Rng;
        public Tensor? RngState;
        /// <summary>‖R‖ of the last update from a factored gradient, before clipping (see <see cref="FactoredGradNorm"/>).</summary>
        public double FactoredNorm;
        /// <summary>The parameter step whose refresh <see cref="PrepareFactored"/> already ran (−1: none).</summary>
        public long RefreshedFor = -1;
        /// <summary>The elements of the last R this slot's inner optimizer took (what a data-parallel step sums between refreshes).</summary>
        public long ProjectedElements;
    }

    private readonly Slot[] _slots;
    private readonly IInnerOptimizer _inner;

    /// <summary>An optimizer over named parameters (the names decide which matrices are projected, see
    /// <see cref="ProjectedOptions.Projects"/>); the options are validated here.</summary>
    public ProjectedOptimizer(IEnumerable<(string Name, Tensor Parameter)> namedParameters, ProjectedOptions options)
        : this(namedParameters.ToArray(), options) { }

    private ProjectedOptimizer((string Name, Tensor Parameter)[] named, ProjectedOptions options)
        : base(named.Select(x => x.Parameter))
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Validate();
        LearningRate = options.LearningRate;
        _inner = options.ResolveInner();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        _slots = new Slot[named.Length];
        for (int i = 0; i < named.Length; i++)
        {
            var (name, p) = named[i];
            if (!seen.Add(name)) throw new ArgumentException($"The parameter name '{name}' appears twice.", "namedParameters");
            if (p.DType is not (DType.Float32 or DType.BFloat16))
                throw new TensorLiteException($"The projected optimizer updates float32 or bfloat16 parameters; '{name}' is {p.Describe()}.");
            var slot = new Slot { Name = name, Parameter = p, Projected = options.Projects(name, p.ShapeArray) };
            if (slot.Projected)
            {
                if (p.Rank != 2)
                    throw new TensorLiteException($"Only 2-D parameters can be projected, but the predicate selected '{name}' with shape {ShapeMath.Format(p.Shape)}.");
                slot.M = p.Shape[0];
                slot.N = p.Shape[1];
                slot.Rank = options.RankFor(slot.M, slot.N);
                slot.Side = options.SideFor(slot.M, slot.N);
                if (slot.Rank > 0)
                {
                    slot.Rng = new Generator(unchecked(options.Seed + (ulong)(i + 1) * 0x9E3779B97F4A7C15UL));
                    slot.Projector = CreateProjector(slot, slot.Rng);
                }
            }
            _slots[i] = slot;
        }
        CheckWholeMatrixOrder();
    }

    /// <summary>The method's composition and numbers.</summary>
    public ProjectedOptions Options { get; }

    /// <summary>The parameter names, in parameter order.</summary>
    public IReadOnlyList<string> Names => _slots.Select(s => s.Name).ToArray();

    /// <summary>Whether the parameter at <paramref name="index"/> is projected (else dense AdamW).</summary>
    public bool IsProjected(int index) => _slots[index].Projected;

    /// <summary>The projector of a projected parameter (null for a dense one or rank 0).</summary>
    public IProjector? ProjectorOf(int index) => _slots[index].Projector;

    /// <summary>The projector of the parameter named <paramref name="name"/> (null when none).</summary>
    public IProjector? ProjectorOf(string name) => _slots.FirstOrDefault(s => s.Name == name)?.Projector;

    /// <summary>The rank a parameter is projected to (0 for none; min(m, n) for the identity).</summary>
    public int RankOf(int index) => _slots[index].Rank;

    private IProjector CreateProjector(Slot s, Generator generator)
    {
        var o = Options;
        if (o.IsIdentityFor(s.M, s.N)) return new IdentityProjector(s.M, s.N);
        return o.Projector.Create(s.Side, s.M, s.N, s.Rank, o.UpdateGap, generator, o.BasisDType);
    }

    /// <summary>The shape of R for a projected parameter.</summary>
    private static int[] ProjectedShape(int m, int n, int rank, ProjectionSide side, bool identity) => identity ? [m, n] : side switch
    {
        ProjectionSide.Left => [rank, n],
        ProjectionSide.Both => [rank, rank],
        _ => [m, rank],
    };

    /// <inheritdoc/>
    protected override void Update(int index, Tensor p, Tensor grad) => InWorkspace(index, p, (s, rounding) => StepSlot(s, p, grad, rounding));

    /// <summary>Runs one parameter's update without recording, its temporaries counted as workspace and freed at the
    /// end, then counts the state it created.</summary>
    private void InWorkspace(int index, Tensor p, Action<Slot, ParamRounding> step)
    {
        var s = _slots[index];
        if (!p.IsContiguous)
            throw new TensorLiteException($"The projected optimizer updates parameters in place and needs contiguous ones; '{s.Name}' is a strided view.");
        InStepScope(() => step(s, RoundingFor(index)));
        TagState(s);
    }

    /// <summary>One parameter's update, applied to <paramref name="p"/> (the parameter or its float32 master).</summary>
    private void StepSlot(Slot s, Tensor p, Tensor grad, ParamRounding rounding)
    {
        float lr = StepLearningRate, wd = Options.WeightDecay;
        float decay = 1f - lr * wd;
        if (!s.Projected)
        {
            s.Inner ??= _inner.CreateState(p.ShapeArray, p.Backend);
            ApplyDense(s, p, grad, lr, wd, StepCount, rounding);
            return;
        }
        if (s.Projector is WholeMatrixProjector whole) { StepWholeMatrix(s, whole, p, grad, rounding); return; }
        if (s.Projector is { IsIdentity: true } && Options.Scale == 1f)
        {
            // The identity projection (AdamW with 8-bit or factored states) is a dense update with the slot's own
            // step counts: exactly AdamW's fused update, in ranges like any dense parameter.
            s.ParamSteps++;
            s.Inner ??= _inner.CreateState(p.ShapeArray, p.Backend);
            ApplyDense(s, p, grad, lr, wd, ++s.InnerSteps, rounding);
            return;
        }
        // Projections, moments and residuals are computed in float32 whatever the parameter's (and so the
        // gradient's) dtype; only the final in-place update writes the parameter's dtype.
        using var g = Float32(grad);
        long t = s.ParamSteps++;
        if (s.Projector == null)
        {
            // Rank 0: no state at all, only the residual rule on the whole gradient.
            if (Options.Residual == ResidualRule.Drop) { p.Backend.ApplyUpdate(p, g, decay, 0f, rounding); return; }
            using var f0 = Options.Residual == ResidualRule.SignSgd ? g.Sign() : g.Detach();
            p.Backend.ApplyUpdate(p, f0, decay, lr * Options.Scale * Options.ResidualScale, rounding);
            return;
        }
        var proj = s.Projector;
        if (proj.IsRefreshDue(t)) RefreshProjector(s, () => proj.Refresh(g, t));
        using var r = proj.Project(g);
        if (Options.Residual == ResidualRule.Drop || proj.IsIdentity)
        {
            WithDirection(s, r, p.Backend, direction =>
            {
                using var dropBack = proj.ProjectBack(direction);
                p.Backend.ApplyUpdate(p, dropBack, decay, lr * Options.Scale, rounding);
                proj.EndStep();
            });
            return;
        }
        using var direction = InnerDirection(s, r, p.Backend);
        using var back = proj.ProjectBack(direction);
        using var backR = proj.ProjectBack(r);
        using var residual = g - backR;
        using var f = Options.Residual == ResidualRule.SignSgd ? residual.Sign() : residual.Detach();
        using var a = back * Options.Scale;
        using var b = f * (Options.ResidualScale * Options.Scale); // FRUGAL: the state-free lr is lr·α·ResidualScale
        using var update = a + b;
        p.Backend.ApplyUpdate(p, update, decay, lr, rounding);
        proj.EndStep();
    }

    /// <summary>Runs <paramref name="refresh"/> on a slot's projector, then applies the moment policy (keep, reset, or
    /// rotate the inner moments into the new basis). A refresh that leaves the basis as it was (it did not count itself in
    /// <see cref="IProjector.RefreshCount"/>, as a sketch check under its error threshold does) leaves the moments too.
    /// A two-sided projector rotates by C_l = B_l,newᵀ·B_l,old on the left, then C_r on the right: M ← C_l·M·C_rᵀ.</summary>
    private void RefreshProjector(Slot s, Action refresh)
    {
        var proj = s.Projector!;
        bool hadMoments = s.Inner != null && s.InnerSteps > 0;
        ProjectionSide[] sides = proj.Side == ProjectionSide.Both ? [ProjectionSide.Left, ProjectionSide.Right] : [proj.Side];
        var oldBases = hadMoments && Options.OnRefresh == MomentPolicy.Rotate ? sides.Select(proj.BasisMatrix).ToArray() : null;
        long refreshes = proj.RefreshCount;
        // The step's learning rate: set before a factored refresh runs (ahead of the step, between backward and clipping).
        if (proj is IFollowsLearningRateSchedule follower) follower.ScheduleRatio = Options.LearningRate > 0 ? LearningRate / Options.LearningRate : 1f;
        try
        {
            refresh();
            if (proj.RefreshCount == refreshes) return;
            if (hadMoments && Options.OnRefresh == MomentPolicy.Reset)
            {
                s.Inner!.Reset();
                s.InnerSteps = 0;
            }
            else if (oldBases != null)
            {
                for (int i = 0; i < sides.Length; i++)
                {
                    using var newBasis = proj.BasisMatrix(sides[i]);
                    using var nt = newBasis.T;
                    using var change = nt.MatMul(oldBases[i]);
                    s.Inner!.ChangeBasis(change, sides[i]);
                }
            }
        }
        finally
        {
            foreach (var b in oldBases ?? []) b.Dispose();
        }
    }

    /// <summary>The inner optimizer's direction for R (its state created on first use), a new tensor.</summary>
    private Tensor InnerDirection(Slot s, Tensor r, IBackend backend)
    {
        s.Inner ??= _inner.CreateState(r.ShapeArray, backend);
        s.ProjectedElements = r.Numel;
        long innerStep = ++s.InnerSteps;
        var direction = Tensor.Empty(r.Shape, DType.Float32, backend);
        s.Inner.Direction(r, direction, innerStep);
        return direction;
    }

    private static Tensor Float32(Tensor t) => t.DType == DType.Float32 ? t.ContiguousNoGrad() : t.To(DType.Float32);

    /// <summary>The inner optimizer's update of a dense parameter, a range of <see cref="ProjectedOptions.DenseRangeElements"/>
    /// (rounded down to the state's granule) at a time when the parameter is more than two ranges long and the state
    /// allows ranges. Shorter parameters are updated whole: the CPU pool keeps the range temporaries' blocks cached, and
    /// below two ranges they would cost about what they save.</summary>
    private void ApplyDense(Slot s, Tensor p, Tensor grad, float lr, float wd, long step, ParamRounding rounding)
    {
        var state = s.Inner!;
        int granule = state.RangeGranule;
        long n = p.Numel;
        int range = granule == 0 ? 0 : Options.DenseRangeElements / granule * granule;
        if (range == 0 || n <= 2L * range)
        {
            using var whole = Float32(grad);
            if (TryDeferDense(s, p, whole, lr, wd, step, rounding)) return;
            state.Apply(p, whole, lr, wd, step, rounding);
            return;
        }
        using var flatParam = p.Reshape((int)n);
        using var flatGrad = grad.Reshape((int)n);
        for (long start = 0; start < n; start += range)
        {
            int count = (int)Math.Min(range, n - start);
            using var part = flatParam.Narrow(0, (int)start, count);
            using var gradPart = flatGrad.Narrow(0, (int)start, count);
            using var g = Float32(gradPart);
            state.Apply(part, g, lr, wd, step, rounding, start);
        }
    }

    /// <summary>Counts what a slot keeps between steps as optimizer or projector state in the memory ledger (the
    /// step creates it lazily, inside its workspace).</summary>
    private static void TagState(Slot s)
    {
        if (s.Inner != null)
            foreach (var (_, t) in s.Inner.StateTensors()) t.Tag(MemoryCategory.OptimizerState);
        if (s.Inner is Offload.HostOffloadedState offloaded) offloaded.Label = s.Name;
        if (s.Projector != null)
            foreach (var (_, t) in s.Projector.StateTensors()) t.Tag(MemoryCategory.ProjectorState);
    }

    // ---- state ----------------------------------------------------------------------------------

    /// <summary>Every byte <see cref="Optimizer.StateTensors"/> holds: inner moments for R (or the dense parameter), projector
    /// state (bases, indices, online-PCA moments), 24 bytes of counters per projected parameter with a nonzero rank, and
    /// 32 bytes of random-generator state per such parameter. Equals <see cref="PredictStateBytes"/> once every parameter has taken a step.</summary>
    public override long StateBytes => OwnStateTensors().Sum(x => (long)x.Tensor.Numel * x.Tensor.DType.SizeInBytes());

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, Tensor Tensor)> OwnStateTensors()
    {
        for (int i = 0; i < _slots.Length; i++)
        {
            var s = _slots[i];
            if (s.Projected && s.Projector != null && (s.ParamSteps > 0 || s.Inner != null))
                foreach (var entry in ProjectionEntries(i)) yield return entry;
            if (s.Inner != null)
                foreach (var (name, t) in s.Inner.StateTensors()) yield return ($"{InnerStatePrefix(i)}{name}", t);
        }
    }

    /// <summary>The entries of a projected parameter's projection: its counters, its random stream and its projector's
    /// state ("{index}.counters", "{index}.rng", "{index}.proj.*").</summary>
    private IEnumerable<(string Name, Tensor Tensor)> ProjectionEntries(int i)
    {
        var s = _slots[i];
        s.Counters ??= Tensor.Zeros([CounterCount], DType.Int64, s.Parameter.Backend).Persist().Tag(MemoryCategory.ProjectorState);
        long[] c = [s.ParamSteps, s.InnerSteps, s.Projector!.RefreshCount];
        s.Counters.Backend.CopyFromHost(MemoryMarshal.AsBytes(c.AsSpan()), s.Counters);
        yield return ($"{i}.counters", s.Counters);
        s.RngState ??= Tensor.Zeros([4], DType.Int64, s.Parameter.Backend).Persist().Tag(MemoryCategory.ProjectorState);
        var words = s.Rng!.GetState();
        s.RngState.Backend.CopyFromHost(MemoryMarshal.AsBytes(words.AsSpan()), s.RngState);
        yield return ($"{i}.rng", s.RngState);
        foreach (var (name, t) in s.Projector.StateTensors()) yield return ($"{i}.proj.{name}", t);
    }

    /// <summary>Whether a state entry's name after its "{index}." prefix is part of a projection (see
    /// <see cref="ProjectionEntries"/>), not of the inner optimizer's moments.</summary>
    private static bool IsProjectionEntry(string rest) => rest is "counters" or "rng" || rest.StartsWith("proj.", StringComparison.Ordinal);

    /// <summary>Restores slot <paramref name="i"/>'s counters, random stream and projector from the entries
    /// <see cref="ProjectionEntries"/> wrote (absent ones leave the counters at zero and the projector empty).</summary>
    private void LoadProjection(int i, IReadOnlyDictionary<string, Tensor> state)
    {
        var s = _slots[i];
        s.ParamSteps = s.InnerSteps = 0;
        long refreshes = 0;
        if (state.TryGetValue($"{i}.counters", out var counters))
        {
            if (counters.Numel != CounterCount || counters.DType != DType.Int64)
                throw new TensorLiteException($"Optimizer state '{i}.counters' must be {CounterCount} int64 values, got {counters.Describe()}.");
            var c = counters.ToArray<long>();
            (s.ParamSteps, s.InnerSteps, refreshes) = (c[0], c[1], c[2]);
        }
        if (state.TryGetValue($"{i}.rng", out var rng))
        {
            if (rng.DType != DType.Int64 || rng.Numel != 4)
                throw new TensorLiteException($"Optimizer state '{i}.rng' must be four int64 words, got {rng.Describe()}.");
            s.Rng!.SetState(rng.ToArray<long>().Select(v => unchecked((ulong)v)).ToArray());
        }
        s.Projector!.LoadState(state, $"{i}.proj.", refreshes, s.Parameter.Backend);
        TagState(s);
    }

    /// <inheritdoc/>
    protected override void LoadOwnState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        using var noGrad = GradMode.NoGrad();
        var withInner = new HashSet<int>();
        foreach (var key in state.Keys)
        {
            int dot = key.IndexOf('.');
            if (dot <= 0 || !int.TryParse(key.AsSpan(0, dot), out int idx)) continue;
            if (!IsProjectionEntry(key[(dot + 1)..])) withInner.Add(idx);
        }
        for (int i = 0; i < _slots.Length; i++)
        {
            var s = _slots[i];
            var p = s.Parameter;
            s.Inner?.Dispose();
            s.Inner = null;
            int[] innerShape = p.ShapeArray;
            if (s.Projected)
            {
                if (s.Projector == null)
                {
                    s.ParamSteps = s.InnerSteps = 0;
                    if (withInner.Contains(i))
                        throw new TensorLiteException($"The optimizer checkpoint holds moments for '{s.Name}', which this optimizer keeps no state for (rank 0); it was written with different options.");
                    continue;
                }
                LoadProjection(i, state);
                innerShape = ProjectedShape(s.M, s.N, s.Rank, s.Projector.Side, s.Projector.IsIdentity);
            }
            if (withInner.Contains(i))
            {
                s.Inner = _inner.CreateState(innerShape, p.Backend);
                s.Inner.LoadState(state, $"{i}.");
                TagState(s);
            }
        }
        LoadWholeMatrixMoments(state);
        StepCount = stepCount;
    }

    /// <summary>
    /// The closed form of <see cref="StateBytes"/> after every parameter has taken a step, from names and shapes alone:
    /// Σ dense: inner(shape) + Σ projected with rank r &gt; 0: 24 + 32 + inner(R's shape) + projector, where
    /// R is [r, n] (left) or [m, r] (right) or [m, n] (identity) and the projector holds what its factory predicts
    /// (<see cref="ProjectorFactory.PredictStateBytes"/>): 4·d·r bytes for a stored basis (SVD, randomized SVD, range
    /// finder, random; d = m left, n right; 2·d·r in bfloat16), 12·d·r for online PCA with Adam (4·d·r with SGD), 4·r for
    /// a sparse selection. With AdamW inside, inner(shape) = 8·numel.
    /// </summary>
    public static long PredictStateBytes(IEnumerable<(string Name, int[] Shape)> shapes, ProjectedOptions options)
    {
        options.Validate();
        if (options.Projector is WholeMatrixProjectorFactory) return PredictWholeMatrixStateBytes(shapes, options);
        var inner = options.ResolveInner();
        long total = 0;
        foreach (var (name, shape) in shapes)
        {
            if (!options.Projects(name, shape)) { total += inner.PredictStateBytes(shape); continue; }
            if (shape.Length != 2) throw new TensorLiteException($"Only 2-D parameters can be projected, but the predicate selected '{name}' with shape {ShapeMath.Format(shape)}.");
            int m = shape[0], n = shape[1];
            int rank = options.RankFor(m, n);
            if (rank == 0) continue;
            total += CounterCount * sizeof(long) + 4 * sizeof(ulong);
            bool identity = options.IsIdentityFor(m, n);
            var side = options.SideFor(m, n);
            total += inner.PredictStateBytes(ProjectedShape(m, n, rank, side, identity));
            if (identity) continue;
            total += options.Projector.PredictStateBytes(side, m, n, rank, options.BasisDType);
        }
        return total;
    }

    /// <summary>The state bytes of dense AdamW over the same shapes (8 bytes per element), for comparisons.</summary>
    public static long AdamWStateBytes(IEnumerable<int[]> shapes) => shapes.Sum(s => 8L * ShapeMath.Numel(s));

    // ---- helpers --------------------------------------------------------------------------------

    /// <summary>A float32 copy of a saved tensor on <paramref name="backend"/>.</summary>
    internal static Tensor ToBackend(Tensor saved, IBackend backend) =>
        Tensor.FromSpan<float>(saved.ToArray(), saved.Shape, DType.Float32, backend);

    /// <summary>Frees every state tensor (inner moments, projector bases and indices).</summary>
    public void Dispose()
    {
        foreach (var s in _slots)
        {
            s.Projector?.Dispose();
            s.Inner?.Dispose();
            s.Counters?.Dispose();
            s.RngState?.Dispose();
        }
    }
}
