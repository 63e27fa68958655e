package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/qatclip/qatclip/eval"
)

// maxCurvePoints bounds the points drawn per ROC or risk-coverage curve.
const maxCurvePoints = 1500

// palette returns the i-th of ten distinguishable colours (matplotlib's
// tab10 order).
func palette(i int) color.RGBA {
	p := [...]color.RGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
		{188, 189, 34, 255}, {23, 190, 207, 255},
	}
	return p[i%len(p)]
}

func withAlpha(c color.RGBA, a uint8) color.NRGBA { return color.NRGBA{c.R, c.G, c.B, a} }

// WritePlots writes the PNG plots into dir and returns their file names:
// reliability.png, confidence_hist.png, risk_coverage.png, and when there
// are OOD sets roc.png and ood_hist_<set>[_<column>].png, and when there
// are embedding spectra spectrum.png.
func (r *Report) WritePlots(dir string) ([]string, error) {
	cols := r.plotColumns()
	var written []string
	save := func(p *plot.Plot, name string) error {
		if err := p.Save(7*vg.Inch, 5*vg.Inch, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("report: plot %s: %w", name, err)
		}
		written = append(written, name)
		return nil
	}
	plots := []struct {
		name string
		make func([]Column) (*plot.Plot, error)
	}{
		{"reliability.png", reliabilityPlot},
		{"confidence_hist.png", confidencePlot},
		{"risk_coverage.png", riskCoveragePlot},
	}
	if len(r.Model.Result.OOD) > 0 {
		plots = append(plots, struct {
			name string
			make func([]Column) (*plot.Plot, error)
		}{"roc.png", rocPlot})
	}
	for _, pl := range plots {
		p, err := pl.make(cols)
		if err != nil {
			return written, fmt.Errorf("report: plot %s: %w", pl.name, err)
		}
		if err := save(p, pl.name); err != nil {
			return written, err
		}
	}
	for ci, c := range cols {
		for _, o := range c.Result.OOD {
			p, err := oodHistPlot(c, o, c.Result.IDScores)
			if err != nil {
				return written, fmt.Errorf("report: plot OOD histogram %s: %w", o.Name, err)
			}
			name := "ood_hist_" + fileSafe(o.Name)
			if ci != len(cols)-1 { // the model is last; others get a suffix
				name += "_" + fileSafe(c.Label)
			}
			if err := save(p, name+".png"); err != nil {
				return written, err
			}
		}
	}
	if p, ok, err := spectrumPlot(cols); err != nil {
		return written, fmt.Errorf("report: plot spectrum.png: %w", err)
	} else if ok {
		if err := save(p, "spectrum.png"); err != nil {
			return written, err
		}
	}
	return written, nil
}

// plotColumns returns the baseline (if any) then the model.
func (r *Report) plotColumns() []Column {
	if r.Baseline != nil && r.Baseline.Result != nil {
		return []Column{*r.Baseline, r.Model}
	}
	return []Column{r.Model}
}

// columnColor gives the model blue and the baseline orange.
func columnColor(i, n int) color.RGBA {
	if i == n-1 {
		return palette(0)
	}
	return palette(1 + i)
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	return p
}

// reliabilityPlot draws per-bin accuracy as bars (columns side by side
// within each bin) against the diagonal of perfect calibration.
func reliabilityPlot(cols []Column) (*plot.Plot, error) {
	p := newPlot("Reliability diagram", "confidence (max softmax probability)", "accuracy")
	p.Legend.Left = true
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Color = color.Gray{100}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(diag)
	p.Legend.Add("perfect calibration", diag)
	for ci, c := range cols {
		col := columnColor(ci, len(cols))
		var rings []plotter.XYer
		for _, b := range c.Result.Classification.Bins {
			if b.Count == 0 {
				continue
			}
			w := (b.Hi - b.Lo) / float64(len(cols))
			lo := b.Lo + float64(ci)*w
			rings = append(rings, plotter.XYs{{X: lo, Y: 0}, {X: lo + w, Y: 0}, {X: lo + w, Y: b.Accuracy}, {X: lo, Y: b.Accuracy}})
		}
		if len(rings) == 0 {
			continue
		}
		for k, ring := range rings {
			poly, err := plotter.NewPolygon(ring)
			if err != nil {
				return nil, err
			}
			poly.Color = withAlpha(col, 170)
			poly.LineStyle.Color = col
			poly.LineStyle.Width = vg.Points(0.8)
			p.Add(poly)
			if k == 0 {
				p.Legend.Add(fmt.Sprintf("%s (ECE %.4f)", c.Label, c.Result.Classification.ECE), poly)
			}
		}
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.X.Tick.Marker, p.Y.Tick.Marker = unitTicks{}, unitTicks{}
	return p, nil
}

// histogram bins values into n equal bins over [lo, hi] as fractions of
// the values.
func histogram(values []float64, lo, hi float64, n int) *plotter.Histogram {
	if hi <= lo {
		hi = lo + 1e-9
	}
	w := (hi - lo) / float64(n)
	bins := make([]plotter.HistogramBin, n)
	for i := range bins {
		bins[i].Min, bins[i].Max = lo+float64(i)*w, lo+float64(i+1)*w
	}
	for _, v := range values {
		i := min(max(int((v-lo)/w), 0), n-1)
		bins[i].Weight++
	}
	for i := range bins {
		bins[i].Weight /= float64(max(len(values), 1))
	}
	return &plotter.Histogram{Bins: bins, Width: w}
}

func confidencePlot(cols []Column) (*plot.Plot, error) {
	p := newPlot("Confidence histogram", "confidence (max softmax probability)", "fraction of examples")
	p.Legend.Left = true
	for ci, c := range cols {
		col := columnColor(ci, len(cols))
		h := histogram(c.Result.Classification.Confidence, 0, 1, 20)
		h.FillColor = withAlpha(col, 90)
		h.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.2)}
		p.Add(h)
		cl := c.Result.Classification
		p.Legend.Add(fmt.Sprintf("%s (acc %.3f, mean conf %.3f)", c.Label, cl.Acc1, mean(cl.Confidence)), h)
	}
	p.X.Min, p.X.Max = 0, 1
	p.X.Tick.Marker = unitTicks{}
	p.Y.Max *= 1.25 // room for the legend
	return p, nil
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

// thin keeps at most maxCurvePoints evenly spaced points, always keeping
// the first and last.
func thin(xs, ys []float64) plotter.XYs {
	n := len(xs)
	step := max(1, (n+maxCurvePoints-1)/maxCurvePoints)
	pts := make(plotter.XYs, 0, n/step+2)
	for i := 0; i < n; i += step {
		pts = append(pts, plotter.XY{X: xs[i], Y: ys[i]})
	}
	if n > 0 && (n-1)%step != 0 {
		pts = append(pts, plotter.XY{X: xs[n-1], Y: ys[n-1]})
	}
	return pts
}

func riskCoveragePlot(cols []Column) (*plot.Plot, error) {
	p := newPlot("Risk-coverage curve (selective prediction)", "coverage (fraction kept, most confident first)", "risk (error rate among kept)")
	for ci, c := range cols {
		cl := c.Result.Classification
		cov, risk := eval.RiskCoverage(cl.Confidence, cl.Correct)
		line, err := plotter.NewLine(thin(cov, risk))
		if err != nil {
			return nil, err
		}
		line.Color = columnColor(ci, len(cols))
		line.Width = vg.Points(1.8)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (AURC %.4f)", c.Label, cl.AURC), line)
	}
	p.Legend.Left = true
	p.X.Min, p.X.Max, p.Y.Min = 0, 1, 0
	p.X.Tick.Marker = unitTicks{}
	p.Y.Max *= 1.2 // room for the legend
	return p, nil
}

func rocPlot(cols []Column) (*plot.Plot, error) {
	p := newPlot("ROC curves, ID positive (MCM score)", "false-positive rate (OOD accepted as ID)", "true-positive rate (ID accepted)")
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Color = color.Gray{150}
	diag.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(diag)
	for ci, c := range cols {
		id, err := eval.SortScores(c.Result.IDScores[eval.MCM])
		if err != nil {
			return nil, err
		}
		for si, o := range c.Result.OOD {
			od, err := eval.SortScores(o.Scores[eval.MCM])
			if err != nil {
				return nil, err
			}
			fpr, tpr := eval.ROC(id, od)
			line, err := plotter.NewLine(thin(fpr, tpr))
			if err != nil {
				return nil, err
			}
			line.Color = palette(si)
			line.Width = vg.Points(1.6)
			if ci != len(cols)-1 {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line)
			d := o.ByScore[eval.MCM.String()]
			p.Legend.Add(fmt.Sprintf("%s, %s (AUROC %.3f)", o.Name, c.Label, d.AUROC), line)
		}
	}
	p.Legend.Top = false
	p.Legend.XOffs = -vg.Points(6)
	p.Legend.YOffs = vg.Points(6)
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.X.Tick.Marker, p.Y.Tick.Marker = unitTicks{}, unitTicks{}
	return p, nil
}

func oodHistPlot(c Column, o eval.OODResult, id eval.RowScores) (*plot.Plot, error) {
	d := o.ByScore[eval.MCM.String()]
	p := newPlot(fmt.Sprintf("MCM scores of %s: ID vs %s\nAUROC %.3f, FPR@95 %.3f", c.Label, o.Name, d.AUROC, d.FPR95),
		"MCM score = max softmax(cos / tau)", "fraction of examples")
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range [][]float64{id[eval.MCM], o.Scores[eval.MCM]} {
		for _, v := range s {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	for k, set := range []struct {
		name   string
		scores []float64
	}{{"ID", id[eval.MCM]}, {o.Name + " (OOD)", o.Scores[eval.MCM]}} {
		col := palette(2 + k)
		h := histogram(set.scores, lo, hi, 40)
		h.FillColor = withAlpha(col, 100)
		h.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1)}
		p.Add(h)
		p.Legend.Add(fmt.Sprintf("%s, %d examples", set.name, len(set.scores)), h)
	}
	p.Y.Min = 0
	p.Y.Max *= 1.2 // room for the legend
	return p, nil
}

// spectrumPlot draws each tower's singular values, normalised by the
// largest, on a log scale; ok is false when no column has spectra.
func spectrumPlot(cols []Column) (p *plot.Plot, ok bool, err error) {
	p = newPlot("Embedding singular-value spectrum", "index (descending)", "singular value / largest")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(6)
	towers := map[string]int{}
	for ci, c := range cols {
		for _, s := range c.Spectra {
			if s.Spectrum == nil || len(s.Singular) == 0 || s.Singular[0] <= 0 {
				continue
			}
			if _, seen := towers[s.Tower]; !seen {
				towers[s.Tower] = len(towers)
			}
			pts := make(plotter.XYs, 0, len(s.Singular))
			for i, v := range s.Singular {
				if r := v / s.Singular[0]; r > 1e-12 {
					pts = append(pts, plotter.XY{X: float64(i + 1), Y: r})
				}
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return nil, false, err
			}
			line.Color = columnColor(ci, len(cols))
			line.Width = vg.Points(1.6)
			if towers[s.Tower] > 0 {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line)
			p.Legend.Add(fmt.Sprintf("%s, %s tower (effective rank %.1f)", c.Label, s.Tower, s.EffectiveRank), line)
			ok = true
		}
	}
	return p, ok, nil
}

// fileSafe keeps letters, digits, '-' and '_' and replaces the rest by '_'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// unitTicks labels [0, 1] every 0.1 with minor ticks every 0.05.
type unitTicks struct{}

// Ticks implements plot.Ticker.
func (unitTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for i := 0; i <= 20; i++ {
		v := float64(i) / 20
		if v < lo-1e-9 || v > hi+1e-9 {
			continue
		}
		label := ""
		if i%2 == 0 {
			label = fmt.Sprintf("%.1f", v)
		}
		t = append(t, plot.Tick{Value: v, Label: label})
	}
	return t
}

// logTicks labels 1, 2 and 5 times each power of ten, with minor ticks at
// the other integer multiples.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	if lo <= 0 || hi <= lo {
		return t
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for m := 1; m <= 9; m++ {
			v := float64(m) * base
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			label := ""
			if m == 1 || m == 2 || m == 5 {
				label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			t = append(t, plot.Tick{Value: v, Label: label})
		}
	}
	return t
}
