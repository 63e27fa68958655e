// Package tokenizer implements CLIP's byte-level BPE tokenizer.
//
// It reproduces openai/CLIP's simple_tokenizer: text is cleaned (Unicode NFC,
// HTML entities unescaped twice, whitespace runs collapsed to one space,
// stripped, lowercased), split into words by CLIP's pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (matched case-insensitively), and each word's UTF-8 bytes are merged by
// byte-pair encoding with a "</w>" end-of-word marker. ftfy's text repairs,
// which the reference applies before NFC, are not reproduced.
//
// A Tokenizer is loaded from CLIP's gzipped merges file
// (bpe_simple_vocab_16e6.txt.gz), from a Hugging Face folder (vocab.json and
// merges.txt, or tokenizer.json) or from a tokenizer.json file. It is safe
// for concurrent use: the only shared mutable state is a sharded cache of
// words already split, guarded by locks.
package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultContextLength is the number of ids per text of CLIP's text encoder.
const DefaultContextLength = 77

// The special tokens CLIP wraps every text in.
const (
	// StartOfText is the text of the start token (id 49406 in CLIP's vocabulary).
	StartOfText = "<|startoftext|>"
	// EndOfText is the text of the end token (id 49407 in CLIP's vocabulary).
	EndOfText = "<|endoftext|>"
)

// endOfWord marks a symbol that ends a word.
const endOfWord = "</w>"

// PadMode selects the id written after the end token up to the context length.
type PadMode int

const (
	// PadZero pads with id 0, as openai/CLIP's clip.tokenize does.
	PadZero PadMode = iota
	// PadEOT pads with the end-of-text id, as Hugging Face's CLIPTokenizer
	// does with padding="max_length".
	PadEOT
)

// String returns "zero" or "eot".
func (p PadMode) String() string {
	switch p {
	case PadZero:
		return "zero"
	case PadEOT:
		return "eot"
	}
	return fmt.Sprintf("PadMode(%d)", int(p))
}

// ParsePadMode parses "zero" or "eot".
func ParsePadMode(s string) (PadMode, error) {
	switch strings.ToLower(s) {
	case "zero", "0":
		return PadZero, nil
	case "eot", "endoftext":
		return PadEOT, nil
	}
	return 0, fmt.Errorf("pad mode %q: want zero or eot", s)
}

// Options say how Tokenize lays texts out as fixed-length input ids.
type Options struct {
	// ContextLength is the number of ids per text, start and end tokens
	// included; 0 means DefaultContextLength. It must be at least 2.
	ContextLength int
	// Truncate cuts a text longer than ContextLength to ContextLength ids,
	// the last one being the end token. Without it such a text is an error.
	Truncate bool
	// Pad selects the padding id.
	Pad PadMode
}

// contextLength returns the effective context length, or an error for a
// value that cannot hold the start and end tokens.
func (o Options) contextLength() (int, error) {
	n := o.ContextLength
	if n == 0 {
		n = DefaultContextLength
	}
	if n < 2 {
		return 0, fmt.Errorf("context length %d: must be at least 2 (start and end tokens)", o.ContextLength)
	}
	if o.Pad != PadZero && o.Pad != PadEOT {
		return 0, fmt.Errorf("unknown pad mode %d", int(o.Pad))
	}
	return n, nil
}

// mergeKey packs a pair of symbol ids into a map key.
func mergeKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// merge is one BPE rule: the rank (lower merges first) and the merged symbol.
type merge struct {
	rank int32
	id   int32
}

// Tokenizer is a CLIP byte-level BPE tokenizer. Create it with Load, LoadHF
// or LoadOpenAI; the zero value is not usable.
type Tokenizer struct {
	source string // where it was loaded from, for messages

	byteID    [256]int32 // symbol of byte b inside a word
	byteEndID [256]int32 // symbol of byte b ending a word ("…</w>")
	merges    map[uint64]merge

	// decoded holds every id's bytes (a symbol's characters mapped back to
	// bytes, "</w>" kept literally), concatenated; id i spans
	// decoded[decodedAt[i]:decodedAt[i+1]]. known[i] is false for ids the
	// vocabulary skips.
	decoded   []byte
	decodedAt []int32
	known     []bool

	sot, eot int32

	cache   bpeCache
	scratch sync.Pool // *scratch
}

// scratch holds buffers reused across calls, and a small word cache that
// only its current user touches.
type scratch struct {
	clean []byte
	ids   []int32
	word  []int32
	local map[string][]int32
}

// Source returns the file or folder the tokenizer was loaded from.
func (t *Tokenizer) Source() string { return t.source }

// VocabSize returns the number of ids (one more than the largest id).
func (t *Tokenizer) VocabSize() int { return len(t.known) }

// StartID returns the id of the start-of-text token.
func (t *Tokenizer) StartID() int { return int(t.sot) }

// EndID returns the id of the end-of-text token.
func (t *Tokenizer) EndID() int { return int(t.eot) }

func (t *Tokenizer) getScratch() *scratch {
	if s, ok := t.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

func (t *Tokenizer) putScratch(s *scratch) {
	if cap(s.clean) > 1<<16 || cap(s.ids) > 1<<14 {
		return // let unusually large buffers go
	}
	t.scratch.Put(s)
}

// Encode returns the BPE ids of text, without start and end tokens.
func (t *Tokenizer) Encode(text string) []int {
	s := t.getScratch()
	s.ids = t.appendIDs(s.ids[:0], text, s)
	out := make([]int, len(s.ids))
	for i, id := range s.ids {
		out[i] = int(id)
	}
	t.putScratch(s)
	return out
}

// appendIDs appends the BPE ids of text to dst.
func (t *Tokenizer) appendIDs(dst []int32, text string, s *scratch) []int32 {
	s.clean = appendClean(s.clean[:0], text)
	b := s.clean
	for i := 0; ; {
		start, end := nextPiece(b, i)
		if end < 0 {
			return dst
		}
		dst = t.appendPiece(dst, b[start:end], s)
		i = end
	}
}

// Tokenize turns each text into ContextLength input ids: the start token,
// the BPE ids, the end token, then padding. A text with more ids is cut
// (Options.Truncate) or reported as an error naming it. The rows share one
// backing array.
func (t *Tokenizer) Tokenize(texts []string, opts Options) ([][]int32, error) {
	n, err := opts.contextLength()
	if err != nil {
		return nil, err
	}
	flat := make([]int32, len(texts)*n)
	rows := make([][]int32, len(texts))
	s := t.getScratch()
	defer t.putScratch(s)
	for i, text := range texts {
		row := flat[i*n : (i+1)*n : (i+1)*n]
		if _, err := t.tokenizeTo(row, text, opts, s); err != nil {
			if len(texts) > 1 {
				return nil, fmt.Errorf("text %d: %w", i, err)
			}
			return nil, err
		}
		rows[i] = row
	}
	return rows, nil
}

// TokenizeTo writes the input ids of one text into dst, whose length is the
// context length (Options.ContextLength is ignored), and says whether the
// text was cut. It allocates nothing once the tokenizer is warm, so a data
// loader can fill a batch buffer in place from many goroutines.
func (t *Tokenizer) TokenizeTo(dst []int32, text string, opts Options) (truncated bool, err error) {
	if len(dst) < 2 {
		return false, fmt.Errorf("context length %d: must be at least 2 (start and end tokens)", len(dst))
	}
	opts.ContextLength = len(dst)
	if _, err := opts.contextLength(); err != nil {
		return false, err
	}
	s := t.getScratch()
	defer t.putScratch(s)
	return t.tokenizeTo(dst, text, opts, s)
}

func (t *Tokenizer) tokenizeTo(dst []int32, text string, opts Options, s *scratch) (bool, error) {
	n := len(dst)
	s.ids = append(s.ids[:0], t.sot)
	s.ids = t.appendIDs(s.ids, text, s)
	s.ids = append(s.ids, t.eot)
	ids := s.ids
	truncated := false
	if len(ids) > n {
		if !opts.Truncate {
			return false, fmt.Errorf("text %s has %d tokens with start and end, more than the context length %d (truncation is off)",
				quoteText(text), len(ids), n)
		}
		ids = ids[:n]
		ids[n-1] = t.eot
		truncated = true
	}
	copy(dst, ids)
	pad := int32(0)
	if opts.Pad == PadEOT {
		pad = t.eot
	}
	for i := len(ids); i < n; i++ {
		dst[i] = pad
	}
	return truncated, nil
}

// quoteText quotes text for an error message, shortening very long texts.
func quoteText(text string) string {
	const max = 200
	if len(text) <= max {
		return fmt.Sprintf("%q", text)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", text[:cut], len(text))
}

// Decode maps ids back to text as the reference does: each id's symbol is
// turned back into bytes, the bytes are read as UTF-8 (each invalid
// sequence becomes U+FFFD), and every "</w>" becomes a space. Start, end
// and padding ids are decoded like any other id. An id outside the
// vocabulary is an error.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	var buf []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.known) || !t.known[id] {
			return "", fmt.Errorf("decode: id %d is not in the vocabulary of %s (%d ids)", id, t.source, len(t.known))
		}
		buf = append(buf, t.decoded[t.decodedAt[id]:t.decodedAt[id+1]]...)
	}
	return strings.ReplaceAll(decodeUTF8(buf), endOfWord, " "), nil
}

// Decode32 is Decode for int32 ids, such as rows of Tokenize.
func (t *Tokenizer) Decode32(ids []int32) (string, error) {
	wide := make([]int, len(ids))
	for i, id := range ids {
		wide[i] = int(id)
	}
	return t.Decode(wide)
}

// decodeUTF8 reads b as UTF-8, replacing each maximal invalid subsequence
// (in the sense of the Unicode standard, as Python's decoder does) by one
// U+FFFD.
func decodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[:size])
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefix(b):]
	}
	return sb.String()
}

// invalidPrefix returns the length of the maximal subpart of an ill-formed
// UTF-8 sequence at the start of b: the longest prefix that begins a valid
// sequence, or 1.
func invalidPrefix(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}
