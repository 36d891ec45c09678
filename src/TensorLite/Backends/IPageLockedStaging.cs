namespace TensorLite;

/// <summary>A device backend that can copy to and from page-locked (pinned) host memory: the device reaches such memory
/// directly (on CUDA by DMA, at full bus speed), where an ordinary host buffer is first staged through a driver buffer.
/// The offload engine stages its device ↔ host copies through one such buffer (docs/offload.md).</summary>
public interface IPageLockedStaging
{
    /// <summary>A page-locked host buffer of <paramref name="bytes"/> bytes for this device's copies. Throws when the
    /// device cannot page-lock memory; callers then copy through ordinary host memory.</summary>
    IPageLockedBuffer AllocatePageLocked(int bytes);
}
