//go:build !unix

package benchmark

import "time"

// cpuTime is not measured on this platform: it returns 0, so CPU-time
// fields read 0.
func cpuTime() time.Duration { return 0 }
