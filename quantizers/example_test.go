package quantizers_test

import (
	"fmt"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/qatclip/qatclip/quantizers"
)

// A 4-bit symmetric LSQ quantizer: the first training (or calibration)
// graph initialises its scale from the data, 2*mean|x|/sqrt(7) = 0.5821;
// its state lives under the quantizer's scope ("/fc1/weight_quant").
func ExampleNew() {
	cfg := quantizers.DefaultConfig()
	cfg.Method, cfg.Bits = quantizers.MethodLSQ, 4
	q, err := quantizers.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	backend, err := simplego.New("")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.New()
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
		ctx.SetTraining(x.Graph(), true)
		return q.Quantize(ctx.In("fc1").In(quantizers.ScopeName("weight")), x)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := exec.Exec([]float32{-1, -0.25, 0.1, 0.5, 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("y = %.4f\n", out[0].Value())
	for _, v := range quantizers.Variables(ctx) {
		fmt.Printf("%s/%s trainable=%v value=%.4f\n", v.Scope(), v.Name(), v.Trainable, v.MustValue().Value())
	}
	// Output:
	// y = [-1.1641 0.0000 0.0000 0.5821 1.7462]
	// /fc1/weight_quant/enabled trainable=false value=1.0000
	// /fc1/weight_quant/frozen trainable=false value=0.0000
	// /fc1/weight_quant/initialized trainable=false value=1.0000
	// /fc1/weight_quant/scale trainable=true value=[0.5821]
	// /fc1/weight_quant/zero_point trainable=false value=[0.0000]
}
