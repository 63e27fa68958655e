package tokenizer

import (
	"encoding/json"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"path/filepath"
	"sort"
	"strings"
)

// LearnMerges learns up to numMerges byte-level BPE merges from texts, the
// way CLIP's vocabulary was made: texts are cleaned and split into words as
// Encode does, each word starts as its byte symbols with "</w>" on the last
// one, and the most frequent adjacent pair (ties broken by the pair's text,
// so the result is deterministic) is merged until numMerges merges exist or
// every word is a single symbol. The result, passed to FromMerges, gives a
// tokenizer for a small closed-vocabulary corpus such as the synthetic
// shapes captions.
func LearnMerges(texts []string, numMerges int) [][2]string {
	_, char, _ := byteAlphabet()
	counts := map[string]int{}
	var clean []byte
	for _, text := range texts {
		clean = appendClean(clean[:0], text)
		for i := 0; ; {
			start, end := nextPiece(clean, i)
			if end < 0 {
				break
			}
			counts[string(clean[start:end])]++
			i = end
		}
	}
	type word struct {
		syms  []string
		count int
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, 0, len(keys))
	for _, k := range keys {
		syms := make([]string, len(k))
		for i := 0; i < len(k); i++ {
			syms[i] = string(char[k[i]])
		}
		syms[len(syms)-1] += endOfWord
		words = append(words, word{syms, counts[k]})
	}
	var merges [][2]string
	for len(merges) < numMerges {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		if len(pairs) == 0 {
			break
		}
		var best [2]string
		bestCount := -1
		for p, c := range pairs {
			if c > bestCount || c == bestCount && p[0]+" "+p[1] < best[0]+" "+best[1] {
				best, bestCount = p, c
			}
		}
		merges = append(merges, best)
		for wi := range words {
			syms := words[wi].syms
			out := syms[:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
					continue
				}
				out = append(out, syms[i])
			}
			words[wi].syms = out
		}
	}
	return merges
}

// mergesVocab returns CLIP's vocabulary for ordered merges: the 256 byte
// symbols, the same with "</w>", one symbol per merge, then
// <|startoftext|> and <|endoftext|> (a repeated symbol keeps its last id).
func mergesVocab(merges [][2]string) map[string]int32 {
	order, char, _ := byteAlphabet()
	symbols := make([]string, 0, 512+len(merges)+2)
	for _, b := range order {
		symbols = append(symbols, string(char[b]))
	}
	for _, b := range order {
		symbols = append(symbols, string(char[b])+endOfWord)
	}
	for _, m := range merges {
		symbols = append(symbols, m[0]+m[1])
	}
	symbols = append(symbols, StartOfText, EndOfText)
	vocab := make(map[string]int32, len(symbols))
	for i, s := range symbols {
		vocab[s] = int32(i)
	}
	return vocab
}

// FromMerges builds a tokenizer from ordered merges with CLIP's vocabulary
// layout (see LoadOpenAI). source names it in errors.
func FromMerges(source string, merges [][2]string) (*Tokenizer, error) {
	return build(source, mergesVocab(merges), merges)
}

// WriteHF writes the tokenizer of ordered merges (CLIP's vocabulary layout)
// as a Hugging Face CLIP tokenizer folder: vocab.json and merges.txt in dir,
// which LoadHF (and HF's CLIPTokenizer) read back. Each file is written to
// a temporary name and renamed into place.
func WriteHF(dir string, merges [][2]string) error {
	vocab, err := json.Marshal(mergesVocab(merges))
	if err != nil {
		return fmt.Errorf("write tokenizer %s: %w", dir, err)
	}
	var sb strings.Builder
	sb.WriteString("#version: 0.2\n")
	for i, m := range merges {
		if strings.ContainsAny(m[0]+m[1], " \n") {
			return fmt.Errorf("write tokenizer %s: merge %d (%q %q) contains a space", dir, i+1, m[0], m[1])
		}
		sb.WriteString(m[0] + " " + m[1] + "\n")
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "vocab.json"), vocab); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "merges.txt"), []byte(sb.String()))
}
