package benchmark

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes results as an aligned human-readable table: one row per
// result, the fake-quant cost and unsupported configurations on rows of
// their own.
func WriteTable(w io.Writer, results []Result) error {
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(w, "%s %s batch %d (%s): not run: %s\n", r.Mode, r.Config, r.Batch, r.Precision, r.Error)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, r := range results {
		if r.Error == "" && r.StepStats != nil {
			if !header {
				fmt.Fprintln(tw, "mode\tconfig\tquant\tbatch\timages/s\tstep ms\tp10-p90 ms\tcpu ms\tGFLOP/s\tfirst s\tpeak MiB\t")
				header = true
			}
			s := r.StepStats
			gflops := "-"
			if s.TFLOPs > 0 {
				gflops = fmt.Sprintf("%.1f", 1e3*s.TFLOPs)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f-%.1f\t%.1f\t%s\t%.2f\t%.0f\t\n",
				r.Mode, r.Config, r.Quant, r.Batch, s.ImagesPerS, s.StepMsMedian, s.StepMsP10, s.StepMsP90,
				s.CPUMsMedian, gflops, r.CompileS, r.PeakMemMB)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if s := r.StepStats; r.Error == "" && s != nil && r.Mode == ModeTrain && s.ExecMsMedian > 0 {
			fmt.Fprintf(w, "train %s %s: of a %.1f ms step, %.1f ms waiting for the batch, %.1f ms the compiled step, %.1f ms reading the losses\n",
				r.Config, r.Quant, s.StepMsMedian, s.DataMsMedian, s.ExecMsMedian, s.OutputsMsMedian)
		}
	}
	for _, r := range results {
		c := r.QuantCost
		if c == nil || r.Error != "" {
			continue
		}
		fmt.Fprintf(w, "fake-quant cost, %s %s vs float, batch %d, %d rounds of %d steps:\n", r.Config, r.Quant, r.Batch, c.Rounds, r.Steps)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tfloat ms\tquant ms\tratio\t")
		fmt.Fprintf(tw, "forward+backward, wall\t%.1f\t%.1f\t%.2f\t\n", c.FloatFwdBwdMsMedian, c.QuantFwdBwdMsMedian, c.RatioFwdBwd)
		fmt.Fprintf(tw, "forward+backward, cpu\t%.1f\t%.1f\t%.2f\t\n", c.FloatFwdBwdCPUMsMedian, c.QuantFwdBwdCPUMsMedian, c.RatioFwdBwdCPU)
		fmt.Fprintf(tw, "training step, wall\t%.1f\t%.1f\t%.2f\t\n", c.FloatTrainStepMsMedian, c.QuantTrainStepMsMedian, c.RatioTrainStep)
		fmt.Fprintf(tw, "training step, cpu\t%.1f\t%.1f\t%.2f\t\n", c.FloatTrainStepCPUMsMedian, c.QuantTrainStepCPUMsMedian, c.RatioTrainStepCPU)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "per-round forward+backward ratio: median %.2f (min %.2f, max %.2f)\n",
			c.RatioFwdBwdRoundsMedian, c.RatioFwdBwdRoundsMin, c.RatioFwdBwdRoundsMax)
	}
	return nil
}
