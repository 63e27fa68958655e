package train

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress reports training progress: a progress bar on a terminal, plain
// lines every logEvery steps otherwise.
type progress struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	total    int
	start    time.Time
	startAt  int
	logEvery int
}

// newProgress starts reporting a run of total steps, startAt of them done.
func newProgress(w io.Writer, total, startAt, logEvery int) *progress {
	p := &progress{w: w, total: total, start: time.Now(), startAt: startAt, logEvery: logEvery}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("step"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		p.bar.Set(startAt)
	}
	return p
}

// summary formats a step record in one line.
func summary(rec StepRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "loss %.4f", rec.Loss)
	var terms []string
	for _, k := range sortedKeys(rec.Terms) {
		terms = append(terms, fmt.Sprintf("%s %.4f", k, rec.Terms[k]))
	}
	if len(terms) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(terms, ", "))
	}
	fmt.Fprintf(&b, " lr %.3g", rec.LR)
	return b.String()
}

// step advances the bar after every optimizer step.
func (p *progress) step(rec StepRecord) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(fmt.Sprintf("epoch %d %s", rec.Epoch, summary(rec)))
	p.bar.Set(rec.Step)
}

// log writes a progress line for a logged step (when there is no bar).
func (p *progress) log(rec StepRecord) {
	if p.bar != nil {
		return
	}
	eta := "?"
	if done := rec.Step - p.startAt; done > 0 {
		left := time.Duration(float64(time.Since(p.start)) / float64(done) * float64(p.total-rec.Step))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "step %d/%d epoch %d %s %.1f img/s eta %s\n", rec.Step, p.total, rec.Epoch, summary(rec), rec.ImagesPerSec, eta)
}

// message writes a line above the bar (or plainly).
func (p *progress) message(s string) {
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintln(p.w, s)
}

// finish closes the bar.
func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
