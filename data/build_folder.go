package data

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// BuildOptions configures BuildFromImageFolder and BuildFromCaptions.
type BuildOptions struct {
	// Writer options; the builders set Captions and ClassNames themselves.
	Writer WriterOptions
	// ImagesDir is the folder relative image paths of a captions file are
	// resolved against (default: the captions file's folder).
	ImagesDir string
	// FailOnBad makes a missing or non-image file an error instead of a
	// skipped, counted file.
	FailOnBad bool
}

// BuildReport tells what a builder wrote and skipped.
type BuildReport struct {
	WriteSummary
	// ClassNames of the label column (nil without labels).
	ClassNames []string
	// Skipped counts files left out: missing, unreadable or not an image.
	Skipped int
	// SkippedFiles names the first few skipped files with the reason.
	SkippedFiles []string
}

// maxReportedSkips bounds BuildReport.SkippedFiles.
const maxReportedSkips = 10

func (r *BuildReport) skip(path, why string) {
	r.Skipped++
	if len(r.SkippedFiles) < maxReportedSkips {
		r.SkippedFiles = append(r.SkippedFiles, path+": "+why)
	}
}

// buildItem is one image to write.
type buildItem struct {
	path    string
	caption string
	label   int
}

// BuildFromImageFolder writes the images under dir as a dataset at out.
// With sub-folders, each sub-folder (sorted by name) is a class and the
// dataset gets a ClassLabel "label" column; files beside the class folders
// are skipped. Without sub-folders every image is written unlabelled.
// Images are stored as their original encoded bytes with their base name
// as path, as datasets' Image feature embeds local files.
func BuildFromImageFolder(dir, out string, opts BuildOptions) (BuildReport, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return BuildReport{}, fmt.Errorf("read images: %w", err)
	}
	var rep BuildReport
	var classes []string
	var items []buildItem
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) == 0 {
		for _, e := range entries {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				items = append(items, buildItem{path: filepath.Join(dir, e.Name()), label: -1})
			}
		}
	} else {
		for _, e := range entries {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				rep.skip(filepath.Join(dir, e.Name()), "file beside the class folders")
			}
		}
		for label, c := range classes {
			err := filepath.WalkDir(filepath.Join(dir, c), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if strings.HasPrefix(d.Name(), ".") {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.IsDir() {
					items = append(items, buildItem{path: p, label: label})
				}
				return nil
			})
			if err != nil {
				return BuildReport{}, fmt.Errorf("read images: %w", err)
			}
		}
	}
	if len(items) == 0 {
		return BuildReport{}, fmt.Errorf("no files found in %s", dir)
	}
	wo := opts.Writer
	wo.Captions, wo.ClassNames = false, classes
	return writeItems(out, wo, items, opts.FailOnBad, rep)
}

// BuildFromCaptions writes the images a captions file lists, with their
// captions, as a dataset at out. The file is .tsv, .csv or .jsonl. TSV and
// CSV files may start with a header naming the columns (image, file_name,
// filepath or path; caption or text; optionally label); without one their
// rows are "image path, caption" (or "caption, image path", told apart by
// which field names an existing file). JSONL lines are objects with the
// same keys. A label column of class names adds a ClassLabel column whose
// names are the sorted distinct labels.
func BuildFromCaptions(captionsFile, out string, opts BuildOptions) (BuildReport, error) {
	base := opts.ImagesDir
	if base == "" {
		base = filepath.Dir(captionsFile)
	}
	rows, err := readCaptionRows(captionsFile, base)
	if err != nil {
		return BuildReport{}, err
	}
	if len(rows) == 0 {
		return BuildReport{}, fmt.Errorf("%s lists no images", captionsFile)
	}
	var classes []string
	for _, r := range rows {
		if r.label != "" && !slices.Contains(classes, r.label) {
			classes = append(classes, r.label)
		}
	}
	sort.Strings(classes)
	items := make([]buildItem, len(rows))
	for i, r := range rows {
		items[i] = buildItem{path: r.path, caption: r.caption, label: -1}
		if r.label != "" {
			items[i].label = slices.Index(classes, r.label)
		}
	}
	wo := opts.Writer
	wo.Captions, wo.ClassNames = true, classes
	return writeItems(out, wo, items, opts.FailOnBad, BuildReport{})
}

// writeItems reads each image file and writes it, skipping bad files.
func writeItems(out string, wo WriterOptions, items []buildItem, failOnBad bool, rep BuildReport) (BuildReport, error) {
	w, err := CreateDataset(out, wo)
	if err != nil {
		return rep, err
	}
	for _, it := range items {
		b, err := os.ReadFile(it.path)
		why := ""
		switch {
		case errors.Is(err, fs.ErrNotExist):
			why = "file not found"
		case err != nil:
			why = err.Error()
		case SniffImageFormat(b) == "":
			why = "not a JPEG, PNG, GIF, BMP or WebP image"
		}
		if why != "" {
			if failOnBad {
				w.Abort()
				return rep, fmt.Errorf("%s: %s", it.path, why)
			}
			rep.skip(it.path, why)
			continue
		}
		ex := Example{ImageBytes: b, ImagePath: filepath.Base(it.path), Caption: it.caption, Label: it.label, ID: it.path}
		if err := w.Write(ex); err != nil {
			w.Abort()
			return rep, err
		}
	}
	sum, err := w.Close()
	if err != nil {
		w.Abort()
		if sum.Rows == 0 && rep.Skipped > 0 {
			return rep, fmt.Errorf("every file was skipped (%d), first: %s", rep.Skipped, rep.SkippedFiles[0])
		}
		return rep, err
	}
	rep.WriteSummary = sum
	rep.ClassNames = wo.ClassNames
	return rep, nil
}

// captionRow is one row of a captions file.
type captionRow struct {
	path, caption, label string
}

// Header names recognised in captions files.
var (
	captionPathKeys  = []string{"image", "file_name", "filename", "file", "filepath", "image_path", "path", "img"}
	captionTextKeys  = []string{"caption", "text", "txt", "title", "sentence"}
	captionLabelKeys = []string{"label", "class"}
)

// readCaptionRows parses a captions file; paths are resolved against base.
func readCaptionRows(file, base string) ([]captionRow, error) {
	ext := strings.ToLower(filepath.Ext(file))
	switch ext {
	case ".jsonl", ".ndjson", ".tsv", ".csv":
	default:
		return nil, fmt.Errorf("captions file %s: want a .tsv, .csv or .jsonl file", file)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read captions: %w", err)
	}
	defer f.Close()
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	switch ext {
	case ".tsv":
		return readCaptionsCSV(f, file, '\t', resolve)
	case ".csv":
		return readCaptionsCSV(f, file, ',', resolve)
	}
	return readCaptionsJSONL(f, file, resolve)
}

func readCaptionsJSONL(r io.Reader, file string, resolve func(string) string) ([]captionRow, error) {
	var rows []captionRow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", file, line, err)
		}
		get := func(keys []string) string {
			for _, k := range keys {
				if v, ok := obj[k]; ok {
					switch v := v.(type) {
					case string:
						return v
					case float64:
						return fmt.Sprint(v)
					}
				}
			}
			return ""
		}
		row := captionRow{path: get(captionPathKeys), caption: get(captionTextKeys), label: get(captionLabelKeys)}
		if row.path == "" {
			return nil, fmt.Errorf("%s line %d: no image path (keys %s)", file, line, strings.Join(captionPathKeys, ", "))
		}
		row.path = resolve(row.path)
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rows, nil
}

func readCaptionsCSV(r io.Reader, file string, comma rune, resolve func(string) string) ([]captionRow, error) {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	records, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(records) == 0 {
		return nil, nil
	}
	find := func(header []string, keys []string) int {
		for _, k := range keys {
			for i, h := range header {
				if strings.EqualFold(strings.TrimSpace(h), k) {
					return i
				}
			}
		}
		return -1
	}
	pathCol, textCol, labelCol := find(records[0], captionPathKeys), find(records[0], captionTextKeys), find(records[0], captionLabelKeys)
	if pathCol >= 0 && textCol >= 0 {
		records = records[1:]
	} else {
		// No header: two columns, path and caption in either order.
		pathCol, textCol, labelCol = 0, 1, -1
		if len(records[0]) >= 2 && !pathExists(resolve(records[0][0])) && pathExists(resolve(records[0][1])) {
			pathCol, textCol = 1, 0
		}
	}
	rows := make([]captionRow, 0, len(records))
	for i, rec := range records {
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if pathCol >= len(rec) || textCol >= len(rec) {
			return nil, fmt.Errorf("%s row %d: %d fields, want at least %d", file, i+1, len(rec), max(pathCol, textCol)+1)
		}
		row := captionRow{path: resolve(strings.TrimSpace(rec[pathCol])), caption: rec[textCol]}
		if labelCol >= 0 && labelCol < len(rec) {
			row.label = strings.TrimSpace(rec[labelCol])
		}
		rows = append(rows, row)
	}
	return rows, nil
}
