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

// shipped holds the recipe files of this directory, so the binary can use
// them by name without the source tree.
//
//go:embed *.yaml
var shipped embed.FS

// Shipped lists the names of the recipes built into the binary
// ("w8a8-lsq.yaml", ...), sorted.
func Shipped() []string {
	entries, err := fs.ReadDir(shipped, ".")
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
// is read from disk. Otherwise a shipped recipe is looked up by its base
// name, with or without ".yaml", so "w8a8-lsq", "w8a8-lsq.yaml" and
// "recipes/w8a8-lsq.yaml" all work without the source tree; its name is
// then "<embedded>/w8a8-lsq.yaml".
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
	return "", nil, fmt.Errorf("read recipe: %w (shipped recipes: %s)", err, strings.Join(Shipped(), ", "))
}
