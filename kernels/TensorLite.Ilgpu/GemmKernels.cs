using System.Reflection;
using ILGPU;
using ILGPU.IR.Intrinsics;
using ILGPU.Runtime.Cuda;

namespace TensorLite.Ilgpu;

/// <summary>Sizes, operand strides and scalars of one (batched) GEMM launch: c = alpha·a·b + beta·c.</summary>
public struct GemmParams
{
    public int M, N, K;
    public int ARow, ACol, BRow, BCol, CRow, CCol;
    public float Alpha, Beta;
    /// <summary>Number of matrices in the batch (the grid's z dimension may be smaller: groups then loop).</summary>
    public int BatchCount;
    /// <summary>Batch shape with the batch strides of a (A*), b (B*) and c (C*).</summary>
    public StridedLayout Batch;
}

/// <summary>
/// One GEMM operand of any floating-point dtype, read as float32 and (for c) written back in its own dtype. The
/// host fills the view that matches <see cref="Format"/> and leaves the other empty; the format test is uniform
/// across a launch, so on a GPU it costs a predictable branch per load, and loads only happen while staging.
/// </summary>
public struct GemmOperand
{
    public const int Float32 = 0, BFloat16 = 1, Float16 = 2;

    public ArrayView<float> F32;
    public ArrayView<ushort> Half;
    public int Format;

    public readonly float Load(int index) => Format switch
    {
        Float32 => F32[index],
        BFloat16 => Interop.IntAsFloat((uint)Half[index] << 16),
        _ => IlgpuKernels.HalfBitsToFloat(Half[index]),
    };

    /// <summary>Stores a float32 result, rounding to nearest even for the half formats.</summary>
    public readonly void Store(int index, float value)
    {
        if (Format == Float32) F32[index] = value;
        else if (Format == BFloat16) Half[index] = IlgpuKernels.FloatToBFloat16(value);
        else Half[index] = IlgpuKernels.FloatToHalfBits(value);
    }
}

/// <summary>
/// The GEMM kernels: c = alpha·a·b + beta·c over a batch, every operand addressed through row/column strides (so
/// transposed views need no copy) and batch strides (zero for a broadcast operand). With beta = 0, c is not read.
/// <list type="bullet">
/// <item><see cref="GemmNaive"/>: one thread per output, for tiny problems where a block tile would be mostly empty.</item>
/// <item><see cref="GemmBlocked"/>: portable shared-memory + register-blocked kernel for every dtype mix.</item>
/// <item><see cref="GemmTensorCore"/>: bf16×bf16 or f16×f16 on tensor cores (mma.sync, sm_80+), with an emulated
/// fragment path for the CPU accelerator.</item>
/// </list>
/// All accumulate in float32; half-precision operands are widened as they are loaded.
/// </summary>
public static class GemmKernels
{
    // ---- naive ------------------------------------------------------------------------------------------

    /// <summary>One thread per element of c (x = column, y = row, z = batch).</summary>
    public static void GemmNaive(Index3D i, GemmOperand a, GemmOperand b, GemmOperand c, GemmParams p)
    {
        int col = i.X, row = i.Y;
        p.Batch.Offsets(i.Z, out int oa, out int ob, out int oc);
        float acc = 0f;
        for (int k = 0; k < p.K; k++)
            acc += a.Load(oa + row * p.ARow + k * p.ACol) * b.Load(ob + k * p.BRow + col * p.BCol);
        StoreResult(c, p, oc + row * p.CRow + col * p.CCol, acc);
    }

    private static void StoreResult(GemmOperand c, GemmParams p, int index, float acc)
    {
        float value = p.Alpha * acc;
        if (p.Beta != 0f) value += p.Beta * c.Load(index);
        c.Store(index, value);
    }

    // ---- portable block-tiled, register-blocked ---------------------------------------------------------

    /// <summary>Rows and columns of c one group computes on CUDA (4 × <see cref="BlockThreads"/>).</summary>
    public const int BlockTile = 64;
    /// <summary>Depth of the k slice staged in shared memory per step.</summary>
    public const int BlockDepth = 16;
    /// <summary>The group is BlockThreads × BlockThreads threads on CUDA; each computes a 4×4 micro-tile.</summary>
    public const int BlockThreads = 16;
    /// <summary>Rows (and columns) of a thread's micro-tile.</summary>
    public const int MicroTileSide = 4;
    // Shared tiles are [k][BlockTile] with one float of padding per k row, so that staging writes that walk k
    // (row-major a, transposed b) land in different banks.
    private const int TileStride = BlockTile + 1;

    /// <summary>
    /// Each group of T×T threads (T = Group.DimX: 16 on CUDA, a smaller power of two on the CPU emulator, which runs
    /// every group thread on an OS thread) computes a 4T×4T block of c. Per k slice of 16, the a block (4T×16) and the
    /// b block (16×4T) are widened to float32 and staged in shared memory, 4 elements per thread; consecutive threads
    /// walk the operand's contiguous dimension so global reads coalesce whether or not it is transposed. Thread
    /// (tx, ty) then keeps a 4×4 micro-tile of accumulators in registers for rows ty + T·i and columns tx + T·j
    /// (i, j &lt; 4): per k step it reads 4 + 4 values from shared memory for 16 multiply-adds, and a warp's reads of b
    /// are consecutive (no bank conflicts) while its reads of a are broadcasts. Edge blocks stage zeros outside the
    /// matrix and store only in-range elements. Grid: (⌈n/4T⌉, ⌈m/4T⌉, min(batch, 65535)); groups loop over the rest
    /// of the batch. Each output's sum runs in k order whatever T is.
    /// </summary>
    public static void GemmBlocked(GemmOperand a, GemmOperand b, GemmOperand c, GemmParams p)
    {
        var tileA = SharedMemory.Allocate<float>(BlockDepth * TileStride);
        var tileB = SharedMemory.Allocate<float>(BlockDepth * TileStride);
        int side = Group.DimX, tile = MicroTileSide * side;
        int tx = Group.IdxX, ty = Group.IdxY, tid = ty * side + tx;
        int row0 = Grid.IdxY * tile, col0 = Grid.IdxX * tile;
        bool aAlongK = p.ACol == 1, bAlongK = p.BRow == 1;   // is k the contiguous dimension?
        for (int z = Grid.IdxZ; z < p.BatchCount; z += Grid.DimZ)
        {
            p.Batch.Offsets(z, out int oa, out int ob, out int oc);
            var acc = new MicroTile();
            for (int k0 = 0; k0 < p.K; k0 += BlockDepth)
            {
                for (int e = tid; e < tile * BlockDepth; e += side * side)
                {
                    // e enumerates the tile×16 block along whichever dimension is contiguous in memory.
                    int mm = aAlongK ? e / BlockDepth : e % tile;
                    int ka = aAlongK ? e % BlockDepth : e / tile;
                    int row = row0 + mm, k = k0 + ka;
                    tileA[ka * TileStride + mm] = row < p.M && k < p.K ? a.Load(oa + row * p.ARow + k * p.ACol) : 0f;

                    int nn = bAlongK ? e / BlockDepth : e % tile;
                    int kb = bAlongK ? e % BlockDepth : e / tile;
                    int col = col0 + nn;
                    k = k0 + kb;
                    tileB[kb * TileStride + nn] = col < p.N && k < p.K ? b.Load(ob + k * p.BRow + col * p.BCol) : 0f;
                }
                Group.Barrier();
                for (int kk = 0; kk < BlockDepth; kk++)
                {
                    int ra = kk * TileStride + ty, rb = kk * TileStride + tx;
                    acc.Add(tileA[ra], tileA[ra + side], tileA[ra + 2 * side], tileA[ra + 3 * side],
                        tileB[rb], tileB[rb + side], tileB[rb + 2 * side], tileB[rb + 3 * side]);
                }
                Group.Barrier();   // the next slice overwrites the tiles
            }
            int r = row0 + ty, cl = col0 + tx;
            StoreRow(c, p, oc, r, cl, side, acc.C00, acc.C01, acc.C02, acc.C03);
            StoreRow(c, p, oc, r + side, cl, side, acc.C10, acc.C11, acc.C12, acc.C13);
            StoreRow(c, p, oc, r + 2 * side, cl, side, acc.C20, acc.C21, acc.C22, acc.C23);
            StoreRow(c, p, oc, r + 3 * side, cl, side, acc.C30, acc.C31, acc.C32, acc.C33);
        }
    }

    /// <summary>Stores one micro-tile row: columns col, col + side, col + 2·side, col + 3·side, those inside c only.</summary>
    private static void StoreRow(GemmOperand c, GemmParams p, int oc, int row, int col, int side, float v0, float v1, float v2, float v3)
    {
        if (row >= p.M) return;
        int baseIndex = oc + row * p.CRow;
        if (col < p.N) StoreResult(c, p, baseIndex + col * p.CCol, v0);
        if (col + side < p.N) StoreResult(c, p, baseIndex + (col + side) * p.CCol, v1);
        if (col + 2 * side < p.N) StoreResult(c, p, baseIndex + (col + 2 * side) * p.CCol, v2);
        if (col + 3 * side < p.N) StoreResult(c, p, baseIndex + (col + 3 * side) * p.CCol, v3);
    }

    /// <summary>A thread's 4×4 accumulators as named fields, so they stay in registers (no local-memory array).</summary>
    private struct MicroTile
    {
        public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

        /// <summary>Outer product of a column (a0..a3, one per row) and a row (b0..b3, one per column).</summary>
        public void Add(float a0, float a1, float a2, float a3, float b0, float b1, float b2, float b3)
        {
            C00 += a0 * b0; C01 += a0 * b1; C02 += a0 * b2; C03 += a0 * b3;
            C10 += a1 * b0; C11 += a1 * b1; C12 += a1 * b2; C13 += a1 * b3;
            C20 += a2 * b0; C21 += a2 * b1; C22 += a2 * b2; C23 += a2 * b3;
            C30 += a3 * b0; C31 += a3 * b1; C32 += a3 * b2; C33 += a3 * b3;
        }
    }

    // ---- tensor cores (mma.sync m16n8k16, bf16 / f16 inputs, f32 accumulators) --------------------------

    /// <summary>Rows and columns of c one tensor-core group computes (2×2 warps of 32×32).</summary>
    public const int MmaBlockTile = 64;
    /// <summary>Depth of the k slice staged per step: two m16n8k16 steps.</summary>
    public const int MmaBlockDepth = 32;
    /// <summary>Threads per tensor-core group: four warps of 32.</summary>
    public const int MmaThreads = 128;
    // Shared tiles hold pairs of halves (one 32-bit word = two consecutive k) as [row or column][k / 2], padded from
    // 16 to 20 words per line: a fragment read (8 lines × 4 words per warp) then hits 32 distinct banks.
    private const int MmaWordsPerLine = MmaBlockDepth / 2 + 4;

    /// <summary>
    /// bf16×bf16 (<paramref name="f16"/> = 0) or f16×f16 (<paramref name="f16"/> = 1) GEMM with float32 accumulation on
    /// tensor cores. A group of 4 warps computes a 64×64 block of c; warp w takes the 32×32 quarter (w / 2, w % 2) as
    /// 2×4 m16n8 tiles of mma.sync.m16n8k16 accumulators (32 floats per thread). Per k slice of 32 the a block is staged
    /// as [row][k] and the b block as [column][k] in shared memory, two halves per 32-bit word (the register format of
    /// the mma fragments), so every fragment register is one shared-memory word. Outside the matrix zeros are staged,
    /// so any shape works. On CUDA the product is one mma.sync per tile (a PTX intrinsic, <see cref="MmaBf16"/>); elsewhere
    /// (<see cref="CudaAsm.IsSupported"/> false) <see cref="MmaStepEmulated"/> computes the same products from the same
    /// fragment registers, exchanged through shared memory. Grid: (⌈n/64⌉, ⌈m/64⌉, min(batch, 65535)).
    /// </summary>
    public static void GemmTensorCore(ArrayView<ushort> a, ArrayView<ushort> b, GemmOperand c, GemmParams p, int f16)
    {
        var tileA = SharedMemory.Allocate<uint>(MmaBlockTile * MmaWordsPerLine);
        var tileB = SharedMemory.Allocate<uint>(MmaBlockTile * MmaWordsPerLine);
        // Used by the emulated path only (ILGPU does not fold CudaAsm.IsSupported before allocating); 8 KiB.
        var exchange = SharedMemory.Allocate<uint>(MmaThreads * MmaFragmentWords);
        int tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int group = lane / 4, pair = lane % 4;            // the PTX ISA's groupID and threadID_in_group
        int warpRow = warp / 2 * 32, warpCol = warp % 2 * 32;
        int row0 = Grid.IdxY * MmaBlockTile, col0 = Grid.IdxX * MmaBlockTile;
        bool aAlongK = p.ACol == 1, bAlongK = p.BRow == 1;   // is k the contiguous dimension?
        for (int z = Grid.IdxZ; z < p.BatchCount; z += Grid.DimZ)
        {
            p.Batch.Offsets(z, out int oa, out int ob, out int oc);
            var acc = new MmaAccumulators();
            for (int k0 = 0; k0 < p.K; k0 += MmaBlockDepth)
            {
                // 64 lines × 16 words per operand, 8 words per thread. Consecutive threads walk k when it is the
                // operand's contiguous dimension, else the lines, so global reads coalesce either way.
                for (int w = tid; w < MmaBlockTile * (MmaBlockDepth / 2); w += MmaThreads)
                {
                    int line = aAlongK ? w / (MmaBlockDepth / 2) : w % MmaBlockTile;
                    int kw = aAlongK ? w % (MmaBlockDepth / 2) : w / MmaBlockTile, k = k0 + 2 * kw;
                    int row = row0 + line;
                    uint lo = row < p.M && k < p.K ? a[oa + row * p.ARow + k * p.ACol] : 0u;
                    uint hi = row < p.M && k + 1 < p.K ? a[oa + row * p.ARow + (k + 1) * p.ACol] : 0u;
                    tileA[line * MmaWordsPerLine + kw] = lo | (hi << 16);

                    line = bAlongK ? w / (MmaBlockDepth / 2) : w % MmaBlockTile;
                    kw = bAlongK ? w % (MmaBlockDepth / 2) : w / MmaBlockTile;
                    k = k0 + 2 * kw;
                    int col = col0 + line;
                    lo = col < p.N && k < p.K ? b[ob + k * p.BRow + col * p.BCol] : 0u;
                    hi = col < p.N && k + 1 < p.K ? b[ob + (k + 1) * p.BRow + col * p.BCol] : 0u;
                    tileB[line * MmaWordsPerLine + kw] = lo | (hi << 16);
                }
                Group.Barrier();
                for (int ks = 0; ks < MmaBlockDepth / 2; ks += 8)   // two k16 steps, 8 words each
                {
                    // A fragment of the m16 tile starting at line r: rows r + group and r + group + 8, k words
                    // pair and pair + 4 of this step (PTX ISA fragment layout for .m16n8k16 .bf16/.f16).
                    int ra0 = (warpRow + group) * MmaWordsPerLine + ks + pair;
                    int ra1 = ra0 + 16 * MmaWordsPerLine;
                    var a0 = new MmaFragmentA(tileA[ra0], tileA[ra0 + 8 * MmaWordsPerLine], tileA[ra0 + 4], tileA[ra0 + 8 * MmaWordsPerLine + 4]);
                    var a1 = new MmaFragmentA(tileA[ra1], tileA[ra1 + 8 * MmaWordsPerLine], tileA[ra1 + 4], tileA[ra1 + 8 * MmaWordsPerLine + 4]);
                    // B fragment of the n8 tile starting at column c: column c + group, k words pair and pair + 4.
                    int rb = (warpCol + group) * MmaWordsPerLine + ks + pair;
                    var b0 = new MmaFragmentB(tileB[rb], tileB[rb + 4]);
                    var b1 = new MmaFragmentB(tileB[rb + 8 * MmaWordsPerLine], tileB[rb + 8 * MmaWordsPerLine + 4]);
                    var b2 = new MmaFragmentB(tileB[rb + 16 * MmaWordsPerLine], tileB[rb + 16 * MmaWordsPerLine + 4]);
                    var b3 = new MmaFragmentB(tileB[rb + 24 * MmaWordsPerLine], tileB[rb + 24 * MmaWordsPerLine + 4]);
                    if (CudaAsm.IsSupported)
                    {
                        // One branch per step rather than per mma: ptxas then needs fewer registers (86 instead of
                        // 99 on sm_90, one more group per SM).
                        if (f16 == 0) MmaStep<Bf16Inputs>(ref acc, a0, a1, b0, b1, b2, b3);
                        else MmaStep<F16Inputs>(ref acc, a0, a1, b0, b1, b2, b3);
                    }
                    else
                    {
                        MmaStepEmulated(ref acc, a0, a1, b0, b1, b2, b3, exchange, f16);
                    }
                }
                Group.Barrier();
            }
            // C fragment: rows group and group + 8 of the tile, columns 2·pair and 2·pair + 1.
            int r = row0 + warpRow + group, cl = col0 + warpCol + 2 * pair;
            StoreTile(c, p, oc, r, cl, acc.T00); StoreTile(c, p, oc, r, cl + 8, acc.T01);
            StoreTile(c, p, oc, r, cl + 16, acc.T02); StoreTile(c, p, oc, r, cl + 24, acc.T03);
            StoreTile(c, p, oc, r + 16, cl, acc.T10); StoreTile(c, p, oc, r + 16, cl + 8, acc.T11);
            StoreTile(c, p, oc, r + 16, cl + 16, acc.T12); StoreTile(c, p, oc, r + 16, cl + 24, acc.T13);
        }
    }

    /// <summary>Stores a thread's four accumulators of one m16n8 tile: (row, col), (row, col + 1), (row + 8, col),
    /// (row + 8, col + 1), those inside c only.</summary>
    private static void StoreTile(GemmOperand c, GemmParams p, int oc, int row, int col, MmaTile t)
    {
        if (row < p.M)
        {
            if (col < p.N) StoreResult(c, p, oc + row * p.CRow + col * p.CCol, t.D0);
            if (col + 1 < p.N) StoreResult(c, p, oc + row * p.CRow + (col + 1) * p.CCol, t.D1);
        }
        if (row + 8 < p.M)
        {
            if (col < p.N) StoreResult(c, p, oc + (row + 8) * p.CRow + col * p.CCol, t.D2);
            if (col + 1 < p.N) StoreResult(c, p, oc + (row + 8) * p.CRow + (col + 1) * p.CCol, t.D3);
        }
    }

    /// <summary>The eight m16n8k16 products of a k16 step on tensor cores (CUDA only), for the input format
    /// <typeparamref name="TInputs"/>.</summary>
    private static void MmaStep<TInputs>(ref MmaAccumulators acc, MmaFragmentA a0, MmaFragmentA a1,
        MmaFragmentB b0, MmaFragmentB b1, MmaFragmentB b2, MmaFragmentB b3) where TInputs : struct, IMmaInputs
    {
        var inputs = default(TInputs);
        acc.T00 = inputs.Mma(acc.T00, a0, b0); acc.T01 = inputs.Mma(acc.T01, a0, b1);
        acc.T02 = inputs.Mma(acc.T02, a0, b2); acc.T03 = inputs.Mma(acc.T03, a0, b3);
        acc.T10 = inputs.Mma(acc.T10, a1, b0); acc.T11 = inputs.Mma(acc.T11, a1, b1);
        acc.T12 = inputs.Mma(acc.T12, a1, b2); acc.T13 = inputs.Mma(acc.T13, a1, b3);
    }

    /// <summary>An input format of the tensor-core product: which mma.sync it is.</summary>
    private interface IMmaInputs
    {
        MmaTile Mma(MmaTile c, MmaFragmentA a, MmaFragmentB b);
    }

    private readonly struct Bf16Inputs : IMmaInputs
    {
        public MmaTile Mma(MmaTile c, MmaFragmentA a, MmaFragmentB b) => MmaBf16(c, a, b);
    }

    private readonly struct F16Inputs : IMmaInputs
    {
        public MmaTile Mma(MmaTile c, MmaFragmentA a, MmaFragmentB b) => MmaF16(c, a, b);
    }

    // One mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: d = a·b + c with every operand in registers. The bodies
    // never run: Ptx.TensorCoreIntrinsics registers them with ILGPU's PTX backend, which writes the instruction itself
    // (CudaAsm's single output would go through local memory), and other accelerators take the emulated path.
    [IntrinsicImplementation]
    internal static MmaTile MmaBf16(MmaTile c, MmaFragmentA a, MmaFragmentB b) =>
        throw new NotSupportedException("GemmKernels.MmaBf16 is a PTX intrinsic: create the CUDA context with EnableTensorCoreMma().");

    [IntrinsicImplementation]
    internal static MmaTile MmaF16(MmaTile c, MmaFragmentA a, MmaFragmentB b) =>
        throw new NotSupportedException("GemmKernels.MmaF16 is a PTX intrinsic: create the CUDA context with EnableTensorCoreMma().");

    /// <summary>32-bit words one lane publishes per k16 step in the emulation: two A fragments (4 each), four B (2 each).</summary>
    private const int MmaFragmentWords = 16;

    /// <summary>
    /// What the eight mma.sync.m16n8k16.row.col of one k16 step compute, for accelerators without tensor cores, from
    /// the same per-lane fragment registers: every lane publishes its registers to shared memory, then each lane
    /// computes its own accumulators (rows g and g + 8, columns 2t and 2t + 1 of each m16n8 tile) reading A and B
    /// elements from whichever lane the PTX ISA fragment layout says holds them (<see cref="AElement"/>,
    /// <see cref="BElement"/>). Sums run in k order in float32 (the hardware's internal order is unspecified).
    /// Called by every thread of the group (uniform control flow around its barriers).
    /// </summary>
    private static void MmaStepEmulated(ref MmaAccumulators acc, MmaFragmentA a0, MmaFragmentA a1,
        MmaFragmentB b0, MmaFragmentB b1, MmaFragmentB b2, MmaFragmentB b3, ArrayView<uint> exchange, int f16)
    {
        int tid = Group.IdxX, lane = tid % 32;
        var warp = exchange.SubView(tid / 32 * 32 * MmaFragmentWords, 32 * MmaFragmentWords);
        int mine = lane * MmaFragmentWords;
        warp[mine] = a0.R0; warp[mine + 1] = a0.R1; warp[mine + 2] = a0.R2; warp[mine + 3] = a0.R3;
        warp[mine + 4] = a1.R0; warp[mine + 5] = a1.R1; warp[mine + 6] = a1.R2; warp[mine + 7] = a1.R3;
        warp[mine + 8] = b0.R0; warp[mine + 9] = b0.R1; warp[mine + 10] = b1.R0; warp[mine + 11] = b1.R1;
        warp[mine + 12] = b2.R0; warp[mine + 13] = b2.R1; warp[mine + 14] = b3.R0; warp[mine + 15] = b3.R1;
        Group.Barrier();
        EmulateTile(ref acc.T00, warp, 0, 8, f16); EmulateTile(ref acc.T01, warp, 0, 10, f16);
        EmulateTile(ref acc.T02, warp, 0, 12, f16); EmulateTile(ref acc.T03, warp, 0, 14, f16);
        EmulateTile(ref acc.T10, warp, 4, 8, f16); EmulateTile(ref acc.T11, warp, 4, 10, f16);
        EmulateTile(ref acc.T12, warp, 4, 12, f16); EmulateTile(ref acc.T13, warp, 4, 14, f16);
        Group.Barrier();   // the next step overwrites the exchange
    }

    /// <summary>One m16n8k16 tile of the emulation: the A fragment starts at word <paramref name="aSlot"/> of each
    /// lane's published registers, the B fragment at <paramref name="bSlot"/>.</summary>
    private static void EmulateTile(ref MmaTile tile, ArrayView<uint> warp, int aSlot, int bSlot, int f16)
    {
        int lane = Group.IdxX % 32, g = lane / 4, t = lane % 4;
        for (int k = 0; k < 16; k++)
        {
            float aTop = AElement(warp, aSlot, g, k, f16), aBottom = AElement(warp, aSlot, g + 8, k, f16);
            float bLeft = BElement(warp, bSlot, k, 2 * t, f16), bRight = BElement(warp, bSlot, k, 2 * t + 1, f16);
            tile.D0 += aTop * bLeft;
            tile.D1 += aTop * bRight;
            tile.D2 += aBottom * bLeft;
            tile.D3 += aBottom * bRight;
        }
    }

    /// <summary>A[row][k] of a 16×16 A fragment (PTX ISA, .m16n8k16 .bf16/.f16): held by lane 4·(row mod 8) + (k mod 8)/2,
    /// register (row ≥ 8) + 2·(k ≥ 8), low half for even k.</summary>
    private static float AElement(ArrayView<uint> warp, int slot, int row, int k, int f16)
    {
        int lane = 4 * (row % 8) + k % 8 / 2, register = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
        return HalfOf(warp[lane * MmaFragmentWords + slot + register], k % 2, f16);
    }

    /// <summary>B[k][col] of a 16×8 B fragment: held by lane 4·col + (k mod 8)/2, register (k ≥ 8), low half for even k.</summary>
    private static float BElement(ArrayView<uint> warp, int slot, int k, int col, int f16)
    {
        int lane = 4 * col + k % 8 / 2, register = k >= 8 ? 1 : 0;
        return HalfOf(warp[lane * MmaFragmentWords + slot + register], k % 2, f16);
    }

    /// <summary>The low (0) or high (1) 16-bit value of a register, widened to float32.</summary>
    private static float HalfOf(uint word, int high, int f16)
    {
        uint bits = high != 0 ? word >> 16 : word & 0xFFFFu;
        return f16 != 0 ? IlgpuKernels.HalfBitsToFloat((ushort)bits) : Interop.IntAsFloat(bits << 16);
    }

    /// <summary>The four 32-bit registers of an m16n8k16 A fragment.</summary>
    internal readonly struct MmaFragmentA(uint r0, uint r1, uint r2, uint r3)
    {
        public readonly uint R0 = r0, R1 = r1, R2 = r2, R3 = r3;
    }

    /// <summary>The two 32-bit registers of an m16n8k16 B fragment.</summary>
    internal readonly struct MmaFragmentB(uint r0, uint r1)
    {
        public readonly uint R0 = r0, R1 = r1;
    }

    /// <summary>A thread's four float32 accumulators of one m16n8 tile.</summary>
    internal struct MmaTile
    {
        public float D0, D1, D2, D3;
    }

    /// <summary>A warp's 2×4 m16n8 tiles (32×32 of c), T[m tile][n tile].</summary>
    private struct MmaAccumulators
    {
        public MmaTile T00, T01, T02, T03, T10, T11, T12, T13;
    }

    // ---- kernel list ------------------------------------------------------------------------------------

    /// <summary>Every GEMM kernel and whether it is explicitly grouped (the PTX test compiles each).</summary>
    public static IEnumerable<(MethodInfo Method, bool ExplicitlyGrouped)> All()
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.Static;
        yield return (typeof(GemmKernels).GetMethod(nameof(GemmNaive), flags)!, false);
        yield return (typeof(GemmKernels).GetMethod(nameof(GemmBlocked), flags)!, true);
        yield return (typeof(GemmKernels).GetMethod(nameof(GemmTensorCore), flags)!, true);
    }
}
