package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/qatclip/qatclip/recipes"
)

// FromRecipe fills the data, prompt, scoring and robustness fields of
// Options from a recipe's eval section: the ID set (with the fit fraction),
// the OOD sets, the class names (class_list or classnames), the templates,
// the logit scale ("model" leaves LogitScale 0), the MCM temperature, the
// ECE bins and the corruptions. Backend, Tokenizer and the run settings are
// left for the caller.
func FromRecipe(ev recipes.Eval) (Options, error) {
	var o Options
	scale, fromModel, err := ev.LogitScale.Value()
	if err != nil {
		return o, fmt.Errorf("eval.logit_scale: %w", err)
	}
	if !fromModel {
		o.LogitScale = scale
	}
	o.ID = DataSet{Name: "id", Path: ev.ID.Path, Split: ev.ID.Split, ImageColumn: ev.ID.ImageColumn,
		LabelColumn: ev.ID.LabelColumn, Hint: ev.ID.Hint}
	o.FitFraction = ev.FitFraction
	for _, s := range ev.OOD {
		o.OOD = append(o.OOD, DataSet{Name: s.Name, Path: s.Path, Split: s.Split, ImageColumn: s.ImageColumn, Hint: s.Hint})
	}
	if len(ev.ID.ClassList) > 0 {
		o.Classes = append([]string(nil), ev.ID.ClassList...)
	} else {
		o.ClassNames = ev.ID.Classnames
	}
	o.TemplateSpec = ev.ID.Templates
	o.MCMTemperature = ev.MCMTemperature
	o.ECEBins = ev.ECEBins
	for _, s := range ev.Robustness.NoiseSigma {
		o.Corruptions = append(o.Corruptions, Corruption{NoiseSigma: s})
	}
	for _, q := range ev.Robustness.JPEGQuality {
		o.Corruptions = append(o.Corruptions, Corruption{JPEGQuality: q})
	}
	return o, nil
}

// HookKey identifies the quantization a recipe applies, for
// Model.HookKey: the hex SHA-256 of its quantization and smoothquant
// sections. Recipes differing only in training, evaluation or export
// settings share a key.
func HookKey(r *recipes.Recipe) string {
	b, err := json.Marshal(struct {
		Quantization recipes.Quantization
		SmoothQuant  *recipes.SmoothQuant
	}{r.Quantization, r.SmoothQuant})
	if err != nil { // the schema holds only plain data; never expected
		b = []byte(fmt.Sprintf("%v %v", r.Name, err))
	}
	sum := sha256.Sum256(b)
	return "recipe:" + hex.EncodeToString(sum[:])
}
