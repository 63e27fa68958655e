//go:build !unix

package eval

import "time"

// processCPU is unavailable off Unix.
func processCPU() (time.Duration, bool) { return 0, false }
