//go:build unix

package data

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile memory-maps path read-only. The returned release function unmaps
// it; the slice must not be used afterwards.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, nil, fmt.Errorf("%s: file is empty", path)
	}
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
