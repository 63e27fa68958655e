package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qatclip/qatclip/data/tokenizer"
)

// tokenizeRecord is one output line of `qatclip tokenize`.
type tokenizeRecord struct {
	Text     string  `json:"text"`
	BPE      []int   `json:"bpe"`
	InputIDs []int32 `json:"input_ids"`
}

// newTokenizeCmd builds `qatclip tokenize`, which prints the CLIP token ids
// of each text as one JSON object per line.
func newTokenizeCmd() *cobra.Command {
	var (
		vocab         string
		contextLength int
		truncate      bool
		pad           string
	)
	cmd := &cobra.Command{
		Use:   "tokenize [flags] TEXT...",
		Short: "Print the CLIP BPE ids and input ids of texts as JSON lines",
		Long: `Tokenize prints, for each TEXT, one JSON object per line:
{"text": TEXT, "bpe": [ids without start/end tokens], "input_ids": [context-length ids]}.

The vocabulary is CLIP's bpe_simple_vocab_16e6.txt.gz, or a Hugging Face
folder with vocab.json and merges.txt (or tokenizer.json); without --vocab it
is taken from $` + tokenizer.VocabEnv + `.`,
		RunE: func(cmd *cobra.Command, texts []string) error {
			if len(texts) == 0 {
				return errors.New("tokenize: no texts given")
			}
			padMode, err := tokenizer.ParsePadMode(pad)
			if err != nil {
				return fmt.Errorf("tokenize: --pad: %w", err)
			}
			if contextLength < 2 {
				return fmt.Errorf("tokenize: --context-length %d: must be at least 2", contextLength)
			}
			path, err := tokenizer.FindVocab(vocab)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			tok, err := tokenizer.Load(path)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			opts := tokenizer.Options{ContextLength: contextLength, Truncate: truncate, Pad: padMode}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			for _, text := range texts {
				rec := tokenizeRecord{Text: text, BPE: tok.Encode(text), InputIDs: make([]int32, contextLength)}
				if _, err := tok.TokenizeTo(rec.InputIDs, text, opts); err != nil {
					return fmt.Errorf("tokenize: %w", err)
				}
				if err := enc.Encode(rec); err != nil {
					return fmt.Errorf("tokenize: write: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&vocab, "vocab", "", "CLIP merges file (bpe_simple_vocab_16e6.txt.gz) or Hugging Face tokenizer folder (default $"+tokenizer.VocabEnv+")")
	f.IntVar(&contextLength, "context-length", tokenizer.DefaultContextLength, "ids per text, start and end tokens included")
	f.BoolVar(&truncate, "truncate", false, "cut texts longer than the context length (the last id becomes the end token) instead of failing")
	f.StringVar(&pad, "pad", "zero", "padding id after the end token: zero (openai/CLIP) or eot (Hugging Face)")
	return cmd
}
