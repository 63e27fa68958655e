package clip

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/data/tokenizer"
)

// LoadTokenizer loads the tokenizer for a model: vocab when given (a CLIP
// bpe_simple_vocab_16e6.txt.gz, a tokenizer.json or an HF tokenizer
// folder), else $QATCLIP_VOCAB, else the tokenizer files (tokenizer.json,
// or vocab.json + merges.txt) in the folder of model (a model folder, a
// weights file in it, or a hub id in the local HF cache). The error says
// where it looked.
func LoadTokenizer(vocab, model string) (*tokenizer.Tokenizer, error) {
	path, err := tokenizer.FindVocab(vocab)
	if err != nil {
		dir, rerr := ResolveSource(model)
		if rerr != nil {
			return nil, err
		}
		if st, serr := os.Stat(dir); serr == nil && !st.IsDir() {
			dir = filepath.Dir(dir)
		}
		if !HasTokenizerFiles(dir) {
			return nil, fmt.Errorf("%w; the model folder %s has no tokenizer.json or vocab.json either", err, dir)
		}
		path = dir
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// HasTokenizerFiles reports whether dir holds HF tokenizer files
// (tokenizer.json, or vocab.json with merges.txt).
func HasTokenizerFiles(dir string) bool {
	for _, name := range []string{"tokenizer.json", "vocab.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}
