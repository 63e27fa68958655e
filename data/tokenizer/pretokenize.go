package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Classes of ASCII characters for the pre-tokenizer.
const (
	classPunct  = iota // anything else: part of a [^\s\p{L}\p{N}]+ run
	classSpace         // \s: skipped
	classLetter        // \p{L}
	classDigit         // \p{N}
	classQuote         // ' may start a contraction
	classLess          // < may start a special token
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for _, b := range "\t\n\v\f\r " {
		c[b] = classSpace
	}
	for b := 'a'; b <= 'z'; b++ {
		c[b] = classLetter
		c[b-'a'+'A'] = classLetter
	}
	for b := '0'; b <= '9'; b++ {
		c[b] = classDigit
	}
	c['\''] = classQuote
	c['<'] = classLess
	return c
}()

// ypogegrammeni is U+0345 COMBINING GREEK YPOGEGRAMMENI. Under the
// reference's case-insensitive matching it is neither a letter (it is a
// mark) nor outside \p{L} (it folds to the letter iota), so no alternative
// of the pattern matches it and it is skipped like whitespace.
const ypogegrammeni = '\u0345'

// kindOf classifies a non-ASCII rune like asciiClass does ASCII.
func kindOf(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classDigit
	case unicode.IsSpace(r) || r == ypogegrammeni:
		return classSpace
	}
	return classPunct
}

// classAt returns the class and byte length of the character at s[i].
func classAt(s []byte, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, size := utf8.DecodeRune(s[i:])
	return kindOf(r), size
}

// nextPiece finds the next word of s at or after byte i, as CLIP's pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// matched case-insensitively (with Python's regex module) finds it: the
// first alternative that matches wins, and a character no alternative
// matches (whitespace) is skipped. It returns end < 0 when there is none.
func nextPiece(s []byte, i int) (start, end int) {
	for i < len(s) {
		class, size := classAt(s, i)
		switch class {
		case classSpace:
			i += size
			continue
		case classLetter:
			return i, runEnd(s, i+size, classLetter)
		case classDigit:
			return i, i + size
		case classQuote:
			if n := contraction(s[i+1:]); n > 0 {
				return i, i + 1 + n
			}
		case classLess:
			if n := matchFold(s[i:], StartOfText); n > 0 {
				return i, i + n
			}
			if n := matchFold(s[i:], EndOfText); n > 0 {
				return i, i + n
			}
		}
		return i, runEnd(s, i+size, classPunct)
	}
	return len(s), -1
}

// runEnd returns the end of the run of characters of the given class
// (classPunct also takes quotes and '<') starting at i.
func runEnd(s []byte, i int, class uint8) int {
	for i < len(s) {
		c, size := classAt(s, i)
		if c == classQuote || c == classLess {
			c = classPunct
		}
		if c != class {
			return i
		}
		i += size
	}
	return i
}

// contraction returns the length of s/t/re/ve/m/ll/d at the start of s
// (after a quote), matched case-insensitively, or 0.
func contraction(s []byte) int {
	for _, suffix := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if n := matchFold(s, suffix); n > 0 {
			return n
		}
	}
	return 0
}

// longS is U+017F LATIN SMALL LETTER LONG S, whose simple case folding is
// 's': the reference's case-insensitive pattern accepts it where the
// pattern says 's'. No other character left after lowercasing folds to a
// letter of the pattern's literals.
const longS = "\u017f"

// matchFold returns the length of the prefix of s equal to lit (lowercase
// ASCII) under case folding, or 0.
func matchFold(s []byte, lit string) int {
	n := 0
	for k := 0; k < len(lit); k++ {
		c := lit[k]
		switch {
		case n < len(s) && (s[n] == c || 'a' <= c && c <= 'z' && s[n] == c-'a'+'A'):
			n++
		case c == 's' && len(s)-n >= len(longS) && string(s[n:n+len(longS)]) == longS:
			n += len(longS)
		default:
			return 0
		}
	}
	return n
}
