package tokenizer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

// goldenCases is the layout of shared/golden/tokenizer-cases.json and of
// this package's testdata/expected.json.
type goldenCases struct {
	SOT           int `json:"sot"`
	EOT           int `json:"eot"`
	ContextLength int `json:"context_length"`
	PadID         int `json:"pad_id"`
	Cases         []struct {
		Text      string  `json:"text"`
		BPE       []int   `json:"bpe"`
		InputIDs  []int32 `json:"input_ids"`
		Truncated bool    `json:"truncated"`
		Decoded   string  `json:"decoded"`
		// Only in testdata/expected.json: the ids padded with EOT, and
		// whether the text is too long without truncation.
		InputIDsEOT []int32  `json:"input_ids_eot"`
		TooLong     bool     `json:"too_long"`
		Clean       *string  `json:"clean"`
		Pieces      []string `json:"pieces"`
	} `json:"cases"`
	// Only in testdata/expected.json: id sequences and their decodings.
	Decode []struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	} `json:"decode"`
}

func readCases(t testing.TB, path string) goldenCases {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenCases
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(g.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return g
}

// checkCases runs every case through tok and compares all fields.
func checkCases(t *testing.T, tok *Tokenizer, g goldenCases) {
	t.Helper()
	if tok.StartID() != g.SOT || tok.EndID() != g.EOT {
		t.Fatalf("special ids = %d, %d; want %d, %d", tok.StartID(), tok.EndID(), g.SOT, g.EOT)
	}
	if g.PadID != 0 {
		t.Fatalf("pad_id %d: only zero padding is described", g.PadID)
	}
	opts := Options{ContextLength: g.ContextLength, Truncate: true}
	for i, c := range g.Cases {
		name := c.Text
		if len(name) > 40 {
			name = name[:40]
		}
		if got := tok.Encode(c.Text); !slices.Equal(got, c.BPE) {
			t.Errorf("case %d %q: bpe\n got %v\nwant %v", i, name, got, c.BPE)
		}
		row := make([]int32, g.ContextLength)
		truncated, err := tok.TokenizeTo(row, c.Text, opts)
		if err != nil {
			t.Errorf("case %d %q: %v", i, name, err)
			continue
		}
		if !slices.Equal(row, c.InputIDs) {
			t.Errorf("case %d %q: input_ids\n got %v\nwant %v", i, name, row, c.InputIDs)
		}
		if truncated != c.Truncated {
			t.Errorf("case %d %q: truncated = %v, want %v", i, name, truncated, c.Truncated)
		}
		rows, err := tok.Tokenize([]string{c.Text}, Options{ContextLength: g.ContextLength})
		if c.Truncated || c.TooLong {
			if err == nil || !strings.Contains(err.Error(), "more than the context length") {
				t.Errorf("case %d %q: without truncation got error %v, want too long", i, name, err)
			}
		} else if err != nil || !slices.Equal(rows[0], c.InputIDs) {
			t.Errorf("case %d %q: Tokenize without truncation = %v, %v", i, name, rows, err)
		}
		if c.InputIDsEOT != nil {
			rowEOT := make([]int32, g.ContextLength)
			if _, err := tok.TokenizeTo(rowEOT, c.Text, Options{Truncate: true, Pad: PadEOT}); err != nil || !slices.Equal(rowEOT, c.InputIDsEOT) {
				t.Errorf("case %d %q: EOT-padded\n got %v (%v)\nwant %v", i, name, rowEOT, err, c.InputIDsEOT)
			}
		}
		decoded, err := tok.Decode(c.BPE)
		if err != nil || decoded != c.Decoded {
			t.Errorf("case %d %q: decoded %q (%v), want %q", i, name, decoded, err, c.Decoded)
		}
	}
	for i, d := range g.Decode {
		got, err := tok.Decode(d.IDs)
		if err != nil || got != d.Text {
			t.Errorf("decode %d %v: got %q (%v), want %q", i, d.IDs, got, err, d.Text)
		}
	}
}

// TestGoldenTokenizer reproduces every case of the shared golden file with
// CLIP's own vocabulary.
func TestGoldenTokenizer(t *testing.T) {
	vocab := testutil.SharedPath(t, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
	golden := testutil.SharedPath(t, "golden", "tokenizer-cases.json")
	tok, err := Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 49408 || tok.StartID() != 49406 || tok.EndID() != 49407 {
		t.Fatalf("vocab size %d, sot %d, eot %d; want 49408, 49406, 49407", tok.VocabSize(), tok.StartID(), tok.EndID())
	}
	checkCases(t, tok, readCases(t, golden))
}

// TestFixtureTokenizer checks parity with the Python reference on this
// package's own small vocabulary, loaded from each supported format.
func TestFixtureTokenizer(t *testing.T) {
	g := readCases(t, filepath.Join("testdata", "expected.json"))
	for _, path := range []string{
		filepath.Join("testdata", "fixture_merges.txt.gz"),
		filepath.Join("testdata", "fixture_merges.txt"),
		filepath.Join("testdata", "hf"),
		filepath.Join("testdata", "hf", "tokenizer.json"),
		filepath.Join("testdata", "hf_json_only"),
	} {
		t.Run(path, func(t *testing.T) {
			tok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			checkCases(t, tok, g)
		})
	}
}

// TestFixtureCleanAndPieces checks the cleaning and the pre-tokenizer on
// their own against the reference's clean() and regex findall.
func TestFixtureCleanAndPieces(t *testing.T) {
	g := readCases(t, filepath.Join("testdata", "expected.json"))
	for i, c := range g.Cases {
		if c.Clean == nil {
			t.Fatalf("case %d: no clean field", i)
		}
		cleaned := string(appendClean(nil, c.Text))
		if cleaned != *c.Clean {
			t.Errorf("case %d %q: clean\n got %q\nwant %q", i, c.Text, cleaned, *c.Clean)
			continue
		}
		pieces := []string{}
		for at := 0; ; {
			start, end := nextPiece([]byte(cleaned), at)
			if end < 0 {
				break
			}
			pieces = append(pieces, cleaned[start:end])
			at = end
		}
		if c.Pieces == nil {
			c.Pieces = []string{}
		}
		if !slices.Equal(pieces, c.Pieces) {
			t.Errorf("case %d %q: pieces\n got %q\nwant %q", i, cleaned, pieces, c.Pieces)
		}
	}
}

// hashRows returns the SHA-256 of the rows' ids as little-endian int32.
func hashRows(rows [][]int32) string {
	h := sha256.New()
	buf := make([]byte, 4)
	for _, row := range rows {
		for _, id := range row {
			binary.LittleEndian.PutUint32(buf, uint32(id))
			h.Write(buf)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// imageNetPrompts returns the 80 templates filled with the 1000 class names.
func imageNetPrompts(t testing.TB) []string {
	t.Helper()
	raw, err := os.ReadFile(testutil.SharedPath(t, "data", "clip", "imagenet_zeroshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var z struct {
		Classes   []string `json:"classes"`
		Templates []string `json:"templates"`
	}
	if err := json.Unmarshal(raw, &z); err != nil {
		t.Fatal(err)
	}
	texts := make([]string, 0, len(z.Classes)*len(z.Templates))
	for _, tmpl := range z.Templates {
		for _, c := range z.Classes {
			texts = append(texts, strings.ReplaceAll(tmpl, "{}", c))
		}
	}
	return texts
}

// TestImageNetPromptsParity compares the input ids of all 80,000 ImageNet
// prompts with the Python reference's, through a hash the reference
// computed (testdata/imagenet_prompts.sha256, made by gen_fixtures.py).
func TestImageNetPromptsParity(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	texts := imageNetPrompts(t)
	tok, err := Load(testutil.SharedPath(t, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tok.Tokenize(texts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "imagenet_prompts.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hashRows(rows); got != strings.TrimSpace(string(want)) {
		t.Errorf("hash of the 80000 prompts' input ids = %s, want %s", got, want)
	}
}
