package pipeline

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/eval"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
)

// Report assembles the reliability report of model, with baseline (may be
// nil) as the float column the deltas refer to. The corrupted columns of
// both follow as extra columns, baseline first for each corruption.
func (e *Evaluator) Report(title string, model, baseline *Evaluation) *report.Report {
	r := &report.Report{Title: title, Model: model.Column}
	opt := eval.Options{LogitScale: model.LogitScale, MCMTemperature: e.opts.MCMTemperature, ECEBins: e.opts.ECEBins}
	source := model.LogitScaleSource
	if source == "fixed" {
		source = "fixed (CLIP_benchmark uses 100)"
	} else if baseline != nil && baseline.LogitScale != model.LogitScale {
		source += fmt.Sprintf("; the baseline %q uses its own, %s = %.6g", baseline.Column.Label, baseline.LogitScaleSource, baseline.LogitScale)
	}
	r.Settings = report.SettingsFor(opt, source, e.fitDescription())
	r.Data = e.dataIdentity()
	if baseline != nil {
		b := baseline.Column
		r.Baseline = &b
		for i := range model.Corrupted {
			if i < len(baseline.Corrupted) {
				r.Extra = append(r.Extra, baseline.Corrupted[i])
			}
			r.Extra = append(r.Extra, model.Corrupted[i])
		}
	} else {
		r.Extra = append(r.Extra, model.Corrupted...)
	}
	return r
}

// fitDescription says where the temperature was fitted.
func (e *Evaluator) fitDescription() string {
	switch {
	case e.fit != nil:
		return fmt.Sprintf("fitted on the separate set %s", e.opts.Fit.Path)
	case len(e.fitRows) > 0:
		return fmt.Sprintf("fitted on %d of %d ID images (fit fraction %g, seeded permutation; the ID metrics use the other %d)",
			len(e.fitRows), e.idRows, e.opts.FitFraction, e.idRows-len(e.fitRows))
	}
	return "none (no fit split)"
}

// dataIdentity names the sets and their sizes.
func (e *Evaluator) dataIdentity() report.Data {
	name := func(d DataSet) string {
		if d.Name != "" {
			return d.Name
		}
		return d.Path
	}
	id := e.opts.ID
	idName := name(id)
	if id.Split != "" {
		idName += " [" + id.Split + "]"
	}
	d := report.Data{ID: report.Identity{Name: idName, Path: id.Path, Rows: e.idRows - len(e.fitRows)}}
	switch {
	case e.fit != nil:
		d.Fit = &report.Identity{Name: name(*e.opts.Fit), Path: e.opts.Fit.Path, Rows: e.rowsOf(e.fit.NumRows())}
	case len(e.fitRows) > 0:
		d.Fit = &report.Identity{Name: idName + " (held-out share)", Path: id.Path, Rows: len(e.fitRows)}
	}
	for i, o := range e.opts.OOD {
		d.OOD = append(d.OOD, report.Identity{Name: o.Name, Path: o.Path, Rows: e.rowsOf(e.ood[i].NumRows())})
	}
	return d
}

// rowsOf caps a set's row count at MaxImages.
func (e *Evaluator) rowsOf(n int) int {
	if e.opts.MaxImages > 0 {
		return min(n, e.opts.MaxImages)
	}
	return n
}

// Scalars flattens a result into the metric names recipes use for
// checkpoint selection (recipes.MetricNames): acc1, acc5, nll, brier, ece,
// aurc, the temperature-scaled ts_ece and ts_nll when a fit split was
// given, and the MCM detection metrics auroc, aupr_in, aupr_out, fpr95
// averaged over the OOD sets when there are any. The trainer's end-of-epoch
// hook can return it as is.
func Scalars(r *eval.Result) map[string]float64 {
	c := r.Classification
	m := map[string]float64{
		"acc1": c.Acc1, "acc5": c.Acc5, "nll": c.NLL, "brier": c.Brier,
		"ece": c.ECE, "mce": c.MCE, "aurc": c.AURC,
	}
	if t := r.Calibrated; t != nil {
		m["temperature"], m["ts_ece"], m["ts_nll"] = t.Temperature, t.ECE, t.NLL
	}
	if len(r.OOD) > 0 {
		d := r.OODMean[eval.MCM.String()]
		m["auroc"], m["aupr_in"], m["aupr_out"], m["fpr95"] = d.AUROC, d.AUPRIn, d.AUPROut, d.FPR95
	}
	return m
}

// EpochHook returns a function with the signature of train.EpochEndFunc
// (package train does not need to import this one): at the end of an epoch
// it evaluates the student whose variables are in ctx, fake-quantized by
// hook (identified by hookKey, see HookKey), writes the report to
// outDir/epoch-NNN when outDir is not empty (with baseline, e.g. the float
// model evaluated once before training, beside it; may be nil), and returns
// Scalars of the clean result for the checkpoint's metrics. The image and
// text graphs are compiled on the first call and reused by later epochs.
func (e *Evaluator) EpochHook(cfg clip.Config, hook layers.Hook, hookKey, label, outDir string, baseline *Evaluation) func(ctx *context.Context, epoch int) (map[string]float64, error) {
	var emb *clip.Embedder
	return func(ctx *context.Context, epoch int) (map[string]float64, error) {
		if emb == nil {
			var err error
			if emb, err = clip.NewEmbedder(e.opts.Backend, ctx, cfg, hook); err != nil {
				return nil, err
			}
		}
		m := Model{Label: fmt.Sprintf("%s epoch %d", label, epoch), Identity: report.Identity{Name: label}, Config: cfg,
			Context: ctx, Hook: hook, HookKey: hookKey, Embedder: emb}
		res, err := e.Evaluate(m)
		if err != nil {
			return nil, err
		}
		if outDir != "" {
			dir := filepath.Join(outDir, fmt.Sprintf("epoch-%03d", epoch))
			if err := e.Report("Reliability report: "+m.Label, res, baseline).Write(dir); err != nil {
				return nil, err
			}
		}
		return Scalars(res.Column.Result), nil
	}
}
