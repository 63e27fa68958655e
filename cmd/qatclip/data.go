package main

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qatclip/qatclip/data"
)

// newDataCmd builds `qatclip data` with its build, synth and inspect
// subcommands.
func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Build, generate and inspect Arrow datasets (HF datasets save_to_disk layout)",
	}
	cmd.AddCommand(newDataBuildCmd(), newDataSynthCmd(), newDataInspectCmd())
	return cmd
}

// newDataBuildCmd builds `qatclip data build`.
func newDataBuildCmd() *cobra.Command {
	var (
		images, captions, out, split, name string
		shardMB                            int64
		failOnBad                          bool
	)
	cmd := &cobra.Command{
		Use:   "build --out DIR (--images DIR | --captions FILE)",
		Short: "Write images (class folders or a captions file) as an HF save_to_disk dataset",
		Long: `Build writes an HF datasets save_to_disk folder (Arrow IPC stream shards
data-XXXXX-of-YYYYY.arrow, dataset_info.json, state.json) that
datasets.load_from_disk and qatclip's readers open.

With --images DIR alone, each sub-folder of DIR is a class (ClassLabel column
"label", names sorted); a DIR without sub-folders gives unlabelled images.
With --captions FILE (.tsv, .csv or .jsonl listing image paths and captions)
a "caption" column is written; relative paths are resolved against --images
when given, else against the captions file's folder.

Images are stored as their original bytes. Files that are missing or not
JPEG, PNG, GIF, BMP or WebP images are skipped and reported, or fail the
build with --on-bad-record fail. With --split NAME the dataset is written to
OUT/NAME and NAME is added to OUT/dataset_dict.json, so several builds make
one DatasetDict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("data build: --out is required")
			}
			if images == "" && captions == "" {
				return errors.New("data build: give --images DIR or --captions FILE")
			}
			if shardMB <= 0 {
				return fmt.Errorf("data build: --shard-size %d: must be positive", shardMB)
			}
			opts := data.BuildOptions{
				Writer:    data.WriterOptions{Split: split, DatasetName: name, MaxShardBytes: shardMB << 20},
				ImagesDir: images,
				FailOnBad: failOnBad,
			}
			dir := out
			if split != "" {
				dir = filepath.Join(out, split)
			}
			var rep data.BuildReport
			var err error
			if captions != "" {
				rep, err = data.BuildFromCaptions(captions, dir, opts)
			} else {
				rep, err = data.BuildFromImageFolder(images, dir, opts)
			}
			if err != nil {
				return fmt.Errorf("data build: %w", err)
			}
			if split != "" {
				if err := data.AddDatasetDictSplit(out, split); err != nil {
					return fmt.Errorf("data build: %w", err)
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s: %d rows in %d shard(s), %s\n", dir, rep.Rows, len(rep.Shards), dataHumanBytes(rep.Bytes))
			if len(rep.ClassNames) > 0 {
				fmt.Fprintf(w, "classes (%d): %s\n", len(rep.ClassNames), strings.Join(rep.ClassNames, ", "))
			}
			if rep.Skipped > 0 {
				fmt.Fprintf(w, "skipped %d file(s):\n", rep.Skipped)
				for _, s := range rep.SkippedFiles {
					fmt.Fprintf(w, "  %s\n", s)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&images, "images", "", "folder of images (class sub-folders give labels); base folder of relative paths with --captions")
	f.StringVar(&captions, "captions", "", "captions file (.tsv, .csv or .jsonl) listing image paths and captions")
	f.StringVar(&out, "out", "", "output folder (must not exist or be empty)")
	f.StringVar(&split, "split", "", "write OUT/SPLIT and add SPLIT to OUT/dataset_dict.json")
	f.StringVar(&name, "name", "", "dataset_name recorded in dataset_info.json")
	f.Int64Var(&shardMB, "shard-size", data.DefaultMaxShardBytes>>20, "maximum shard size in MiB")
	f.Var(newDataBadRecordFlag(&failOnBad), "on-bad-record", "skip or fail on a missing or non-image file")
	return cmd
}

// dataBadRecordFlag parses --on-bad-record skip|fail.
type dataBadRecordFlag struct{ fail *bool }

func newDataBadRecordFlag(fail *bool) *dataBadRecordFlag { return &dataBadRecordFlag{fail: fail} }

func (f *dataBadRecordFlag) String() string {
	if f.fail != nil && *f.fail {
		return "fail"
	}
	return "skip"
}

func (f *dataBadRecordFlag) Set(s string) error {
	switch s {
	case "skip":
		*f.fail = false
	case "fail":
		*f.fail = true
	default:
		return fmt.Errorf("%q: want skip or fail", s)
	}
	return nil
}

func (f *dataBadRecordFlag) Type() string { return "skip|fail" }

// newDataSynthCmd builds `qatclip data synth`.
func newDataSynthCmd() *cobra.Command {
	var (
		kind, out     string
		n, testN, ood int
		size          int
		seed          uint64
		difficulty    string
	)
	cmd := &cobra.Command{
		Use:   "synth --kind shapes --out DIR [--n N] [--size 64] [--seed S] [--difficulty hard|easy]",
		Short: "Generate the synthetic shapes image-caption/image-label DatasetDict",
		Long: `Synth draws coloured shapes on textured backgrounds and writes them as an HF
save_to_disk DatasetDict with splits train (N rows), test and ood (N/4 rows
each unless --test-n/--ood-n): PNG images, a caption such as
"a red circle on a striped background" and a ClassLabel "label" that is the
shape. train and test use the shapes ` + strings.Join(data.SynthShapeNames(), ", ") + `
on plain, striped, dotted or checkered backgrounds; ood uses only unseen
shapes (` + strings.Join(data.SynthOODShapeNames(), ", ") + `) on unseen noisy or gradient
backgrounds, its labels naming those shapes. With --difficulty easy every
shape's centre sits on a grid point a quarter of the image side apart (the
default, hard, puts it anywhere): a small ViT learns the easy set far
faster. The same seed gives byte-identical files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != "shapes" {
				return fmt.Errorf("data synth: --kind %q: only shapes is available", kind)
			}
			if out == "" {
				return errors.New("data synth: --out is required")
			}
			if n <= 0 {
				return fmt.Errorf("data synth: --n %d: must be positive", n)
			}
			sums, err := data.SynthShapesDataset(out, data.SynthOptions{N: n, TestN: testN, OODN: ood, Size: size, Seed: seed, Difficulty: difficulty})
			if err != nil {
				return fmt.Errorf("data synth: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, s := range sums {
				fmt.Fprintf(w, "wrote %s: %d rows, %s\n", s.Dir, s.Rows, dataHumanBytes(s.Bytes))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "shapes", "kind of synthetic data (shapes)")
	f.StringVar(&out, "out", "", "output folder (must not exist or be empty)")
	f.IntVar(&n, "n", 1000, "train examples")
	f.IntVar(&testN, "test-n", 0, "test examples (default n/4)")
	f.IntVar(&ood, "ood-n", 0, "ood examples (default n/4)")
	f.IntVar(&size, "size", 64, "image side in pixels")
	f.Uint64Var(&seed, "seed", 0, "random seed")
	f.StringVar(&difficulty, "difficulty", data.SynthHard, "shape placement: hard (anywhere) or easy (on a coarse grid)")
	return cmd
}

// newDataInspectCmd builds `qatclip data inspect`.
func newDataInspectCmd() *cobra.Command {
	var (
		opts     data.SourceOptions
		out      string
		n, limit int
	)
	cmd := &cobra.Command{
		Use:   "inspect PATH [--split NAME] [--out DIR]",
		Short: "Print a dataset's schema, rows, column stats and class names; optionally write thumbnails",
		Long: `Inspect opens PATH (an HF save_to_disk Dataset or DatasetDict folder, an
Arrow IPC or Parquet file, a folder of shards or a glob) and prints its
shards, schema, the columns read for image, text, label and id, statistics
of those columns and the ClassLabel names. With --out DIR the first --n
examples are decoded and written as PNG thumbnails; an image that cannot be
read or decoded is reported and skipped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := data.Open(args[0], opts)
			if err != nil {
				return fmt.Errorf("data inspect: %w", err)
			}
			defer src.Close()
			w := cmd.OutOrStdout()
			printDataSource(w, src)
			st, err := src.Stats(limit)
			if err != nil {
				return fmt.Errorf("data inspect: %w", err)
			}
			printDataStats(w, src, st)
			if out != "" {
				if err := writeDataThumbnails(w, src, out, n); err != nil {
					return fmt.Errorf("data inspect: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Split, "split", "", "split of a DatasetDict (default train)")
	f.StringVar(&opts.ImageColumn, "image-column", "", "image column (default: auto-detected)")
	f.StringVar(&opts.TextColumn, "text-column", "", "text column (default: auto-detected)")
	f.StringVar(&opts.LabelColumn, "label-column", "", "label column (default: auto-detected)")
	f.StringVar(&out, "out", "", "folder for PNG thumbnails of the first examples")
	f.IntVar(&n, "n", 8, "thumbnails to write with --out")
	f.IntVar(&limit, "limit", 0, "rows to scan for statistics (0: all)")
	return cmd
}

func printDataSource(w io.Writer, src *data.Source) {
	fmt.Fprintf(w, "path: %s\n", src.Path())
	if src.Split() != "" {
		fmt.Fprintf(w, "split: %s\n", src.Split())
	}
	shards := src.Shards()
	fmt.Fprintf(w, "rows: %d in %d shard(s)\n", src.NumRows(), len(shards))
	for i, sh := range shards {
		if i == 5 && len(shards) > 6 {
			fmt.Fprintf(w, "  ... %d more\n", len(shards)-5)
			break
		}
		fmt.Fprintf(w, "  %s: %d rows in %d chunk(s)\n", sh.Path, sh.Rows, len(sh.Chunks))
	}
	feats := src.Features()
	cols := src.Columns()
	roles := map[string]string{cols.Image: "image", cols.Text: "text", cols.Label: "label", cols.ID: "id", cols.Status: "status"}
	fmt.Fprintln(w, "schema:")
	for _, fd := range src.Schema().Fields() {
		line := fmt.Sprintf("  %s: %s", fd.Name, fd.Type)
		if ft, ok := feats[fd.Name]; ok && ft.Type != "" {
			line += "  [" + ft.Type
			if ft.Dtype != "" {
				line += " " + ft.Dtype
			}
			if len(ft.Names) > 0 {
				line += fmt.Sprintf(", %d names", len(ft.Names))
			}
			line += "]"
		}
		if r, ok := roles[fd.Name]; ok && fd.Name != "" {
			line += "  <- " + r
		}
		fmt.Fprintln(w, line)
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	fmt.Fprintf(w, "columns: image=%s text=%s label=%s id=%s\n", dash(cols.Image), dash(cols.Text), dash(cols.Label), dash(cols.ID))
	if names := src.ClassNames(); len(names) > 0 {
		fmt.Fprintf(w, "class names (%d): %s\n", len(names), strings.Join(names, ", "))
	}
}

func printDataStats(w io.Writer, src *data.Source, st data.SourceStats) {
	fmt.Fprintf(w, "scanned: %d rows", st.Rows)
	if st.Failed > 0 {
		fmt.Fprintf(w, " (%d with status other than success, skipped)", st.Failed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "images: %s\n", st.ImageSummary())
	if src.Columns().Text != "" {
		fmt.Fprintf(w, "captions: %d non-empty", st.Captions)
		if st.Captions > 0 {
			fmt.Fprintf(w, ", %d..%d characters, mean %.1f", st.MinCaption, st.MaxCaption, float64(st.TotalCaption)/float64(st.Captions))
		}
		fmt.Fprintln(w)
	}
	if src.Columns().Label != "" {
		labels := make([]int, 0, len(st.Labels))
		for l := range st.Labels {
			labels = append(labels, l)
		}
		sort.Ints(labels)
		names := src.ClassNames()
		parts := make([]string, len(labels))
		for i, l := range labels {
			name := fmt.Sprint(l)
			if l >= 0 && l < len(names) {
				name = names[l]
			} else if l < 0 {
				name = "none"
			}
			parts[i] = fmt.Sprintf("%s=%d", name, st.Labels[l])
		}
		fmt.Fprintf(w, "labels: %s\n", strings.Join(parts, " "))
	}
}

// dataThumbSide is the longest side of an inspect thumbnail.
const dataThumbSide = 128

// writeDataThumbnails decodes the first n examples into PNG thumbnails in dir,
// reporting the examples whose image cannot be read.
func writeDataThumbnails(w io.Writer, src *data.Source, dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	written, bad := 0, 0
	for si, sh := range src.Shards() {
		for row := 0; row < sh.Rows && written+bad < n; {
			exs, err := src.ReadRange(si, row, min(sh.Rows, row+n))
			if err != nil {
				return err
			}
			row += n
			for i := range exs {
				if written+bad >= n {
					break
				}
				ex := &exs[i]
				if err := writeDataThumbnail(dir, written+bad, ex, src.ClassNames()); err != nil {
					bad++
					fmt.Fprintf(w, "thumbnail %d: %v\n", written+bad-1, err)
					continue
				}
				written++
			}
		}
	}
	fmt.Fprintf(w, "wrote %d thumbnail(s) to %s", written, dir)
	if bad > 0 {
		fmt.Fprintf(w, "; %d example(s) could not be decoded", bad)
	}
	fmt.Fprintln(w)
	return nil
}

func writeDataThumbnail(dir string, i int, ex *data.Example, names []string) error {
	b, err := ex.ImageData()
	if err != nil {
		return err
	}
	img, err := data.DecodeImage(b)
	if err != nil {
		return fmt.Errorf("example %s: %w", ex.ID, err)
	}
	if s := max(img.Width, img.Height); s > dataThumbSide {
		tw, th := max(1, img.Width*dataThumbSide/s), max(1, img.Height*dataThumbSide/s)
		if img, err = data.ResizeBicubic(img, tw, th); err != nil {
			return err
		}
	}
	rgba := image.NewRGBA(image.Rect(0, 0, img.Width, img.Height))
	for p := 0; p < img.Width*img.Height; p++ {
		copy(rgba.Pix[4*p:4*p+3], img.Pix[3*p:3*p+3])
		rgba.Pix[4*p+3] = 255
	}
	name := fmt.Sprintf("%03d", i)
	if ex.Label >= 0 && ex.Label < len(names) {
		name += "-" + dataSafeName(names[ex.Label])
	}
	f, err := os.Create(filepath.Join(dir, name+".png"))
	if err != nil {
		return err
	}
	if err := png.Encode(f, rgba); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dataSafeName keeps letters, digits, '-' and '_' of s for a file name.
func dataSafeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// dataHumanBytes formats a byte count.
func dataHumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
