//go:build !unix

package data

import (
	"fmt"
	"os"
)

// mapFile reads path into memory on platforms without mmap support.
func mapFile(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%s: file is empty", path)
	}
	return b, func() error { return nil }, nil
}
