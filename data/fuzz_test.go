package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// allocated returns the bytes the Go heap handed out while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// checkOneLine fails t unless err is one line mentioning what.
func checkOneLine(t *testing.T, err error, what string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") || (what != "" && !strings.Contains(msg, what)) {
		t.Fatalf("error is not one line naming %q: %q", what, msg)
	}
}

// fuzzStreamShard writes a small HF-style dataset with the package's own
// writer (3-row record batches, captions and labels) and returns its
// Arrow IPC stream shard's bytes.
func fuzzStreamShard(tb testing.TB) []byte {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "ds")
	w, err := CreateDataset(dir, WriterOptions{Captions: true, ClassNames: []string{"cat", "dog"}, BatchRows: 3})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 7 {
		ex := Example{ImageBytes: []byte(fmt.Sprintf("img%d", i)), ImagePath: fmt.Sprintf("%d.png", i), Caption: fmt.Sprintf("caption %d", i), Label: i % 2}
		if i == 5 {
			ex.ImageBytes = nil // a path-only row
		}
		if err := w.Write(ex); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	shards, err := filepath.Glob(filepath.Join(dir, "*.arrow"))
	if err != nil || len(shards) != 1 {
		tb.Fatalf("want one shard in %s, got %v (%v)", dir, shards, err)
	}
	b, err := os.ReadFile(shards[0])
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fuzzReadRows is how many rows per shard FuzzOpenShard reads at most, so a
// corrupted row count cannot make one input run for long.
const fuzzReadRows = 4096

// FuzzOpenShard opens mutated Arrow IPC stream, Arrow IPC file (feather)
// and Parquet shards with Open and reads every row with ReadRange. Neither
// may panic or hang; every error must be one line naming the shard file;
// the rows returned must be the ones asked for, in order.
func FuzzOpenShard(f *testing.F) {
	stream := fuzzStreamShard(f)
	feather, err := os.ReadFile(filepath.Join(datasetFixtureDir, "shapes-tiny.feather"))
	if err != nil {
		f.Fatal(err)
	}
	parquet, err := os.ReadFile(filepath.Join(datasetFixtureDir, "img2dataset-tiny.parquet"))
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{stream, feather, parquet} {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-9])
		flipped := bytes.Clone(b)
		for i := 5; i < len(flipped); i += 97 {
			flipped[i] ^= 0xA5
		}
		f.Add(flipped)
	}
	path := filepath.Join(f.TempDir(), "shard.arrow")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// A hang is a failure: the fuzzing engine has no per-input timeout.
		watchdog := time.AfterFunc(time.Minute, func() {
			panic(fmt.Sprintf("Open/ReadRange of a %d-byte shard ran for a minute", len(data)))
		})
		defer watchdog.Stop()
		src, err := Open(path, SourceOptions{})
		if err != nil {
			checkOneLine(t, err, path)
			return
		}
		defer src.Close()
		for si, sh := range src.Shards() {
			if sh.Rows < 0 {
				t.Fatalf("shard %d has %d rows", si, sh.Rows)
			}
			limit := min(sh.Rows, fuzzReadRows)
			for start := 0; start < limit; start += 16 {
				end := min(start+16, limit)
				exs, err := src.ReadRange(si, start, end)
				if err != nil {
					checkOneLine(t, err, path)
					break
				}
				prev := start - 1
				for _, ex := range exs {
					if ex.Shard != si || ex.Row <= prev || ex.Row >= end {
						t.Fatalf("ReadRange(%d, %d, %d) returned shard %d row %d after row %d", si, start, end, ex.Shard, ex.Row, prev)
					}
					prev = ex.Row
				}
			}
		}
	})
}

// fuzzImageSeeds are small fixtures, one or two per format and kind.
var fuzzImageSeeds = []string{
	"small.png", "bilevel.png", "palette16.png", "grey16.png",
	"grey.jpg", "progressive.jpg", "odd_420.jpg",
	"trns.gif", "palette.bmp",
	"lossy.webp", "lossy_alpha.webp", "lossless.webp",
}

// fuzzMaxPixels is the pixel limit FuzzDecodeImage decodes under, well
// below MaxImagePixels so that every input stays cheap.
const fuzzMaxPixels = 1 << 20

// FuzzDecodeImage feeds arbitrary bytes to the image decoder front end. It
// must never panic; an error must be one line; an image it returns must
// have the size it claims and at most the pixel limit; and it must never
// allocate more than the pixel limit allows, however large a size the
// header claims.
func FuzzDecodeImage(f *testing.F) {
	for _, name := range fuzzImageSeeds {
		b, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "fixtures", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hugeImageHeaders(f, 1000, 1000) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var img *RGBImage
		var err error
		alloc := allocated(func() { img, err = decodeImageLimit(b, nil, fuzzMaxPixels) })
		// Decoders hold a few copies of the pixels (coefficients,
		// RGBA64, the RGB result): 64 bytes per pixel is ample.
		if max := uint64(64*fuzzMaxPixels + 64*len(b) + 8<<20); alloc > max {
			t.Fatalf("decoding %d bytes allocated %d bytes, more than %d", len(b), alloc, max)
		}
		if err != nil {
			checkOneLine(t, err, "")
			return
		}
		if img.Width <= 0 || img.Height <= 0 || int64(img.Width)*int64(img.Height) > fuzzMaxPixels || len(img.Pix) != 3*img.Width*img.Height {
			t.Fatalf("decoded a %dx%d image with %d bytes of pixels", img.Width, img.Height, len(img.Pix))
		}
		// Under the limit the public entry point agrees.
		img2, err := DecodeImage(b)
		if err != nil || img2.Width != img.Width || img2.Height != img.Height || !bytes.Equal(img2.Pix, img.Pix) {
			t.Fatalf("DecodeImage disagrees with the fuzzed front end (%v)", err)
		}
	})
}

// hugeImageHeaders returns a tiny file of each format whose header claims
// a width x height image: the start of a real fixture with its size
// patched, cut short of the pixel data.
func hugeImageHeaders(tb testing.TB, width, height int) map[string][]byte {
	tb.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "fixtures", name))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	// PNG: a valid IHDR, then an IDAT of a few compressed bytes, so the
	// decoder gets as far as allocating the image.
	png := pngHeaderOnly(width, height)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 64))
	zw.Close()
	for _, c := range []struct {
		kind string
		data []byte
	}{{"IDAT", z.Bytes()}, {"IEND", nil}} {
		chunk := binary.BigEndian.AppendUint32(nil, uint32(len(c.data)))
		chunk = append(append(chunk, c.kind...), c.data...)
		png = binary.BigEndian.AppendUint32(append(png, chunk...), crc32.ChecksumIEEE(chunk[4:]))
	}
	out := map[string][]byte{"png": png}

	// BMP: the 54-byte file and info headers of a 24-bit image.
	bmp := make([]byte, 54)
	copy(bmp, "BM")
	le := binary.LittleEndian
	le.PutUint32(bmp[2:], 54)
	le.PutUint32(bmp[10:], 54)
	le.PutUint32(bmp[14:], 40)
	le.PutUint32(bmp[18:], uint32(width))
	le.PutUint32(bmp[22:], uint32(height))
	le.PutUint16(bmp[26:], 1)
	le.PutUint16(bmp[28:], 24)
	out["bmp"] = bmp

	// JPEG: a real file's markers with the SOF size patched, cut in its
	// first scan.
	jpg := read("grey.jpg")
	for i := 2; i+9 < len(jpg); i++ {
		if jpg[i] == 0xFF && (jpg[i+1] == 0xC0 || jpg[i+1] == 0xC2) {
			binary.BigEndian.PutUint16(jpg[i+5:], uint16(height))
			binary.BigEndian.PutUint16(jpg[i+7:], uint16(width))
			break
		}
	}
	out["jpeg"] = jpg[:min(len(jpg), 700)]

	// GIF: a logical screen and a frame of the full size, no image data.
	gif := []byte("GIF89a")
	gif = le.AppendUint16(gif, uint16(width))
	gif = le.AppendUint16(gif, uint16(height))
	gif = append(gif, 0x80, 0, 0, 0, 0, 0, 255, 255, 255)
	gif = append(gif, 0x2C, 0, 0, 0, 0)
	gif = le.AppendUint16(gif, uint16(width))
	gif = le.AppendUint16(gif, uint16(height))
	gif = append(gif, 0, 2, 2, 0x4C, 0x01, 0)
	out["gif"] = gif

	// WebP lossless: the VP8L header holds width-1 and height-1 in 14 bits
	// each.
	w, h := min(width, 1<<14), min(height, 1<<14)
	bits := uint32(w-1) | uint32(h-1)<<14
	vp8l := append([]byte{0x2F}, le.AppendUint32(nil, bits)...)
	vp8l = append(vp8l, 0, 0, 0)
	webp := append([]byte("RIFF"), le.AppendUint32(nil, uint32(12+len(vp8l)))...)
	webp = append(webp, "WEBPVP8L"...)
	webp = le.AppendUint32(webp, uint32(len(vp8l)))
	out["webp"] = append(webp, vp8l...)
	return out
}

// TestDecodeImageHugeHeaders checks that tiny files claiming huge images
// are refused before any pixel memory is allocated: above MaxImagePixels
// for every format, and just below it for the formats whose least encoded
// size is known (PNG, JPEG, BMP).
func TestDecodeImageHugeHeaders(t *testing.T) {
	const limit = 16 << 20 // far below one 13000x13000 pixel buffer
	over := hugeImageHeaders(t, 20000, 20000)
	under := hugeImageHeaders(t, 13000, 13000)
	for _, format := range []string{"png", "jpeg", "bmp", "gif", "webp"} {
		b := over[format]
		var err error
		alloc := allocated(func() { _, err = DecodeImage(b) })
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("%s claiming 20000x20000 (%d bytes): error %v, want more than %d pixels", format, len(b), err, MaxImagePixels)
		}
		if alloc > limit {
			t.Errorf("%s claiming 20000x20000: allocated %d bytes", format, alloc)
		}
	}
	for _, format := range []string{"png", "jpeg", "bmp"} {
		b := under[format]
		var err error
		alloc := allocated(func() { _, err = DecodeImage(b) })
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s claiming 13000x13000 (%d bytes): error %v, want truncated", format, len(b), err)
		}
		if alloc > limit {
			t.Errorf("%s claiming 13000x13000 (%d bytes): allocated %d bytes before failing", format, len(b), alloc)
		}
	}
	// Checked against crc32 so the PNG header is not refused for its CRC.
	if png := under["png"]; crc32.ChecksumIEEE(png[12:29]) != binary.BigEndian.Uint32(png[29:33]) {
		t.Fatal("pngHeaderOnly wrote a bad IHDR CRC")
	}
}
