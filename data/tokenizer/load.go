package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MaxOpenAIMerges is the number of merges CLIP reads from its merges file
// (49152 - 256 - 2); later lines are ignored, as in the reference.
const MaxOpenAIMerges = 49152 - 256 - 2

// VocabEnv names the environment variable FindVocab falls back to.
const VocabEnv = "QATCLIP_VOCAB"

// FindVocab returns the vocabulary path to load: flag when it is set, else
// $QATCLIP_VOCAB. Nothing is downloaded; with neither set it returns an
// error saying how to provide one.
func FindVocab(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv(VocabEnv); env != "" {
		return env, nil
	}
	return "", fmt.Errorf("no tokenizer vocabulary: pass --vocab PATH or set %s (CLIP's bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json and merges.txt or tokenizer.json)", VocabEnv)
}

// Load loads a tokenizer from path: a folder (see LoadHF), a tokenizer.json
// file, or CLIP's merges file (gzipped or not; see LoadOpenAI).
func Load(path string) (*Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if info.IsDir() {
		return LoadHF(path)
	}
	switch strings.ToLower(filepath.Base(path)) {
	case "tokenizer.json":
		return loadTokenizerJSON(path)
	case "vocab.json", "merges.txt":
		return LoadHF(filepath.Dir(path))
	}
	return LoadOpenAI(path)
}

// LoadOpenAI loads CLIP's merges file (bpe_simple_vocab_16e6.txt.gz, or the
// same text uncompressed): a header line, then one merge ("left right") per
// line, of which the first MaxOpenAIMerges are used. The vocabulary is
// the 256 byte symbols, the same with "</w>", one symbol per merge, then
// <|startoftext|> and <|endoftext|>.
func LoadOpenAI(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
		}
		data, err = io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer %s: gunzip: %w", path, err)
		}
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("load tokenizer %s: no merges after the header line", path)
	}
	lines = lines[1:]
	if len(lines) > MaxOpenAIMerges {
		lines = lines[:MaxOpenAIMerges]
	} else if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the file's final newline
	}
	merges := make([][2]string, len(lines))
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("load tokenizer %s: line %d: want two symbols, got %q", path, i+2, line)
		}
		merges[i] = [2]string{f[0], f[1]}
	}
	return FromMerges(path, merges)
}

// LoadHF loads a Hugging Face CLIP tokenizer folder: vocab.json and
// merges.txt, or else tokenizer.json.
func LoadHF(dir string) (*Tokenizer, error) {
	vocabPath := filepath.Join(dir, "vocab.json")
	mergesPath := filepath.Join(dir, "merges.txt")
	_, errV := os.Stat(vocabPath)
	_, errM := os.Stat(mergesPath)
	if errV == nil && errM == nil {
		return loadVocabMerges(dir, vocabPath, mergesPath)
	}
	tj := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(tj); err == nil {
		return loadTokenizerJSON(tj)
	}
	return nil, fmt.Errorf("load tokenizer %s: need vocab.json and merges.txt, or tokenizer.json, in the folder", dir)
}

func loadVocabMerges(dir, vocabPath, mergesPath string) (*Tokenizer, error) {
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var vocab map[string]int32
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", vocabPath, err)
	}
	data, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var merges [][2]string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || i == 0 && strings.HasPrefix(line, "#version") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("load tokenizer %s: line %d: want two symbols, got %q", mergesPath, i+1, line)
		}
		merges = append(merges, [2]string{f[0], f[1]})
	}
	return build(dir, vocab, merges)
}

// tokenizerJSON is the part of a Hugging Face tokenizer.json that a CLIP
// tokenizer needs.
type tokenizerJSON struct {
	Model struct {
		Type            string            `json:"type"`
		Vocab           map[string]int32  `json:"vocab"`
		Merges          []json.RawMessage `json:"merges"`
		EndOfWordSuffix *string           `json:"end_of_word_suffix"`
	} `json:"model"`
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
}

func loadTokenizerJSON(path string) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("load tokenizer %s: model.type is %q, want BPE", path, tj.Model.Type)
	}
	if s := tj.Model.EndOfWordSuffix; s != nil && *s != endOfWord {
		return nil, fmt.Errorf("load tokenizer %s: model.end_of_word_suffix is %q, want %q (CLIP's byte-level BPE)", path, *s, endOfWord)
	}
	vocab := tj.Model.Vocab
	if vocab == nil {
		vocab = map[string]int32{}
	}
	for _, at := range tj.AddedTokens {
		if _, ok := vocab[at.Content]; !ok {
			vocab[at.Content] = at.ID
		}
	}
	merges := make([][2]string, len(tj.Model.Merges))
	for i, m := range tj.Model.Merges {
		var pair []string
		var joined string
		switch {
		case json.Unmarshal(m, &joined) == nil:
			pair = strings.Split(joined, " ")
		case json.Unmarshal(m, &pair) == nil:
		default:
			return nil, fmt.Errorf("load tokenizer %s: model.merges[%d]: want \"left right\" or [left, right], got %s", path, i, m)
		}
		if len(pair) != 2 {
			return nil, fmt.Errorf("load tokenizer %s: model.merges[%d]: want two symbols, got %s", path, i, m)
		}
		merges[i] = [2]string{pair[0], pair[1]}
	}
	return build(path, vocab, merges)
}

// byteAlphabet returns the characters that stand for bytes in symbols.
// Printable Latin-1 bytes stand for themselves; the other bytes, in order,
// stand for U+0100, U+0101, …. order lists the bytes in vocabulary order
// (the printable ones first), char[b] is the character of byte b and
// inverse maps a character below U+0144 back to its byte (or -1).
func byteAlphabet() (order [256]byte, char [256]rune, inverse [256 + 68]int16) {
	printable := func(b int) bool {
		return '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF
	}
	for i := range inverse {
		inverse[i] = -1
	}
	n, extra := 0, rune(256)
	for pass := 0; pass < 2; pass++ {
		for b := 0; b < 256; b++ {
			if printable(b) != (pass == 0) {
				continue
			}
			order[n] = byte(b)
			n++
			if pass == 0 {
				char[b] = rune(b)
			} else {
				char[b] = extra
				extra++
			}
			inverse[char[b]] = int16(b)
		}
	}
	return order, char, inverse
}

// build makes a Tokenizer from a vocabulary (symbol → id) and ordered merges.
func build(source string, vocab map[string]int32, merges [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{source: source}
	fail := func(format string, args ...any) (*Tokenizer, error) {
		return nil, fmt.Errorf("load tokenizer %s: %s", source, fmt.Sprintf(format, args...))
	}
	// The byte symbols.
	_, char, inverse := byteAlphabet()
	for b, r := range char {
		id, ok := vocab[string(r)]
		if !ok {
			return fail("byte symbol %q (byte 0x%02x) is not in the vocabulary", string(r), b)
		}
		end, ok := vocab[string(r)+endOfWord]
		if !ok {
			return fail("byte symbol %q (byte 0x%02x) is not in the vocabulary", string(r)+endOfWord, b)
		}
		t.byteID[b], t.byteEndID[b] = id, end
	}
	// The merge rules, keyed by the ids of the two symbols.
	t.merges = make(map[uint64]merge, len(merges))
	for i, m := range merges {
		left, okL := vocab[m[0]]
		right, okR := vocab[m[1]]
		joined, okJ := vocab[m[0]+m[1]]
		if !okL || !okR || !okJ {
			return fail("merge %d (%q %q): a symbol is not in the vocabulary", i+1, m[0], m[1])
		}
		t.merges[mergeKey(left, right)] = merge{rank: int32(i), id: joined} // a repeated pair keeps its last rank
	}
	var ok bool
	if t.sot, ok = vocab[StartOfText]; !ok {
		return fail("%s is not in the vocabulary", StartOfText)
	}
	if t.eot, ok = vocab[EndOfText]; !ok {
		return fail("%s is not in the vocabulary", EndOfText)
	}
	// The decoding table.
	size := int32(0)
	for s, id := range vocab {
		if id < 0 {
			return fail("symbol %q has negative id %d", s, id)
		}
		size = max(size, id+1)
	}
	strs := make([]string, size)
	t.known = make([]bool, size)
	for s, id := range vocab {
		if t.known[id] && strs[id] != s {
			// Two symbols with one id (only possible in a JSON vocabulary):
			// decode as the lexically first for determinism.
			if s > strs[id] {
				continue
			}
		}
		strs[id] = s
		t.known[id] = true
	}
	t.decodedAt = make([]int32, size+1)
	for id, s := range strs {
		for _, r := range s {
			if 0 <= r && int(r) < len(inverse) && inverse[r] >= 0 {
				t.decoded = append(t.decoded, byte(inverse[r]))
			} else {
				t.decoded = append(t.decoded, string(r)...)
			}
		}
		t.decodedAt[id+1] = int32(len(t.decoded))
	}
	t.cache.init()
	return t, nil
}
