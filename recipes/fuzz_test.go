package recipes

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to Parse. It must never panic (nor hang);
// an error must be one line starting with the file name; a recipe it
// accepts must marshal to YAML that parses back to the same recipe.
func FuzzParse(f *testing.F) {
	for _, name := range Shipped() {
		_, data, err := Open(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"",
		"null",
		"name: x\nmodel: {source: m}\n",
		"train: {epochs: 1.5}",
		"train:\n  epochs: 2\n  epochs: 3\n",
		"quantization: {targets: [\"re:(\"]}",
		"eval: {logit_scale: model, ood: [{name: a, path: p}, {name: a, path: q}]}",
		"smoothquant: null",
		"smoothquant: {alpha: 2}",
		"a: &x {b: *x}",
		"- just\n- a list\n",
		"train: {checkpoint: {best: {metric: \"acc1 - 0.5*ts_ece\"}}}",
		// Billion laughs: nested aliases that expand exponentially.
		"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ntrain: {freeze: *h}\n",
	} {
		f.Add(s)
	}
	const name = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data string) {
		r, err := Parse(name, []byte(data))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, name) || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line naming %s: %q", name, msg)
			}
			return
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted recipe: %v", err)
		}
		r2, err := Parse(name, out)
		if err != nil {
			t.Fatalf("Parse of the marshalled recipe: %v\n%s", err, out)
		}
		out2, err := r2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("marshal/parse round trip changed the recipe:\n%s\n---\n%s", out, out2)
		}
	})
}
