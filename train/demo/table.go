package demo

import (
	"fmt"
	"math"
	"strings"
)

// TableMetrics are the columns of the comparison table, in order.
func TableMetrics() []string { return []string{"acc1", "ece", "ts_ece", "nll", "auroc", "fpr95"} }

// Row is one model of a comparison table: a label and its metrics.
type Row struct {
	Label   string
	Metrics map[string]float64
}

// FormatTable formats rows as an aligned plain-text table of
// TableMetrics; every row after the first shows its change from the first
// (the float baseline) in parentheses. A metric a row lacks prints as "-".
func FormatTable(rows []Row) string {
	cells := make([][]string, 0, len(rows)+1)
	cells = append(cells, append([]string{"model"}, TableMetrics()...))
	for i, r := range rows {
		line := []string{r.Label}
		for _, k := range TableMetrics() {
			line = append(line, cell(r.Metrics, rows[0].Metrics, k, i > 0))
		}
		cells = append(cells, line)
	}
	widths := make([]int, len(cells[0]))
	for _, line := range cells {
		for j, c := range line {
			widths[j] = max(widths[j], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for j, c := range line {
			pad := widths[j] - len([]rune(c))
			if j == 0 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString("  " + strings.Repeat(" ", pad) + c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// cell formats metric k of m, with its change from base when delta is set.
func cell(m, base map[string]float64, k string, delta bool) string {
	v, ok := m[k]
	if !ok || math.IsNaN(v) {
		return "-"
	}
	s := fmt.Sprintf("%.4f", v)
	if b, ok := base[k]; delta && ok && !math.IsNaN(b) {
		s += fmt.Sprintf(" (%+.4f)", v-b)
	}
	return s
}

// chance names the accuracy of a uniform guess among the ID classes, or
// is empty when the number of classes is unknown.
func (r *Result) chance() string {
	if r.Classes < 1 {
		return ""
	}
	return fmt.Sprintf(" (%d classes: chance %.2f)", r.Classes, 1/float64(r.Classes))
}

// Rows returns the result's models as table rows.
func (r *Result) Rows() []Row {
	rows := make([]Row, len(r.Models))
	for i, m := range r.Models {
		rows[i] = Row{Label: m.Label, Metrics: m.Metrics}
	}
	return rows
}

// Table returns the comparison table (see FormatTable) followed by where
// each model's report is.
func (r *Result) Table() string {
	var b strings.Builder
	b.WriteString(FormatTable(r.Rows()))
	b.WriteString("\nacc1: zero-shot top-1 accuracy on the test split" + r.chance() + "; ece / ts_ece: expected\n" +
		"calibration error before / after temperature scaling; nll: negative log-likelihood; auroc / fpr95:\n" +
		"MCM detection of the unseen shapes (ood split; auroc 0.5 is chance). Changes are against float.\n\n")
	for _, m := range r.Models {
		fmt.Fprintf(&b, "%-9s report %s (model %s)\n", m.Label, m.ReportDir, m.ModelDir)
	}
	return b.String()
}

// Markdown returns the table and the report folders as a Markdown
// document (summary.md).
func (r *Result) Markdown() string {
	var b strings.Builder
	b.WriteString("# qatclip demo: float vs PTQ vs QAT\n\n")
	b.WriteString("| model |")
	for _, k := range TableMetrics() {
		b.WriteString(" " + k + " |")
	}
	b.WriteString(" report |\n|---|")
	for range TableMetrics() {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	rows := r.Rows()
	for i, m := range r.Models {
		b.WriteString("| " + m.Label + " |")
		for _, k := range TableMetrics() {
			b.WriteString(" " + cell(m.Metrics, rows[0].Metrics, k, i > 0) + " |")
		}
		fmt.Fprintf(&b, " %s |\n", m.ReportDir)
	}
	fmt.Fprintf(&b, "\nData: %s (test split as ID%s, ood split as OOD). Took %.0f s.\n", r.Dataset, r.chance(), r.Seconds)
	return b.String()
}
