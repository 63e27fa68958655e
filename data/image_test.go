package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
)

const preprocessFixtureDir = "testdata/preprocess"

// preprocessFixture is one entry of testdata/preprocess/cases.json.
type preprocessFixture struct {
	Name, File, Note, Mode string
	Width, Height          int
}

type preprocessManifest struct {
	Size    int
	Cases   []preprocessFixture
	Resizes [][2]int
}

func loadPreprocessManifest(t *testing.T) preprocessManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m preprocessManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("cases.json lists no fixtures")
	}
	return m
}

// readPreprocessU8 reads a uint8 .npy written by numpy as its raw bytes and shape.
func readPreprocessU8(t *testing.T, path string) ([]uint8, []int) {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := a.Data.([]uint8)
	if !ok {
		t.Fatalf("%s: data is %T, want []uint8", path, a.Data)
	}
	return b, a.Shape
}

// rgbByteDiff returns the max and mean absolute difference of two byte slices.
func rgbByteDiff(a, b []uint8) (maxd int, mean float64) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		maxd = max(maxd, d)
	}
	return maxd, float64(sum) / float64(len(a))
}

// TestDecodeFixturesMatchPillow compares DecodeImageFile with Pillow's
// Image.open(f).convert("RGB") on every committed fixture. Lossless formats
// and lossy WebP must match exactly; JPEG differs only by IDCT rounding.
func TestDecodeFixturesMatchPillow(t *testing.T) {
	m := loadPreprocessManifest(t)
	for _, c := range m.Cases {
		t.Run(filepath.Base(c.File), func(t *testing.T) {
			img, err := DecodeImageFile(filepath.Join(preprocessFixtureDir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			want, shape := readPreprocessU8(t, filepath.Join(preprocessFixtureDir, "ref", filepath.Base(c.File)+".rgb.npy"))
			if img.Width != c.Width || img.Height != c.Height || len(shape) != 3 || shape[0] != c.Height || shape[1] != c.Width {
				t.Fatalf("decoded %dx%d, reference %v, manifest %dx%d", img.Width, img.Height, shape, c.Width, c.Height)
			}
			maxd, mean := rgbByteDiff(img.Pix, want)
			t.Logf("%s (%s): max |diff| %d, mean %.4f", c.Note, c.Mode, maxd, mean)
			maxTol, meanTol := 0, 0.0
			if strings.HasSuffix(c.File, ".jpg") {
				maxTol, meanTol = 4, 0.1
			}
			if maxd > maxTol || mean > meanTol {
				t.Errorf("max |diff| %d (limit %d), mean %.4f (limit %.2f)", maxd, maxTol, mean, meanTol)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "fixtures", "q90_420.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	goodPNG, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "fixtures", "rgb.png"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), goodPNG...)
	for i := 40; i < len(corrupt); i += 7 {
		corrupt[i] ^= 0x5a
	}
	hugePNG := pngHeaderOnly(100000, 100000)
	files := map[string][]byte{
		"truncated.jpg": good[:len(good)/2],
		"truncated.png": goodPNG[:len(goodPNG)/2],
		"corrupt.png":   corrupt,
		"text.jpg":      []byte("this is not an image\n"),
		"image.tiff":    {'I', 'I', 42, 0, 8, 0, 0, 0},
		"empty.png":     {},
		"huge.png":      hugePNG,
		"header.gif":    []byte("GIF89a"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		file, want string
	}{
		{"missing.jpg", "no such file"},
		{"truncated.jpg", "decode jpeg"},
		{"truncated.png", "decode png"},
		{"corrupt.png", "decode png"},
		{"text.jpg", "unsupported image format"},
		{"image.tiff", "unsupported image format"},
		{"empty.png", "unsupported image format"},
		{"huge.png", "more than"},
		{"header.gif", "decode gif"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			img, err := DecodeImageFile(path)
			if err == nil {
				t.Fatalf("decoded %dx%d, want an error", img.Width, img.Height)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s and saying %q", msg, path, tc.want)
			}
		})
	}
	if _, err := DecodeImage([]byte("nope")); !errors.Is(err, ErrUnsupportedImageFormat) {
		t.Errorf("DecodeImage(garbage) = %v, want ErrUnsupportedImageFormat", err)
	}
}

// pngHeaderOnly returns a PNG signature and IHDR claiming width x height.
func pngHeaderOnly(width, height int) []byte {
	var buf bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	// IHDR data starts at byte 16: width, height big-endian.
	put := func(o, v int) { b[o], b[o+1], b[o+2], b[o+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	put(16, width)
	put(20, height)
	put(29, int(crc32.ChecksumIEEE(b[12:29])))
	return b[:33]
}

func TestSniffImageFormat(t *testing.T) {
	tests := []struct {
		in   string
		want ImageFormat
	}{
		{"\xff\xd8\xff\xe0", FormatJPEG},
		{"\x89PNG\r\n\x1a\n....", FormatPNG},
		{"GIF87a", FormatGIF},
		{"GIF89a", FormatGIF},
		{"BM\x00\x00", FormatBMP},
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", FormatWebP},
		{"RIFF\x00\x00\x00\x00WAVE", ""},
		{"II*\x00", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := SniffImageFormat([]byte(tc.in)); got != tc.want {
			t.Errorf("SniffImageFormat(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestToRGBConversions checks the Pillow conversion rules on hand-made
// images of the types the decoders return.
func TestToRGBConversions(t *testing.T) {
	r := image.Rect(0, 0, 2, 1)
	gray16 := image.NewGray16(r)
	gray16.SetGray16(0, 0, color.Gray16{Y: 200})
	gray16.SetGray16(1, 0, color.Gray16{Y: 300})
	nrgba := image.NewNRGBA(r)
	nrgba.SetNRGBA(0, 0, color.NRGBA{10, 20, 30, 0})
	nrgba.SetNRGBA(1, 0, color.NRGBA{200, 100, 50, 128})
	nrgba64 := image.NewNRGBA64(r)
	nrgba64.SetNRGBA64(0, 0, color.NRGBA64{0x12ff, 0x3400, 0xffff, 0})
	nrgba64.SetNRGBA64(1, 0, color.NRGBA64{0x00ff, 0x0100, 0x8080, 0xffff})
	cmyk := image.NewCMYK(r)
	cmyk.SetCMYK(0, 0, color.CMYK{0, 0, 0, 0})
	cmyk.SetCMYK(1, 0, color.CMYK{C: 100, M: 50, Y: 255, K: 30})
	pal := image.NewPaletted(r, color.Palette{color.NRGBA{1, 2, 3, 0}, color.RGBA{9, 8, 7, 255}})
	pal.SetColorIndex(0, 0, 0)
	pal.SetColorIndex(1, 0, 1)
	// Pillow CMYK->RGB: nk=225; R = 225 - (100*225+128 + ((100*225+128)>>8))>>8 ...
	nk := 255 - 30
	cm := func(v int) uint8 { return uint8(nk - mulDiv255(v, nk)) }
	tests := []struct {
		name string
		img  image.Image
		want []uint8
	}{
		{"gray16 clamps", gray16, []uint8{200, 200, 200, 255, 255, 255}},
		{"nrgba drops alpha", nrgba, []uint8{10, 20, 30, 200, 100, 50}},
		{"nrgba64 high byte", nrgba64, []uint8{0x12, 0x34, 0xff, 0x00, 0x01, 0x80}},
		{"cmyk pillow formula", cmyk, []uint8{255, 255, 255, cm(100), cm(50), cm(255)}},
		{"palette keeps transparent colour", pal, []uint8{1, 2, 3, 9, 8, 7}},
	}
	for _, tc := range tests {
		got := ToRGB(tc.img).Pix
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := mulDiv255(100, 225); got != 88 {
		t.Errorf("mulDiv255(100, 225) = %d, want 88", got)
	}
}

// TestDecodeGIFOffsetFrame checks Pillow's canvas rule for a first frame
// smaller than the logical screen: the rest is the transparent index colour.
func TestDecodeGIFOffsetFrame(t *testing.T) {
	pal := color.Palette{color.RGBA{10, 10, 10, 255}, color.RGBA{200, 0, 0, 255}, color.RGBA{0, 0, 200, 255}}
	frame := image.NewPaletted(image.Rect(1, 1, 3, 2), pal)
	frame.Pix[0], frame.Pix[1] = 1, 1
	g := &gif.GIF{
		Image:    []*image.Paletted{frame},
		Delay:    []int{0},
		Disposal: []byte{0},
		Config:   image.Config{ColorModel: pal, Width: 4, Height: 3},
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 4 || img.Height != 3 {
		t.Fatalf("size %dx%d, want the 4x3 screen", img.Width, img.Height)
	}
	at := func(x, y int) [3]uint8 {
		o := 3 * (y*img.Width + x)
		return [3]uint8{img.Pix[o], img.Pix[o+1], img.Pix[o+2]}
	}
	if got := at(0, 0); got != [3]uint8{10, 10, 10} {
		t.Errorf("outside the frame: %v, want palette[0]", got)
	}
	if got := at(1, 1); got != [3]uint8{200, 0, 0} {
		t.Errorf("inside the frame: %v, want palette[1]", got)
	}
}
