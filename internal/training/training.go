// Package training estimates what training a model costs, for a team
// writing a grant proposal: from the parameters N and training tokens D of
// a dense transformer (6·N·D floating-point operations), an accelerator's
// peak dense BF16 throughput and an assumed model FLOPs utilisation (MFU),
// it computes accelerator-hours, wall-clock time on a number of
// accelerators, energy, CO2e, and the grant to ask for with a margin.
// docs/PLAN.md describes the method, its assumptions and how it compares
// with a public figure (TildeOpen on LUMI).
//
// Every figure is an estimate from stated inputs: MFU, PUE, the margin and
// the grid intensity are assumptions the caller gives, not measurements.
package training

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/model"
)

// Defaults for the assumptions.
const (
	DefaultMFU    = 0.4 // a well-tuned dense transformer on current accelerators
	DefaultPUE    = 1.2 // facility energy over IT energy
	DefaultMargin = 0.2 // added to the estimate in the grant asked for
	// FLOPsPerParamToken is the 6 of 6·N·D: a forward (2) and backward (4)
	// pass per parameter per token, for dense transformers, leaving out
	// attention's quadratic term and activation recomputation.
	FLOPsPerParamToken = 6
)

// Accelerator is one accelerator as usine counts it, with a word on what
// one unit is where that is not obvious.
type Accelerator struct {
	model.Accelerator
	Unit string `json:"unit,omitempty"`
}

// Catalogue lists accelerators by model with their vendors' published peak
// dense (not sparse) BF16 throughput and board power. For AMD's MI250X the
// unit is one GCD: an MI250X module holds two graphics compute dies, which
// ROCm, Slurm and LUMI's accounting each count as one GPU; the module's
// 383 TFLOP/s, 560 W and 128 GiB are split evenly.
func Catalogue() []Accelerator {
	return []Accelerator{
		{Accelerator: model.Accelerator{Vendor: "nvidia", Model: "A100", MemoryGiB: 80, BF16TFLOPS: 312, Watts: 400}},
		{Accelerator: model.Accelerator{Vendor: "nvidia", Model: "H100", MemoryGiB: 80, BF16TFLOPS: 989, Watts: 700}},
		{Accelerator: model.Accelerator{Vendor: "nvidia", Model: "H200", MemoryGiB: 141, BF16TFLOPS: 989, Watts: 700}},
		{Accelerator: model.Accelerator{Vendor: "amd", Model: "MI250X", MemoryGiB: 64, BF16TFLOPS: 191.5, Watts: 280},
			Unit: "one GCD, half an MI250X module; Slurm and LUMI count each GCD as one GPU"},
		{Accelerator: model.Accelerator{Vendor: "amd", Model: "MI300X", MemoryGiB: 192, BF16TFLOPS: 1307, Watts: 750}},
	}
}

// Lookup finds model m in the catalogue, ignoring case.
func Lookup(m string) (Accelerator, error) {
	for _, a := range Catalogue() {
		if strings.EqualFold(a.Model, m) {
			return a, nil
		}
	}
	return Accelerator{}, fmt.Errorf("unknown accelerator %q; known: %s (or describe it with its peak BF16 TFLOP/s and watts)",
		m, strings.Join(Models(), ", "))
}

// Inputs describe a training run.
type Inputs struct {
	Params       float64     `json:"params"`       // N, model parameters
	Tokens       float64     `json:"tokens"`       // D, training tokens
	Accelerator  Accelerator `json:"accelerator"`  // needs BF16TFLOPS; Watts 0 = energy unknown
	Accelerators int         `json:"accelerators"` // how many train at once
	MFU          float64     `json:"mfu"`          // share of peak BF16 sustained, (0, 1]
	PUE          float64     `json:"pue"`          // ≥ 1
	Margin       float64     `json:"margin"`       // ≥ 0, added to the ask
	// GridIntensity is gCO2e per kWh; 0 means unknown (no CO2e figure).
	GridIntensity float64 `json:"grid_gco2e_per_kwh,omitempty"`
}

// Plan is the estimate.
type Plan struct {
	Inputs Inputs  `json:"inputs"`
	FLOPs  float64 `json:"flops"` // 6·N·D
	// SustainedTFLOPS is what one accelerator delivers: peak × MFU.
	SustainedTFLOPS  float64 `json:"sustained_tflops"`
	AcceleratorHours float64 `json:"accelerator_hours"`
	WallClockHours   float64 `json:"wall_clock_hours"` // on Inputs.Accelerators
	// EnergyKWh is accelerator-hours × board power × PUE: the facility's
	// energy with every accelerator at rated power. 0 when Watts is.
	EnergyKWh float64 `json:"energy_kwh"`
	CO2eKg    float64 `json:"co2e_kg,omitempty"` // 0 when GridIntensity is
	// AskHours is AcceleratorHours × (1 + Margin), rounded up to a whole
	// hour; AskSeconds is the same in accelerator-seconds, the unit grants
	// are stored in.
	AskHours   float64 `json:"ask_accelerator_hours"`
	AskSeconds int64   `json:"ask_accelerator_s"`
}

// Estimate computes the plan, or says which input is wrong and how.
func Estimate(in Inputs) (*Plan, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	p := &Plan{Inputs: in}
	p.FLOPs = FLOPsPerParamToken * in.Params * in.Tokens
	p.SustainedTFLOPS = in.Accelerator.BF16TFLOPS * in.MFU
	p.AcceleratorHours = p.FLOPs / (p.SustainedTFLOPS * 1e12) / 3600
	p.WallClockHours = p.AcceleratorHours / float64(in.Accelerators)
	p.EnergyKWh = p.AcceleratorHours * float64(in.Accelerator.Watts) / 1000 * in.PUE
	p.CO2eKg = p.EnergyKWh * in.GridIntensity / 1000
	p.AskHours = math.Ceil(p.AcceleratorHours * (1 + in.Margin))
	if p.AskHours*3600 >= math.MaxInt64/2 {
		return nil, fmt.Errorf("the run needs %.3g accelerator-hours, more than a grant can hold; check --params and --tokens", p.AskHours)
	}
	p.AskSeconds = int64(p.AskHours) * 3600
	return p, nil
}

func (in *Inputs) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if !finite(in.Params) || in.Params <= 0 {
		bad("parameters %g: give the model's parameter count, such as 30e9 or 30B", in.Params)
	}
	if !finite(in.Tokens) || in.Tokens <= 0 {
		bad("tokens %g: give the training tokens, such as 4e12 or 4T", in.Tokens)
	}
	if a := in.Accelerator; !finite(a.BF16TFLOPS) || a.BF16TFLOPS <= 0 {
		bad("accelerator %q has no peak BF16 throughput (%g TFLOP/s); give it", a.Model, a.BF16TFLOPS)
	}
	if in.Accelerator.Watts < 0 {
		bad("accelerator %q draws %d W; give 0 (unknown) or more", in.Accelerator.Model, in.Accelerator.Watts)
	}
	if in.Accelerators <= 0 {
		bad("%d accelerators: give how many train at once, 1 or more", in.Accelerators)
	}
	if !finite(in.MFU) || in.MFU <= 0 || in.MFU > 1 {
		bad("MFU %g is not in (0, 1]: it is the share of peak throughput sustained, such as 0.4", in.MFU)
	}
	if !finite(in.PUE) || in.PUE < 1 || in.PUE > 5 {
		bad("PUE %g is not in [1, 5]: it is facility energy over IT energy, such as 1.2", in.PUE)
	}
	if !finite(in.Margin) || in.Margin < 0 || in.Margin > 10 {
		bad("margin %g is not in [0, 10]: it is a share added to the estimate, such as 0.2 for 20 %%", in.Margin)
	}
	if !finite(in.GridIntensity) || in.GridIntensity < 0 {
		bad("grid intensity %g gCO2e/kWh: give 0 (unknown) or more", in.GridIntensity)
	}
	return errors.Join(errs...)
}

// ParseCount reads a count such as 30e9, 30000000000, 30B, 1.5T or 7M:
// suffixes K, M, B (or G) and T multiply by 10³, 10⁶, 10⁹ and 10¹².
func ParseCount(s string) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	if n := len(t); n > 0 {
		switch strings.ToUpper(t[n-1:]) {
		case "K":
			mult = 1e3
		case "M":
			mult = 1e6
		case "B", "G":
			mult = 1e9
		case "T":
			mult = 1e12
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number; write it as 30e9, 30000000000 or 30B", s)
	}
	return f * mult, nil
}

// Models lists the catalogue's model names.
func Models() []string {
	var names []string
	for _, a := range Catalogue() {
		names = append(names, a.Model)
	}
	return names
}
