package recipes

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// shipped holds the recipe files of this directory and the evaluation
// presets of eval/, so the binary can use them by name without the source
// tree.
//
//go:embed *.yaml eval/*.yaml
var shipped embed.FS

// presetDir is the folder of the evaluation presets inside shipped.
const presetDir = "eval"

// Shipped lists the names of the recipes built into the binary
// ("w8a8-lsq.yaml", ...), sorted.
func Shipped() []string {
	entries, err := fs.ReadDir(shipped, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// ShippedPresets lists the names of the evaluation presets built into the
// binary ("imagenet1k-mcm.yaml", ...; recipes/eval in the source tree),
// sorted. Open finds them by name like the recipes.
func ShippedPresets() []string {
	entries, err := fs.ReadDir(shipped, presetDir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// Open returns the name and bytes of a recipe. A path that exists on disk
// is read from disk. Otherwise a shipped recipe, then a shipped evaluation
// preset, is looked up by its base name, with or without ".yaml", so
// "w8a8-lsq", "w8a8-lsq.yaml" and "recipes/w8a8-lsq.yaml" all work without
// the source tree (its name is then "<embedded>/w8a8-lsq.yaml"), as do
// "imagenet1k-mcm" and "recipes/eval/imagenet1k-mcm.yaml"
// ("<embedded>/eval/imagenet1k-mcm.yaml").
func Open(file string) (name string, data []byte, err error) {
	data, err = os.ReadFile(file)
	if err == nil {
		return file, data, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("read recipe: %w", err)
	}
	base := path.Base(strings.ReplaceAll(file, "\\", "/"))
	if !strings.HasSuffix(base, ".yaml") {
		base += ".yaml"
	}
	if emb, embErr := fs.ReadFile(shipped, base); embErr == nil {
		return "<embedded>/" + base, emb, nil
	}
	if emb, embErr := fs.ReadFile(shipped, path.Join(presetDir, base)); embErr == nil {
		return "<embedded>/" + presetDir + "/" + base, emb, nil
	}
	return "", nil, fmt.Errorf("read recipe: %w (shipped recipes: %s; evaluation presets: %s)", err,
		strings.Join(Shipped(), ", "), strings.Join(ShippedPresets(), ", "))
}
