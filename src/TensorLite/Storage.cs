using TensorLite.Memory;

namespace TensorLite;

/// <summary>
/// A block of backend memory shared by a tensor and its views. Reference counted: every tensor that
/// views it holds one reference, and the memory returns to the backend when the last one is disposed.
/// A finalizer is the safety net for tensors that were never disposed.
/// </summary>
public abstract class Storage
{
    private int _refCount = 1;

    /// <summary>Allocates nothing itself: counts <paramref name="byteLength"/> bytes in <paramref name="backend"/>'s ledger under the current category (which may refuse them); the derived class allocates.</summary>
    protected Storage(IBackend backend, long byteLength)
    {
        Backend = backend;
        ByteLength = byteLength;
        Category = MemoryLedger.CurrentCategory;
        try
        {
            backend.Memory.Add(Category, byteLength); // may refuse (a ledger limit) before the backend allocates anything
        }
        catch (OutOfMemoryException)
        {
            GC.SuppressFinalize(this); // nothing was counted or allocated, so the finalizer has nothing to undo
            throw;
        }
    }

    /// <summary>The backend the memory belongs to.</summary>
    public IBackend Backend { get; }
    /// <summary>Size of the memory in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>What this memory is counted as in its backend's <see cref="MemoryLedger"/>.</summary>
    public MemoryCategory Category { get; private set; }

    /// <summary>Counts this memory under <paramref name="category"/> from now on.</summary>
    internal void Recategorize(MemoryCategory category)
    {
        if (category == Category || IsReleased) return;
        Backend.Memory.Move(Category, category, ByteLength);
        Category = category;
    }

    /// <summary>How many live tensors view this storage; 1 means the owner may write in place.</summary>
    public int RefCount => Volatile.Read(ref _refCount);

    /// <summary>Whether the last reference is gone (the memory went back to the backend).</summary>
    public bool IsReleased => RefCount <= 0;

    internal void AddRef()
    {
        if (Interlocked.Increment(ref _refCount) <= 1)
            throw new ObjectDisposedException(nameof(Storage), "Cannot view a tensor whose memory was already released.");
    }

    internal void Release()
    {
        int left = Interlocked.Decrement(ref _refCount);
        if (left == 0)
        {
            Backend.Memory.Add(Category, -ByteLength);
            Free(fromFinalizer: false);
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>Returns the memory to its backend (its pool) or, from the finalizer, to the system.</summary>
    protected abstract void Free(bool fromFinalizer);

    /// <summary>Returns memory no tensor released to the system (tensors that were never disposed).</summary>
    ~Storage()
    {
        if (RefCount <= 0) return;
        Backend.Memory.Add(Category, -ByteLength);
        Free(fromFinalizer: true);
    }
}
