package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/training"
)

// planFlags are usine plan's flags.
type planFlags struct {
	params, tokens, accelerator, cluster, output string
	accelerators                                 int
	mfu, pue, margin, grid, tflops               float64
	watts                                        int
}

func newPlanCmd() *cobra.Command {
	var fl planFlags
	cmd := &cobra.Command{
		Use:   "plan --params N --tokens D --accelerator MODEL --accelerators K [--mfu 0.4]",
		Short: "Estimate the accelerator-hours, time and energy of a training run, and the grant to ask for",
		Long: `Estimate what training a dense transformer costs, for a grant proposal:
6·N·D floating-point operations for N parameters and D tokens, at an assumed
share (MFU) of the accelerator's peak dense BF16 throughput, give the
accelerator-hours; on K accelerators, the wall-clock time; at the
accelerators' rated power and the site's PUE, the energy; with a grid
intensity, the CO2e; and with a margin, the grant to ask for.

MFU, PUE, the margin and the grid intensity are assumptions: say which you
used in the proposal. Known accelerators: ` + strings.Join(training.Models(), ", ") + `; an MI250X
counts as one GCD (half a module), as Slurm and LUMI count GPUs. Take an
accelerator from a cluster file with --cluster, or describe one with
--tflops and --watts. docs/PLAN.md describes the method and how it compares
with TildeOpen's published figure.`,
		Example: `  usine plan --params 30e9 --tokens 4e12 --accelerator MI250X --accelerators 512 --mfu 0.3
  usine plan --params 7B --tokens 2T --accelerator H100 --accelerators 256 -o json
  usine plan --params 70B --tokens 15T --accelerator H100 --cluster gigafactory --accelerators 4096 --grid-intensity 50
  usine plan --params 1B --tokens 100B --accelerator X1 --tflops 400 --watts 500 --accelerators 8`,
		Args: usageArgs(cobra.NoArgs, "give the run with flags, such as --params 30e9 --tokens 4e12"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.params, "params", "", "model parameters N, such as 30e9 or 30B (required)")
	f.StringVar(&fl.tokens, "tokens", "", "training tokens D, such as 4e12 or 4T (required)")
	f.StringVar(&fl.accelerator, "accelerator", "", "accelerator model: "+strings.Join(training.Models(), ", ")+", or one of --cluster's (required)")
	f.IntVar(&fl.accelerators, "accelerators", 0, "accelerators training at once (required)")
	f.Float64Var(&fl.mfu, "mfu", training.DefaultMFU, "assumed model FLOPs utilisation: the share of peak BF16 sustained, in (0, 1]")
	f.Float64Var(&fl.pue, "pue", training.DefaultPUE, "assumed power usage effectiveness of the site (facility over IT energy)")
	f.Float64Var(&fl.margin, "margin", training.DefaultMargin, "share added to the estimate in the grant asked for (0.2 = 20 %)")
	f.Float64Var(&fl.grid, "grid-intensity", 0, "grid carbon intensity in gCO2e/kWh, for a CO2e estimate (0 = none)")
	f.StringVar(&fl.cluster, "cluster", "", "take the accelerator from this built-in cluster ("+strings.Join(cluster.Examples(), ", ")+") or JSON cluster file")
	f.Float64Var(&fl.tflops, "tflops", 0, "peak dense BF16 TFLOP/s of one accelerator (overrides the known figure)")
	f.IntVar(&fl.watts, "watts", 0, "board power of one accelerator in W (overrides the known figure)")
	f.StringVarP(&fl.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runPlan(cmd *cobra.Command, fl *planFlags) error {
	usage := func(format string, args ...any) error {
		return &UsageError{fmt.Errorf("plan: "+format, args...)}
	}
	if fl.output != "text" && fl.output != "json" {
		return usage("-o %q: give text or json", fl.output)
	}
	var in training.Inputs
	for _, c := range []struct {
		flag, val, hint string
		dst             *float64
	}{
		{"--params", fl.params, "the model's parameter count, such as 30e9 or 30B", &in.Params},
		{"--tokens", fl.tokens, "the training tokens, such as 4e12 or 4T", &in.Tokens},
	} {
		if c.val == "" {
			return usage("%s is required; give %s", c.flag, c.hint)
		}
		v, err := training.ParseCount(c.val)
		if err != nil {
			return usage("%s: %w", c.flag, err)
		}
		*c.dst = v
	}
	if !cmd.Flags().Changed("accelerators") {
		return usage("--accelerators is required; give how many accelerators train at once, such as 512")
	}
	acc, err := planAccelerator(cmd, fl)
	if err != nil {
		return err
	}
	in.Accelerator = acc
	in.Accelerators, in.MFU, in.PUE, in.Margin, in.GridIntensity = fl.accelerators, fl.mfu, fl.pue, fl.margin, fl.grid
	p, err := training.Estimate(in)
	if err != nil {
		return &UsageError{fmt.Errorf("plan: %w", err)}
	}
	out := cmd.OutOrStdout()
	if fl.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	return writePlan(out, p)
}

// planAccelerator is the accelerator --accelerator names, from --cluster's
// file or the catalogue, with --tflops and --watts applied.
func planAccelerator(cmd *cobra.Command, fl *planFlags) (training.Accelerator, error) {
	usage := func(format string, args ...any) error {
		return &UsageError{fmt.Errorf("plan: "+format, args...)}
	}
	custom := cmd.Flags().Changed("tflops")
	if fl.accelerator == "" {
		return training.Accelerator{}, usage("--accelerator is required; give one of %s, or a name with --tflops and --watts",
			strings.Join(training.Models(), ", "))
	}
	if custom && (fl.tflops <= 0 || math.IsNaN(fl.tflops) || math.IsInf(fl.tflops, 0)) {
		return training.Accelerator{}, usage("--tflops %g: give the peak dense BF16 TFLOP/s of one accelerator, such as 989", fl.tflops)
	}
	if fl.watts < 0 {
		return training.Accelerator{}, usage("--watts %d: give the board power of one accelerator in W, such as 700", fl.watts)
	}
	var acc training.Accelerator
	switch {
	case fl.cluster != "":
		c, err := cluster.Resolve(fl.cluster)
		if err != nil {
			return acc, fmt.Errorf("plan: --cluster: %w", err)
		}
		names := slices.Sorted(maps.Keys(c.Accelerators))
		k := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, fl.accelerator) })
		if k < 0 {
			return acc, usage("cluster %s has no accelerator %q; it has %s", c.Name, fl.accelerator, strings.Join(names, ", "))
		}
		acc.Accelerator = c.Accelerators[names[k]]
		acc.Model = names[k]
		if acc.BF16TFLOPS <= 0 && !custom {
			return acc, usage("cluster %s does not give %s's peak BF16 throughput; give it with --tflops", c.Name, acc.Model)
		}
	default:
		known, err := training.Lookup(fl.accelerator)
		switch {
		case err == nil:
			acc = known
		case custom:
			acc = training.Accelerator{Accelerator: model.Accelerator{Model: fl.accelerator}}
			if !cmd.Flags().Changed("watts") {
				return acc, usage("accelerator %q is not known: give its board power with --watts too (0 if unknown)", fl.accelerator)
			}
		default:
			return acc, usage("%w", err)
		}
	}
	if custom {
		acc.BF16TFLOPS = fl.tflops
	}
	if cmd.Flags().Changed("watts") {
		acc.Watts = fl.watts
	}
	return acc, nil
}

// writePlan prints p for people.
func writePlan(w io.Writer, p *training.Plan) error {
	in := p.Inputs
	a := in.Accelerator
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-19s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "Training plan: %s parameters × %s tokens, dense transformer (6·N·D)\n", count(in.Params), count(in.Tokens))
	line("compute", "%.3g FLOP", p.FLOPs)
	vendor := ""
	if a.Vendor != "" {
		vendor = " (" + a.Vendor + ")"
	}
	power := "power unknown"
	if a.Watts > 0 {
		power = fmt.Sprintf("%d W", a.Watts)
	}
	line("accelerator", "%s%s: %s TFLOP/s peak dense BF16, %s", a.Model, vendor, strconv.FormatFloat(a.BF16TFLOPS, 'f', -1, 64), power)
	if a.Unit != "" {
		line("", "%s", a.Unit)
	}
	line("MFU (assumed)", "%.2f, so %.1f TFLOP/s sustained per accelerator", in.MFU, p.SustainedTFLOPS)
	line("accelerator-hours", "%s", thousands(math.Round(p.AcceleratorHours)))
	line("wall-clock", "%s h (%.1f days) on %s accelerators", thousands(math.Round(p.WallClockHours)), p.WallClockHours/24,
		thousands(float64(in.Accelerators)))
	if a.Watts > 0 {
		line("energy", "%s kWh: accelerator-hours × %d W × PUE %.2f (rated power throughout)", thousands(math.Round(p.EnergyKWh)), a.Watts, in.PUE)
	} else {
		line("energy", "unknown: give the accelerator's board power with --watts")
	}
	switch {
	case a.Watts == 0:
		line("CO2e", "unknown: the energy is")
	case in.GridIntensity > 0:
		line("CO2e", "%s kg at %s gCO2e/kWh", thousands(math.Round(p.CO2eKg)), strconv.FormatFloat(in.GridIntensity, 'f', -1, 64))
	default:
		line("CO2e", "not estimated: give the site's grid intensity with --grid-intensity (gCO2e/kWh)")
	}
	line("grant to ask for", "%s accelerator-hours (the estimate + %.0f %% margin)", thousands(p.AskHours), in.Margin*100)
	line("", "= %s accelerator-seconds, the unit usine's grants are kept in", thousands(float64(p.AskSeconds)))
	b.WriteString("MFU, PUE and the margin are assumptions, not measurements: state them in the proposal.\n")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("plan: write: %w", err)
	}
	return nil
}

// count writes a large count with a short scale suffix: 30 B, 4 T.
func count(x float64) string {
	for _, s := range []struct {
		div  float64
		name string
	}{{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}} {
		if math.Abs(x) >= s.div {
			return strconv.FormatFloat(x/s.div, 'g', 4, 64) + " " + s.name
		}
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}

// thousands writes a whole number with commas between thousands.
func thousands(x float64) string {
	s := strconv.FormatFloat(math.Round(x), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
