package eval_test

import (
	"fmt"

	"github.com/qatclip/qatclip/eval"
)

// Evaluate scores precomputed cosine similarities: here 4 images against 3
// classes, and 2 out-of-distribution images.
func ExampleEvaluate() {
	id, _ := eval.NewSims32([]float32{
		0.30, 0.10, 0.20,
		0.10, 0.40, 0.20,
		0.20, 0.10, 0.50,
		0.30, 0.20, 0.10, // labelled 1: a mistake
	}, 4, 3)
	ood, _ := eval.NewSims32([]float32{
		0.20, 0.20, 0.20,
		0.25, 0.20, 0.15,
	}, 2, 3)
	res, err := eval.Evaluate(eval.Input{
		ID:  eval.Split{Sims: id, Labels: []int{0, 1, 2, 1}},
		OOD: []eval.OODSet{{Name: "flat", Sims: ood}},
	}, eval.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	c := res.Classification
	fmt.Printf("acc1 %.2f  nll %.3f  ece %.3f  aurc %.3f\n", c.Acc1, c.NLL, c.ECE, c.AURC)
	d := res.OOD[0].ByScore[eval.MCM.String()]
	fmt.Printf("flat: auroc %.3f  fpr95 %.3f\n", d.AUROC, d.FPR95)
	// Output:
	// acc1 0.75  nll 2.500  ece 0.250  aurc 0.062
	// flat: auroc 1.000  fpr95 0.000
}

// EffectiveRank is exp of the entropy of the normalised singular values.
func ExampleEffectiveRank() {
	fmt.Printf("%.3f\n", eval.EffectiveRank([]float64{1, 1, 1, 1}))
	fmt.Printf("%.3f\n", eval.EffectiveRank([]float64{10, 1, 0.1}))
	// Output:
	// 4.000
	// 1.424
}
