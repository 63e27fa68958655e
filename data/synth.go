package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// The synthetic shapes vocabulary. The in-distribution splits (train,
// test) draw from SynthShapeNames and the plain, striped, dotted and
// checkered backgrounds; the ood split draws only from SynthOODShapeNames
// and the noisy and gradient backgrounds, none of which train shows. The
// ClassLabel of every split is the shape; the colour and the background
// appear only in the caption.

// SynthShapeNames returns the in-distribution classes in label order.
func SynthShapeNames() []string {
	return []string{"circle", "square", "triangle", "star", "diamond"}
}

// SynthOODShapeNames returns the ood split's classes in label order.
func SynthOODShapeNames() []string { return []string{"hexagon", "cross", "ring"} }

// SynthColorNames returns the shape colours.
func SynthColorNames() []string {
	return []string{"red", "green", "blue", "yellow", "purple", "orange"}
}

// synthBackgrounds returns the background textures of the in-distribution
// or the ood splits.
func synthBackgrounds(ood bool) []string {
	if ood {
		return []string{"noisy", "gradient"}
	}
	return []string{"plain", "striped", "dotted", "checkered"}
}

// synthRGB returns the RGB of a colour of SynthColorNames.
func synthRGB(name string) color.RGBA {
	switch name {
	case "red":
		return color.RGBA{220, 30, 30, 255}
	case "green":
		return color.RGBA{30, 170, 50, 255}
	case "blue":
		return color.RGBA{30, 70, 220, 255}
	case "yellow":
		return color.RGBA{240, 210, 20, 255}
	case "purple":
		return color.RGBA{140, 40, 180, 255}
	case "orange":
		return color.RGBA{245, 130, 20, 255}
	}
	return color.RGBA{128, 128, 128, 255}
}

// SynthOptions configures SynthShapesDataset.
type SynthOptions struct {
	// N is the number of train examples (default 1000).
	N int
	// TestN and OODN are the sizes of the test and ood splits (default
	// N/4, at least 1).
	TestN, OODN int
	// Size is the image side in pixels (default 64, at least 16).
	Size int
	// Seed makes the dataset: the same seed gives byte-identical files.
	Seed uint64
	// MaxShardBytes is passed to the writer (DefaultMaxShardBytes when 0).
	MaxShardBytes int64
	// Difficulty is SynthHard (the default when empty: the shape is
	// anywhere in the image) or SynthEasy (its centre snapped to a grid
	// point; see SynthSpec.SnapToGrid). Colours, backgrounds, sizes and
	// angles are drawn alike in both, and so are the captions.
	Difficulty string
}

// The difficulties of the synthetic shapes (SynthOptions.Difficulty).
const (
	// SynthHard places each shape anywhere in the image.
	SynthHard = "hard"
	// SynthEasy places each shape's centre on a grid point a quarter of
	// the image side apart: a small ViT whose patch size divides a
	// quarter of the side sees every shape cut into patches the same
	// way wherever it is, which it learns far faster than the sub-patch
	// shifts of SynthHard.
	SynthEasy = "easy"
)

// SynthDifficulties returns the accepted values of
// SynthOptions.Difficulty.
func SynthDifficulties() []string { return []string{SynthHard, SynthEasy} }

// SynthSpec is what one synthetic example shows.
type SynthSpec struct {
	Shape, Color, Background string
	// Label is the shape's index in its split's class names.
	Label int
	// CX, CY, Radius (pixels) and Angle (radians) place the shape.
	CX, CY, Radius, Angle float64
	// Dark selects a dark rather than light background.
	Dark bool
	// Period, Phase and Dir parametrise the texture.
	Period, Phase, Dir float64
	// Noise seeds the noisy texture.
	Noise uint64
}

// Caption returns the example's caption, e.g. "a red circle on a striped
// background".
func (s SynthSpec) Caption() string {
	return fmt.Sprintf("a %s %s on a %s background", s.Color, s.Shape, s.Background)
}

// synthSplit names a split and how big it is.
type synthSplit struct {
	name    string
	n       int
	ood     bool
	classes []string
}

// SynthShapesDataset writes the synthetic shapes DatasetDict at out with
// splits train, test and ood: PNG images with "caption" and ClassLabel
// "label" (the shape) columns. Images are drawn and encoded in parallel;
// the output depends only on the options.
func SynthShapesDataset(out string, opts SynthOptions) ([]WriteSummary, error) {
	if opts.N == 0 {
		opts.N = 1000
	}
	if opts.N < 0 || opts.TestN < 0 || opts.OODN < 0 {
		return nil, fmt.Errorf("synth: split sizes must not be negative (n=%d)", opts.N)
	}
	if opts.TestN == 0 {
		opts.TestN = max(1, opts.N/4)
	}
	if opts.OODN == 0 {
		opts.OODN = max(1, opts.N/4)
	}
	if opts.Size == 0 {
		opts.Size = 64
	}
	if opts.Size < 16 || opts.Size > 4096 {
		return nil, fmt.Errorf("synth: size %d out of range [16, 4096]", opts.Size)
	}
	switch opts.Difficulty {
	case "":
		opts.Difficulty = SynthHard
	case SynthHard, SynthEasy:
	default:
		return nil, fmt.Errorf("synth: difficulty %q: want %s or %s", opts.Difficulty, SynthHard, SynthEasy)
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("synth: %s exists and is not empty", out)
	}
	desc := fmt.Sprintf("Synthetic shapes (qatclip data synth --kind shapes --size %d --seed %d).", opts.Size, opts.Seed)
	if opts.Difficulty != SynthHard {
		desc = fmt.Sprintf("Synthetic shapes (qatclip data synth --kind shapes --size %d --seed %d --difficulty %s).", opts.Size, opts.Seed, opts.Difficulty)
	}
	splits := []synthSplit{
		{"train", opts.N, false, SynthShapeNames()},
		{"test", opts.TestN, false, SynthShapeNames()},
		{"ood", opts.OODN, true, SynthOODShapeNames()},
	}
	var sums []WriteSummary
	var names []string
	for si, sp := range splits {
		w, err := CreateDataset(filepath.Join(out, sp.name), WriterOptions{
			Captions:      true,
			ClassNames:    sp.classes,
			Split:         sp.name,
			DatasetName:   "shapes",
			Description:   desc,
			MaxShardBytes: opts.MaxShardBytes,
		})
		if err != nil {
			return nil, err
		}
		if err := synthWrite(w, sp, uint64(si), opts); err != nil {
			w.Abort()
			return nil, err
		}
		sum, err := w.Close()
		if err != nil {
			return nil, err
		}
		sums = append(sums, sum)
		names = append(names, sp.name)
	}
	if err := WriteDatasetDict(out, names); err != nil {
		return nil, err
	}
	return sums, nil
}

// synthWrite renders a split in parallel chunks and writes it in order.
func synthWrite(w *DatasetWriter, sp synthSplit, splitIdx uint64, opts SynthOptions) error {
	const chunk = 128
	workers := runtime.GOMAXPROCS(0)
	buf := make([]Example, chunk)
	errs := make([]error, chunk)
	for start := 0; start < sp.n; start += chunk {
		n := min(chunk, sp.n-start)
		var wg sync.WaitGroup
		next := make(chan int, n)
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
		for k := 0; k < min(workers, n); k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var enc bytes.Buffer
				pe := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffer{}}
				for i := range next {
					idx := start + i
					spec := NewSynthSpec(opts.Seed, splitIdx, idx, sp.ood, opts.Size)
					if opts.Difficulty == SynthEasy {
						spec.SnapToGrid(opts.Size)
					}
					enc.Reset()
					errs[i] = pe.Encode(&enc, RenderSynth(spec, opts.Size))
					buf[i] = Example{
						ImageBytes: bytes.Clone(enc.Bytes()),
						ImagePath:  fmt.Sprintf("%s-%06d.png", sp.name, idx),
						Caption:    spec.Caption(),
						Label:      spec.Label,
					}
				}
			}()
		}
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				return fmt.Errorf("synth %s example %d: %w", sp.name, start+i, errs[i])
			}
			if err := w.Write(buf[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// pngBuffer keeps one goroutine's PNG encoder state (its zlib writer)
// between images.
type pngBuffer struct{ b *png.EncoderBuffer }

// Get implements png.EncoderBufferPool.
func (p *pngBuffer) Get() *png.EncoderBuffer { return p.b }

// Put implements png.EncoderBufferPool.
func (p *pngBuffer) Put(b *png.EncoderBuffer) { p.b = b }

// NewSynthSpec draws example index of a split from its own random stream,
// so examples can be generated in any order or in parallel.
func NewSynthSpec(seed, split uint64, index int, ood bool, size int) SynthSpec {
	r := rand.New(rand.NewPCG(seed, split<<40^uint64(index)))
	shapes, bgs, colors := SynthShapeNames(), synthBackgrounds(ood), SynthColorNames()
	if ood {
		shapes = SynthOODShapeNames()
	}
	s := SynthSpec{}
	s.Label = r.IntN(len(shapes))
	s.Shape = shapes[s.Label]
	s.Color = colors[r.IntN(len(colors))]
	s.Background = bgs[r.IntN(len(bgs))]
	sz := float64(size)
	s.Radius = sz * (0.22 + 0.14*r.Float64())
	margin := s.Radius + 1
	s.CX = margin + (sz-2*margin)*r.Float64()
	s.CY = margin + (sz-2*margin)*r.Float64()
	s.Angle = 2 * math.Pi * r.Float64()
	if s.Shape == "square" || s.Shape == "diamond" {
		// Kept near upright: a square turned 45 degrees reads as a diamond.
		s.Angle = (r.Float64() - 0.5) * math.Pi / 6
	}
	s.Dark = r.IntN(2) == 0
	s.Period = sz * (0.08 + 0.08*r.Float64())
	s.Phase = r.Float64()
	s.Dir = math.Pi * r.Float64()
	s.Noise = r.Uint64()
	return s
}

// SnapToGrid moves the shape's centre, in each axis, to the nearest of the
// points k*size/4 (k = 1, 2, 3) at which the whole shape stays inside the
// image; the image centre always fits, so a shape wider than half the
// image ends up centred.
func (s *SynthSpec) SnapToGrid(size int) {
	snap := func(c float64) float64 {
		step := float64(size) / 4
		best, bestD := 2*step, math.Inf(1)
		for k := 1; k <= 3; k++ {
			g := float64(k) * step
			if g-s.Radius < 0 || g+s.Radius > float64(size) {
				continue
			}
			if d := math.Abs(c - g); d < bestD {
				best, bestD = g, d
			}
		}
		return best
	}
	s.CX, s.CY = snap(s.CX), snap(s.CY)
}

// RenderSynth draws spec on a size x size opaque image, the shape edges
// anti-aliased with 4x4 supersampling.
func RenderSynth(s SynthSpec, size int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	fg := synthRGB(s.Color)
	inside := shapeTest(s)
	noise := rand.New(rand.NewPCG(s.Noise, 0x5eed))
	sinDir, cosDir := math.Sincos(s.Dir)
	const ss = 4
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			bg := s.backgroundAt(float64(x)+0.5, float64(y)+0.5, float64(size), cosDir, sinDir, noise)
			// Skip supersampling far from the shape.
			dx, dy := float64(x)+0.5-s.CX, float64(y)+0.5-s.CY
			cover := 0
			if dx*dx+dy*dy <= (s.Radius+2)*(s.Radius+2) {
				for j := 0; j < ss; j++ {
					for i := 0; i < ss; i++ {
						if inside(float64(x)+(float64(i)+0.5)/ss, float64(y)+(float64(j)+0.5)/ss) {
							cover++
						}
					}
				}
			}
			a := cover * 255 / (ss * ss)
			o := img.PixOffset(x, y)
			img.Pix[o+0] = uint8((int(fg.R)*a + int(bg)*(255-a)) / 255)
			img.Pix[o+1] = uint8((int(fg.G)*a + int(bg)*(255-a)) / 255)
			img.Pix[o+2] = uint8((int(fg.B)*a + int(bg)*(255-a)) / 255)
			img.Pix[o+3] = 255
		}
	}
	return img
}

// backgroundAt returns the grey level of the texture at (x, y).
func (s SynthSpec) backgroundAt(x, y, size, cosDir, sinDir float64, noise *rand.Rand) int {
	base, alt := 225, 165
	if s.Dark {
		base, alt = 40, 100
	}
	u := x*cosDir + y*sinDir
	switch s.Background {
	case "striped":
		if int(math.Floor(u/s.Period+s.Phase))%2 != 0 {
			return alt
		}
	case "dotted":
		p := s.Period * 1.5
		fx := math.Mod(x+s.Phase*p, p) - p/2
		fy := math.Mod(y+s.Phase*p, p) - p/2
		if fx*fx+fy*fy < p*p*0.08 {
			return alt
		}
	case "checkered":
		if (int(math.Floor(x/s.Period))+int(math.Floor(y/s.Period)))%2 != 0 {
			return alt
		}
	case "noisy":
		return base + (alt-base)*noise.IntN(256)/255
	case "gradient":
		t := (u + size*0.5) / (size * 1.9)
		return base + int(float64(alt-base)*2*math.Max(0, math.Min(1, t)))
	}
	return base
}

// shapeTest returns the inside test of spec's shape in pixel coordinates.
func shapeTest(s SynthSpec) func(x, y float64) bool {
	sin, cos := math.Sincos(s.Angle)
	local := func(x, y float64) (float64, float64) {
		dx, dy := x-s.CX, y-s.CY
		return (dx*cos + dy*sin) / s.Radius, (-dx*sin + dy*cos) / s.Radius
	}
	poly := func(pts [][2]float64) func(x, y float64) bool {
		return func(x, y float64) bool {
			u, v := local(x, y)
			return insidePolygon(pts, u, v)
		}
	}
	regular := func(n int, r0, r1 float64) [][2]float64 {
		pts := make([][2]float64, n)
		for i := range pts {
			r := r0
			if i%2 == 1 {
				r = r1
			}
			a := 2*math.Pi*float64(i)/float64(n) - math.Pi/2
			pts[i] = [2]float64{r * math.Cos(a), r * math.Sin(a)}
		}
		return pts
	}
	switch s.Shape {
	case "circle":
		return func(x, y float64) bool { u, v := local(x, y); return u*u+v*v <= 1 }
	case "ring":
		return func(x, y float64) bool { u, v := local(x, y); d := u*u + v*v; return d <= 1 && d >= 0.36 }
	case "square":
		return func(x, y float64) bool { u, v := local(x, y); return math.Abs(u) <= 0.75 && math.Abs(v) <= 0.75 }
	case "cross":
		return func(x, y float64) bool {
			u, v := local(x, y)
			au, av := math.Abs(u), math.Abs(v)
			return (au <= 1 && av <= 0.3) || (au <= 0.3 && av <= 1)
		}
	case "triangle":
		return poly(regular(3, 1, 1))
	case "star":
		return poly(regular(10, 1, 0.45))
	case "diamond":
		return poly([][2]float64{{0, -1}, {0.6, 0}, {0, 1}, {-0.6, 0}})
	case "hexagon":
		return poly(regular(6, 1, 1))
	}
	return func(float64, float64) bool { return false }
}

// insidePolygon is the even-odd rule for a closed polygon.
func insidePolygon(pts [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
		xi, yi, xj, yj := pts[i][0], pts[i][1], pts[j][0], pts[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}
