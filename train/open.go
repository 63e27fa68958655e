package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// ClassPromptTemplate is the prompt the classification loss builds its
// zero-shot head from: "{}" stands for the class name.
const ClassPromptTemplate = "a photo of a {}."

// LoaderOptions configures [OpenLoaderData].
type LoaderOptions struct {
	// Tokenizer tokenizes the captions and the class prompts; nil loads
	// one, once the data set has opened, with clip.LoadTokenizer(Vocab,
	// the recipe's model.source).
	Tokenizer *tokenizer.Tokenizer
	// Vocab is the --vocab of clip.LoadTokenizer when Tokenizer is nil.
	Vocab string
	// Workers is the number of decode and preprocess goroutines (0: one
	// per CPU).
	Workers int
	// Cache keeps every decoded, resized image in memory after its first
	// epoch, so later epochs skip decoding (small data sets only).
	Cache bool
}

// OpenLoaderData opens the recipe's train.data.path (an HF save_to_disk
// folder with train.data.split, an Arrow IPC file or a Parquet file or
// folder) through a data.Loader: images preprocessed for the model's image
// size, captions tokenized to its context length, shuffled per epoch with
// train.seed, the last short batch dropped. Column names the recipe gives
// explicitly are used; the others are detected.
//
// When train.loss.classification is on it also returns the zero-shot head
// of the classification loss (see [ZeroShotHead]), built by ck's float text
// tower from the data set's class names with [ClassPromptTemplate].
func OpenLoaderData(r *recipes.Recipe, ck *clip.Checkpoint, be backends.Backend, opts LoaderOptions) (*LoaderData, []float32, error) {
	cfg := ck.Config
	d := r.Train.Data
	if d.Path == "" {
		return nil, nil, fmt.Errorf("recipe %s: train.data.path is empty", r.Source())
	}
	so := data.SourceOptions{Split: d.Split}
	if r.Given("train.data.image_column") {
		so.ImageColumn = d.ImageColumn
	}
	if r.Given("train.data.text_column") {
		so.TextColumn = d.TextColumn
	}
	if r.Given("train.data.label_column") {
		so.LabelColumn = d.LabelColumn
	}
	src, err := data.Open(d.Path, so)
	if err != nil {
		return nil, nil, &OpenError{Path: d.Path, Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			src.Close()
		}
	}()
	if src.Columns().Text == "" {
		return nil, nil, fmt.Errorf("train.data.path %s: no caption column (columns: %s); set train.data.text_column", d.Path, ColumnNames(src))
	}
	if opts.Tokenizer == nil {
		if opts.Tokenizer, err = clip.LoadTokenizer(opts.Vocab, r.Model.Source); err != nil {
			return nil, nil, fmt.Errorf("train: tokenizer: %w", err)
		}
	}
	pre := data.DefaultPreprocessConfig()
	pre.Size = cfg.Vision.ImageSize
	l, err := data.NewLoader(src, data.LoaderConfig{
		BatchSize: r.Train.BatchSize, Preprocess: pre, Tokenizer: opts.Tokenizer,
		Tokenize: tokenizer.Options{ContextLength: cfg.Text.MaxPositionEmbeddings, Truncate: true},
		Workers:  opts.Workers, Shuffle: true, Seed: uint64(r.Train.Seed), DropLast: true, Cache: opts.Cache,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("train.data.path %s: %w", d.Path, err)
	}
	batches, err := NewLoaderData(l)
	if err != nil {
		return nil, nil, fmt.Errorf("train.data.path %s: %w", d.Path, err)
	}
	var head []float32
	if r.Train.Loss.Classification > 0 {
		names := src.ClassNames()
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("train.loss.classification: %s has no class names (ClassLabel feature)", d.Path)
		}
		texts := make([]string, len(names))
		for i, n := range names {
			texts[i] = strings.ReplaceAll(ClassPromptTemplate, "{}", n)
		}
		seq := cfg.Text.MaxPositionEmbeddings
		rows, err := opts.Tokenizer.Tokenize(texts, tokenizer.Options{ContextLength: seq, Truncate: true})
		if err != nil {
			return nil, nil, fmt.Errorf("train.loss.classification: %w", err)
		}
		ids := make([]int32, 0, len(rows)*seq)
		for _, row := range rows {
			ids = append(ids, row...)
		}
		if head, err = ZeroShotHead(be, ck, ids, len(names), 1, seq); err != nil {
			return nil, nil, err
		}
	}
	ok = true
	return batches, head, nil
}

// OpenError is the error of [OpenLoaderData] when train.data.path does not
// open as a data set.
type OpenError struct {
	// Path is train.data.path.
	Path string
	// Err is data.Open's error.
	Err error
}

// Error implements error.
func (e *OpenError) Error() string { return "train.data.path: " + e.Err.Error() }

// Unwrap returns data.Open's error.
func (e *OpenError) Unwrap() error { return e.Err }

// ColumnNames lists a source's columns, comma-separated, for error
// messages.
func ColumnNames(src *data.Source) string {
	var names []string
	for _, f := range src.Schema().Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}
