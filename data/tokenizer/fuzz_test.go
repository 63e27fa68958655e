package tokenizer

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/qatclip/qatclip/internal/testutil"
)

// fuzzSeeds are texts that exercise cleaning, the pre-tokenizer and BPE:
// HTML references, odd whitespace, case folding, specials, contractions,
// invalid UTF-8 and characters the pattern skips.
var fuzzSeeds = []string{
	"a photo of a cat.",
	"",
	"   \t\n ",
	"A PHOTO of THE Dog's toy, isn't it?",
	"&amp;amp; &lt;b&gt; &#x41;&#66;&#0;&#xD800;&#x110000;&#128; &ampx &notin; &copy",
	"<|startoftext|>hello<|endoftext|> <|ENDOFTEXT|> <|start",
	"ÅNGSTRÖM café ﬁ ǅ İstanbul ΣΑΣ ὈΔΥΣΣΕΎΣ",
	"e\u0301 \u0345 \u00a0 \u2028 \u3000 \x1c\x1d\x1e\x1f x",
	"日本語のテキスト 中文 한국어 🐈‍⬛ 👍🏽",
	"'s 'T 're 'VE 'm 'LL 'd 'x ſ 'ſ",
	"1234567890 ١٢٣ ½ Ⅻ",
	"</w> <</w>> w</w",
	"\xff\xfe invalid \xc3\x28 utf8 \xed\xa0\x80",
	strings.Repeat("ab", 300),
}

// checkEncode checks Encode, Decode and TokenizeTo on one text.
func checkEncode(t *testing.T, tok *Tokenizer, text string) {
	ids := tok.Encode(text)
	for _, id := range ids {
		if id < 0 || id >= tok.VocabSize() {
			t.Fatalf("Encode(%q): id %d outside [0, %d)", text, id, tok.VocabSize())
		}
	}
	decoded, err := tok.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", text, err)
	}
	row := make([]int32, 16)
	if _, err := tok.TokenizeTo(row, text, Options{Truncate: true}); err != nil {
		t.Fatalf("TokenizeTo(%q): %v", text, err)
	}
	if row[0] != int32(tok.StartID()) || !containsID(row, int32(tok.EndID())) {
		t.Fatalf("TokenizeTo(%q) = %v: no start or end token", text, row)
	}
	if !utf8.ValidString(text) {
		return
	}
	// Decode turns every "</w>" into a space and the pre-tokenizer drops
	// whitespace (and U+0345), so compare with all of those removed, as the
	// reference's decode(encode(x)) == clean(x) holds up to spacing.
	clean := string(appendClean(nil, text))
	if got, want := dropSpace(decoded), dropSpace(clean); got != want {
		t.Fatalf("Decode(Encode(%q)) = %q, cleaned text %q (without spaces: %q vs %q)", text, decoded, clean, got, want)
	}
}

func containsID(row []int32, id int32) bool {
	for _, v := range row {
		if v == id {
			return true
		}
	}
	return false
}

// dropSpace removes the characters the pre-tokenizer skips.
func dropSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if isPythonSpace(r) || unicode.IsSpace(r) || r == ypogegrammeni {
			return -1
		}
		return r
	}, s)
}

// FuzzEncodeFixture checks, with this package's small fixture vocabulary,
// that Encode never panics on any string, that its ids decode, and that for
// valid UTF-8 Decode(Encode(x)) is the cleaned text up to spacing.
func FuzzEncodeFixture(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	tok := fixture(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkEncode(t, tok, text)
	})
}

// FuzzEncodeCLIP is FuzzEncodeFixture with CLIP's own vocabulary from
// ../shared; it is skipped when that is absent.
func FuzzEncodeCLIP(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	tok, err := Load(testutil.SharedPath(f, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkEncode(t, tok, text)
	})
}
