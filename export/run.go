package export

import (
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
)

// Names in a run folder.
const (
	// RunRecipeFile is the resolved recipe.
	RunRecipeFile = "recipe.yaml"
	// RunConfigFile is the model's HF config.
	RunConfigFile = "config.json"
	// RunCheckpointsDir holds the checkpoints (train's format).
	RunCheckpointsDir = "checkpoints"
	// ModelScope is the context scope holding the model's variables.
	ModelScope = "model"
)

// IsRun reports whether dir looks like a run folder: it holds recipe.yaml
// and a checkpoints folder.
func IsRun(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, RunRecipeFile)); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, RunCheckpointsDir))
	return err == nil && st.IsDir()
}

// Run is a run folder's latest checkpoint, loaded.
type Run struct {
	// Dir is the run folder; Checkpoint the checkpoint folder read.
	Dir, Checkpoint string
	// Manifest is the checkpoint's manifest (Eval holds its last evaluation).
	Manifest train.Manifest
	// Recipe is the run's resolved recipe and Plan its plan for Config.
	Recipe *recipes.Recipe
	Plan   *recipes.Plan
	// Config is the model's config.
	Config clip.Config
	// Ctx is the root context the checkpoint was loaded into; the model
	// lives in Ctx.In(ModelScope).
	Ctx *context.Context
	// Hook is the recipe's quantization hook.
	Hook *layers.QuantHook
	// ModelDir is the source model folder (recipe model.source), "" when it
	// is not on disk.
	ModelDir string
}

// ModelCtx returns the context scoped to the model's variables.
func (r *Run) ModelCtx() *context.Context { return r.Ctx.In(ModelScope) }

// Source returns the run's model as an export source.
func (r *Run) Source() Source {
	return Source{Config: r.Config, Ctx: r.ModelCtx(), Plan: r.Plan}
}

// Model returns the run's model for inference (its quantizers use their
// trained or calibrated state).
func (r *Run) Model() *Model {
	return &Model{Config: r.Config, Ctx: r.ModelCtx(), Hook: r.Hook, Path: r.Dir, Kind: "run",
		Recipe: r.Recipe.Name, Sites: r.Hook.NumSites()}
}

// LoadRun reads a run folder: its recipe, the model config (config.json in
// the folder, else that of the recipe's model.source) and its newest valid
// checkpoint. dir may also be one checkpoint folder of a run
// (RUN/checkpoints/step-NNNNNNNN).
func LoadRun(dir string) (*Run, error) {
	run := &Run{Dir: dir}
	if _, err := os.Stat(filepath.Join(dir, train.ManifestFile)); err == nil {
		run.Checkpoint = dir
		run.Dir = filepath.Dir(filepath.Dir(dir))
	} else {
		info, err := train.LatestCheckpoint(filepath.Join(dir, RunCheckpointsDir), io.Discard)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		if info == nil {
			return nil, fmt.Errorf("run %s: no valid checkpoint in %s", dir, filepath.Join(dir, RunCheckpointsDir))
		}
		run.Checkpoint = info.Dir
	}
	r, err := recipes.Load(filepath.Join(run.Dir, RunRecipeFile))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", run.Dir, err)
	}
	run.Recipe = r
	if src, err := clip.ResolveSource(r.Model.Source); err == nil {
		if st, err := os.Stat(src); err == nil && st.IsDir() {
			run.ModelDir = src
		}
	}
	cfgPath := filepath.Join(run.Dir, RunConfigFile)
	if _, err := os.Stat(cfgPath); err != nil {
		if run.ModelDir == "" {
			return nil, fmt.Errorf("run %s: no %s, and the recipe's model.source %q is not a local folder", run.Dir, RunConfigFile, r.Model.Source)
		}
		cfgPath = filepath.Join(run.ModelDir, "config.json")
	}
	if run.Config, err = clip.LoadConfig(cfgPath); err != nil {
		return nil, fmt.Errorf("run %s: %w", run.Dir, err)
	}
	if run.Hook, run.Plan, err = clip.QuantHook(r, run.Config); err != nil {
		return nil, fmt.Errorf("run %s: %w", run.Dir, err)
	}
	run.Ctx = context.New()
	if run.Manifest, err = train.LoadCheckpoint(run.Ctx, run.Checkpoint); err != nil {
		return nil, err
	}
	if _, err := clip.Tensors(run.ModelCtx(), run.Config); err != nil {
		return nil, fmt.Errorf("run %s: checkpoint %s does not hold the model under /%s: %w", run.Dir, run.Checkpoint, ModelScope, err)
	}
	return run, nil
}

// WriteRun writes a run folder: recipe.yaml (r, resolved), config.json
// (cfg) and the variables of ctx under /model (the model and its quantizer
// state) as a checkpoint with manifest m. It returns the checkpoint folder.
func WriteRun(dir string, r *recipes.Recipe, cfg clip.Config, ctx *context.Context, m train.Manifest) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("run %s: %w", dir, err)
	}
	y, err := r.Marshal()
	if err != nil {
		return "", fmt.Errorf("run %s: %w", dir, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, RunRecipeFile), y); err != nil {
		return "", err
	}
	cj, err := cfg.JSON()
	if err != nil {
		return "", fmt.Errorf("run %s: %w", dir, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, RunConfigFile), append(cj, '\n')); err != nil {
		return "", err
	}
	prefix := "/" + ModelScope
	keep := func(v *context.Variable) bool {
		return v.Scope() == prefix || strings.HasPrefix(v.Scope(), prefix+"/")
	}
	return train.SaveCheckpoint(ctx, filepath.Join(dir, RunCheckpointsDir), m, keep)
}
