package eval

import (
	"errors"
	"fmt"
)

// Default settings, as CLIP_benchmark and the MCM paper use them.
const (
	DefaultLogitScale     = 100.0
	DefaultMCMTemperature = 1.0
	DefaultECEBins        = 15
)

// Options configures [Evaluate].
type Options struct {
	// LogitScale multiplies cosines before the softmax (default 100).
	LogitScale float64
	// MCMTemperature is tau of the MCM and energy OOD scores (default 1).
	MCMTemperature float64
	// ECEBins is the number of equal-width confidence bins (default 15).
	ECEBins int
	// Workers bounds the goroutines per pass (<= 0: GOMAXPROCS).
	Workers int
}

// DefaultOptions returns the default settings.
func DefaultOptions() Options {
	return Options{LogitScale: DefaultLogitScale, MCMTemperature: DefaultMCMTemperature, ECEBins: DefaultECEBins}
}

// Split is a labelled similarity matrix.
type Split struct {
	Sims   Sims
	Labels []int
}

// OODSet is a named similarity matrix of out-of-distribution examples.
type OODSet struct {
	Name string
	Sims Sims
}

// Input holds everything [Evaluate] scores: the in-distribution split, an
// optional held-out split for temperature fitting and any OOD sets, all with
// the same classes.
type Input struct {
	ID  Split
	Fit *Split
	OOD []OODSet
}

// Calibrated holds temperature-scaling results: the temperature fitted on
// the held-out split and the ID metrics at logitScale / Temperature.
type Calibrated struct {
	Temperature float64 `json:"temperature"`
	FitN        int     `json:"fit_n"`
	ECE         float64 `json:"ts_ece"`
	NLL         float64 `json:"ts_nll"`
	MCE         float64 `json:"ts_mce"`
	Brier       float64 `json:"ts_brier"`
	AURC        float64 `json:"ts_aurc"`
	Bins        []Bin   `json:"ts_bins"`
}

// OODResult holds the detection metrics of one OOD set for every score kind.
type OODResult struct {
	Name string `json:"name"`
	N    int    `json:"n"`
	// ByScore maps a [ScoreKind] name to its metrics.
	ByScore map[string]Detection `json:"by_score"`

	// Scores holds the per-row OOD scores, indexed by ScoreKind.
	Scores RowScores `json:"-"`
}

// Result is everything [Evaluate] computes.
type Result struct {
	Options        Options         `json:"-"`
	Classification *Classification `json:"classification"`
	Calibrated     *Calibrated     `json:"calibrated,omitempty"`
	OOD            []OODResult     `json:"ood,omitempty"`
	// OODMean averages each metric over the OOD sets, per score kind.
	OODMean map[string]Detection `json:"ood_mean,omitempty"`

	// IDScores holds the per-row OOD scores of the ID split.
	IDScores RowScores `json:"-"`
}

// Evaluate checks the input and computes every metric. Errors name the split
// ("id", "fit", "ood NAME") and the problem.
func Evaluate(in Input, opt Options) (*Result, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	res := &Result{Options: opt}
	// Fit the temperature first so that one pass over the ID rows computes
	// the raw and temperature-scaled statistics and the OOD scores.
	scale2, tau := 0.0, 0.0
	if in.Fit != nil {
		t, err := fitTemperature(in.Fit.Sims, in.Fit.Labels, opt.LogitScale, opt.Workers)
		if err != nil {
			return nil, fmt.Errorf("fit: %w", err)
		}
		res.Calibrated = &Calibrated{Temperature: t, FitN: in.Fit.Sims.Rows()}
		scale2 = opt.LogitScale / t
	}
	if len(in.OOD) > 0 {
		tau = opt.MCMTemperature
	}
	stats, stats2, idScores := rowPass(in.ID.Sims, in.ID.Labels, opt.LogitScale, scale2, tau, opt.Workers)
	res.Classification = reduceStats(stats, in.ID.Sims.Cols(), opt.LogitScale, opt.ECEBins)
	if c := res.Calibrated; c != nil {
		ts := reduceStats(stats2, in.ID.Sims.Cols(), scale2, opt.ECEBins)
		c.ECE, c.NLL, c.MCE, c.Brier, c.AURC, c.Bins = ts.ECE, ts.NLL, ts.MCE, ts.Brier, ts.AURC, ts.Bins
	}
	if len(in.OOD) == 0 {
		return res, nil
	}
	res.IDScores = idScores
	var sortedID [numScoreKinds]SortedScores
	for k := range sortedID {
		s, err := SortScores(res.IDScores[k])
		if err != nil {
			return nil, fmt.Errorf("id %v scores: %w", ScoreKind(k), err)
		}
		sortedID[k] = s
	}
	res.OODMean = map[string]Detection{}
	for _, set := range in.OOD {
		r := OODResult{Name: set.Name, N: set.Sims.Rows(), ByScore: map[string]Detection{}}
		r.Scores = scores(set.Sims, opt.MCMTemperature, opt.Workers)
		for _, k := range ScoreKinds() {
			so, err := SortScores(r.Scores[k])
			if err != nil {
				return nil, fmt.Errorf("ood %s %v scores: %w", set.Name, k, err)
			}
			d := DetectSorted(sortedID[k], so)
			r.ByScore[k.String()] = d
			m := res.OODMean[k.String()]
			m.AUROC += d.AUROC
			m.AUPRIn += d.AUPRIn
			m.AUPROut += d.AUPROut
			m.FPR95 += d.FPR95
			res.OODMean[k.String()] = m
		}
		res.OOD = append(res.OOD, r)
	}
	sets := float64(len(in.OOD))
	for name, m := range res.OODMean {
		res.OODMean[name] = Detection{AUROC: m.AUROC / sets, AUPRIn: m.AUPRIn / sets, AUPROut: m.AUPROut / sets, FPR95: m.FPR95 / sets}
	}
	return res, nil
}

func (o Options) check() error {
	if err := checkPositive("logit scale", o.LogitScale); err != nil {
		return err
	}
	if err := checkPositive("MCM temperature", o.MCMTemperature); err != nil {
		return err
	}
	if o.ECEBins < 1 {
		return fmt.Errorf("ECE bins must be >= 1, got %d", o.ECEBins)
	}
	return nil
}

func (in Input) check() error {
	if err := checkSplit(in.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	classes := in.ID.Sims.Cols()
	if in.Fit != nil {
		if err := checkSplit(*in.Fit); err != nil {
			return fmt.Errorf("fit: %w", err)
		}
		if c := in.Fit.Sims.Cols(); c != classes {
			return fmt.Errorf("fit: %d classes, but the id split has %d", c, classes)
		}
	}
	seen := map[string]bool{}
	for _, set := range in.OOD {
		if set.Name == "" {
			return errors.New("ood: a set has an empty name")
		}
		if seen[set.Name] {
			return fmt.Errorf("ood %s: name given twice", set.Name)
		}
		seen[set.Name] = true
		if set.Sims.Rows() == 0 {
			return fmt.Errorf("ood %s: empty set (no rows)", set.Name)
		}
		if c := set.Sims.Cols(); c != classes {
			return fmt.Errorf("ood %s: %d classes, but the id split has %d", set.Name, c, classes)
		}
		if err := set.Sims.Validate(); err != nil {
			return fmt.Errorf("ood %s: %w", set.Name, err)
		}
	}
	return nil
}

func checkSplit(s Split) error {
	if s.Sims.Rows() == 0 {
		return errors.New("empty split (no rows)")
	}
	if err := s.Sims.Validate(); err != nil {
		return err
	}
	return CheckLabels(s.Labels, s.Sims.Rows(), s.Sims.Cols())
}
