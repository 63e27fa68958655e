package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the name of the lock file in a run folder.
const LockFile = "lock"

// RunLock is an exclusive lock on a run folder, held while a trainer uses
// it, so two trainers never write the same run. On Unix it is an flock(2)
// lock on RUN/lock, released by the kernel when the process dies (a run
// killed with -9 leaves no stale lock); elsewhere the lock file is created
// exclusively and removed by Release.
type RunLock struct {
	f    *os.File
	path string
}

// LockRun takes the lock of run folder dir (created if needed). It fails
// with an error naming the holder's process id when another trainer holds
// it.
func LockRun(dir string) (*RunLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := lockFile(path)
	if err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		return nil, fmt.Errorf("run folder %s is in use by %s (lock %s): wait for it to finish or choose another --out", dir, holder, path)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Sync()
	}
	return &RunLock{f: f, path: path}, nil
}

// Release releases the lock. It is safe to call more than once.
func (l *RunLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlockFile(l.f, l.path)
	l.f = nil
	return err
}
