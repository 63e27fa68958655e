package clip

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// hubIDRe matches an HF hub model id, "org/name".
var hubIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// HubCacheDirs returns the folders searched for HF hub models, in order:
// $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, then
// $XDG_CACHE_HOME/huggingface/hub or ~/.cache/huggingface/hub.
func HubCacheDirs() []string {
	var dirs []string
	add := func(d string) {
		if d == "" {
			return
		}
		for _, e := range dirs {
			if e == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	add(os.Getenv("HF_HUB_CACHE"))
	add(os.Getenv("HUGGINGFACE_HUB_CACHE"))
	if h := os.Getenv("HF_HOME"); h != "" {
		add(filepath.Join(h, "hub"))
	} else if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		add(filepath.Join(x, "huggingface", "hub"))
	} else if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	return dirs
}

// ResolveSource turns a --model value into a local path: an existing folder
// or file is returned as is; an HF hub id ("openai/clip-vit-base-patch32")
// is looked up in the local HF cache (see [HubCacheDirs]), in
// models--ORG--NAME/snapshots/REV with REV from refs/main, or the only
// snapshot. It never uses the network.
func ResolveSource(source string) (string, error) {
	if source == "" {
		return "", fmt.Errorf("no model given")
	}
	if _, err := os.Stat(source); err == nil {
		return source, nil
	}
	if !hubIDRe.MatchString(source) {
		return "", fmt.Errorf("model %s: no such file or folder", source)
	}
	repo := "models--" + strings.ReplaceAll(source, "/", "--")
	dirs := HubCacheDirs()
	var looked []string
	for _, cache := range dirs {
		base := filepath.Join(cache, repo)
		looked = append(looked, base)
		snap, err := snapshot(base)
		if err != nil {
			return "", fmt.Errorf("model %s: %w", source, err)
		}
		if snap != "" {
			return snap, nil
		}
	}
	return "", fmt.Errorf("model %s is not a local folder or file and is not in the HF cache (looked in %s); download it first (e.g. huggingface-cli download %s) or pass a folder",
		source, strings.Join(looked, ", "), source)
}

// snapshot returns the snapshot folder of a cached repo, "" when the repo is
// not in that cache.
func snapshot(base string) (string, error) {
	snaps := filepath.Join(base, "snapshots")
	entries, err := os.ReadDir(snaps)
	if err != nil {
		return "", nil
	}
	if ref, err := os.ReadFile(filepath.Join(base, "refs", "main")); err == nil {
		dir := filepath.Join(snaps, strings.TrimSpace(string(ref)))
		if _, err := os.Stat(dir); err == nil {
			return dir, nil
		}
	}
	var revs []string
	for _, e := range entries {
		if e.IsDir() {
			revs = append(revs, e.Name())
		}
	}
	switch len(revs) {
	case 0:
		return "", nil
	case 1:
		return filepath.Join(snaps, revs[0]), nil
	}
	return "", fmt.Errorf("HF cache %s holds %d snapshots (%s) and no refs/main: pass the snapshot folder", snaps, len(revs), strings.Join(revs, ", "))
}
