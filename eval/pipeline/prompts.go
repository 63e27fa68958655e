package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Class-name and template specifications understood by [LoadClassNames]
// and [LoadTemplates] besides file paths.
const (
	// FromDataset takes the class names from the ID set's ClassLabel
	// feature.
	FromDataset = "from-dataset"
	// DefaultTemplateSet names the built-in [DefaultTemplates].
	DefaultTemplateSet = "default"
	// SimpleTemplateSet names the single template [SimpleTemplate].
	SimpleTemplateSet = "simple"
	// SimpleTemplate is the one-prompt zero-shot template.
	SimpleTemplate = "a photo of a {}."
)

// DefaultTemplates returns qatclip's built-in prompt templates: a small set
// of generic photo descriptions that ensembles better than a single prompt
// on most image data sets while costing a tenth of the 80 ImageNet
// templates to encode. Use a templates file (e.g. CLIP's
// imagenet_zeroshot.json) for the published ImageNet protocol.
func DefaultTemplates() []string {
	return []string{
		"a photo of a {}.",
		"a blurry photo of a {}.",
		"a close-up photo of a {}.",
		"a bright photo of the {}.",
		"a dark photo of the {}.",
		"a drawing of a {}.",
		"a photo of the small {}.",
		"a photo of the large {}.",
	}
}

// LoadClassNames resolves a class-name specification: [FromDataset] (the
// names in datasetNames, the ID set's ClassLabel names) or a file holding
// one name per line (blank lines skipped), a JSON list of strings, or a JSON
// object with a "classes" list (the layout of CLIP's
// imagenet_zeroshot.json). When datasetNames is not empty the number of
// names must match it.
func LoadClassNames(spec string, datasetNames []string) ([]string, error) {
	var names []string
	if spec == FromDataset || spec == "" {
		if len(datasetNames) == 0 {
			return nil, errors.New("class names: the ID set has no ClassLabel names; give a class-names file (--classnames or eval.id.classnames)")
		}
		return append([]string(nil), datasetNames...), nil
	}
	names, err := readList(spec, "classes", "class names")
	if err != nil {
		return nil, err
	}
	if len(datasetNames) > 0 && len(names) != len(datasetNames) {
		return nil, fmt.Errorf("class names %s: %d names, but the ID set's label has %d classes", spec, len(names), len(datasetNames))
	}
	return names, nil
}

// LoadTemplates resolves a template specification: [DefaultTemplateSet],
// [SimpleTemplateSet], or a file holding one template per line (blank lines
// skipped), a JSON list of strings, or a JSON object with a "templates"
// list. Every template must contain "{}", which stands for the class name.
func LoadTemplates(spec string) ([]string, error) {
	switch spec {
	case DefaultTemplateSet, "":
		return DefaultTemplates(), nil
	case SimpleTemplateSet:
		return []string{SimpleTemplate}, nil
	}
	ts, err := readList(spec, "templates", "templates")
	if err != nil {
		return nil, err
	}
	for i, t := range ts {
		if !strings.Contains(t, "{}") {
			return nil, fmt.Errorf("templates %s: template %d %q has no {} for the class name", spec, i+1, t)
		}
	}
	return ts, nil
}

// CheckClassNames rejects an empty list and empty names.
func CheckClassNames(names []string) error {
	if len(names) == 0 {
		return errors.New("class names: the list is empty")
	}
	for i, n := range names {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("class names: name %d is empty", i)
		}
	}
	return nil
}

// Prompts fills every template with every class name, class-major: the
// templates of class 0, then those of class 1, and so on.
func Prompts(classes, templates []string) []string {
	out := make([]string, 0, len(classes)*len(templates))
	for _, c := range classes {
		for _, t := range templates {
			out = append(out, strings.ReplaceAll(t, "{}", c))
		}
	}
	return out
}

// readList reads a list of non-empty strings from path: a JSON list, a
// JSON object holding the list under key, or lines of text.
func readList(path, key, what string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: no such file (give %s)", what, path, specWord(what))
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(b)
	var list []string
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("%s %s: not a JSON list of strings: %v", what, path, err)
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, fmt.Errorf("%s %s: invalid JSON: %v", what, path, err)
		}
		raw, ok := obj[key]
		if !ok {
			return nil, fmt.Errorf("%s %s: the JSON object has no %q list", what, path, key)
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s %s: %q is not a list of strings: %v", what, path, key, err)
		}
	default:
		for line := range strings.SplitSeq(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				list = append(list, line)
			}
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s %s: no entries", what, path)
	}
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("%s %s: entry %d is empty", what, path, i+1)
		}
	}
	return list, nil
}

// specWord names the built-in alternatives to a file.
func specWord(what string) string {
	if what == "templates" {
		return `"default", "simple", or a file with one template per line or a JSON list`
	}
	return `"from-dataset", or a file with one name per line or a JSON list`
}
