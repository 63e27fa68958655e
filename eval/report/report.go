// Package report turns [eval.Result] values into the reliability report of a
// quantized CLIP model: report.json (every metric, the settings and the
// identities of the model and data), report.md (a table with the float
// baseline and the quantized model side by side) and PNG plots.
package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"io"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/eval"
)

// Identity names a model or data file the report was computed from.
type Identity struct {
	Name string `json:"name"`
	// Path is where it was read from, when it is a local file or folder.
	Path string `json:"path,omitempty"`
	// SHA256 is the hex digest of the file's bytes, when it is one file.
	SHA256 string `json:"sha256,omitempty"`
	// Rows is the number of examples, for data.
	Rows int `json:"rows,omitempty"`
}

// FileIdentity returns the identity of the file at path with its SHA-256.
func FileIdentity(name, path string, rows int) (Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return Identity{}, fmt.Errorf("identify %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Identity{}, fmt.Errorf("identify %s: read %s: %w", name, path, err)
	}
	return Identity{Name: name, Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Rows: rows}, nil
}

// Settings records how the metrics were computed.
type Settings struct {
	LogitScale float64 `json:"logit_scale"`
	// LogitScaleSource says where the logit scale came from, e.g. "fixed
	// (--logit-scale, CLIP_benchmark convention)" or "model exp(logit_scale)".
	LogitScaleSource string  `json:"logit_scale_source"`
	MCMTemperature   float64 `json:"mcm_temperature"`
	ECEBins          int     `json:"ece_bins"`
	// TemperatureFit says which split the temperature was fitted on, or
	// that none was given.
	TemperatureFit string `json:"temperature_fit"`
	// OODScore is the score the headline OOD metrics use.
	OODScore string `json:"ood_score"`
}

// SettingsFor returns the settings of opt with the given explanations.
func SettingsFor(opt eval.Options, logitScaleSource, temperatureFit string) Settings {
	return Settings{
		LogitScale: opt.LogitScale, LogitScaleSource: logitScaleSource,
		MCMTemperature: opt.MCMTemperature, ECEBins: opt.ECEBins,
		TemperatureFit: temperatureFit, OODScore: eval.MCM.String(),
	}
}

// Data identifies the evaluation data.
type Data struct {
	ID  Identity   `json:"id"`
	Fit *Identity  `json:"fit,omitempty"`
	OOD []Identity `json:"ood,omitempty"`
}

// Column is one evaluated model: its identity, its metrics and, when its
// embeddings were available, the spectrum of each tower's embeddings.
type Column struct {
	// Label heads the column in report.md, e.g. "float" or "int8 QAT".
	Label   string       `json:"label"`
	Model   Identity     `json:"model"`
	Result  *eval.Result `json:"metrics"`
	Spectra []Spectrum   `json:"spectra,omitempty"`
}

// Spectrum is the embedding spectrum of one tower ("image", "text").
type Spectrum struct {
	Tower string `json:"tower"`
	*eval.Spectrum
}

// Report is a complete reliability report.
type Report struct {
	Title    string   `json:"title"`
	Settings Settings `json:"settings"`
	Data     Data     `json:"data"`
	// Model is the evaluated (quantized) model; Baseline, when set, the
	// float model it is compared with.
	Model    Column  `json:"model"`
	Baseline *Column `json:"baseline,omitempty"`
	// Extra holds further columns, such as the model under a corruption.
	Extra []Column `json:"extra,omitempty"`
}

// Columns returns the baseline (if any), the model and the extra columns, in
// table order.
func (r *Report) Columns() []Column {
	var cols []Column
	if r.Baseline != nil {
		cols = append(cols, *r.Baseline)
	}
	cols = append(cols, r.Model)
	return append(cols, r.Extra...)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// Write writes report.json, report.md and the plots into dir, creating it.
func (r *Report) Write(dir string) error {
	if r.Model.Result == nil {
		return fmt.Errorf("report: the model column has no result")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"report.json": r.WriteJSON,
		"report.md":   r.WriteMarkdown,
	} {
		if err := writeFile(filepath.Join(dir, name), write); err != nil {
			return err
		}
	}
	_, err := r.WritePlots(dir)
	return err
}

// writeFile writes path through a temporary file renamed into place.
func writeFile(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
