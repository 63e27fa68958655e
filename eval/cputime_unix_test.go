//go:build unix

package eval

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time of this process so far, so
// benchmarks can report CPU seconds next to wall time on a shared machine.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
