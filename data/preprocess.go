package data

import (
	"fmt"
	"math"
)

// Layout is the memory order of a preprocessed image tensor.
type Layout int

const (
	// LayoutCHW stores (3, Size, Size): all red values, then green, then
	// blue. It is what CLIP vision towers take (N, 3, H, W).
	LayoutCHW Layout = iota
	// LayoutHWC stores (Size, Size, 3): interleaved pixels, as in NHWC.
	LayoutHWC
)

// String returns "CHW" or "HWC".
func (l Layout) String() string {
	switch l {
	case LayoutCHW:
		return "CHW"
	case LayoutHWC:
		return "HWC"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// The per-channel (R, G, B) normalisation constants of OpenAI CLIP's
// preprocessing.
const (
	CLIPMeanR = 0.48145466
	CLIPMeanG = 0.4578275
	CLIPMeanB = 0.40821073
	CLIPStdR  = 0.26862954
	CLIPStdG  = 0.26130258
	CLIPStdB  = 0.27577711
)

// PreprocessConfig describes CLIP image preprocessing: resize the shorter
// side to Size with Pillow's bicubic filter, center-crop Size x Size, scale
// to [0, 1], subtract Mean and divide by Std per channel.
type PreprocessConfig struct {
	// Size is the side of the square output (224 for ViT-B/32).
	Size int
	// Mean and Std are the per-channel normalisation constants.
	Mean, Std [3]float32
	// Layout is the order the float32 values are written in.
	Layout Layout
}

// DefaultPreprocessConfig returns CLIP's preprocessing at 224 pixels, CHW.
func DefaultPreprocessConfig() PreprocessConfig {
	return PreprocessConfig{
		Size:   224,
		Mean:   [3]float32{CLIPMeanR, CLIPMeanG, CLIPMeanB},
		Std:    [3]float32{CLIPStdR, CLIPStdG, CLIPStdB},
		Layout: LayoutCHW,
	}
}

// MaxPreprocessSize bounds PreprocessConfig.Size.
const MaxPreprocessSize = 8192

// Validate reports a configuration that cannot be used.
func (c PreprocessConfig) Validate() error {
	if c.Size <= 0 || c.Size > MaxPreprocessSize {
		return fmt.Errorf("preprocess size %d: want 1..%d", c.Size, MaxPreprocessSize)
	}
	for i, s := range c.Std {
		if s == 0 || math.IsNaN(float64(s)) {
			return fmt.Errorf("preprocess std[%d] = %v: want a non-zero number", i, s)
		}
	}
	if c.Layout != LayoutCHW && c.Layout != LayoutHWC {
		return fmt.Errorf("preprocess layout %v: want CHW or HWC", c.Layout)
	}
	return nil
}

// OutputLen is the number of float32 values one preprocessed image takes:
// 3*Size*Size.
func (c PreprocessConfig) OutputLen() int { return 3 * c.Size * c.Size }

// ResizeShorterSide returns the size CLIP's resize gives a width x height
// image whose shorter side becomes size: the longer side is
// int(size*long/short), truncated, as torchvision and the golden data do.
func ResizeShorterSide(width, height, size int) (newW, newH int) {
	short, long := width, height
	if width > height {
		short, long = height, width
	}
	newShort, newLong := size, int(float64(size*long)/float64(short))
	if width <= height {
		return newShort, newLong
	}
	return newLong, newShort
}

// CenterCropOffset returns the first kept row (or column) when cropping
// length to size: int(round((length-size)/2)) with Python's round half to
// even, as torchvision's CenterCrop does.
func CenterCropOffset(length, size int) int {
	return int(math.RoundToEven(float64(length-size) / 2))
}

// Preprocessor runs CLIP preprocessing on RGB images. It caches the
// resampling filters of each (input, output) size pair it meets and reuses
// its scratch buffers, so one Preprocessor per goroutine is the intended
// use; a Preprocessor is not safe for concurrent use.
type Preprocessor struct {
	cfg    PreprocessConfig
	lut    [3][256]float32
	coeffs map[[4]int]*bicubicCoeffs
	tmp    []uint8 // horizontal-pass output
	crop   []uint8 // resized and cropped RGB, Size*Size*3
	acc    []int32 // vertical-pass accumulators
	rgb    []uint8 // decoded pixels, reused by DecodePreprocessInto
}

// NewPreprocessor validates cfg and returns a Preprocessor for it.
func NewPreprocessor(cfg PreprocessConfig) (*Preprocessor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Preprocessor{cfg: cfg, coeffs: make(map[[4]int]*bicubicCoeffs)}
	for c := range 3 {
		for v := range 256 {
			// float32 steps as torchvision's ToTensor (div 255) and
			// Normalize (sub mean, div std).
			x := float32(v) / 255
			x -= cfg.Mean[c]
			p.lut[c][v] = x / cfg.Std[c]
		}
	}
	return p, nil
}

// Config returns the configuration the Preprocessor was made with.
func (p *Preprocessor) Config() PreprocessConfig { return p.cfg }

// Preprocess returns the preprocessed image as a new slice of
// Config().OutputLen() float32 values.
func (p *Preprocessor) Preprocess(img *RGBImage) ([]float32, error) {
	dst := make([]float32, p.cfg.OutputLen())
	if err := p.PreprocessInto(dst, img); err != nil {
		return nil, err
	}
	return dst, nil
}

// PreprocessInto writes the preprocessed image into dst, which must hold
// exactly Config().OutputLen() values (one image of a batch buffer).
func (p *Preprocessor) PreprocessInto(dst []float32, img *RGBImage) error {
	n := p.cfg.OutputLen()
	if len(dst) != n {
		return fmt.Errorf("preprocess: destination holds %d values, want 3*%d*%d = %d", len(dst), p.cfg.Size, p.cfg.Size, n)
	}
	crop, err := p.ResizeCrop(img)
	if err != nil {
		return err
	}
	p.normalize(dst, crop)
	return nil
}

// DecodePreprocessInto decodes an encoded image (see DecodeImage) and
// writes its preprocessed values into dst.
func (p *Preprocessor) DecodePreprocessInto(dst []float32, encoded []byte) error {
	img, err := decodeImage(encoded, p.rgb)
	if err != nil {
		return err
	}
	p.rgb = img.Pix
	return p.PreprocessInto(dst, img)
}

// PreprocessFileInto decodes the image file at path and writes its
// preprocessed values into dst. Errors name the file.
func (p *Preprocessor) PreprocessFileInto(dst []float32, path string) error {
	img, err := DecodeImageFile(path)
	if err != nil {
		return err
	}
	if err := p.PreprocessInto(dst, img); err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	return nil
}

// ResizeCrop resizes img so its shorter side is Size (Pillow bicubic) and
// returns the Size x Size center crop as 8-bit RGB. The result aliases the
// Preprocessor's scratch memory: it is valid until the next call.
func (p *Preprocessor) ResizeCrop(img *RGBImage) (*RGBImage, error) {
	if err := checkRGBImage(img); err != nil {
		return nil, err
	}
	s := p.cfg.Size
	newW, newH := ResizeShorterSide(img.Width, img.Height, s)
	left, top := CenterCropOffset(newW, s), CenterCropOffset(newH, s)
	p.crop = growPixels(p.crop, 3*s*s)
	out := &RGBImage{Width: s, Height: s, Pix: p.crop}
	p.resampleWindow(out, img, newW, newH, left, top)
	return out, nil
}

// ResizeBicubic returns img resized to width x height exactly as Pillow
// 9.4's Image.resize((width, height), Image.BICUBIC) does for an RGB image:
// separable a = -0.5 cubic convolution whose support grows with the
// downscaling factor (antialiasing), 22-bit fixed-point coefficients,
// horizontal pass first with results rounded and clipped to 8 bits, then the
// vertical pass.
func ResizeBicubic(img *RGBImage, width, height int) (*RGBImage, error) {
	if err := checkRGBImage(img); err != nil {
		return nil, err
	}
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("resize to %dx%d: want a positive size", width, height)
	}
	p := &Preprocessor{coeffs: make(map[[4]int]*bicubicCoeffs)}
	out := NewRGBImage(width, height)
	p.resampleWindow(out, img, width, height, 0, 0)
	return out, nil
}

func checkRGBImage(img *RGBImage) error {
	if img == nil || img.Width <= 0 || img.Height <= 0 {
		return fmt.Errorf("preprocess: empty image")
	}
	if len(img.Pix) != 3*img.Width*img.Height {
		return fmt.Errorf("preprocess: %dx%d RGB image has %d bytes, want %d", img.Width, img.Height, len(img.Pix), 3*img.Width*img.Height)
	}
	return nil
}

// normalize maps 8-bit RGB to normalised float32 in the configured layout.
func (p *Preprocessor) normalize(dst []float32, img *RGBImage) {
	src := img.Pix
	lr, lg, lb := &p.lut[0], &p.lut[1], &p.lut[2]
	if p.cfg.Layout == LayoutHWC {
		dst = dst[:len(src)]
		for i := 0; i+2 < len(src); i += 3 {
			d := dst[i : i+3 : i+3]
			d[0], d[1], d[2] = lr[src[i]], lg[src[i+1]], lb[src[i+2]]
		}
		return
	}
	plane := len(src) / 3
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for i := range r {
		px := src[3*i : 3*i+3 : 3*i+3]
		r[i], g[i], b[i] = lr[px[0]], lg[px[1]], lb[px[2]]
	}
}

func growPixels(b []uint8, n int) []uint8 {
	if cap(b) < n {
		return make([]uint8, n)
	}
	return b[:n]
}

// precisionBits is Pillow's fixed-point precision for 8-bit resampling.
const precisionBits = 32 - 8 - 2

// bicubicCoeffs are the resampling filters from an input length to a window
// of an output length: window output i reads n[i] inputs from first[i],
// weighted by k[i*ksize : i*ksize+n[i]].
type bicubicCoeffs struct {
	ksize    int
	first, n []int
	k        []int32
}

// pillowBicubic is Pillow's bicubic kernel (a = -0.5), support 2.
func pillowBicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// maxCachedCoeffs bounds a Preprocessor's filter cache; it is emptied when
// full (datasets with many distinct image sizes).
const maxCachedCoeffs = 128

// coeffsFor returns (building and caching on first use) the filters that
// resample inSize values to outSize, for the count outputs from off, as
// Pillow's precompute_coeffs and normalize_coeffs_8bpc compute them. Only
// the window is built, so extreme aspect ratios cost no more memory than
// the crop.
func (p *Preprocessor) coeffsFor(inSize, outSize, off, count int) *bicubicCoeffs {
	key := [4]int{inSize, outSize, off, count}
	if c, ok := p.coeffs[key]; ok {
		return c
	}
	if len(p.coeffs) >= maxCachedCoeffs {
		clear(p.coeffs)
	}
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := 2 * filterScale
	ksize := int(math.Ceil(support))*2 + 1
	c := &bicubicCoeffs{ksize: ksize, first: make([]int, count), n: make([]int, count), k: make([]int32, count*ksize)}
	w := make([]float64, ksize)
	for i := range count {
		xx := off + i
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterScale
		xmin := max(int(center-support+0.5), 0) // C truncation, then clamp
		xmax := min(int(center+support+0.5), inSize) - xmin
		total := 0.0
		for x := 0; x < xmax; x++ {
			w[x] = pillowBicubic((float64(x+xmin) - center + 0.5) * ss)
			total += w[x]
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if total != 0 {
				v /= total
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.first[i], c.n[i] = xmin, xmax
	}
	p.coeffs[key] = c
	return c
}

// clip8 is Pillow's clip8: the fixed-point sum shifted down and clamped.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// resampleWindow writes into dst (dst.Width x dst.Height) the window at
// (left, top) of src bicubic-resized to newW x newH, computing only the
// pixels the window needs. Pixel values equal Pillow's full resize followed
// by a crop, since every output pixel depends only on its own filters.
func (p *Preprocessor) resampleWindow(dst, src *RGBImage, newW, newH, left, top int) {
	cw, ch := dst.Width, dst.Height
	needH, needV := newW != src.Width, newH != src.Height

	// Rows of the intermediate image the vertical pass reads.
	var vc *bicubicCoeffs
	rowFirst, rowEnd := top, top+ch
	if needV {
		vc = p.coeffsFor(src.Height, newH, top, ch)
		rowFirst = vc.first[0]
		rowEnd = vc.first[ch-1] + vc.n[ch-1]
	}

	// Horizontal pass into tmp (or a view of src when not needed).
	var mid []uint8
	var midStride, midCol int
	if needH {
		hc := p.coeffsFor(src.Width, newW, left, cw)
		rows := rowEnd - rowFirst
		p.tmp = growPixels(p.tmp, rows*3*cw)
		mid, midStride, midCol = p.tmp, 3*cw, 0
		for r := 0; r < rows; r++ {
			y := rowFirst + r
			horizontalPass(p.tmp[r*3*cw:(r+1)*3*cw], src.Pix[y*3*src.Width:(y+1)*3*src.Width], hc)
		}
	} else {
		mid, midStride, midCol = src.Pix[rowFirst*3*src.Width:], 3*src.Width, 3*left
	}

	if !needV {
		for y := 0; y < ch; y++ {
			o := (top-rowFirst+y)*midStride + midCol
			copy(dst.Pix[y*3*cw:(y+1)*3*cw], mid[o:o+3*cw])
		}
		return
	}
	if cap(p.acc) < 3*cw {
		p.acc = make([]int32, 3*cw)
	}
	acc := p.acc[:3*cw]
	for y := 0; y < ch; y++ {
		first, n := vc.first[y]-rowFirst, vc.n[y]
		k := vc.k[y*vc.ksize : y*vc.ksize+n]
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		// Two taps per sweep halve the accumulator traffic.
		t := 0
		for ; t+1 < len(k); t += 2 {
			o0 := (first+t)*midStride + midCol
			o1 := o0 + midStride
			r0, r1 := mid[o0:o0+len(acc)], mid[o1:o1+len(acc)]
			k0, k1 := k[t], k[t+1]
			for i := range acc {
				acc[i] += int32(r0[i])*k0 + int32(r1[i])*k1
			}
		}
		if t < len(k) {
			o := (first+t)*midStride + midCol
			row := mid[o : o+len(acc)]
			kv := k[t]
			for i := range acc {
				acc[i] += int32(row[i]) * kv
			}
		}
		d := dst.Pix[y*3*cw : (y+1)*3*cw]
		for i, v := range acc {
			d[i] = clip8(v)
		}
	}
}

// horizontalPass resamples one RGB row: output pixel i of dst is window
// output i of c. Taps are summed in two interleaved
// accumulators per channel (integer sums wrap identically, so the order does
// not change the result), which keeps more multiplies in flight.
func horizontalPass(dst, src []uint8, c *bicubicCoeffs) {
	const half = 1 << (precisionBits - 1)
	ks := c.ksize
	for i := 0; i+2 < len(dst); i += 3 {
		xx := i / 3
		first, n := c.first[xx], c.n[xx]
		k := c.k[xx*ks : xx*ks+n]
		s := src[3*first : 3*(first+n)]
		r, g, b := int32(half), int32(half), int32(half)
		var r2, g2, b2 int32
		for len(k) >= 2 && len(s) >= 6 {
			k0, k1 := k[0], k[1]
			r += int32(s[0]) * k0
			g += int32(s[1]) * k0
			b += int32(s[2]) * k0
			r2 += int32(s[3]) * k1
			g2 += int32(s[4]) * k1
			b2 += int32(s[5]) * k1
			k, s = k[2:], s[6:]
		}
		if len(k) > 0 && len(s) >= 3 {
			kv := k[0]
			r += int32(s[0]) * kv
			g += int32(s[1]) * kv
			b += int32(s[2]) * kv
		}
		d := dst[i : i+3 : i+3]
		d[0], d[1], d[2] = clip8(r+r2), clip8(g+g2), clip8(b+b2)
	}
}
