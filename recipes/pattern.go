package recipes

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Pattern selects modules by their HF name
// ("vision_model.encoder.layers.0.mlp.fc1"). Three forms exist:
//
//   - "re:EXPR": a Go (RE2) regular expression matched from the start of
//     the name but not necessarily to its end, as Python's re.match does in
//     compressed-tensors; write "$" to anchor the end
//     ("re:.*mlp\.fc[12]$").
//   - a glob with *, ? or [...]: path.Match over the whole name, where *
//     matches any run of characters, dots included ("*.mlp.fc1" names every
//     fc1, "vision_model.*" the whole vision tower).
//   - anything else: the exact module name.
type Pattern struct {
	src string
	re  *regexp.Regexp
}

// ParsePattern compiles a pattern; an empty pattern, an invalid regular
// expression or a malformed glob is an error.
func ParsePattern(s string) (Pattern, error) {
	switch {
	case s == "":
		return Pattern{}, errors.New("empty pattern")
	case strings.HasPrefix(s, "re:"):
		expr := strings.TrimPrefix(s, "re:")
		if expr == "" {
			return Pattern{}, errors.New("empty regular expression after \"re:\"")
		}
		re, err := regexp.Compile(`^(?:` + expr + `)`)
		if err != nil {
			// Report the expression as written, not our anchored wrapper.
			if _, err2 := regexp.Compile(expr); err2 != nil {
				err = err2
			}
			return Pattern{}, fmt.Errorf("invalid regular expression %q: %v", expr, unwrapRegexpErr(err))
		}
		return Pattern{src: s, re: re}, nil
	case strings.ContainsAny(s, "*?["):
		if _, err := path.Match(s, ""); err != nil {
			return Pattern{}, fmt.Errorf("invalid glob %q: %v", s, err)
		}
	}
	return Pattern{src: s}, nil
}

// unwrapRegexpErr keeps the code and offending text of a regexp error.
func unwrapRegexpErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// Match reports whether the pattern selects the module name.
func (p Pattern) Match(name string) bool {
	switch {
	case p.re != nil:
		return p.re.MatchString(name)
	case strings.ContainsAny(p.src, "*?["):
		ok, _ := path.Match(p.src, name)
		return ok
	}
	return p.src == name
}

// MatchScope reports whether the pattern selects name or one of its dotted
// ancestors ("text_model" selects "text_model.encoder.layers.0.mlp.fc1").
func (p Pattern) MatchScope(name string) bool {
	for n := name; ; {
		if p.Match(n) {
			return true
		}
		i := strings.LastIndexByte(n, '.')
		if i < 0 {
			return false
		}
		n = n[:i]
	}
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }
