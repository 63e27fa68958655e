package tokenizer

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

// benchTokenize tokenizes texts b.N times over in one goroutine, the cache
// warmed first, and reports texts/s.
func benchTokenize(b *testing.B, tok *Tokenizer, texts []string) {
	b.Helper()
	row := make([]int32, DefaultContextLength)
	opts := Options{Truncate: true}
	for _, text := range texts {
		if _, err := tok.TokenizeTo(row, text, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, text := range texts {
			if _, err := tok.TokenizeTo(row, text, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "texts/s")
}

// BenchmarkTokenizeImageNetPrompts tokenizes the 80 templates x 1000 class
// names of CLIP's ImageNet zero-shot head (80,000 texts per iteration) in
// one goroutine with CLIP's vocabulary, the BPE cache warm.
func BenchmarkTokenizeImageNetPrompts(b *testing.B) {
	texts := imageNetPrompts(b)
	tok, err := Load(testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		b.Fatal(err)
	}
	benchTokenize(b, tok, texts)
}

// BenchmarkTokenizeImageNetPromptsBatch is the same through Tokenize, which
// allocates the output rows.
func BenchmarkTokenizeImageNetPromptsBatch(b *testing.B) {
	texts := imageNetPrompts(b)
	tok, err := Load(testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tok.Tokenize(texts, Options{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tok.Tokenize(texts, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "texts/s")
}

// BenchmarkTokenizeImageNetPromptsParallel tokenizes the prompts from
// GOMAXPROCS goroutines sharing one Tokenizer, as a data loader does.
func BenchmarkTokenizeImageNetPromptsParallel(b *testing.B) {
	texts := imageNetPrompts(b)
	tok, err := Load(testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tok.Tokenize(texts, Options{}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		row := make([]int32, DefaultContextLength)
		for pb.Next() {
			i := next.Add(1)
			if _, err := tok.TokenizeTo(row, texts[i%int64(len(texts))], Options{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "texts/s")
}

// BenchmarkTokenizeColdCache measures the first pass over the ImageNet
// prompts with an empty BPE cache (a new Tokenizer per iteration; loading
// is not timed).
func BenchmarkTokenizeColdCache(b *testing.B) {
	texts := imageNetPrompts(b)
	path := testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
	row := make([]int32, DefaultContextLength)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tok, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, text := range texts {
			if _, err := tok.TokenizeTo(row, text, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "texts/s")
}

// BenchmarkTokenizeFixture runs on the repository's own vocabulary and
// texts (mixed scripts, entities, long texts), so it needs no shared data.
func BenchmarkTokenizeFixture(b *testing.B) {
	g := readCases(b, filepath.Join("testdata", "expected.json"))
	texts := make([]string, len(g.Cases))
	for i, c := range g.Cases {
		texts[i] = c.Text
	}
	benchTokenize(b, fixture(b), texts)
}

// BenchmarkLoadCLIPVocab measures loading CLIP's gzipped merges file.
func BenchmarkLoadCLIPVocab(b *testing.B) {
	path := testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
	for i := 0; i < b.N; i++ {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
