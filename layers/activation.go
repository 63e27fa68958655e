package layers

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/graph"
)

// Activation names a hidden-layer activation as HF configs spell it
// (the "hidden_act" field).
type Activation string

// Activations supported by [Activate].
const (
	// QuickGELU is x * sigmoid(1.702 x), used by OpenAI's CLIP.
	QuickGELU Activation = "quick_gelu"
	// GELU is the exact x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
	GELU Activation = "gelu"
	// GELUTanh is the tanh approximation of GELU (HF "gelu_new" and
	// "gelu_pytorch_tanh").
	GELUTanh Activation = "gelu_pytorch_tanh"
	// ReLU is max(x, 0).
	ReLU Activation = "relu"
)

// ParseActivation maps an HF "hidden_act" value to an [Activation].
func ParseActivation(name string) (Activation, error) {
	switch name {
	case "quick_gelu":
		return QuickGELU, nil
	case "gelu":
		return GELU, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return GELUTanh, nil
	case "relu":
		return ReLU, nil
	}
	return "", fmt.Errorf("unsupported hidden_act %q (want quick_gelu, gelu, gelu_new, gelu_pytorch_tanh or relu)", name)
}

// Activate applies the activation act to x. An unknown act panics; parse
// user input with [ParseActivation] first.
func Activate(act Activation, x *graph.Node) *graph.Node {
	switch act {
	case QuickGELU:
		return graph.Mul(x, graph.Sigmoid(graph.MulScalar(x, 1.702)))
	case GELU:
		return graph.Mul(graph.MulScalar(x, 0.5), graph.OnePlus(graph.Erf(graph.MulScalar(x, 1/math.Sqrt2))))
	case GELUTanh:
		// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
		inner := graph.MulScalar(graph.Add(x, graph.MulScalar(graph.Mul(graph.Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
		return graph.Mul(graph.MulScalar(x, 0.5), graph.OnePlus(graph.Tanh(inner)))
	case ReLU:
		return graph.Max(x, graph.ZerosLike(x))
	}
	panic(fmt.Sprintf("layers.Activate: unknown activation %q", act))
}
