package quantizers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The straight-through gradients are derivatives of the fake-quant function
// with its rounding residual frozen: with r = round(x/s0) - x/s0 fixed,
//
//	f(x, s, z) = s * (clamp(x/s + r + z, qmin, qmax) - z)
//
// is smooth away from the range edges (taking each element's side of the
// range as fixed), and LSQ's dx, dscale and dzero_point
// are exactly its partial derivatives at (s0, z0). PACT's are those of
// clip(x, 0, alpha). These tests check the graph gradients against central
// finite differences of those functions, in float64, on random shapes.

// randomShape returns a shape of rank 1 to 3 with dimensions 1 to 6.
func randomShape(rng *rand.Rand) []int {
	dims := make([]int, 1+rng.IntN(3))
	for i := range dims {
		dims[i] = 1 + rng.IntN(6)
	}
	return dims
}

func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

func TestLSQGradientsFiniteDifferences(t *testing.T) {
	backend := newTestBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 12 {
		dims := randomShape(rng)
		axis := rng.IntN(len(dims))
		bits := 2 + rng.IntN(7)
		signed := rng.IntN(2) == 0
		cfg := Config{Bits: bits, Signed: &signed}
		qmin, qmax := cfg.QRange()
		c := dims[axis]
		scale := make([]float32, c)
		zp := make([]float32, c)
		for i := range scale {
			scale[i] = float32(0.05 + rng.Float64())
			zp[i] = float32(qmin + rng.IntN(qmax-qmin+1))
		}
		n := size(dims)
		x := make([]float32, n)
		g := make([]float32, n)
		// chanOf returns the channel of flat index i.
		stride := size(dims[axis+1:])
		chanOf := func(i int) int { return (i / stride) % c }
		for i := range x {
			s := float64(scale[chanOf(i)])
			for {
				// Spread over the range and beyond, away from rounding
				// ties and range edges so finite differences see a smooth
				// function.
				v := (rng.Float64()*1.4 - 0.2) * float64(qmax-qmin)
				if d := math.Abs(v - math.Floor(v) - 0.5); d > 0.02 && d < 0.48 {
					x[i] = float32((v + float64(qmin) - float64(zp[chanOf(i)])) * s)
					break
				}
			}
			g[i] = float32(rng.NormFloat64())
		}
		gf := 0.5 + rng.Float64()
		name := fmt.Sprintf("trial%d_%v_axis%d_bits%d_signed%v", trial, dims, axis, bits, signed)
		t.Run(name, func(t *testing.T) {
			out := MustExecOnceN(backend, func(xn, gn, sn, zn *Node) []*Node {
				y := LearnableFakeQuantPerChannel(xn, sn, zn, axis, qmin, qmax, gf)
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, gn)), xn, sn, zn)...)
			}, tensors.FromFlatDataAndDimensions(x, dims...), tensors.FromFlatDataAndDimensions(g, dims...),
				tensors.FromValue(scale), tensors.FromValue(zp))
			dx, ds, dz := flat(out[1]), flat(out[2]), flat(out[3])

			// f for element i at (s, z), with the rounding residual and the
			// side of the range (below, inside, above) frozen at (s0, z0).
			f := func(i int, xi, s, z float64) float64 {
				ch := chanOf(i)
				s0, z0 := float64(scale[ch]), float64(zp[ch])
				r := math.RoundToEven(float64(x[i])/s0) - float64(x[i])/s0
				switch q0 := float64(x[i])/s0 + r + z0; {
				case q0 < float64(qmin):
					return s * (float64(qmin) - z)
				case q0 > float64(qmax):
					return s * (float64(qmax) - z)
				}
				return s * (xi/s + r)
			}
			loss := func(ch int, ds, dz float64) float64 {
				l := 0.0
				for i := range x {
					if chanOf(i) != ch {
						continue
					}
					l += float64(g[i]) * f(i, float64(x[i]), float64(scale[ch])+ds, float64(zp[ch])+dz)
				}
				return l
			}
			for ch := range c {
				h := 1e-6
				fdS := (loss(ch, h, 0) - loss(ch, -h, 0)) / (2 * h) * gf
				fdZ := (loss(ch, 0, h) - loss(ch, 0, -h)) / (2 * h) * gf
				tol := 1e-4 * (1 + math.Abs(fdS))
				if !near(float64(ds[ch]), fdS, tol) {
					t.Errorf("channel %d: dscale %v, finite differences %v", ch, ds[ch], fdS)
				}
				if !near(float64(dz[ch]), fdZ, 1e-4*(1+math.Abs(fdZ))) {
					t.Errorf("channel %d: dzero_point %v, finite differences %v", ch, dz[ch], fdZ)
				}
			}
			for i := range x {
				ch := chanOf(i)
				h := 1e-6 * float64(scale[ch])
				fd := (f(i, float64(x[i])+h, float64(scale[ch]), float64(zp[ch])) -
					f(i, float64(x[i])-h, float64(scale[ch]), float64(zp[ch]))) / (2 * h) * float64(g[i])
				if !near(float64(dx[i]), fd, 1e-4*(1+math.Abs(fd))) {
					t.Errorf("dx[%d] = %v, finite differences %v (g %v, x %v, s %v, z %v)", i, dx[i], fd, g[i], x[i], scale[ch], zp[ch])
				}
			}
		})
	}
}

func TestPACTGradientsFiniteDifferences(t *testing.T) {
	backend := newTestBackend(t)
	rng := rand.New(rand.NewPCG(21, 22))
	for trial := range 8 {
		dims := randomShape(rng)
		bits := 2 + rng.IntN(7)
		alpha := 0.5 + 3*rng.Float64()
		n := size(dims)
		x := make([]float32, n)
		g := make([]float32, n)
		for i := range x {
			for {
				v := (rng.Float64()*1.6 - 0.3) * alpha
				if math.Abs(v-alpha) > 1e-3 && math.Abs(v) > 1e-3 {
					x[i] = float32(v)
					break
				}
			}
			g[i] = float32(rng.NormFloat64())
		}
		t.Run(fmt.Sprintf("trial%d_%v_bits%d", trial, dims, bits), func(t *testing.T) {
			out := MustExecOnceN(backend, func(xn, gn, an *Node) []*Node {
				y := PACT(xn, an, bits)
				return Gradient(ReduceAllSum(Mul(y, gn)), xn, an)
			}, tensors.FromFlatDataAndDimensions(x, dims...), tensors.FromFlatDataAndDimensions(g, dims...),
				tensors.FromValue([]float32{float32(alpha)}))
			dx, da := flat(out[0]), flat(out[1])[0]
			loss := func(a float64, dxAt int, h float64) float64 {
				l := 0.0
				for i := range x {
					xi := float64(x[i])
					if i == dxAt {
						xi += h
					}
					l += float64(g[i]) * math.Min(math.Max(xi, 0), a)
				}
				return l
			}
			a := float64(float32(alpha))
			h := 1e-7
			fdA := (loss(a+h, -1, 0) - loss(a-h, -1, 0)) / (2 * h)
			if !near(float64(da), fdA, 1e-4*(1+math.Abs(fdA))) {
				t.Errorf("dalpha %v, finite differences %v", da, fdA)
			}
			for i := range x {
				fd := (loss(a, i, h) - loss(a, i, -h)) / (2 * h)
				if !near(float64(dx[i]), fd, 1e-4*(1+math.Abs(fd))) {
					t.Errorf("dx[%d] = %v, finite differences %v (x=%v, alpha=%v)", i, dx[i], fd, x[i], a)
				}
			}
		})
	}
}
