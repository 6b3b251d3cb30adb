#if canImport(Glibc)
import Glibc
#endif

func timespecFrom(ms: Int) -> timespec { timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000) }
func nanosleepShim(_ ts: inout timespec) { _ = nanosleep(&ts, nil) }
