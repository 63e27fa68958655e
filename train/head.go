package train

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers/clip"
)

// ZeroShotHead builds the zero-shot classification head of the
// classification loss from the float model ck's text tower: ids holds
// classes*templates token sequences of seqLen tokens, class-major (the
// templates of class 0, then of class 1, ...). Each class embedding is the
// mean of its L2-normalised template embeddings, re-normalised. The result
// is [classes, projection_dim], row-major.
func ZeroShotHead(backend backends.Backend, ck *clip.Checkpoint, ids []int32, classes, templates, seqLen int) ([]float32, error) {
	m := classes * templates
	switch {
	case classes < 1 || templates < 1 || seqLen < 1:
		return nil, fmt.Errorf("zero-shot head: %d classes, %d templates, %d tokens: each must be at least 1", classes, templates, seqLen)
	case len(ids) != m*seqLen:
		return nil, fmt.Errorf("zero-shot head: %d token ids, want %d classes x %d templates x %d tokens", len(ids), classes, templates, seqLen)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		return nil, fmt.Errorf("zero-shot head: %w", err)
	}
	emb, err := clip.NewEmbedder(backend, ctx, ck.Config, nil)
	if err != nil {
		return nil, fmt.Errorf("zero-shot head: %w", err)
	}
	feats, err := emb.TextFeatures(ids, m, seqLen, 64)
	if err != nil {
		return nil, fmt.Errorf("zero-shot head: %w", err)
	}
	d := ck.Config.ProjectionDim
	head := make([]float32, classes*d)
	for c := range classes {
		acc := make([]float64, d)
		for t := range templates {
			row := feats[(c*templates+t)*d : (c*templates+t+1)*d]
			normalizeInto(acc, row, 1)
		}
		out := head[c*d : (c+1)*d]
		norm := 0.0
		for _, v := range acc {
			norm += v * v
		}
		norm = math.Sqrt(norm)
		for i, v := range acc {
			out[i] = float32(v / norm)
		}
	}
	return head, nil
}

// normalizeInto adds w * row / |row| to acc.
func normalizeInto(acc []float64, row []float32, w float64) {
	norm := 0.0
	for _, v := range row {
		norm += float64(v) * float64(v)
	}
	norm = math.Sqrt(norm)
	for i, v := range row {
		acc[i] += w * float64(v) / norm
	}
}
