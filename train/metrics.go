package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// MetricsFile is the name of the metrics log in a run folder.
const MetricsFile = "metrics.jsonl"

// StepRecord is one line of metrics.jsonl for a logged optimizer step.
type StepRecord struct {
	// Step is the number of optimizer steps done (1 after the first).
	Step int
	// Epoch is the epoch the step belongs to (from 0).
	Epoch int
	// Loss is the weighted total loss (mean over the step's micro-batches).
	Loss float64
	// Terms holds each loss term by name (contrastive, distill,
	// classification, regularization), unweighted.
	Terms map[string]float64
	// LR is the learning rate of the weights at this step.
	LR float64
	// QuantizerLR is the learning rate of the quantizer parameters.
	QuantizerLR float64
	// GradNorm is the global gradient norm before clipping.
	GradNorm float64
	// ImagesPerSec is the training throughput since the last logged step.
	ImagesPerSec float64
}

// MarshalJSON writes the record as a flat object: step, epoch, loss, one
// key per loss term, lr, lr_quantizer, grad_norm, images_per_s.
func (r StepRecord) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"step": r.Step, "epoch": r.Epoch, "loss": jsonFloat(r.Loss), "lr": r.LR,
		"lr_quantizer": r.QuantizerLR, "grad_norm": jsonFloat(r.GradNorm), "images_per_s": round3(r.ImagesPerSec),
	}
	for k, v := range r.Terms {
		m[k] = jsonFloat(v)
	}
	return json.Marshal(m)
}

// EpochRecord is one line of metrics.jsonl written at the end of an epoch.
type EpochRecord struct {
	// Epoch is the epoch that ended (from 0).
	Epoch int `json:"epoch"`
	// Step is the number of optimizer steps done at its end.
	Step int `json:"step"`
	// Eval holds the end-of-epoch evaluation metrics (empty without one).
	Eval map[string]float64 `json:"eval"`
}

// jsonFloat keeps NaN and Inf loss values representable in JSON (as
// strings), which encoding/json rejects as numbers.
func jsonFloat(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return v
}

// round3 rounds to 3 decimals.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// metricsLog appends records to RUN/metrics.jsonl.
type metricsLog struct {
	f *os.File
}

// openMetrics opens the metrics log of run folder dir for appending. When
// keepUpTo >= 0 (resuming from the checkpoint of that step), lines of steps
// after it are dropped first, so the log reads as if the run had never
// been interrupted; keepUpTo < 0 starts a new log.
func openMetrics(dir string, keepUpTo int) (*metricsLog, error) {
	path := filepath.Join(dir, MetricsFile)
	var kept []byte
	if keepUpTo >= 0 {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("metrics %s: %w", path, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for sc.Scan() {
			var rec struct {
				Step *int `json:"step"`
			}
			line := sc.Bytes()
			if json.Unmarshal(line, &rec) != nil || rec.Step == nil || *rec.Step > keepUpTo {
				continue
			}
			kept = append(kept, line...)
			kept = append(kept, '\n')
		}
	}
	if err := atomicfile.WriteBytes(path, kept); err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	return &metricsLog{f: f}, nil
}

// write appends one record as a JSON line.
func (l *metricsLog) write(rec any) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics %s: %w", l.f.Name(), err)
	}
	return nil
}

// close flushes and closes the log.
func (l *metricsLog) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
