package tokenizer

import (
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// appendClean appends the cleaned text to dst: NFC, HTML entities unescaped
// twice, runs of whitespace collapsed to one space, leading and trailing
// whitespace removed, lowercased. Whitespace and lowercasing follow Python's
// str semantics (str.isspace, str.lower with its final-sigma rule), as the
// reference tokenizer runs on Python strings. Invalid UTF-8 is read as
// U+FFFD.
func appendClean(dst []byte, text string) []byte {
	if isPlainASCII(text) {
		return appendCleanASCII(dst, text)
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	s := norm.NFC.String(text)
	s = unescapeHTML(unescapeHTML(s))
	s = strings.Join(strings.FieldsFunc(s, isPythonSpace), " ")
	if isPlainASCII(s) {
		return appendCleanASCII(dst, s)
	}
	return append(dst, cases.Lower(language.Und).String(s)...)
}

// isPlainASCII reports whether s is ASCII without '&', the text that needs
// neither normalisation nor unescaping.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c == '&' {
			return false
		}
	}
	return true
}

// asciiSpace marks the ASCII characters Python's str.isspace accepts.
var asciiSpace = [128]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true,
	0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true}

// appendCleanASCII is appendClean for ASCII text: collapse, strip, lower.
func appendCleanASCII(dst []byte, s string) []byte {
	pending := false // a space is due before the next non-space
	start := len(dst)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && asciiSpace[c] {
			pending = len(dst) > start
			continue
		}
		if pending {
			dst = append(dst, ' ')
			pending = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// isPythonSpace reports whether Python's str.isspace accepts r: Unicode
// White_Space plus the ASCII separators U+001C..U+001F.
func isPythonSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiSpace[r]
	}
	return unicode.IsSpace(r)
}

// unescapeHTML replaces HTML character references as Python's html.unescape
// does. Named references follow the HTML5 table (the longest known prefix of
// a name without ';' is used, as for "&ampx"); numeric references map
// Windows-1252 code points 0x80-0x9F to their characters, surrogates, 0 and
// values past U+10FFFF to U+FFFD, and drop the code points HTML forbids.
func unescapeHTML(s string) string {
	i := strings.IndexByte(s, '&')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		n, repl := charRef(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
		} else {
			b.WriteString(repl)
			s = s[n:]
		}
		i = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

// charRef reads the character reference at the start of s (s[0] == '&') and
// returns its length and replacement, or 0 when there is none.
func charRef(s string) (int, string) {
	if len(s) > 2 && s[1] == '#' {
		return numericRef(s)
	}
	// A name: letters and digits, then an optional ';'. Python reads any run
	// of up to 32 characters other than "\t\n\f <&#;", but as every name in
	// the HTML5 table is alphanumeric the result is the same.
	j := 1
	for j < len(s) && isAlnum(s[j]) {
		j++
	}
	if j == 1 {
		return 0, ""
	}
	if j < len(s) && s[j] == ';' {
		j++
	}
	return j, html.UnescapeString(s[:j])
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// numericRef reads "&#123;" or "&#x7b;" (the ';' optional) at the start of s.
func numericRef(s string) (int, string) {
	j, base := 2, 10
	if s[2] == 'x' || s[2] == 'X' {
		j, base = 3, 16
	}
	start := j
	val := 0
	for ; j < len(s); j++ {
		d := digitValue(s[j], base)
		if d < 0 {
			break
		}
		if val <= unicode.MaxRune {
			val = val*base + d
		}
	}
	if j == start {
		return 0, "" // "&#" or "&#x" without digits is no reference
	}
	if j < len(s) && s[j] == ';' {
		j++
	}
	switch {
	case val == 0 || val == '\r' || 0x80 <= val && val <= 0x9F:
		// The HTML5 replacement table, which Go's html package shares.
		return j, html.UnescapeString("&#" + strconv.Itoa(val) + ";")
	case 0xD800 <= val && val <= 0xDFFF || val > unicode.MaxRune:
		return j, "\uFFFD"
	case forbiddenCodePoint(rune(val)):
		return j, ""
	}
	return j, string(rune(val))
}

func digitValue(c byte, base int) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case base == 16 && 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case base == 16 && 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// forbiddenCodePoint reports the code points that Python's html.unescape
// drops from numeric references: C0 controls other than tab, newline, form
// feed and carriage return, DEL and C1 controls, the noncharacters
// U+FDD0..U+FDEF and the last two code points of every plane.
func forbiddenCodePoint(r rune) bool {
	switch {
	case 0x01 <= r && r <= 0x08, r == 0x0B, 0x0E <= r && r <= 0x1F, 0x7F <= r && r <= 0x9F:
		return true
	case 0xFDD0 <= r && r <= 0xFDEF:
		return true
	case r&0xFFFE == 0xFFFE:
		return true
	}
	return false
}
