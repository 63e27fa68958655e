package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
)

// File names of the HF datasets save_to_disk layout.
const (
	hfDatasetDictFile = "dataset_dict.json"
	hfStateFile       = "state.json"
	hfInfoFile        = "dataset_info.json"
	hfMetadataKey     = "huggingface" // Arrow schema metadata key
)

// DefaultSplit is the split read from a DatasetDict folder when none is
// named.
const DefaultSplit = "train"

// Feature is one column as HF datasets declares it in its features: the
// feature type ("Image", "ClassLabel", "Value", "Sequence", ...), the dtype
// of a Value and the class names of a ClassLabel.
type Feature struct {
	Name  string
	Type  string
	Dtype string
	Names []string
}

// parseFeatures decodes a features JSON object (column name -> feature).
// Nested features (Sequence, dicts) keep only their type.
func parseFeatures(raw json.RawMessage) (map[string]Feature, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	out := make(map[string]Feature, len(m))
	for name, v := range m {
		var f struct {
			Type  string   `json:"_type"`
			Dtype string   `json:"dtype"`
			Names []string `json:"names"`
		}
		// Lists (old-style Sequence) and plain dicts do not decode into the
		// struct; they are kept as untyped features.
		if err := json.Unmarshal(v, &f); err != nil {
			out[name] = Feature{Name: name}
			continue
		}
		out[name] = Feature{Name: name, Type: f.Type, Dtype: f.Dtype, Names: f.Names}
	}
	return out, nil
}

// schemaFeatures returns the features stored in an Arrow schema's
// "huggingface" metadata ({"info": {"features": ...}}), or nil.
func schemaFeatures(sch *arrow.Schema) (map[string]Feature, error) {
	md := sch.Metadata()
	i := md.FindKey(hfMetadataKey)
	if i < 0 {
		return nil, nil
	}
	var meta struct {
		Info struct {
			Features json.RawMessage `json:"features"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(md.Values()[i]), &meta); err != nil {
		return nil, fmt.Errorf("schema metadata %q: %w", hfMetadataKey, err)
	}
	if len(meta.Info.Features) == 0 {
		return nil, nil
	}
	return parseFeatures(meta.Info.Features)
}

// hfLayout is where a source's shards are and what the HF JSON files say
// about them.
type hfLayout struct {
	files    []string
	split    string
	features map[string]Feature // from dataset_info.json, or nil
}

// locateShards finds the shard files of path: an HF save_to_disk Dataset or
// DatasetDict folder, a folder of shard files, a glob, or one file.
func locateShards(path, split string) (hfLayout, error) {
	if strings.ContainsAny(path, "*?[") {
		files, err := filepath.Glob(path)
		if err != nil {
			return hfLayout{}, fmt.Errorf("glob %s: %w", path, err)
		}
		files = slices.DeleteFunc(files, func(f string) bool { return !isShardFile(f) })
		if len(files) == 0 {
			return hfLayout{}, fmt.Errorf("glob %s matches no .arrow, .feather or .parquet files", path)
		}
		sort.Strings(files)
		return hfLayout{files: files, split: split}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return hfLayout{}, fmt.Errorf("open dataset %s: %w", path, err)
	}
	if !st.IsDir() {
		return hfLayout{files: []string{path}, split: split}, nil
	}
	if pathExists(filepath.Join(path, hfDatasetDictFile)) {
		return locateDictSplit(path, split)
	}
	if pathExists(filepath.Join(path, hfStateFile)) {
		return locateHFDataset(path, split)
	}
	return locateFolder(path, split)
}

// locateDictSplit resolves one split of a DatasetDict folder.
func locateDictSplit(dir, split string) (hfLayout, error) {
	splits, err := readDatasetDict(filepath.Join(dir, hfDatasetDictFile))
	if err != nil {
		return hfLayout{}, err
	}
	if split == "" {
		split = DefaultSplit
	}
	if !slices.Contains(splits, split) {
		return hfLayout{}, fmt.Errorf("%s: split %q not found (splits: %s)", dir, split, strings.Join(splits, ", "))
	}
	sub := filepath.Join(dir, split)
	if !pathExists(filepath.Join(sub, hfStateFile)) {
		return hfLayout{}, fmt.Errorf("%s: split %q is listed in %s but %s is missing", dir, split, hfDatasetDictFile, filepath.Join(sub, hfStateFile))
	}
	return locateHFDataset(sub, split)
}

// readDatasetDict returns the splits a dataset_dict.json lists.
func readDatasetDict(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var dd struct {
		Splits []string `json:"splits"`
	}
	if err := json.Unmarshal(b, &dd); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return dd.Splits, nil
}

// locateHFDataset reads state.json and dataset_info.json of a save_to_disk
// Dataset folder.
func locateHFDataset(dir, split string) (hfLayout, error) {
	file := filepath.Join(dir, hfStateFile)
	b, err := os.ReadFile(file)
	if err != nil {
		return hfLayout{}, fmt.Errorf("read %s: %w", file, err)
	}
	var state struct {
		DataFiles []struct {
			Filename string `json:"filename"`
		} `json:"_data_files"`
		Split *string `json:"_split"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		return hfLayout{}, fmt.Errorf("%s: %w", file, err)
	}
	if split != "" && state.Split != nil && *state.Split != split && filepath.Base(dir) != split {
		return hfLayout{}, fmt.Errorf("%s holds split %q, not the requested split %q", dir, *state.Split, split)
	}
	if split == "" && state.Split != nil {
		split = *state.Split
	}
	if len(state.DataFiles) == 0 {
		return hfLayout{}, fmt.Errorf("%s: _data_files is empty: the dataset has no shards", file)
	}
	lay := hfLayout{split: split}
	for _, df := range state.DataFiles {
		if df.Filename == "" || filepath.IsAbs(df.Filename) || strings.Contains(df.Filename, "..") {
			return hfLayout{}, fmt.Errorf("%s: invalid shard file name %q", file, df.Filename)
		}
		p := filepath.Join(dir, df.Filename)
		if !pathExists(p) {
			return hfLayout{}, fmt.Errorf("%s: shard %s listed in %s is missing", dir, df.Filename, hfStateFile)
		}
		lay.files = append(lay.files, p)
	}
	infoFile := filepath.Join(dir, hfInfoFile)
	if b, err := os.ReadFile(infoFile); err == nil {
		var info struct {
			Features json.RawMessage `json:"features"`
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return hfLayout{}, fmt.Errorf("%s: %w", infoFile, err)
		}
		if len(info.Features) > 0 && string(info.Features) != "null" {
			if lay.features, err = parseFeatures(info.Features); err != nil {
				return hfLayout{}, fmt.Errorf("%s: %w", infoFile, err)
			}
		}
	}
	return lay, nil
}

// locateFolder lists the shard files of a plain folder. With a split, a
// sub-folder of that name or files named "<split>-*" / "<split>_*" are used.
func locateFolder(dir, split string) (hfLayout, error) {
	if split != "" {
		sub := filepath.Join(dir, split)
		if st, err := os.Stat(sub); err == nil && st.IsDir() {
			return locateShards(sub, "")
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return hfLayout{}, fmt.Errorf("read %s: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !isShardFile(name) {
			continue
		}
		if split != "" && !strings.HasPrefix(name, split+"-") && !strings.HasPrefix(name, split+"_") && !strings.HasPrefix(name, split+".") {
			continue
		}
		files = append(files, filepath.Join(dir, name))
	}
	if len(files) == 0 {
		// HF hub repositories keep their Parquet shards under data/.
		if sub := filepath.Join(dir, "data"); pathExists(sub) {
			return locateFolder(sub, split)
		}
		if split != "" {
			return hfLayout{}, fmt.Errorf("%s: no shard files for split %q (.arrow, .feather or .parquet)", dir, split)
		}
		return hfLayout{}, fmt.Errorf("%s: no dataset here: no %s, %s or .arrow/.feather/.parquet shard files", dir, hfDatasetDictFile, hfStateFile)
	}
	sort.Strings(files)
	return hfLayout{files: files, split: split}, nil
}

// isShardFile reports whether name has a shard file extension.
func isShardFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".arrow", ".feather", ".ipc", ".arrows", ".parquet":
		return true
	}
	return false
}

// pathExists reports whether p can be stat'ed.
func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
