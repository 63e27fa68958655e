package export

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/recipes"
)

// TestRoundTripShippedRecipes exports every shipped recipe's calibrated
// fake-quant model, reloads it and checks that the dequantized weights are
// bit-equal to the fake-quantized ones, every stored integer lies in its
// declared range and the embeddings match to 1e-5.
func TestRoundTripShippedRecipes(t *testing.T) {
	b := newBackend(t)
	for _, dir := range modelDirs(t) {
		for _, recipe := range recipes.Shipped() {
			for _, format := range []string{FormatCompressedTensors, FormatFakeQuantF32} {
				name := filepath.Base(dir) + "/" + strings.TrimSuffix(recipe, ".yaml") + "/" + format
				t.Run(name, func(t *testing.T) {
					if format == FormatFakeQuantF32 && recipe != "w4a8-lsqplus.yaml" {
						t.Skip("fake-quant-f32 is checked on one recipe to keep the suite short")
					}
					checkRoundTrip(t, calibrated(t, b, dir, recipe), Options{Format: format})
				})
			}
		}
	}
}

// TestRoundTripPackInt4 checks the pack-quantized layout on a recipe with
// 4-bit and 8-bit weights, and asymmetric per-group weights (packed zero
// points).
func TestRoundTripPackInt4(t *testing.T) {
	b := newBackend(t)
	dir := fixtureModel(t)
	for _, sets := range [][]string{
		nil,
		{"quantization.default.weights.symmetric=false", "quantization.default.weights.granularity=per-group",
			"quantization.default.weights.group_size=8", "quantization.default.weights.method=minmax"},
	} {
		t.Run(strings.Join(sets, ","), func(t *testing.T) {
			checkRoundTrip(t, calibrated(t, b, dir, "w4a8-lsq.yaml", sets...), Options{PackInt4: true})
		})
	}
}

// checkRoundTrip exports q with opts, reloads it and compares.
func checkRoundTrip(t *testing.T, q *quantModel, opts Options) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	if _, err := Write(out, q.source(), opts); err != nil {
		t.Fatal(err)
	}
	m, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	// Dequantized weights are the fake-quantized weights, bit for bit.
	fq := fakeQuantWeights(t, q)
	if len(fq) == 0 {
		t.Fatal("no quantized weights")
	}
	for module, want := range fq {
		got := varData(t, m.Ctx, module, "weight")
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", module, len(got), len(want))
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s weight[%d] = %v (%08x), fake-quant %v (%08x)", module, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	// Every stored integer lies in its declared range.
	checkIntRanges(t, out)
	// Embeddings match.
	wantImg, wantTxt := embed(t, q.b, q.ctx, q.ck.Config, q.hook, q.in)
	gotImg, gotTxt := embed(t, q.b, m.Ctx, m.Config, m.Hook, q.in)
	if d := maxAbsDiff(gotImg, wantImg); d > 1e-5 {
		t.Errorf("image features differ from the fake-quant model by %g", d)
	}
	if d := maxAbsDiff(gotTxt, wantTxt); d > 1e-5 {
		t.Errorf("text features differ from the fake-quant model by %g", d)
	}
	// The check can fail: without the activation quantizers the reloaded
	// model is measurably different.
	if m.Hook != nil {
		noImg, noTxt := embed(t, q.b, m.Ctx, m.Config, nil, q.in)
		if max(maxAbsDiff(noImg, wantImg), maxAbsDiff(noTxt, wantTxt)) <= 1e-5 {
			t.Errorf("embeddings without the activation quantizers also match: the comparison cannot tell them apart")
		}
	}
}

// checkIntRanges checks every stored weight integer of an export against
// the range its site declares.
func checkIntRanges(t *testing.T, dir string) {
	t.Helper()
	qf, err := ReadQuantFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := 0
	for _, s := range qf.Sites {
		if s.Site != "weight" || qf.ExportFormat != FormatCompressedTensors {
			continue
		}
		lo, hi := signedRange(s.Config)
		if lo < -(1<<(s.Config.Bits-1)) || hi > (1<<(s.Config.Bits-1))-1 {
			t.Fatalf("%s: range [%d, %d] exceeds %d signed bits", s.Module, lo, hi, s.Config.Bits)
		}
		var q []int32
		if qf.Packed {
			shape, _, err := readInts(f, s.Module+".weight_shape")
			if err != nil {
				t.Fatal(err)
			}
			words, _, err := readInts(f, s.Module+".weight_packed")
			if err != nil {
				t.Fatal(err)
			}
			if q, err = unpackRows(words, int(shape[0]), int(shape[1]), s.Config.Bits); err != nil {
				t.Fatal(err)
			}
		} else if q, _, err = readInts(f, s.Module+".weight"); err != nil {
			t.Fatal(err)
		}
		for i, v := range q {
			if int(v) < lo || int(v) > hi {
				t.Fatalf("%s.weight[%d] = %d outside [%d, %d]", s.Module, i, v, lo, hi)
			}
		}
		checked++
	}
	if qf.ExportFormat == FormatCompressedTensors && checked == 0 {
		t.Log("no quantized weights in this export")
	}
}
