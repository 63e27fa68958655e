package data

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
)

// pixelCacheMagic starts a pixel cache file.
const pixelCacheMagic = "QATCLIP-PIXCACHE1\n"

// States of a pixel cache slot.
const (
	cacheEmpty   = 0
	cacheWriting = 1 // one worker is storing it
	cacheOK      = 2
)

// The status byte a cache file stores per row once its crop is written.
const cacheFileOK = 1

// pixelCacheHeader identifies what a cache file holds: the crops of the
// rows of these shards at this size.
type pixelCacheHeader struct {
	Version int                `json:"version"`
	Size    int                `json:"size"`
	Rows    int                `json:"rows"`
	Shards  []pixelCacheShards `json:"shards"`
}

type pixelCacheShards struct {
	File  string `json:"file"`
	Rows  int    `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// pixelCache keeps every row's resized, center-cropped image as Size x
// Size 8-bit RGB (3*Size*Size bytes), in memory or in a file. A file has
// the magic, an 8-byte little-endian header length, the JSON header, one
// status byte per row (1 once the row is stored) and, from a 4096-byte
// boundary, the rows' pixels in global row order. Rows are filled as the
// loader first decodes them; the status byte is written after the pixels,
// so an interrupted run leaves only complete rows marked.
type pixelCache struct {
	path      string
	size      int
	item      int   // bytes per row
	base      []int // first global row of each shard
	status    []atomic.Uint32
	ram       []byte
	f         *os.File
	statusOff int64
	dataOff   int64
}

// openPixelCache opens the cache for src at size: in memory when path is
// "", else the file at path, created when missing.
func openPixelCache(path string, src *Source, size int) (*pixelCache, error) {
	shards := src.Shards()
	c := &pixelCache{path: path, size: size, item: 3 * size * size}
	hdr := pixelCacheHeader{Version: 1, Size: size}
	for _, s := range shards {
		c.base = append(c.base, hdr.Rows)
		hdr.Rows += s.Rows
		st, err := os.Stat(s.Path)
		if err != nil {
			return nil, fmt.Errorf("pixel cache: %w", err)
		}
		hdr.Shards = append(hdr.Shards, pixelCacheShards{File: filepath.Base(s.Path), Rows: s.Rows, Bytes: st.Size()})
	}
	c.status = make([]atomic.Uint32, hdr.Rows)
	total := int64(hdr.Rows) * int64(c.item)
	if path == "" {
		if total > MaxRAMCacheBytes {
			return nil, fmt.Errorf("pixel cache: %d rows at %dx%d need %d MiB, more than the in-memory limit of %d MiB; set a cache file", hdr.Rows, size, size, total>>20, MaxRAMCacheBytes>>20)
		}
		c.ram = make([]byte, total)
		return c, nil
	}
	want, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("pixel cache %s: %w", path, err)
	}
	c.statusOff = int64(len(pixelCacheMagic)) + 8 + int64(len(want))
	c.dataOff = (c.statusOff + int64(hdr.Rows) + 4095) &^ 4095
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pixel cache: %w", err)
	}
	c.f = f
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pixel cache: %w", err)
	}
	if st.Size() == 0 {
		err = c.create(want, c.dataOff+total)
	} else {
		err = c.load(want, c.dataOff+total, st.Size())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pixel cache %s: %w", path, err)
	}
	return c, nil
}

// create writes the header of a new, empty cache file of the given size.
func (c *pixelCache) create(hdr []byte, size int64) error {
	var b bytes.Buffer
	b.WriteString(pixelCacheMagic)
	binary.Write(&b, binary.LittleEndian, uint64(len(hdr)))
	b.Write(hdr)
	if _, err := c.f.WriteAt(b.Bytes(), 0); err != nil {
		return err
	}
	return c.f.Truncate(size) // sparse: rows cost disk only once stored
}

// load checks an existing cache file against hdr and reads which rows it
// holds.
func (c *pixelCache) load(want []byte, size, have int64) error {
	head := make([]byte, len(pixelCacheMagic)+8)
	if _, err := c.f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("not a pixel cache file (%v)", err)
	}
	if string(head[:len(pixelCacheMagic)]) != pixelCacheMagic {
		return errors.New("not a pixel cache file (bad magic); delete it or choose another path")
	}
	n := binary.LittleEndian.Uint64(head[len(pixelCacheMagic):])
	if n > 1<<26 {
		return fmt.Errorf("corrupt header length %d", n)
	}
	got := make([]byte, n)
	if _, err := c.f.ReadAt(got, int64(len(head))); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("made for other data or another size (it has %s, want %s); delete it or choose another path", got, want)
	}
	if have != size {
		return fmt.Errorf("file is %d bytes, want %d (truncated?); delete it", have, size)
	}
	marks := make([]byte, len(c.status))
	if _, err := c.f.ReadAt(marks, c.statusOff); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read row marks: %w", err)
	}
	for i, m := range marks {
		if m == cacheFileOK {
			c.status[i].Store(cacheOK)
		}
	}
	return nil
}

// index returns the global row of (shard, row).
func (c *pixelCache) index(shard, row int) int { return c.base[shard] + row }

// has reports whether row i is stored.
func (c *pixelCache) has(i int) bool { return c.status[i].Load() == cacheOK }

// get returns row i's crop: a view of the memory cache, or the file's
// bytes read into buf.
func (c *pixelCache) get(i int, buf []uint8) (*RGBImage, error) {
	off := int64(i) * int64(c.item)
	if c.ram != nil {
		return &RGBImage{Width: c.size, Height: c.size, Pix: c.ram[off : off+int64(c.item) : off+int64(c.item)]}, nil
	}
	buf = growPixels(buf, c.item)
	if _, err := c.f.ReadAt(buf, c.dataOff+off); err != nil {
		return nil, fmt.Errorf("pixel cache %s: read row %d: %w", c.path, i, err)
	}
	return &RGBImage{Width: c.size, Height: c.size, Pix: buf}, nil
}

// put stores row i's crop unless it is stored or being stored.
func (c *pixelCache) put(i int, pix []uint8) error {
	if len(pix) != c.item {
		return fmt.Errorf("pixel cache: row %d has %d bytes, want %d", i, len(pix), c.item)
	}
	if !c.status[i].CompareAndSwap(cacheEmpty, cacheWriting) {
		return nil
	}
	off := int64(i) * int64(c.item)
	if c.ram != nil {
		copy(c.ram[off:], pix)
	} else {
		if _, err := c.f.WriteAt(pix, c.dataOff+off); err != nil {
			c.status[i].Store(cacheEmpty)
			return fmt.Errorf("pixel cache %s: write row %d: %w", c.path, i, err)
		}
		if _, err := c.f.WriteAt([]byte{cacheFileOK}, c.statusOff+int64(i)); err != nil {
			c.status[i].Store(cacheEmpty)
			return fmt.Errorf("pixel cache %s: write row %d: %w", c.path, i, err)
		}
	}
	c.status[i].Store(cacheOK)
	return nil
}

// stored returns the number of rows held.
func (c *pixelCache) stored() int {
	n := 0
	for i := range c.status {
		if c.status[i].Load() == cacheOK {
			n++
		}
	}
	return n
}

// close closes the cache file.
func (c *pixelCache) close() error {
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	if err != nil {
		return fmt.Errorf("pixel cache %s: %w", c.path, err)
	}
	return nil
}
