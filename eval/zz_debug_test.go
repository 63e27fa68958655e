package eval

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

func TestZZDebug(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "metrics")
	exp := readExpected(t, filepath.Join(dir, "expected.json"))
	id := loadSplit(t, dir, "id", true)
	fit := loadSplit(t, dir, "fit", true)
	ood := loadSplit(t, dir, "ood", false)
	res, _ := Evaluate(Input{ID: id, Fit: &fit, OOD: []OODSet{{Name: "ood", Sims: ood.Sims}}}, DefaultOptions())
	got := flatten(res)
	for k, w := range exp.Expected {
		fmt.Printf("%-12s %.17g %.17g %.3g\n", k, got[k], w, got[k]-w)
	}
	ones := 0
	seen := map[float64]int{}
	for _, c := range res.Classification.Confidence {
		if c == 1 { ones++ }
		seen[c]++
	}
	fmt.Println("conf==1:", ones, "distinct", len(seen), "of", len(res.Classification.Confidence))
	s := map[float64]int{}
	for _, v := range res.IDScores[MCM] { s[v]++ }
	for _, v := range res.OOD[0].Scores[MCM] { s[v]++ }
	fmt.Println("mcm distinct", len(s))
	fmt.Println(id.Sims.f32 != nil, id.Sims.Rows(), id.Sims.Cols(), fit.Sims.Rows(), ood.Sims.Rows())
}
