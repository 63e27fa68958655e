package eval

import (
	"math"
	"strings"
	"testing"
)

func TestBadInput(t *testing.T) {
	sims := func(n, c int, vals ...float64) Sims {
		d := make([]float64, n*c)
		for i := range d {
			d[i] = 0.1 * float64(i%7)
		}
		copy(d, vals)
		s, err := NewSims64(d, n, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := Split{Sims: sims(4, 3), Labels: []int{0, 1, 2, 0}}
	cases := []struct {
		name string
		in   Input
		opt  Options
		want string
	}{
		{"label out of range", Input{ID: Split{Sims: sims(4, 3), Labels: []int{0, 1, 3, 0}}}, DefaultOptions(), "id: label 3 at row 2 is outside [0, 3)"},
		{"negative label", Input{ID: Split{Sims: sims(4, 3), Labels: []int{0, -1, 2, 0}}}, DefaultOptions(), "id: label -1 at row 1 is outside [0, 3)"},
		{"label count", Input{ID: Split{Sims: sims(4, 3), Labels: []int{0, 1}}}, DefaultOptions(), "id: 2 labels for 4 similarity rows"},
		{"NaN similarity", Input{ID: Split{Sims: sims(4, 3, 0, 0, 0, 0, math.NaN()), Labels: good.Labels}}, DefaultOptions(), "id: row 1, class 1: similarity is NaN (want a finite number)"},
		{"infinite similarity", Input{ID: good, OOD: []OODSet{{Name: "x", Sims: sims(2, 3, math.Inf(1))}}}, DefaultOptions(), "ood x: row 0, class 0: similarity is +Inf (want a finite number)"},
		{"empty id", Input{ID: Split{}}, DefaultOptions(), "id: empty split (no rows)"},
		{"empty OOD set", Input{ID: good, OOD: []OODSet{{Name: "textures"}}}, DefaultOptions(), "ood textures: empty set (no rows)"},
		{"OOD classes", Input{ID: good, OOD: []OODSet{{Name: "sun", Sims: sims(2, 4)}}}, DefaultOptions(), "ood sun: 4 classes, but the id split has 3"},
		{"fit classes", Input{ID: good, Fit: &Split{Sims: sims(2, 2), Labels: []int{0, 1}}}, DefaultOptions(), "fit: 2 classes, but the id split has 3"},
		{"duplicate OOD name", Input{ID: good, OOD: []OODSet{{Name: "a", Sims: sims(1, 3)}, {Name: "a", Sims: sims(1, 3)}}}, DefaultOptions(), "ood a: name given twice"},
		{"zero logit scale", Input{ID: good}, Options{LogitScale: 0, MCMTemperature: 1, ECEBins: 15}, "logit scale must be a finite number > 0, got 0"},
		{"negative tau", Input{ID: good}, Options{LogitScale: 100, MCMTemperature: -1, ECEBins: 15}, "MCM temperature must be a finite number > 0, got -1"},
		{"zero bins", Input{ID: good}, Options{LogitScale: 100, MCMTemperature: 1, ECEBins: 0}, "ECE bins must be >= 1, got 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Evaluate(c.in, c.opt)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error %q, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestNewSimsShape(t *testing.T) {
	cases := []struct {
		name string
		n, c int
		len  int
		want string
	}{
		{"short data", 3, 4, 11, "similarity data has 11 values, want 3*4 = 12"},
		{"zero rows", 0, 4, 0, "empty similarity matrix [0, 4]"},
		{"zero classes", 2, 0, 0, "empty similarity matrix [2, 0]"},
	}
	for _, c := range cases {
		_, err32 := NewSims32(make([]float32, c.len), c.n, c.c)
		_, err64 := NewSims64(make([]float64, c.len), c.n, c.c)
		for _, err := range []error{err32, err64} {
			if err == nil || err.Error() != c.want {
				t.Errorf("%s: error %v, want %q", c.name, err, c.want)
			}
		}
	}
}

func TestDetectEmpty(t *testing.T) {
	if _, err := Detect([]float64{1}, nil); err == nil || err.Error() != "OOD scores: empty score set" {
		t.Errorf("empty OOD scores: %v", err)
	}
	if _, err := Detect([]float64{math.NaN()}, []float64{1}); err == nil || err.Error() != "ID scores: score 0 is NaN" {
		t.Errorf("NaN ID score: %v", err)
	}
}
