package data

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf8"
)

// maxPathChecks bounds how many path-only images Stats looks up on disk.
const maxPathChecks = 1000

// SourceStats summarises the rows of a Source, as data inspect prints.
type SourceStats struct {
	// Rows scanned and Failed, the rows a status column marks failed.
	Rows, Failed int
	// WithBytes counts images stored inline; PathOnly those stored as a
	// path alone, of which PathsChecked were looked up and PathsMissing
	// do not exist; NoImage counts rows whose image is null.
	WithBytes, PathOnly, PathsChecked, PathsMissing, NoImage int
	// MinBytes, MaxBytes and TotalBytes describe the inline image sizes.
	MinBytes, MaxBytes, TotalBytes int
	// Formats counts inline images by sniffed format ("unknown" for bytes
	// that are no JPEG, PNG, GIF, BMP or WebP).
	Formats map[string]int
	// Captions counts non-empty captions; caption lengths are in runes.
	Captions, MinCaption, MaxCaption, TotalCaption int
	// Labels counts rows per label (-1: no label).
	Labels map[int]int
	// FirstMissing is the first path-only image whose file is absent.
	FirstMissing string
}

// Stats scans up to maxRows rows (all when maxRows <= 0), one chunk at a
// time, and summarises them.
func (s *Source) Stats(maxRows int) (SourceStats, error) {
	st := SourceStats{Formats: map[string]int{}, Labels: map[int]int{}, MinBytes: -1, MinCaption: -1}
	for si, sh := range s.shards {
		row := 0
		for _, c := range sh.info.Chunks {
			if maxRows > 0 && st.Rows >= maxRows {
				return st, nil
			}
			end := row + c
			if maxRows > 0 {
				end = min(end, row+maxRows-st.Rows)
			}
			exs, err := s.ReadRange(si, row, end)
			if err != nil {
				return st, err
			}
			st.Rows += end - row
			st.Failed += end - row - len(exs)
			for i := range exs {
				st.add(&exs[i])
			}
			row += c
		}
	}
	return st, nil
}

func (st *SourceStats) add(ex *Example) {
	switch {
	case ex.ImageBytes != nil:
		n := len(ex.ImageBytes)
		st.WithBytes++
		st.TotalBytes += n
		if st.MinBytes < 0 || n < st.MinBytes {
			st.MinBytes = n
		}
		st.MaxBytes = max(st.MaxBytes, n)
		f := string(SniffImageFormat(ex.ImageBytes))
		if f == "" {
			f = "unknown"
		}
		st.Formats[f]++
	case ex.ImagePath != "":
		st.PathOnly++
		if st.PathsChecked < maxPathChecks {
			st.PathsChecked++
			if _, err := os.Stat(ex.ImagePath); err != nil {
				st.PathsMissing++
				if st.FirstMissing == "" {
					st.FirstMissing = ex.ImagePath
				}
			}
		}
	default:
		st.NoImage++
	}
	if ex.Caption != "" {
		n := utf8.RuneCountInString(ex.Caption)
		st.Captions++
		st.TotalCaption += n
		if st.MinCaption < 0 || n < st.MinCaption {
			st.MinCaption = n
		}
		st.MaxCaption = max(st.MaxCaption, n)
	}
	st.Labels[ex.Label]++
}

// ImageSummary is a one-line description of the images.
func (st SourceStats) ImageSummary() string {
	s := fmt.Sprintf("%d inline", st.WithBytes)
	if st.WithBytes > 0 {
		formats := make([]string, 0, len(st.Formats))
		for f, n := range st.Formats {
			formats = append(formats, fmt.Sprintf("%s %d", f, n))
		}
		sort.Strings(formats)
		s += fmt.Sprintf(" (%s; %d..%d bytes, mean %d)", strings.Join(formats, ", "), st.MinBytes, st.MaxBytes, st.TotalBytes/st.WithBytes)
	}
	s += fmt.Sprintf(", %d path-only", st.PathOnly)
	if st.PathOnly > 0 {
		s += fmt.Sprintf(" (%d of %d checked missing", st.PathsMissing, st.PathsChecked)
		if st.FirstMissing != "" {
			s += ", e.g. " + st.FirstMissing
		}
		s += ")"
	}
	return s + fmt.Sprintf(", %d null", st.NoImage)
}
