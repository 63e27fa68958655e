// Package pipeline runs the reliability evaluation of a CLIP model end to
// end: it builds the zero-shot head from class names and prompt templates
// (cached per text tower), embeds the in-distribution, temperature-fit and
// out-of-distribution image sets, scores them with package eval, evaluates
// the ID set again under corruptions, measures the embedding spectra and
// assembles an eval/report.Report.
//
// An [Evaluator] holds the opened data and the prompts; its
// [Evaluator.Evaluate] takes a model as a context, config and quantization
// hook, so the trainer's end-of-epoch hook can evaluate its student in
// place, and `qatclip eval` can evaluate a checkpoint from disk.
package pipeline

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/eval"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
)

// Defaults of [Options].
const (
	DefaultBatchSize         = 64
	DefaultCalibrationImages = 256
	DefaultCalibrationTexts  = 256
	// DefaultSeed seeds the temperature split and the noise corruption.
	DefaultSeed = 0x5eed
)

// Options configures an [Evaluator].
type Options struct {
	// Backend runs the models and the similarity matmul. Required.
	Backend backends.Backend
	// ID is the labelled in-distribution set. Required.
	ID DataSet
	// Fit is a separate labelled set to fit the temperature on; when nil,
	// FitFraction of the ID set is held out instead (rows picked by a
	// seeded permutation, the same for every model and epoch), and 0
	// fits no temperature.
	Fit         *DataSet
	FitFraction float64
	// OOD are the out-of-distribution sets; their labels are ignored.
	OOD []DataSet

	// Classes are the class names in label order; when empty they come
	// from ClassNames ("from-dataset" or a file, see LoadClassNames).
	Classes    []string
	ClassNames string
	// Templates are the prompt templates; when empty they come from
	// TemplateSpec ("default", "simple" or a file, see LoadTemplates).
	Templates    []string
	TemplateSpec string
	// Tokenizer tokenizes the prompts. Required.
	Tokenizer *tokenizer.Tokenizer

	// LogitScale > 0 is a fixed logit scale (CLIP_benchmark uses 100);
	// 0 uses each model's exp(logit_scale).
	LogitScale float64
	// MCMTemperature and ECEBins as in eval.Options (0: the defaults).
	MCMTemperature float64
	ECEBins        int

	// Corruptions re-evaluate the ID set (and fit rows) under each
	// corruption; each gives an extra report column.
	Corruptions []Corruption

	// BatchSize is the number of images per forward pass (default 64);
	// every batch is padded to it so one compiled graph serves all sets.
	BatchSize int
	// TextBatch is the number of prompts per forward pass (default 256).
	TextBatch int
	// Workers decode and preprocess images (default GOMAXPROCS).
	Workers int
	// MaxImages caps the images read from each set (0: all), in storage
	// order, for quick looks.
	MaxImages int
	// CalibrationImages and CalibrationTexts bound the ID images and
	// prompts a model with Calibrate set calibrates on (defaults 256).
	CalibrationImages, CalibrationTexts int
	// CacheDir holds cached zero-shot heads ("" disables the cache).
	CacheDir string
	// Seed seeds the temperature split and the noise (0: DefaultSeed).
	Seed uint64
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Model is one model to evaluate: its variables, config and quantization.
type Model struct {
	// Label heads the model's report column, e.g. "float" or "w8a8".
	Label string
	// Identity names the model in report.json.
	Identity report.Identity
	// Config is the model's CLIP config. Required.
	Config clip.Config
	// Context holds the model's variables in its scope (as
	// clip.Checkpoint.SetVariables or the trainer's student scope leave
	// them). Required.
	Context *context.Context
	// Hook fake-quantizes the model; nil for a float model.
	Hook layers.Hook
	// HookKey identifies the quantization plan (e.g. a hash of the
	// recipe's quantization section); it keys the zero-shot head cache
	// together with the text tower's variables. Required with a Hook for
	// the cache to be used.
	HookKey string
	// Calibrate runs the hook's calibration on the first
	// CalibrationImages ID images and CalibrationTexts prompts before
	// evaluating (post-training fake quantization of a float model).
	Calibrate bool
	// Embedder, when set, is reused instead of building one (its compiled
	// graphs survive between epochs). It must match Context, Config, Hook.
	Embedder *clip.Embedder
}

// Evaluation is the outcome of [Evaluator.Evaluate] for one model.
type Evaluation struct {
	// Column is the model's report column: metrics on the clean data and
	// the embedding spectra.
	Column report.Column
	// Corrupted holds one column per corruption (ID and fit rows only).
	Corrupted []report.Column
	// Head is the zero-shot head used.
	Head *Head
	// LogitScale is the scale used and LogitScaleSource where it came from.
	LogitScale       float64
	LogitScaleSource string
	// Timings, in seconds.
	HeadSeconds, EmbedSeconds, MetricSeconds float64
}

// Evaluator evaluates models on fixed data and prompts.
type Evaluator struct {
	opts      Options
	id, fit   *data.Source
	ood       []*data.Source
	classes   []string
	templates []string
	pcfgSize  int
	cosExec   *graph.Exec
	// idRows is the number of ID images read, set by the first
	// evaluation; fitRows are the ID positions held out for the
	// temperature (nil without a fraction split).
	idRows  int
	fitRows []int
}

// New checks the options, opens every set and resolves the class names and
// templates. Missing data gives one error line naming the set and path (and
// the set's Hint).
func New(opts Options) (*Evaluator, error) {
	if opts.Backend == nil {
		return nil, errors.New("eval: no backend")
	}
	if opts.Tokenizer == nil {
		return nil, errors.New("eval: no tokenizer")
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.TextBatch == 0 {
		opts.TextBatch = 256
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.CalibrationImages == 0 {
		opts.CalibrationImages = DefaultCalibrationImages
	}
	if opts.CalibrationTexts == 0 {
		opts.CalibrationTexts = DefaultCalibrationTexts
	}
	if opts.Seed == 0 {
		opts.Seed = DefaultSeed
	}
	if opts.MCMTemperature == 0 {
		opts.MCMTemperature = eval.DefaultMCMTemperature
	}
	if opts.ECEBins == 0 {
		opts.ECEBins = eval.DefaultECEBins
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	switch {
	case opts.BatchSize < 1:
		return nil, fmt.Errorf("eval: batch size must be positive, got %d", opts.BatchSize)
	case opts.LogitScale < 0 || math.IsNaN(opts.LogitScale) || math.IsInf(opts.LogitScale, 0):
		return nil, fmt.Errorf("eval: logit scale must be a positive number (or 0 for the model's), got %v", opts.LogitScale)
	case opts.FitFraction < 0 || opts.FitFraction >= 1 || math.IsNaN(opts.FitFraction):
		return nil, fmt.Errorf("eval: fit fraction %v is outside [0, 1)", opts.FitFraction)
	case opts.MaxImages < 0:
		return nil, fmt.Errorf("eval: max images must not be negative, got %d", opts.MaxImages)
	}
	for _, c := range opts.Corruptions {
		if c.NoiseSigma < 0 || math.IsNaN(c.NoiseSigma) || math.IsInf(c.NoiseSigma, 0) || c.JPEGQuality < 0 || c.JPEGQuality > 100 ||
			(c.NoiseSigma > 0) == (c.JPEGQuality > 0) {
			return nil, fmt.Errorf("eval: corruption %+v: give one of a noise sigma > 0 or a JPEG quality in [1, 100]", c)
		}
	}
	e := &Evaluator{opts: opts}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	var err error
	if e.id, err = opts.ID.open("id"); err != nil {
		return nil, err
	}
	if opts.Fit != nil {
		if e.fit, err = opts.Fit.open("fit"); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for _, o := range opts.OOD {
		if o.Name == "" {
			return nil, fmt.Errorf("ood set %s: no name", o.Path)
		}
		if names[o.Name] {
			return nil, fmt.Errorf("ood set %q: name given twice", o.Name)
		}
		names[o.Name] = true
		src, err := o.open("ood")
		if err != nil {
			return nil, err
		}
		e.ood = append(e.ood, src)
	}
	if e.classes = opts.Classes; len(e.classes) == 0 {
		if e.classes, err = LoadClassNames(opts.ClassNames, e.id.ClassNames()); err != nil {
			return nil, err
		}
	} else if ds := e.id.ClassNames(); len(ds) > 0 && len(ds) != len(e.classes) {
		return nil, fmt.Errorf("class names: %d given, but the ID set's label has %d classes", len(e.classes), len(ds))
	}
	if err := CheckClassNames(e.classes); err != nil {
		return nil, err
	}
	if e.templates = opts.Templates; len(e.templates) == 0 {
		if e.templates, err = LoadTemplates(opts.TemplateSpec); err != nil {
			return nil, err
		}
	}
	e.cosExec, err = graph.NewExec(opts.Backend, func(img, w *graph.Node) *graph.Node {
		return graph.Einsum("nd,cd->nc", clip.L2Normalize(img), w)
	})
	if err != nil {
		return nil, fmt.Errorf("eval: build similarity graph: %w", err)
	}
	ok = true
	return e, nil
}

// Close releases the opened sets.
func (e *Evaluator) Close() error {
	var errs []error
	for _, s := range append([]*data.Source{e.id, e.fit}, e.ood...) {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Classes returns the class names in label order.
func (e *Evaluator) Classes() []string { return e.classes }

// Templates returns the prompt templates.
func (e *Evaluator) Templates() []string { return e.templates }

// logf writes one progress line.
func (e *Evaluator) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.Log, format+"\n", args...)
}

// embedded holds the image embeddings and labels of one set.
type embedded struct {
	feats  []float32 // [n, d]
	labels []int
	n      int
}

// Evaluate runs model m on every set: calibration (if asked), zero-shot
// head, image embeddings, similarities, metrics, corruptions and spectra.
func (e *Evaluator) Evaluate(m Model) (*Evaluation, error) {
	if m.Context == nil {
		return nil, errors.New("eval: model has no context")
	}
	if err := m.Config.Validate(); err != nil {
		return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	emb := m.Embedder
	if emb == nil {
		var err error
		if emb, err = clip.NewEmbedder(e.opts.Backend, m.Context, m.Config, m.Hook); err != nil {
			return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
		}
	}
	pcfg := data.DefaultPreprocessConfig()
	pcfg.Size = m.Config.Vision.ImageSize
	if m.Calibrate && m.Hook != nil {
		if err := e.calibrate(emb, m, pcfg); err != nil {
			return nil, err
		}
	}
	ev := &Evaluation{Column: report.Column{Label: m.Label, Model: m.Identity}}
	var err error
	if ev.LogitScale, ev.LogitScaleSource, err = e.logitScale(m); err != nil {
		return nil, err
	}

	t0 := time.Now()
	towerKey := ""
	if e.opts.CacheDir != "" && (m.Hook == nil || m.HookKey != "") {
		if towerKey, err = TextTowerKey(m.Context, m.HookKey); err != nil {
			return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
		}
	}
	ev.Head, err = BuildHead(emb, e.classes, e.templates, HeadOptions{
		Tokenizer: e.opts.Tokenizer, ContextLength: m.Config.Text.MaxPositionEmbeddings, VocabSize: m.Config.Text.VocabSize,
		Batch: e.opts.TextBatch, TowerKey: towerKey, CacheDir: e.opts.CacheDir,
	})
	if err != nil {
		return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	ev.HeadSeconds = time.Since(t0).Seconds()
	how := "encoded"
	if ev.Head.Cached {
		how = "read from cache"
	}
	e.logf("eval %s: zero-shot head %d classes x %d templates %s in %.2fs", m.Label, len(e.classes), len(e.templates), how, ev.HeadSeconds)

	t0 = time.Now()
	id, err := e.embedSet(emb, e.id, e.opts.ID.describe("id"), pcfg, Corruption{}, true)
	if err != nil {
		return nil, err
	}
	if err := e.setSplit(id.n); err != nil {
		return nil, err
	}
	var fit *embedded
	if e.fit != nil {
		if fit, err = e.embedSet(emb, e.fit, e.opts.Fit.describe("fit"), pcfg, Corruption{}, true); err != nil {
			return nil, err
		}
	}
	oods := make([]*embedded, len(e.ood))
	for i, src := range e.ood {
		if oods[i], err = e.embedSet(emb, src, e.opts.OOD[i].describe("ood"), pcfg, Corruption{}, false); err != nil {
			return nil, err
		}
	}
	ev.EmbedSeconds = time.Since(t0).Seconds()

	t0 = time.Now()
	opt := eval.Options{LogitScale: ev.LogitScale, MCMTemperature: e.opts.MCMTemperature, ECEBins: e.opts.ECEBins, Workers: e.opts.Workers}
	in, err := e.input(ev.Head, id, fit)
	if err != nil {
		return nil, err
	}
	for i, o := range oods {
		sims, err := e.similarities(ev.Head, o)
		if err != nil {
			return nil, err
		}
		in.OOD = append(in.OOD, eval.OODSet{Name: e.opts.OOD[i].Name, Sims: sims})
	}
	if ev.Column.Result, err = eval.Evaluate(in, opt); err != nil {
		return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	if ev.Column.Spectra, err = spectra(id, ev.Head); err != nil {
		return nil, fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	ev.MetricSeconds = time.Since(t0).Seconds()
	e.logf("eval %s: %d ID, %d OOD images embedded in %.2fs; acc1 %.4f, ece %.4f", m.Label, id.n, sumRows(oods), ev.EmbedSeconds,
		ev.Column.Result.Classification.Acc1, ev.Column.Result.Classification.ECE)

	for _, c := range e.opts.Corruptions {
		cid, err := e.embedSet(emb, e.id, e.opts.ID.describe("id")+" ("+c.String()+")", pcfg, c, true)
		if err != nil {
			return nil, err
		}
		var cfit *embedded
		if e.fit != nil {
			if cfit, err = e.embedSet(emb, e.fit, e.opts.Fit.describe("fit")+" ("+c.String()+")", pcfg, c, true); err != nil {
				return nil, err
			}
		}
		cin, err := e.input(ev.Head, cid, cfit)
		if err != nil {
			return nil, err
		}
		res, err := eval.Evaluate(cin, opt)
		if err != nil {
			return nil, fmt.Errorf("eval: model %s, %s: %w", m.Label, c, err)
		}
		col := report.Column{Label: m.Label + ", " + c.String(), Model: m.Identity, Result: res}
		if col.Spectra, err = spectra(cid, ev.Head); err != nil {
			return nil, fmt.Errorf("eval: model %s, %s: %w", m.Label, c, err)
		}
		col.Spectra = col.Spectra[:1] // the text tower sees no corruption
		ev.Corrupted = append(ev.Corrupted, col)
		e.logf("eval %s under %s: acc1 %.4f, ece %.4f", m.Label, c, res.Classification.Acc1, res.Classification.ECE)
	}
	return ev, nil
}

// calibrate runs the model's quantizers in calibration mode on the first
// ID images and an evenly spaced subset of the prompts.
func (e *Evaluator) calibrate(emb *clip.Embedder, m Model, pcfg data.PreprocessConfig) error {
	n := e.opts.CalibrationImages
	spec := readSpec{src: e.id, what: e.opts.ID.describe("id") + " (calibration)", limit: n, batch: e.opts.BatchSize,
		workers: e.opts.Workers, pcfg: pcfg, seed: e.opts.Seed}
	got := 0
	err := readImages(spec, func(b *imageBatch) error {
		got += b.n
		return emb.Calibrate(b.pixels[:b.n*pcfg.OutputLen()], b.n, nil, 0, 0, e.opts.BatchSize)
	})
	if err != nil {
		return fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	prompts := Prompts(e.classes, e.templates)
	if k := e.opts.CalibrationTexts; len(prompts) > k {
		sub := make([]string, k)
		for i := range sub {
			sub[i] = prompts[i*len(prompts)/k]
		}
		prompts = sub
	}
	ids, l, _, err := tokenizePrompts(prompts, HeadOptions{Tokenizer: e.opts.Tokenizer,
		ContextLength: m.Config.Text.MaxPositionEmbeddings, VocabSize: m.Config.Text.VocabSize})
	if err != nil {
		return fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	if err := emb.Calibrate(nil, 0, ids, len(prompts), l, e.opts.TextBatch); err != nil {
		return fmt.Errorf("eval: model %s: %w", m.Label, err)
	}
	e.logf("eval %s: quantizers calibrated on %d ID images and %d prompts", m.Label, got, len(prompts))
	return nil
}

// logitScale returns the fixed scale, or the model's exp(logit_scale).
func (e *Evaluator) logitScale(m Model) (float64, string, error) {
	if e.opts.LogitScale > 0 {
		return e.opts.LogitScale, "fixed", nil
	}
	p, _ := clip.ParamByName(m.Config, "logit_scale")
	v := m.Context.GetVariableByScopeAndName(p.Scope(m.Context.Scope()), p.Var)
	if v == nil {
		return 0, "", fmt.Errorf("eval: model %s has no logit_scale variable; give a fixed logit scale", m.Label)
	}
	t, err := v.Value()
	if err != nil {
		return 0, "", fmt.Errorf("eval: model %s: logit_scale: %w", m.Label, err)
	}
	var ls float64
	t.MustConstFlatData(func(flat any) {
		switch d := flat.(type) {
		case []float32:
			ls = float64(d[0])
		case []float64:
			ls = d[0]
		default:
			ls = math.NaN()
		}
	})
	s := math.Exp(ls)
	if !(s > 0) || math.IsInf(s, 0) {
		return 0, "", fmt.Errorf("eval: model %s: exp(logit_scale) = exp(%v) is not a usable scale; give a fixed logit scale", m.Label, ls)
	}
	return s, fmt.Sprintf("model exp(logit_scale) = exp(%.4f)", ls), nil
}

// embedSet embeds every image of src (up to MaxImages).
func (e *Evaluator) embedSet(emb *clip.Embedder, src *data.Source, what string, pcfg data.PreprocessConfig, c Corruption, labelled bool) (*embedded, error) {
	spec := readSpec{src: src, what: what, limit: e.opts.MaxImages, batch: e.opts.BatchSize,
		workers: e.opts.Workers, pcfg: pcfg, corrupt: c, seed: e.opts.Seed}
	out := &embedded{}
	err := readImages(spec, func(b *imageBatch) error {
		f, err := emb.ImageFeatures(b.pixels, e.opts.BatchSize, e.opts.BatchSize)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		d := len(f) / e.opts.BatchSize
		out.feats = append(out.feats, f[:b.n*d]...)
		for i, l := range b.labels {
			if labelled && l < 0 {
				return fmt.Errorf("%s: example %s has no label (is the label column set?)", what, b.ids[i])
			}
		}
		out.labels = append(out.labels, b.labels...)
		out.n += b.n
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out.n == 0 {
		return nil, fmt.Errorf("%s: no images read", what)
	}
	return out, nil
}

// setSplit fixes the held-out temperature rows the first time the ID set
// is read: a FitFraction share of the positions, chosen by a seeded
// permutation. Later reads must see the same number of images.
func (e *Evaluator) setSplit(n int) error {
	if e.idRows != 0 {
		if n != e.idRows {
			return fmt.Errorf("eval: id set: %d images read, but %d the first time", n, e.idRows)
		}
		return nil
	}
	e.idRows = n
	if e.fit != nil || e.opts.FitFraction == 0 {
		return nil
	}
	k := int(math.Round(e.opts.FitFraction * float64(n)))
	if k < 1 || k >= n {
		return fmt.Errorf("eval: id set: %d images cannot be split with fit fraction %g (need at least one image on each side)", n, e.opts.FitFraction)
	}
	r := rand.New(rand.NewPCG(e.opts.Seed, 0x7e3))
	rows := r.Perm(n)[:k]
	slices.Sort(rows)
	e.fitRows = rows
	return nil
}

// input builds eval.Input from the ID embeddings (minus the held-out rows)
// and the fit split.
func (e *Evaluator) input(h *Head, id, fit *embedded) (eval.Input, error) {
	var in eval.Input
	if len(e.fitRows) > 0 {
		d := len(id.feats) / id.n
		keep, hold := &embedded{}, &embedded{}
		j := 0
		for i := range id.n {
			dst := keep
			if j < len(e.fitRows) && e.fitRows[j] == i {
				dst = hold
				j++
			}
			dst.feats = append(dst.feats, id.feats[i*d:(i+1)*d]...)
			dst.labels = append(dst.labels, id.labels[i])
			dst.n++
		}
		id, fit = keep, hold
	}
	sims, err := e.similarities(h, id)
	if err != nil {
		return in, err
	}
	in.ID = eval.Split{Sims: sims, Labels: id.labels}
	if fit != nil {
		fs, err := e.similarities(h, fit)
		if err != nil {
			return in, err
		}
		in.Fit = &eval.Split{Sims: fs, Labels: fit.labels}
	}
	return in, nil
}

// simBlock is the number of rows per similarity matmul (padded, so one
// compiled graph serves every set).
const simBlock = 1024

// similarities returns cos = normalize(img) @ W^T, [n, C], computed on the
// backend in blocks of simBlock rows.
func (e *Evaluator) similarities(h *Head, x *embedded) (eval.Sims, error) {
	c, d := len(h.Classes), h.D
	if len(x.feats) != x.n*d {
		return eval.Sims{}, fmt.Errorf("eval: image embeddings have %d values, want %d x %d (image and text towers disagree on projection_dim?)", len(x.feats), x.n, d)
	}
	w := tensors.FromFlatDataAndDimensions(h.W, c, d)
	defer w.FinalizeAll()
	out := make([]float32, 0, x.n*c)
	rows := min(simBlock, x.n)
	buf := make([]float32, rows*d)
	for start := 0; start < x.n; start += rows {
		k := min(rows, x.n-start)
		clear(buf)
		copy(buf, x.feats[start*d:(start+k)*d])
		for i := k; i < rows; i++ {
			buf[i*d] = 1 // keep padding rows' norm finite
		}
		res, err := e.cosExec.Exec(tensors.FromFlatDataAndDimensions(buf, rows, d), w)
		if err != nil {
			return eval.Sims{}, fmt.Errorf("eval: similarities: %w", err)
		}
		s := tensors.MustCopyFlatData[float32](res[0])
		res[0].FinalizeAll()
		out = append(out, s[:k*c]...)
	}
	return eval.NewSims32(out, x.n, c)
}

// spectra returns the image tower's spectrum (L2-normalised ID image
// embeddings) and the text tower's (the head's class embeddings).
func spectra(id *embedded, h *Head) ([]report.Spectrum, error) {
	d := len(id.feats) / id.n
	norm := make([]float32, len(id.feats))
	for i := range id.n {
		row := id.feats[i*d : (i+1)*d]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		s = math.Sqrt(s)
		if s == 0 {
			s = 1
		}
		for j, v := range row {
			norm[i*d+j] = float32(float64(v) / s)
		}
	}
	img, err := eval.EmbeddingSpectrum(norm, id.n, d)
	if err != nil {
		return nil, fmt.Errorf("image spectrum: %w", err)
	}
	txt, err := eval.EmbeddingSpectrum(h.W, len(h.Classes), h.D)
	if err != nil {
		return nil, fmt.Errorf("text spectrum: %w", err)
	}
	return []report.Spectrum{{Tower: "image", Spectrum: img}, {Tower: "text", Spectrum: txt}}, nil
}

func sumRows(sets []*embedded) int {
	n := 0
	for _, s := range sets {
		n += s.n
	}
	return n
}
