package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/testutil"
)

// runTokenize runs `qatclip tokenize args...` and returns its output lines
// decoded, or the error.
func runTokenize(t *testing.T, args ...string) ([]tokenizeRecord, error) {
	t.Helper()
	var out bytes.Buffer
	if err := execCmd(t, newTokenizeCmd, &out, &out, args...); err != nil {
		return nil, err
	}
	var recs []tokenizeRecord
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r tokenizeRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// TestTokenizeCmdGolden runs the command on every shared golden case.
func TestTokenizeCmdGolden(t *testing.T) {
	vocab := testutil.SharedPath(t, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
	raw, err := os.ReadFile(testutil.SharedPath(t, "golden", "tokenizer-cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Text      string  `json:"text"`
			BPE       []int   `json:"bpe"`
			InputIDs  []int32 `json:"input_ids"`
			Truncated bool    `json:"truncated"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	args := []string{"--vocab", vocab, "--truncate", "--"}
	for _, c := range g.Cases {
		args = append(args, c.Text)
	}
	recs, err := runTokenize(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(g.Cases) {
		t.Fatalf("%d output lines, want %d", len(recs), len(g.Cases))
	}
	for i, c := range g.Cases {
		r := recs[i]
		if r.Text != c.Text || !slices.Equal(r.BPE, c.BPE) || !slices.Equal(r.InputIDs, c.InputIDs) {
			t.Errorf("case %d %q: got %+v", i, c.Text, r)
		}
	}
}

// TestTokenizeCmd checks the flags on the repository's own fixture vocabulary.
func TestTokenizeCmd(t *testing.T) {
	vocab := filepath.Join(testutil.RepoRoot(t), "data", "tokenizer", "testdata", "fixture_merges.txt.gz")
	tok, err := tokenizer.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	sot, eot := int32(tok.StartID()), int32(tok.EndID())
	long := strings.Repeat("photo ", 20)
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, recs []tokenizeRecord)
		wantErr string
	}{
		{
			name: "defaults",
			args: []string{"--vocab", vocab, "a photo", "the dog"},
			check: func(t *testing.T, recs []tokenizeRecord) {
				if len(recs) != 2 {
					t.Fatalf("%d records, want 2", len(recs))
				}
				for _, r := range recs {
					ids := r.InputIDs
					n := len(r.BPE)
					if len(ids) != 77 || ids[0] != sot || ids[n+1] != eot || ids[76] != 0 {
						t.Errorf("%q: input_ids %v", r.Text, ids)
					}
					if !slices.Equal(toInt(ids[1:n+1]), r.BPE) {
						t.Errorf("%q: input_ids %v do not hold bpe %v", r.Text, ids, r.BPE)
					}
				}
			},
		},
		{
			name: "eot padding and context length",
			args: []string{"--vocab", vocab, "--pad", "eot", "--context-length", "16", "a photo"},
			check: func(t *testing.T, recs []tokenizeRecord) {
				ids := recs[0].InputIDs
				if len(ids) != 16 || ids[15] != eot || ids[len(recs[0].BPE)+2] != eot {
					t.Errorf("input_ids %v", ids)
				}
			},
		},
		{
			name: "truncate",
			args: []string{"--vocab", vocab, "--context-length", "8", "--truncate", long},
			check: func(t *testing.T, recs []tokenizeRecord) {
				ids := recs[0].InputIDs
				if len(ids) != 8 || ids[0] != sot || ids[7] != eot || len(recs[0].BPE) != 20 {
					t.Errorf("input_ids %v, %d bpe ids", ids, len(recs[0].BPE))
				}
			},
		},
		{name: "too long", args: []string{"--vocab", vocab, "--context-length", "8", long}, wantErr: `"photo photo`},
		{name: "missing vocab", args: []string{"--vocab", "/nonexistent/bpe.txt.gz", "x"}, wantErr: "/nonexistent/bpe.txt.gz"},
		{name: "bad pad", args: []string{"--vocab", vocab, "--pad", "one", "x"}, wantErr: `"one"`},
		{name: "bad context", args: []string{"--vocab", vocab, "--context-length", "1", "x"}, wantErr: "--context-length 1"},
		{name: "no texts", args: []string{"--vocab", vocab}, wantErr: "no texts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := runTokenize(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, recs)
		})
	}
}

// TestTokenizeCmdVocabEnv checks that $QATCLIP_VOCAB is used without --vocab
// and that having neither is a clear error.
func TestTokenizeCmdVocabEnv(t *testing.T) {
	t.Setenv("QATCLIP_VOCAB", filepath.Join(testutil.RepoRoot(t), "data", "tokenizer", "testdata", "hf"))
	if recs, err := runTokenize(t, "a photo"); err != nil || len(recs) != 1 {
		t.Fatalf("with $QATCLIP_VOCAB: %v, %v", recs, err)
	}
	t.Setenv("QATCLIP_VOCAB", "")
	if _, err := runTokenize(t, "a photo"); err == nil || !strings.Contains(err.Error(), "--vocab") {
		t.Fatalf("without a vocabulary: error %v, want one naming --vocab", err)
	}
}

func toInt(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
