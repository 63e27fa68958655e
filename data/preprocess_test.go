package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

func TestResizeShorterSideAndCrop(t *testing.T) {
	tests := []struct {
		w, h, size int
		newW, newH int
		left, top  int
	}{
		{640, 480, 224, 298, 224, 37, 0},
		{300, 500, 224, 224, 373, 0, 74},
		{224, 224, 224, 224, 224, 0, 0},
		{1000, 250, 224, 896, 224, 336, 0},
		{50, 80, 224, 224, 358, 0, 67},
		{225, 400, 224, 224, 398, 0, 87},
		{225, 226, 224, 224, 224, 0, 0}, // int(224*226/225) = int(224.995)
		{225, 227, 224, 224, 225, 0, 0}, // (225-224)/2 = 0.5 rounds to even: 0
		{227, 230, 224, 224, 226, 0, 1}, // 1.0
		{100, 107, 96, 96, 102, 0, 3},   // 3.0
		{100, 103, 96, 96, 98, 0, 1},    // 1.0
		{97, 100, 96, 96, 98, 0, 1},
		{10, 13, 8, 8, 10, 0, 1},
		{10, 15, 8, 8, 12, 0, 2},
		{10, 17, 8, 8, 13, 0, 2}, // 2.5 rounds to even: 2
	}
	for _, tc := range tests {
		nw, nh := ResizeShorterSide(tc.w, tc.h, tc.size)
		l, tp := CenterCropOffset(nw, tc.size), CenterCropOffset(nh, tc.size)
		if nw != tc.newW || nh != tc.newH || l != tc.left || tp != tc.top {
			t.Errorf("%dx%d -> %d: resize %dx%d crop (%d,%d), want %dx%d (%d,%d)", tc.w, tc.h, tc.size, nw, nh, l, tp, tc.newW, tc.newH, tc.left, tc.top)
		}
	}
}

// TestResizeBicubicMatchesPillow compares ResizeBicubic with Pillow's
// resize(BICUBIC) at several sizes: down, up, one axis only, to 1x1.
func TestResizeBicubicMatchesPillow(t *testing.T) {
	m := loadPreprocessManifest(t)
	src, err := DecodeImageFile(filepath.Join(preprocessFixtureDir, "fixtures", "rgb.png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Resizes) == 0 {
		t.Fatal("no resize cases")
	}
	for _, wh := range m.Resizes {
		name := fmt.Sprintf("%dx%d", wh[0], wh[1])
		t.Run(name, func(t *testing.T) {
			got, err := ResizeBicubic(src, wh[0], wh[1])
			if err != nil {
				t.Fatal(err)
			}
			want, shape := readPreprocessU8(t, filepath.Join(preprocessFixtureDir, "ref", "resize_"+name+".npy"))
			if shape[0] != wh[1] || shape[1] != wh[0] {
				t.Fatalf("reference shape %v", shape)
			}
			if maxd, mean := rgbByteDiff(got.Pix, want); maxd != 0 {
				t.Errorf("max |diff| %d, mean %.4f: want exact", maxd, mean)
			}
		})
	}
	if _, err := ResizeBicubic(src, 0, 3); err == nil {
		t.Error("ResizeBicubic to width 0: no error")
	}
}

// TestPreprocessFixturesMatchPillow runs CLIP preprocessing (size from
// cases.json) on every committed fixture against Pillow's output.
func TestPreprocessFixturesMatchPillow(t *testing.T) {
	m := loadPreprocessManifest(t)
	ref, err := npy.ReadFile(filepath.Join(preprocessFixtureDir, "ref", "pixels24.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Float32()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultPreprocessConfig()
	cfg.Size = m.Size
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	per := cfg.OutputLen()
	if len(want) != per*len(m.Cases) {
		t.Fatalf("pixels24.npy has %d values, want %d", len(want), per*len(m.Cases))
	}
	for i, c := range m.Cases {
		t.Run(filepath.Base(c.File), func(t *testing.T) {
			got := make([]float32, per)
			if err := p.PreprocessFileInto(got, filepath.Join(preprocessFixtureDir, c.File)); err != nil {
				t.Fatal(err)
			}
			mx, mean := preprocessErrStats(t, got, want[i*per:(i+1)*per])
			maxTol, meanTol := 1e-6, 1e-7
			if strings.HasSuffix(c.File, ".jpg") {
				maxTol, meanTol = 0.06, 0.004
			}
			if mx > maxTol || mean > meanTol {
				t.Errorf("%s: max abs %.6f (limit %g), mean abs %.7f (limit %g)", c.Note, mx, maxTol, mean, meanTol)
			}
		})
	}
}

// TestPreprocessRealPhotos checks the real photos in the shared folder
// against digests of Pillow's preprocessing (photos.json, written by
// gen_reference.py; the photos may not be committed). PNG photos must give
// Pillow's 8-bit crop exactly; every photo's row and column means of the
// normalised output must agree within the JPEG tolerance.
func TestPreprocessRealPhotos(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "photos")
	b, err := os.ReadFile(filepath.Join(preprocessFixtureDir, "photos.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Size   int
		Photos []struct {
			Name          string `json:"file"`
			PillowMode    string `json:"mode"`
			Width, Height int
			Sha           string       `json:"crop_sha256"`
			RowMeans      [3][]float64 `json:"row_means"`
			ColMeans      [3][]float64 `json:"col_means"`
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("photos.json: %v", err)
	}
	if len(ref.Photos) < 7 {
		t.Fatalf("photos.json lists %d photos, want 7", len(ref.Photos))
	}
	cfg := DefaultPreprocessConfig()
	cfg.Size = ref.Size
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Size
	for _, ph := range ref.Photos {
		t.Run(ph.Name, func(t *testing.T) {
			img, err := DecodeImageFile(filepath.Join(dir, ph.Name))
			if err != nil {
				t.Fatal(err)
			}
			if img.Width != ph.Width || img.Height != ph.Height {
				t.Fatalf("decoded %dx%d, Pillow %dx%d", img.Width, img.Height, ph.Width, ph.Height)
			}
			crop, err := p.ResizeCrop(img)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(crop.Pix)
			exact := hex.EncodeToString(sum[:]) == ph.Sha
			got := make([]float32, cfg.OutputLen())
			p.normalize(got, crop)
			worst, total, n := 0.0, 0.0, 0
			for c := range 3 {
				for i := 0; i < s; i++ {
					row, col := 0.0, 0.0
					for j := 0; j < s; j++ {
						row += float64(got[c*s*s+i*s+j])
						col += float64(got[c*s*s+j*s+i])
					}
					for _, d := range []float64{math.Abs(row/float64(s) - ph.RowMeans[c][i]), math.Abs(col/float64(s) - ph.ColMeans[c][i])} {
						worst = max(worst, d)
						total += d
						n++
					}
				}
			}
			t.Logf("%s %dx%d: exact 8-bit crop %v; row/col mean diff max %.5f mean %.6f", ph.PillowMode, ph.Width, ph.Height, exact, worst, total/float64(n))
			if strings.HasSuffix(ph.Name, ".png") && !exact {
				t.Errorf("8-bit crop differs from Pillow's (sha256 mismatch)")
			}
			if worst > 0.03 || total/float64(n) > 0.004 {
				t.Errorf("row/col means differ from Pillow's: max %.5f (limit 0.03), mean %.6f (limit 0.004)", worst, total/float64(n))
			}
		})
	}
}

func TestPreprocessLayouts(t *testing.T) {
	img, err := DecodeImageFile(filepath.Join(preprocessFixtureDir, "fixtures", "odd.png"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultPreprocessConfig()
	cfg.Size = 16
	chw, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Layout = LayoutHWC
	hwc, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := chw.Preprocess(img)
	if err != nil {
		t.Fatal(err)
	}
	// Write into the middle of a larger batch buffer.
	batch := make([]float32, 3*cfg.OutputLen())
	if err := hwc.PreprocessInto(batch[cfg.OutputLen():2*cfg.OutputLen()], img); err != nil {
		t.Fatal(err)
	}
	b := batch[cfg.OutputLen() : 2*cfg.OutputLen()]
	for c := range 3 {
		for i := range 16 * 16 {
			if a[c*256+i] != b[3*i+c] {
				t.Fatalf("channel %d pixel %d: CHW %v, HWC %v", c, i, a[c*256+i], b[3*i+c])
			}
		}
	}
	for i, v := range batch[:cfg.OutputLen()] {
		if v != 0 {
			t.Fatalf("PreprocessInto wrote outside its slice at %d", i)
		}
	}
	if err := hwc.PreprocessInto(make([]float32, 10), img); err == nil || !strings.Contains(err.Error(), "destination holds 10") {
		t.Errorf("short destination: error %v", err)
	}
	if _, err := hwc.Preprocess(&RGBImage{Width: 2, Height: 2, Pix: make([]uint8, 5)}); err == nil {
		t.Error("inconsistent RGBImage: no error")
	}
}

func TestPreprocessConfigValidate(t *testing.T) {
	good := DefaultPreprocessConfig()
	tests := []struct {
		name string
		edit func(*PreprocessConfig)
		want string
	}{
		{"default", func(*PreprocessConfig) {}, ""},
		{"zero size", func(c *PreprocessConfig) { c.Size = 0 }, "size 0"},
		{"huge size", func(c *PreprocessConfig) { c.Size = 100000 }, "size 100000"},
		{"zero std", func(c *PreprocessConfig) { c.Std[1] = 0 }, "std[1]"},
		{"layout", func(c *PreprocessConfig) { c.Layout = 7 }, "layout"},
	}
	for _, tc := range tests {
		c := good
		tc.edit(&c)
		_, err := NewPreprocessor(c)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestNormalizeLUT checks the table against torchvision's float32 steps on
// the extremes.
func TestNormalizeLUT(t *testing.T) {
	cfg := DefaultPreprocessConfig()
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		for _, v := range []int{0, 128, 255} {
			want := (float64(v)/255 - float64(cfg.Mean[c])) / float64(cfg.Std[c])
			if d := math.Abs(float64(p.lut[c][v]) - want); d > 1e-6 {
				t.Errorf("lut[%d][%d] = %v, want %v", c, v, p.lut[c][v], want)
			}
		}
	}
}

// TestResizeCropEqualsFullResize checks that computing only the crop window
// gives the pixels of a full Pillow-style resize followed by the crop, on
// shapes from square to extreme aspect ratios.
func TestResizeCropEqualsFullResize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ w, h, size int }{
		{40, 30, 16}, {30, 40, 16}, {17, 17, 16}, {16, 100, 16}, {3, 200, 16}, {200, 3, 16}, {9, 7, 20}, {1, 50, 8},
	} {
		img := NewRGBImage(tc.w, tc.h)
		for i := range img.Pix {
			img.Pix[i] = uint8(rng.IntN(256))
		}
		cfg := DefaultPreprocessConfig()
		cfg.Size = tc.size
		p, err := NewPreprocessor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.ResizeCrop(img)
		if err != nil {
			t.Fatal(err)
		}
		nw, nh := ResizeShorterSide(tc.w, tc.h, tc.size)
		full, err := ResizeBicubic(img, nw, nh)
		if err != nil {
			t.Fatal(err)
		}
		left, top := CenterCropOffset(nw, tc.size), CenterCropOffset(nh, tc.size)
		for y := range tc.size {
			row := full.Pix[3*((top+y)*nw+left) : 3*((top+y)*nw+left+tc.size)]
			if !bytes.Equal(row, got.Pix[3*y*tc.size:3*(y+1)*tc.size]) {
				t.Errorf("%dx%d -> %d: crop row %d differs from the full resize", tc.w, tc.h, tc.size, y)
				break
			}
		}
	}
}

// TestPreprocessExtremeAspect runs a 1x20000 image: the resize target is
// 224x4480000, of which only the 224x224 window is computed.
func TestPreprocessExtremeAspect(t *testing.T) {
	img := NewRGBImage(1, 20000)
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 3)
	}
	p, err := NewPreprocessor(DefaultPreprocessConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Preprocess(img); err != nil {
		t.Fatal(err)
	}
}
