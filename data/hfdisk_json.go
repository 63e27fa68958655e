package data

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyObject is a JSON object whose keys keep their insertion order, as a
// Python dict does. HF datasets writes its JSON with Python's json module;
// pyJSON reproduces that module's output byte for byte so files we write
// look exactly like files datasets writes.
type pyObject []pyItem

// pyItem is one key/value pair of a pyObject.
type pyItem struct {
	Key   string
	Value any
}

// pyJSON encodes v as Python's json.dumps(v, indent=indent) does with its
// default ensure_ascii=True: with indent < 0 on one line with ", " and ": "
// separators, otherwise one item a line with "," and ": ". Values may be
// nil, bool, int, int64, float64, string, []string, []any and pyObject.
func pyJSON(v any, indent int) string {
	var sb strings.Builder
	writePyJSON(&sb, v, indent, 0)
	return sb.String()
}

func writePyJSON(sb *strings.Builder, v any, indent, depth int) {
	newline := func(d int) {
		sb.WriteByte('\n')
		sb.WriteString(strings.Repeat(" ", indent*d))
	}
	sep := ", "
	if indent >= 0 {
		sep = ","
	}
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		sb.WriteString(strconv.FormatBool(x))
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case float64:
		sb.WriteString(pyFloat(x))
	case string:
		writePyString(sb, x)
	case []string:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		writePyJSON(sb, items, indent, depth)
	case []any:
		if len(x) == 0 {
			sb.WriteString("[]")
			return
		}
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteString(sep)
			}
			if indent >= 0 {
				newline(depth + 1)
			}
			writePyJSON(sb, e, indent, depth+1)
		}
		if indent >= 0 {
			newline(depth)
		}
		sb.WriteByte(']')
	case pyObject:
		if len(x) == 0 {
			sb.WriteString("{}")
			return
		}
		sb.WriteByte('{')
		for i, it := range x {
			if i > 0 {
				sb.WriteString(sep)
			}
			if indent >= 0 {
				newline(depth + 1)
			}
			writePyString(sb, it.Key)
			sb.WriteString(": ")
			writePyJSON(sb, it.Value, indent, depth+1)
		}
		if indent >= 0 {
			newline(depth)
		}
		sb.WriteByte('}')
	default:
		panic(fmt.Sprintf("pyJSON: unsupported type %T", v))
	}
}

// pyFloat formats a float as Python's repr does for the finite values we
// write (always with a fractional part or an exponent).
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// writePyString writes s as a JSON string with Python's ensure_ascii
// escaping: control characters and every non-ASCII rune as \uXXXX (UTF-16
// surrogate pairs above U+FFFF), and no HTML escaping.
func writePyString(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\b':
			sb.WriteString(`\b`)
		case r == '\f':
			sb.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r < 0x10000 && r != 0x7f):
			fmt.Fprintf(sb, `\u%04x`, r)
		case r >= 0x10000:
			r -= 0x10000
			fmt.Fprintf(sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
}
