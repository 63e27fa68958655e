package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qatclip/qatclip/eval"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/internal/npy"
)

// scoreFlags holds the flags of `qatclip score`.
type scoreFlags struct {
	idCos, idLabels   string
	fitCos, fitLabels string
	ood               []string
	logitScale        float64
	mcmTemperature    float64
	eceBins           int
	json              bool
	out               string
}

// newScoreCmd builds `qatclip score`: reliability metrics from precomputed
// cosine-similarity matrices.
func newScoreCmd() *cobra.Command {
	var f scoreFlags
	cmd := &cobra.Command{
		Use:   "score --id-cos F.npy --id-labels F.npy [flags]",
		Short: "Reliability metrics from precomputed image-class cosine similarities",
		Long: `Score computes accuracy, calibration (NLL, Brier, ECE, MCE, temperature
scaling), selective prediction (AURC) and OOD detection (MCM score: AUROC,
AUPR-in, AUPR-out, FPR@95) from cosine-similarity matrices [N, C] saved as
.npy files, so logits produced anywhere can be evaluated the same way.
Probabilities are softmax(logit-scale * cos). With --fit-cos/--fit-labels a
temperature is fitted on that split and the ID metrics are reported after
scaling. --json prints one JSON object; --out writes report.json, report.md
and PNG plots.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runScore(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.idCos, "id-cos", "", "in-distribution cosine similarities [N, C] (.npy, float32/float64)")
	fl.StringVar(&f.idLabels, "id-labels", "", "in-distribution labels [N] (.npy, integer class indices)")
	fl.StringVar(&f.fitCos, "fit-cos", "", "held-out similarities [M, C] for temperature fitting (.npy)")
	fl.StringVar(&f.fitLabels, "fit-labels", "", "held-out labels [M] for temperature fitting (.npy)")
	fl.StringArrayVar(&f.ood, "ood", nil, "OOD set as NAME=F.npy with similarities [K, C] (repeatable)")
	fl.Float64Var(&f.logitScale, "logit-scale", eval.DefaultLogitScale, "probabilities are softmax(logit-scale * cos); CLIP_benchmark uses 100")
	fl.Float64Var(&f.mcmTemperature, "mcm-temperature", eval.DefaultMCMTemperature, "tau of the MCM score max softmax(cos / tau) and of the energy score")
	fl.IntVar(&f.eceBins, "ece-bins", eval.DefaultECEBins, "number of equal-width ECE bins")
	fl.BoolVar(&f.json, "json", false, "print one JSON object with the metrics on stdout")
	fl.StringVar(&f.out, "out", "", "write report.json, report.md and PNG plots into this folder")
	return cmd
}

func runScore(cmd *cobra.Command, f scoreFlags) error {
	if f.idCos == "" || f.idLabels == "" {
		return fmt.Errorf("score: --id-cos and --id-labels are required")
	}
	if (f.fitCos == "") != (f.fitLabels == "") {
		return fmt.Errorf("score: --fit-cos and --fit-labels go together (got only one)")
	}
	opt := eval.Options{LogitScale: f.logitScale, MCMTemperature: f.mcmTemperature, ECEBins: f.eceBins}
	data := report.Data{}
	var in eval.Input
	var err error
	if in.ID, data.ID, err = loadLabelledSplit("id", f.idCos, f.idLabels, 0); err != nil {
		return err
	}
	classes := in.ID.Sims.Cols()
	if f.fitCos != "" {
		fit, id, err := loadLabelledSplit("fit", f.fitCos, f.fitLabels, classes)
		if err != nil {
			return err
		}
		in.Fit, data.Fit = &fit, &id
	}
	for _, spec := range f.ood {
		name, path, ok := strings.Cut(spec, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("--ood %q: want NAME=F.npy", spec)
		}
		sims, err := loadSims(path, classes)
		if err != nil {
			return fmt.Errorf("--ood %s=%s: %w", name, path, err)
		}
		id, err := report.FileIdentity(name, path, sims.Rows())
		if err != nil {
			return err
		}
		in.OOD = append(in.OOD, eval.OODSet{Name: name, Sims: sims})
		data.OOD = append(data.OOD, id)
	}
	res, err := eval.Evaluate(in, opt)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	if f.out != "" {
		source := fmt.Sprintf("default %g, as CLIP_benchmark uses", opt.LogitScale)
		if cmd.Flags().Changed("logit-scale") {
			source = fmt.Sprintf("fixed by --logit-scale %g", opt.LogitScale)
		}
		fitNote := "none (no --fit-cos given)"
		if in.Fit != nil {
			fitNote = "minimum NLL on the --fit-cos split"
		}
		rep := &report.Report{
			Title:    "Reliability report (qatclip score)",
			Settings: report.SettingsFor(opt, source, fitNote),
			Data:     data,
			Model:    report.Column{Label: "model", Model: report.Identity{Name: "precomputed similarities", Path: f.idCos}, Result: res},
		}
		if err := rep.Write(f.out); err != nil {
			return err
		}
	}
	w := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(w)
		return enc.Encode(report.Summarize(res))
	}
	return writeScoreTable(w, res)
}

// loadLabelledSplit reads a similarity matrix and its labels and checks them
// against each other (and against classes when it is > 0).
func loadLabelledSplit(split, cosPath, labelPath string, classes int) (eval.Split, report.Identity, error) {
	sims, err := loadSims(cosPath, classes)
	if err != nil {
		return eval.Split{}, report.Identity{}, fmt.Errorf("--%s-cos %s: %w", split, cosPath, err)
	}
	a, err := npy.ReadFile(labelPath)
	if err != nil {
		return eval.Split{}, report.Identity{}, fmt.Errorf("--%s-labels: %w", split, err)
	}
	labels, err := eval.LabelsFromArray(a)
	if err == nil {
		err = eval.CheckLabels(labels, sims.Rows(), sims.Cols())
	}
	if err != nil {
		return eval.Split{}, report.Identity{}, fmt.Errorf("--%s-labels %s (for %s): %w", split, labelPath, cosPath, err)
	}
	id, err := report.FileIdentity(split, cosPath, sims.Rows())
	if err != nil {
		return eval.Split{}, report.Identity{}, err
	}
	return eval.Split{Sims: sims, Labels: labels}, id, nil
}

// loadSims reads and validates a [N, C] similarity matrix; classes > 0
// requires C == classes.
func loadSims(path string, classes int) (eval.Sims, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return eval.Sims{}, err
	}
	if len(a.Shape) == 2 && a.Shape[0] == 0 {
		return eval.Sims{}, fmt.Errorf("empty set: shape %v has no rows", a.Shape)
	}
	s, err := eval.SimsFromArray(a)
	if err != nil {
		return eval.Sims{}, err
	}
	if classes > 0 && s.Cols() != classes {
		return eval.Sims{}, fmt.Errorf("%d classes, but --id-cos has %d", s.Cols(), classes)
	}
	if err := s.Validate(); err != nil {
		return eval.Sims{}, err
	}
	return s, nil
}

// writeScoreTable prints the metrics as an aligned table.
func writeScoreTable(w io.Writer, res *eval.Result) error {
	o := res.Options
	fmt.Fprintf(w, "logit scale %g, MCM tau %g, %d ECE bins, %d ID rows x %d classes\n\n",
		o.LogitScale, o.MCMTemperature, o.ECEBins, res.Classification.N, res.Classification.Classes)
	group := ""
	for _, m := range report.Metrics(res) {
		if m.Group != group {
			group = m.Group
			fmt.Fprintf(w, "%s\n", group)
		}
		fmt.Fprintf(w, "  %-36s %10.6f\n", m.Label, m.Value)
	}
	if len(res.OOD) > 0 {
		fmt.Fprintf(w, "OOD detection by score (AUROC / FPR@95)\n")
		for _, set := range res.OOD {
			fmt.Fprintf(w, "  %-20s", set.Name)
			for _, k := range eval.ScoreKinds() {
				d := set.ByScore[k.String()]
				fmt.Fprintf(w, "  %s %.4f / %.4f", k, d.AUROC, d.FPR95)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
