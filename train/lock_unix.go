//go:build unix

package train

import (
	"os"
	"syscall"
)

// lockFile opens path and takes an exclusive, non-blocking flock on it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// unlockFile releases the flock and closes the file. The file stays, so
// the lock always uses the same inode.
func unlockFile(f *os.File, _ string) error {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}
