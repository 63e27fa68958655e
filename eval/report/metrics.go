package report

import (
	"github.com/qatclip/qatclip/eval"
)

// Direction says which way a metric improves.
type Direction int

const (
	// Neutral metrics (temperature, effective rank) have no better side.
	Neutral Direction = iota
	// HigherBetter metrics improve as they grow (accuracy, AUROC).
	HigherBetter
	// LowerBetter metrics improve as they shrink (NLL, ECE, FPR@95).
	LowerBetter
)

// Metric is one named value of a result.
type Metric struct {
	Key       string    // JSON key, e.g. "ts_ece" or "ood/sun/auroc"
	Label     string    // human label, e.g. "ECE after temperature scaling"
	Group     string    // table section
	Direction Direction // which way is better
	Value     float64
}

// Metrics lists every scalar metric of r in report order: classification,
// calibration, selective prediction, then OOD detection with the MCM score
// per set and the mean over sets.
func Metrics(r *eval.Result) []Metric {
	c := r.Classification
	const acc, cal, sel, ood = "Accuracy", "Calibration", "Selective prediction", "OOD detection (MCM)"
	out := []Metric{
		{"acc1", "Top-1 accuracy", acc, HigherBetter, c.Acc1},
		{"acc5", "Top-5 accuracy", acc, HigherBetter, c.Acc5},
		{"nll", "NLL", cal, LowerBetter, c.NLL},
		{"brier", "Brier score", cal, LowerBetter, c.Brier},
		{"ece", "ECE", cal, LowerBetter, c.ECE},
		{"mce", "MCE", cal, LowerBetter, c.MCE},
	}
	if t := r.Calibrated; t != nil {
		out = append(out,
			Metric{"temperature", "Fitted temperature", cal, Neutral, t.Temperature},
			Metric{"ts_ece", "ECE after temperature scaling", cal, LowerBetter, t.ECE},
			Metric{"ts_nll", "NLL after temperature scaling", cal, LowerBetter, t.NLL},
		)
	}
	out = append(out,
		Metric{"aurc", "AURC", sel, LowerBetter, c.AURC},
		Metric{"e_aurc", "E-AURC", sel, LowerBetter, c.EAURC},
	)
	add := func(prefix, name string, d eval.Detection) {
		out = append(out,
			Metric{prefix + "auroc", name + " AUROC", ood, HigherBetter, d.AUROC},
			Metric{prefix + "aupr_in", name + " AUPR-in", ood, HigherBetter, d.AUPRIn},
			Metric{prefix + "aupr_out", name + " AUPR-out", ood, HigherBetter, d.AUPROut},
			Metric{prefix + "fpr95", name + " FPR@95", ood, LowerBetter, d.FPR95},
		)
	}
	for _, o := range r.OOD {
		add("ood/"+o.Name+"/", o.Name, o.ByScore[eval.MCM.String()])
	}
	if len(r.OOD) > 1 {
		add("ood_mean/", "mean", r.OODMean[eval.MCM.String()])
	}
	return out
}

// Summary is the flat JSON object `qatclip score --json` prints: the
// headline metrics at the top level, the temperature-scaling ones only when
// a fit split was given, and the MCM detection metrics per OOD set with
// their mean.
type Summary struct {
	Acc1        float64                   `json:"acc1"`
	Acc5        float64                   `json:"acc5"`
	NLL         float64                   `json:"nll"`
	Brier       float64                   `json:"brier"`
	ECE         float64                   `json:"ece"`
	MCE         float64                   `json:"mce"`
	AURC        float64                   `json:"aurc"`
	EAURC       float64                   `json:"e_aurc"`
	Temperature *float64                  `json:"temperature,omitempty"`
	TSECE       *float64                  `json:"ts_ece,omitempty"`
	TSNLL       *float64                  `json:"ts_nll,omitempty"`
	OOD         map[string]eval.Detection `json:"ood"`
	OODMean     *eval.Detection           `json:"ood_mean,omitempty"`
}

// Summarize returns the flat summary of r.
func Summarize(r *eval.Result) Summary {
	c := r.Classification
	s := Summary{
		Acc1: c.Acc1, Acc5: c.Acc5, NLL: c.NLL, Brier: c.Brier, ECE: c.ECE, MCE: c.MCE,
		AURC: c.AURC, EAURC: c.EAURC, OOD: map[string]eval.Detection{},
	}
	if t := r.Calibrated; t != nil {
		temp, ece, nll := t.Temperature, t.ECE, t.NLL
		s.Temperature, s.TSECE, s.TSNLL = &temp, &ece, &nll
	}
	for _, o := range r.OOD {
		s.OOD[o.Name] = o.ByScore[eval.MCM.String()]
	}
	if m, ok := r.OODMean[eval.MCM.String()]; ok {
		s.OODMean = &m
	}
	return s
}
