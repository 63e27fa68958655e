package eval

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

func TestAddGaussianNoise(t *testing.T) {
	px := make([]float32, 100_000)
	if err := AddGaussianNoise(px, 0.5, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	var s, s2 float64
	for _, v := range px {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	mean := s / float64(len(px))
	std := math.Sqrt(s2/float64(len(px)) - mean*mean)
	if math.Abs(mean) > 0.01 || math.Abs(std-0.5) > 0.01 {
		t.Errorf("noise mean %.4f std %.4f, want 0 and 0.5", mean, std)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := AddGaussianNoise(px, bad, rand.New(rand.NewPCG(1, 2))); err == nil {
			t.Errorf("sigma %v: no error", bad)
		}
	}
}

func TestJPEGReencode(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			img.Set(x, y, color.RGBA{uint8(8 * x), uint8(8 * y), uint8((x * y) % 256), 255})
		}
	}
	diff := func(q int) float64 {
		out, err := JPEGReencode(img, q)
		if err != nil {
			t.Fatal(err)
		}
		var d float64
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				r0, _, _, _ := img.At(x, y).RGBA()
				r1, _, _, _ := out.At(x, y).RGBA()
				d += math.Abs(float64(r0) - float64(r1))
			}
		}
		return d
	}
	if lo, hi := diff(10), diff(95); !(lo > hi) {
		t.Errorf("quality 10 error %v should exceed quality 95 error %v", lo, hi)
	}
	if _, err := JPEGReencode(img, 0); err == nil || err.Error() != "JPEG quality must be in [1, 100], got 0" {
		t.Errorf("quality 0: %v", err)
	}
}
