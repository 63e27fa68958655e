package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/qatclip/qatclip/eval"
)

// WriteMarkdown writes report.md: the settings, the data and models, then
// one table per metric group with a column per model and, when there is a
// baseline, the delta of the model against it with an arrow: ↑ better,
// ↓ worse, = unchanged (by the metric's direction; none for neutral ones).
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := bufio.NewWriter(w)
	title := r.Title
	if title == "" {
		title = "Reliability report"
	}
	fmt.Fprintf(b, "# %s\n\n", title)
	s := r.Settings
	fmt.Fprintf(b, "- Logit scale: %.6g (%s)\n", s.LogitScale, s.LogitScaleSource)
	fmt.Fprintf(b, "- ECE: %d equal-width bins [lo, hi)\n", s.ECEBins)
	fmt.Fprintf(b, "- OOD score: %s, tau = %g; ID is the positive class\n", s.OODScore, s.MCMTemperature)
	fmt.Fprintf(b, "- Temperature scaling: %s\n", s.TemperatureFit)
	fmt.Fprintf(b, "- ID data: %s\n", describe(r.Data.ID))
	if r.Data.Fit != nil {
		fmt.Fprintf(b, "- Temperature split: %s\n", describe(*r.Data.Fit))
	}
	for _, o := range r.Data.OOD {
		fmt.Fprintf(b, "- OOD set: %s\n", describe(o))
	}
	cols := r.Columns()
	for _, c := range cols {
		fmt.Fprintf(b, "- Model %q: %s\n", c.Label, describe(c.Model))
	}
	b.WriteString("\n")

	tables := make([][]Metric, len(cols))
	for i, c := range cols {
		if c.Result == nil {
			return fmt.Errorf("column %q has no result", c.Label)
		}
		tables[i] = Metrics(c.Result)
	}
	modelIdx := 0
	if r.Baseline != nil {
		modelIdx = 1
	}
	header := "| Metric |"
	rule := "|---|"
	for i, c := range cols {
		header += " " + escape(c.Label) + " |"
		rule += "---:|"
		if r.Baseline != nil && i == modelIdx {
			// The delta follows the model, before any extra columns.
			header += " Δ vs " + escape(r.Baseline.Label) + " |"
			rule += "---:|"
		}
	}
	group := ""
	for k, m := range tables[modelIdx] {
		if m.Group != group {
			group = m.Group
			fmt.Fprintf(b, "## %s\n\n%s\n%s\n", group, header, rule)
		}
		row := "| " + m.Label + " |"
		for i := range cols {
			v, ok := lookup(tables[i], m.Key, k)
			if ok {
				row += " " + format(v) + " |"
			} else {
				row += " – |"
			}
			if r.Baseline != nil && i == modelIdx {
				if base, ok := lookup(tables[0], m.Key, k); ok {
					row += " " + delta(m.Value-base, m.Direction) + " |"
				} else {
					row += " – |"
				}
			}
		}
		b.WriteString(row + "\n")
		if k+1 == len(tables[modelIdx]) || tables[modelIdx][k+1].Group != group {
			b.WriteString("\n")
		}
	}
	writeOtherScores(b, cols)
	writeSpectra(b, cols)
	b.WriteString("Arrows compare each model with the baseline: ↑ better, ↓ worse, = unchanged.\n")
	return b.Flush()
}

// writeOtherScores tabulates the max-cosine and energy scores' AUROC and
// FPR@95 per set and model (columns without OOD results, such as
// corrupted-ID columns, are left out).
func writeOtherScores(b *bufio.Writer, all []Column) {
	var cols []Column
	for _, c := range all {
		if len(c.Result.OOD) > 0 {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		return
	}
	b.WriteString("## OOD detection by score\n\n| Set | Score |")
	rule := "|---|---|"
	for _, c := range cols {
		fmt.Fprintf(b, " %s AUROC | %s FPR@95 |", escape(c.Label), escape(c.Label))
		rule += "---:|---:|"
	}
	b.WriteString("\n" + rule + "\n")
	for i, o := range cols[0].Result.OOD {
		for _, k := range eval.ScoreKinds() {
			fmt.Fprintf(b, "| %s | %s |", escape(o.Name), k)
			for _, c := range cols {
				if i < len(c.Result.OOD) {
					d := c.Result.OOD[i].ByScore[k.String()]
					fmt.Fprintf(b, " %s | %s |", format(d.AUROC), format(d.FPR95))
				} else {
					b.WriteString(" – | – |")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
}

// writeSpectra tabulates the effective rank per tower and model.
func writeSpectra(b *bufio.Writer, cols []Column) {
	towers := []string{}
	seen := map[string]bool{}
	for _, c := range cols {
		for _, s := range c.Spectra {
			if !seen[s.Tower] {
				seen[s.Tower] = true
				towers = append(towers, s.Tower)
			}
		}
	}
	if len(towers) == 0 {
		return
	}
	b.WriteString("## Embedding spectrum\n\n| Tower |")
	rule := "|---|"
	for _, c := range cols {
		fmt.Fprintf(b, " %s effective rank |", escape(c.Label))
		rule += "---:|"
	}
	b.WriteString("\n" + rule + "\n")
	for _, t := range towers {
		fmt.Fprintf(b, "| %s |", escape(t))
		for _, c := range cols {
			v := "–"
			for _, s := range c.Spectra {
				if s.Tower == t && s.Spectrum != nil {
					v = fmt.Sprintf("%.2f (of %d)", s.EffectiveRank, min(s.N, s.D))
				}
			}
			b.WriteString(" " + v + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// lookup finds key in ms, trying index hint first.
func lookup(ms []Metric, key string, hint int) (float64, bool) {
	if hint < len(ms) && ms[hint].Key == key {
		return ms[hint].Value, true
	}
	for _, m := range ms {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

func format(v float64) string { return fmt.Sprintf("%.4f", v) }

// delta formats d with a sign and the arrow of its direction.
func delta(d float64, dir Direction) string {
	s := fmt.Sprintf("%+.4f", d)
	if s == "+0.0000" || s == "-0.0000" {
		if dir == Neutral {
			return "0.0000"
		}
		return "0.0000 ="
	}
	switch {
	case dir == Neutral:
		return s
	case (d > 0) == (dir == HigherBetter):
		return s + " ↑"
	default:
		return s + " ↓"
	}
}

func describe(id Identity) string {
	s := "`" + id.Name + "`"
	if id.Path != "" && id.Path != id.Name {
		s += " (" + id.Path + ")"
	}
	if id.Rows > 0 {
		s += fmt.Sprintf(", %d rows", id.Rows)
	}
	if id.SHA256 != "" {
		s += ", sha256 " + id.SHA256[:min(12, len(id.SHA256))]
	}
	return s
}

// escape keeps a label from breaking a Markdown table row.
func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
