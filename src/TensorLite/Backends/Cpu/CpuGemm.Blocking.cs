using System.Globalization;

namespace TensorLite.Backends.Cpu;

// Block sizes derived from the caches this CPU reports (Linux: /sys/devices/system/cpu/cpu0/cache), so that the
// same code blocks sensibly on a 32 KiB-L1/512 KiB-L2 Zen 3, a 48 KiB-L1/1 MiB-L2 Zen 5 or a 2 MiB-L2 Xeon.
public static unsafe partial class CpuGemm
{
    /// <summary>Per-core data cache sizes in bytes (L3: the whole cache the core sees, shared or not).</summary>
    internal readonly record struct CacheSizes(long L1D, long L2, long L3)
    {
        /// <summary>Used where the OS does not say (non-Linux, containers hiding /sys): a small current x86 core.</summary>
        public static readonly CacheSizes Fallback = new(32 << 10, 512 << 10, 8 << 20);

        /// <summary>The caches of cpu0 as Linux reports them, each missing level from <see cref="Fallback"/>.</summary>
        public static CacheSizes Detect(string root = "/sys/devices/system/cpu/cpu0/cache")
        {
            long l1 = 0, l2 = 0, l3 = 0;
            try
            {
                if (!Directory.Exists(root)) return Fallback;
                foreach (var dir in Directory.EnumerateDirectories(root, "index*"))
                {
                    string level = ReadTrimmed(Path.Combine(dir, "level"));
                    string type = ReadTrimmed(Path.Combine(dir, "type"));
                    long size = ParseSize(ReadTrimmed(Path.Combine(dir, "size")));
                    if (size <= 0 || type == "Instruction") continue;
                    if (level == "1") l1 = size;
                    else if (level == "2") l2 = size;
                    else if (level == "3") l3 = size;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Fallback;
            }
            return new CacheSizes(l1 > 0 ? l1 : Fallback.L1D, l2 > 0 ? l2 : Fallback.L2, l3 > 0 ? l3 : Fallback.L3);
        }

        static string ReadTrimmed(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : "";

        /// <summary>Parses sysfs sizes such as "32K", "1024K", "32M" or a plain byte count; 0 if unreadable.</summary>
        internal static long ParseSize(string s)
        {
            if (s.Length == 0) return 0;
            long unit = char.ToUpperInvariant(s[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
            string digits = unit == 1 ? s : s[..^1];
            return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v * unit : 0;
        }
    }

    /// <summary>KC, MC (rows, a multiple of mr) and the packed-B block (floats) for an mr×nr micro-kernel.</summary>
    internal readonly record struct Blocking(int KC, int MC, int BBlockFloats)
    {
        /// <summary>
        /// The loop order keeps one kc×nr packed B micro-panel in use while all A micro-panels of a row chunk stream
        /// past it, and one mc×kc packed A block in use across all B micro-panels of a column block:
        /// <list type="bullet">
        /// <item>KC: the B micro-panel fills L1D. Deeper slices mean fewer read-modify-write passes over C and a
        /// C-tile load/store that is smaller beside the kc-step FMA loop, and that gained more than keeping the
        /// panel in half of L1D with room for the A stream: on Zen 3 (6×16, 32 KiB L1D) kc = 512 ran 1–3 % above
        /// 384 and 256 (docs/perf.md, 2026-12-03). Never below 256, never above 512.</item>
        /// <item>MC: the A block fills half of L2 (the other half for B micro-panels and C lines passing through).</item>
        /// <item>Packed B block: a quarter of L3 (L3 is shared with the other cores and the A and C streams).</item>
        /// </list>
        /// </summary>
        public static Blocking For(CacheSizes caches, int mr, int nr)
        {
            int kc = (int)Math.Clamp(caches.L1D / (nr * sizeof(float)), 256, 512) / 8 * 8;
            int mc = (int)Math.Max(mr, caches.L2 / 2 / ((long)kc * sizeof(float)) / mr * mr);
            int bBlock = (int)Math.Clamp(caches.L3 / 4 / sizeof(float), 256L << 10, 4L << 20);
            return new Blocking(kc, mc, bBlock);
        }
    }
}
