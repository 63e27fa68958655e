package tokenizer

import (
	"reflect"
	"testing"
)

func TestLearnMerges(t *testing.T) {
	texts := []string{
		"a red circle on a striped background",
		"a blue square on a plain background",
		"a red square on a striped background",
		"A BLUE circle on a dotted background!",
	}
	merges := LearnMerges(texts, 1000)
	if len(merges) == 0 || len(merges) >= 1000 {
		t.Fatalf("learned %d merges, want some and fewer than the limit (the corpus runs out of pairs)", len(merges))
	}
	if again := LearnMerges(texts, 1000); !reflect.DeepEqual(again, merges) {
		t.Fatal("LearnMerges is not deterministic")
	}
	tok, err := FromMerges("learned", merges)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.VocabSize(), 512+len(merges)+2; got != want {
		t.Errorf("vocab size %d, want %d", got, want)
	}
	// Every corpus word is one symbol once all merges are learned.
	for _, w := range []string{"background", "red", "circle", "!"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("%q encodes to %d ids, want 1", w, len(ids))
		}
	}
	// Unseen words still encode (byte fallback) and decode back.
	ids := tok.Encode("a green hexagon")
	if dec, err := tok.Decode(ids); err != nil || dec != "a green hexagon " {
		t.Errorf("decode = %q, %v", dec, err)
	}
	// Round trip through an HF tokenizer folder.
	dir := t.TempDir()
	if err := WriteHF(dir, merges); err != nil {
		t.Fatal(err)
	}
	back, err := LoadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range append(texts, "a green hexagon") {
		if a, b := tok.Encode(text), back.Encode(text); !reflect.DeepEqual(a, b) {
			t.Errorf("%q: %v after reload, want %v", text, b, a)
		}
	}
	// A limit stops learning early.
	if few := LearnMerges(texts, 5); len(few) != 5 || !reflect.DeepEqual(few, merges[:5]) {
		t.Errorf("LearnMerges(…, 5) = %v, want the first 5 of the full run", few)
	}
}
