package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/recipes"
)

// CheckpointFormat identifies qatclip's checkpoint layout in manifests.
const CheckpointFormat = "qatclip-checkpoint/1"

// Names of the files of a checkpoint folder.
const (
	// ManifestFile describes the checkpoint and holds its checksums.
	ManifestFile = "manifest.json"
	// VariablesFile holds every saved variable, named by scope and name.
	VariablesFile = "variables.safetensors"
)

// checkpointPrefix starts the folder name of every checkpoint: step-NNNNNNNN.
const checkpointPrefix = "step-"

// Manifest describes one checkpoint: where training stood and what the
// folder's files hold.
type Manifest struct {
	// Format is CheckpointFormat.
	Format string `json:"format"`
	// Step is the number of optimizer steps done.
	Step int `json:"step"`
	// Epoch and Batch are the data position to continue from: the next
	// batch to read is batch Batch of epoch Epoch.
	Epoch int `json:"epoch"`
	// Batch is the next batch of Epoch to read.
	Batch int `json:"batch"`
	// EpochEnd is true for a checkpoint written at the end of an epoch.
	EpochEnd bool `json:"epoch_end"`
	// Eval holds the end-of-epoch evaluation metrics, if any.
	Eval map[string]float64 `json:"eval,omitempty"`
	// Created is the UTC time the checkpoint was written (RFC 3339).
	Created string `json:"created"`
	// Files maps each file of the folder to its size and SHA-256.
	Files map[string]FileSum `json:"files"`
	// Variables lists the saved variables in file order.
	Variables []VariableEntry `json:"variables"`
}

// FileSum is the size and SHA-256 (hex) of a checkpoint file.
type FileSum struct {
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the file's contents.
	SHA256 string `json:"sha256"`
}

// VariableEntry describes one saved variable.
type VariableEntry struct {
	// Scope is the variable's context scope, e.g. "/model/text_projection".
	Scope string `json:"scope"`
	// Name is the variable's name in its scope, e.g. "weight".
	Name string `json:"name"`
	// DType is the GoMLX dtype name, e.g. "Float32".
	DType string `json:"dtype"`
	// Shape is the variable's dimensions.
	Shape []int `json:"shape"`
	// Trainable records the variable's trainable flag.
	Trainable bool `json:"trainable"`
}

// key returns the tensor name of the entry in VariablesFile.
func (e VariableEntry) key() string { return context.JoinScope(e.Scope, e.Name) }

// CheckpointInfo is a checkpoint found in a folder.
type CheckpointInfo struct {
	// Dir is the checkpoint folder.
	Dir string
	// Manifest is its parsed manifest.
	Manifest Manifest
}

// checkpointName returns the folder name of the checkpoint of step.
func checkpointName(step int) string { return fmt.Sprintf("%s%08d", checkpointPrefix, step) }

// stDType maps a GoMLX dtype to the safetensors dtype holding it natively,
// or "" when it is stored as raw bytes (U8).
func stDType(dt dtypes.DType) safetensors.DType {
	switch dt {
	case dtypes.Float32:
		return safetensors.F32
	case dtypes.Float64:
		return safetensors.F64
	case dtypes.BFloat16:
		return safetensors.BF16
	case dtypes.Int64:
		return safetensors.I64
	case dtypes.Int32:
		return safetensors.I32
	case dtypes.Int8:
		return safetensors.I8
	case dtypes.Uint8:
		return safetensors.U8
	}
	return ""
}

// SaveCheckpoint writes the variables of ctx that keep accepts (all when
// keep is nil) and manifest m (its Format, Created, Files and Variables are
// filled in) as the checkpoint folder dir/step-NNNNNNNN, atomically: the
// files are written and fsynced in a temporary folder beside it, which is
// then renamed into place (replacing an older checkpoint of the same step)
// and the parent folder fsynced. A crash leaves either the previous state
// or the complete new checkpoint, never a half-written one. It returns the
// checkpoint's folder.
func SaveCheckpoint(ctx *context.Context, dir string, m Manifest, keep func(*context.Variable) bool) (string, error) {
	final := filepath.Join(dir, checkpointName(m.Step))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if keep == nil || keep(v) {
			vars = append(vars, v)
		}
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].ScopeAndName() < vars[j].ScopeAndName() })
	ts := make([]safetensors.Tensor, 0, len(vars))
	m.Variables = make([]VariableEntry, 0, len(vars))
	for _, v := range vars {
		value, err := v.Value()
		if err != nil {
			return "", fmt.Errorf("checkpoint %s: variable %s: %w", final, v.ScopeAndName(), err)
		}
		e := VariableEntry{Scope: v.Scope(), Name: v.Name(), DType: value.DType().String(),
			Shape: slices.Clone(value.Shape().Dimensions), Trainable: v.Trainable}
		if e.Shape == nil {
			e.Shape = []int{}
		}
		var data []byte
		if err := value.ConstBytes(func(b []byte) { data = slices.Clone(b) }); err != nil {
			return "", fmt.Errorf("checkpoint %s: variable %s: %w", final, v.ScopeAndName(), err)
		}
		t := safetensors.Tensor{Name: e.key(), DType: stDType(value.DType()), Shape: e.Shape, Data: data}
		if t.DType == "" {
			t.DType, t.Shape = safetensors.U8, []int{len(data)}
		}
		ts = append(ts, t)
		m.Variables = append(m.Variables, e)
	}
	m.Format = CheckpointFormat
	m.Created = time.Now().UTC().Format(time.RFC3339)

	tmp, err := os.MkdirTemp(dir, ".tmp-"+checkpointName(m.Step)+"-")
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	sum, err := writeSynced(filepath.Join(tmp, VariablesFile), func(w io.Writer) error {
		return safetensors.Write(w, ts, map[string]string{"format": CheckpointFormat})
	})
	if err != nil {
		return fail(err)
	}
	m.Files = map[string]FileSum{VariablesFile: sum}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fail(err)
	}
	if _, err := writeSynced(filepath.Join(tmp, ManifestFile), func(w io.Writer) error {
		_, err := w.Write(append(mj, '\n'))
		return err
	}); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	var old string
	if _, err := os.Stat(final); err == nil {
		old = filepath.Join(dir, fmt.Sprintf(".old-%s-%d", checkpointName(m.Step), time.Now().UnixNano()))
		if err := os.Rename(final, old); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return final, nil
}

// writeSynced creates path, lets write fill it, fsyncs and closes it, and
// returns its size and SHA-256.
func writeSynced(path string, write func(io.Writer) error) (FileSum, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return FileSum{}, err
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileSum{}, fmt.Errorf("write %s: %w", path, err)
	}
	return FileSum{Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

// Write implements io.Writer.
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// syncDir fsyncs a folder so renames inside it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot fsync folders; the data files are synced.
	if err != nil && (errors.Is(err, os.ErrInvalid) || strings.Contains(err.Error(), "invalid argument")) {
		return nil
	}
	return err
}

// VerifyCheckpoint reads the manifest of checkpoint folder dir and checks
// the size and SHA-256 of every file it lists.
func VerifyCheckpoint(dir string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return m, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("checkpoint %s: %s: %w", dir, ManifestFile, err)
	}
	if m.Format != CheckpointFormat {
		return m, fmt.Errorf("checkpoint %s: format %q, want %q", dir, m.Format, CheckpointFormat)
	}
	if _, ok := m.Files[VariablesFile]; !ok {
		return m, fmt.Errorf("checkpoint %s: manifest lists no %s", dir, VariablesFile)
	}
	for name, want := range m.Files {
		got, err := sumFile(filepath.Join(dir, name))
		if err != nil {
			return m, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if got != want {
			return m, fmt.Errorf("checkpoint %s: %s is corrupt (size %d, sha256 %s; manifest says size %d, sha256 %s)",
				dir, name, got.Size, got.SHA256, want.Size, want.SHA256)
		}
	}
	return m, nil
}

// sumFile returns the size and SHA-256 of a file.
func sumFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, fmt.Errorf("read %s: %w", path, err)
	}
	return FileSum{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// LoadCheckpoint verifies checkpoint folder dir and sets every variable it
// holds in ctx: existing variables (looked up by absolute scope and name)
// are overwritten, after checking their shape; missing ones are created.
// It returns the checkpoint's manifest.
func LoadCheckpoint(ctx *context.Context, dir string) (Manifest, error) {
	m, err := VerifyCheckpoint(dir)
	if err != nil {
		return m, err
	}
	path := filepath.Join(dir, VariablesFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return m, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer f.Close()
	for _, e := range m.Variables {
		dt, err := dtypes.DTypeString(e.DType)
		if err != nil {
			return m, fmt.Errorf("checkpoint %s: variable %s: unknown dtype %q", dir, e.key(), e.DType)
		}
		shape := shapes.Make(dt, e.Shape...)
		b, err := f.Bytes(e.key())
		if err != nil {
			return m, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if uintptr(len(b)) != shape.Memory() {
			return m, fmt.Errorf("checkpoint %s: variable %s holds %d bytes, want %d for %s", dir, e.key(), len(b), shape.Memory(), shape)
		}
		value := tensors.FromShape(shape)
		if err := value.MutableBytes(func(dst []byte) { copy(dst, b) }); err != nil {
			return m, fmt.Errorf("checkpoint %s: variable %s: %w", dir, e.key(), err)
		}
		if v := ctx.GetVariableByScopeAndName(e.Scope, e.Name); v != nil {
			if !v.Shape().Equal(shape) {
				return m, fmt.Errorf("checkpoint %s: variable %s has shape %s, the model's is %s (was the checkpoint made with another model or recipe?)",
					dir, e.key(), shape, v.Shape())
			}
			if err := v.SetValue(value); err != nil {
				return m, fmt.Errorf("checkpoint %s: variable %s: %w", dir, e.key(), err)
			}
			continue
		}
		ctx.InAbsPath(e.Scope).Checked(false).VariableWithValue(e.Name, value).SetTrainable(e.Trainable)
	}
	return m, nil
}

// ListCheckpoints returns the checkpoint folders (step-NNNNNNNN) of dir,
// oldest first, without verifying them. A missing dir has none.
func ListCheckpoints(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	type item struct {
		step int
		path string
	}
	var items []item
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, checkpointPrefix) {
			continue
		}
		step, err := strconv.Atoi(strings.TrimPrefix(name, checkpointPrefix))
		if err != nil {
			continue
		}
		items = append(items, item{step, filepath.Join(dir, name)})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].step < items[j].step })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.path
	}
	return out, nil
}

// LatestCheckpoint returns the newest checkpoint of dir that verifies. Each
// newer one that does not (missing or corrupt files) is reported on warn
// and skipped. It returns nil when there is no valid checkpoint.
func LatestCheckpoint(dir string, warn io.Writer) (*CheckpointInfo, error) {
	paths, err := ListCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		m, err := VerifyCheckpoint(paths[i])
		if err != nil {
			if warn != nil {
				fmt.Fprintf(warn, "warning: skipping checkpoint: %v\n", err)
			}
			continue
		}
		return &CheckpointInfo{Dir: paths[i], Manifest: m}, nil
	}
	return nil, nil
}

// removeStaleTemps deletes temporary folders left by checkpoint writes that
// were interrupted.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".tmp-") || strings.HasPrefix(n, ".old-") {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

// Score returns the value of a checkpoint-selection criterion (weighted
// metric terms, see recipes.ParseMetric) for evaluation metrics, and false
// when a metric it names is missing.
func Score(terms []recipes.MetricTerm, metrics map[string]float64) (float64, bool) {
	s := 0.0
	for _, t := range terms {
		v, ok := metrics[t.Name]
		if !ok {
			return 0, false
		}
		s += t.Weight * v
	}
	return s, len(terms) > 0
}

// PruneCheckpoints deletes the checkpoints of dir except the keep newest
// ones and the best one by the criterion (mode "max" or "min"; no best
// when terms is empty or no checkpoint has the metrics). It returns the
// best checkpoint's folder ("" when none).
func PruneCheckpoints(dir string, keep int, terms []recipes.MetricTerm, mode string) (string, error) {
	paths, err := ListCheckpoints(dir)
	if err != nil {
		return "", err
	}
	best, bestScore := "", 0.0
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(p, ManifestFile))
		if err != nil {
			continue
		}
		var m Manifest
		if json.Unmarshal(data, &m) != nil || m.Eval == nil {
			continue
		}
		s, ok := Score(terms, m.Eval)
		if !ok {
			continue
		}
		if best == "" || (mode == "min" && s < bestScore) || (mode != "min" && s > bestScore) {
			best, bestScore = p, s
		}
	}
	for i, p := range paths {
		if i >= len(paths)-keep || p == best {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return best, fmt.Errorf("remove old checkpoint: %w", err)
		}
	}
	return best, nil
}
