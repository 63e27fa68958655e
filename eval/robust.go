package eval

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
)

// AddGaussianNoise adds sigma * N(0, 1) to every value of pixels in place
// (CLIP-normalised pixel values: the noise is in units of the channel
// standard deviation), drawing from r so that runs are reproducible.
func AddGaussianNoise(pixels []float32, sigma float64, r *rand.Rand) error {
	if !(sigma >= 0) || math.IsInf(sigma, 0) {
		return fmt.Errorf("noise sigma must be a finite number >= 0, got %v", sigma)
	}
	if sigma == 0 {
		return nil
	}
	for i := range pixels {
		pixels[i] += float32(sigma * r.NormFloat64())
	}
	return nil
}

// JPEGReencode returns img after a JPEG encode/decode round trip at quality
// (1-100), the compression corruption of robustness benchmarks.
func JPEGReencode(img image.Image, quality int) (image.Image, error) {
	if quality < 1 || quality > 100 {
		return nil, fmt.Errorf("JPEG quality must be in [1, 100], got %d", quality)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("JPEG encode at quality %d: %w", quality, err)
	}
	out, err := jpeg.Decode(&buf)
	if err != nil {
		return nil, fmt.Errorf("JPEG decode after re-encoding: %w", err)
	}
	return out, nil
}
