package training_test

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/training"
)

// round is an accelerator with round figures, so that the arithmetic can
// be checked by hand.
var round = training.Accelerator{Accelerator: model.Accelerator{Model: "R", BF16TFLOPS: 1000, Watts: 1000}}

func TestEstimate(t *testing.T) {
	t.Parallel()
	// 6 × 1e9 × 3e9 = 1.8e19 FLOP; 1000 TFLOP/s × 0.5 = 5e14 FLOP/s, 1.8e18
	// an hour: 10 accelerator-hours, 2 h on 5; 10 h × 1 kW × 1.5 = 15 kWh;
	// × 200 g/kWh = 3 kg; 10 h × 1.25 = 12.5, asked as 13 h = 46800 s.
	in := training.Inputs{Params: 1e9, Tokens: 3e9, Accelerator: round, Accelerators: 5, MFU: 0.5, PUE: 1.5, Margin: 0.25, GridIntensity: 200}
	got, err := training.Estimate(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &training.Plan{Inputs: in, FLOPs: 1.8e19, SustainedTFLOPS: 500, AcceleratorHours: 10, WallClockHours: 2,
		EnergyKWh: 15, CO2eKg: 3, AskHours: 13, AskSeconds: 46800}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-12, 0)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func TestEstimateRefusesBadInputs(t *testing.T) {
	t.Parallel()
	ok := training.Inputs{Params: 1e9, Tokens: 1e9, Accelerator: round, Accelerators: 1, MFU: 0.4, PUE: 1.2, Margin: 0.2}
	for _, tc := range []struct {
		name    string
		edit    func(*training.Inputs)
		wantMsg string
	}{
		{"no parameters", func(in *training.Inputs) { in.Params = 0 }, "parameters 0: give the model's parameter count"},
		{"negative tokens", func(in *training.Inputs) { in.Tokens = -1 }, "tokens -1"},
		{"infinite tokens", func(in *training.Inputs) { in.Tokens = math.Inf(1) }, "tokens +Inf"},
		{"an accelerator without a throughput", func(in *training.Inputs) { in.Accelerator.BF16TFLOPS = 0 }, `accelerator "R" has no peak BF16 throughput`},
		{"no accelerators", func(in *training.Inputs) { in.Accelerators = 0 }, "0 accelerators"},
		{"MFU as a percentage", func(in *training.Inputs) { in.MFU = 40 }, "MFU 40 is not in (0, 1]"},
		{"PUE under one", func(in *training.Inputs) { in.PUE = 0.9 }, "PUE 0.9 is not in [1, 5]"},
		{"negative margin", func(in *training.Inputs) { in.Margin = -0.1 }, "margin -0.1"},
		{"negative grid intensity", func(in *training.Inputs) { in.GridIntensity = -5 }, "grid intensity -5"},
		{"a run no grant can hold", func(in *training.Inputs) { in.Params, in.Tokens = 1e30, 1e30 }, "more than a grant can hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := ok
			tc.edit(&in)
			_, err := training.Estimate(in)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Estimate: %v, want an error saying %q", err, tc.wantMsg)
			}
		})
	}
}

// TestTildeOpen checks the method against a public figure: TildeOpen, a
// 30-billion-parameter dense model trained by Tilde (a Latvian SME) on
// LUMI's AMD MI250X, with about 2 million GPU-hours (the figure issue 5
// cites). Inputs, and which are assumptions, are in docs/PLAN.md:
//   - N = 30e9 (the model card: a 30B dense decoder-only transformer);
//   - D = 450,000 updates × 4,718,592 tokens a batch ≈ 2.12e12 (the model
//     card's training details);
//   - 768 accelerators (the model card's "768 AMD MI250X GPUs", read as
//     GCDs, the unit Slurm and LUMI count as GPUs);
//   - MFU 0.3: an assumption; no MFU for this run has been published.
//
// The estimate must land within 10 % of 2 million GCD-hours, and the
// grant it advises (20 % margin) must cover that figure.
func TestTildeOpen(t *testing.T) {
	t.Parallel()
	const published = 2e6 // GPU-hours, where a GPU is one MI250X GCD
	acc, err := training.Lookup("MI250X")
	if err != nil {
		t.Fatal(err)
	}
	p, err := training.Estimate(training.Inputs{Params: 30e9, Tokens: 450_000 * 4_718_592, Accelerator: acc,
		Accelerators: 768, MFU: 0.3, PUE: training.DefaultPUE, Margin: training.DefaultMargin})
	if err != nil {
		t.Fatal(err)
	}
	if rel := p.AcceleratorHours/published - 1; math.Abs(rel) > 0.10 {
		t.Errorf("estimate %.0f GCD-hours is %+.1f %% from the published %.0f; want within 10 %%", p.AcceleratorHours, rel*100, published)
	}
	if p.AskHours < published {
		t.Errorf("the grant advised, %.0f GCD-hours, would not have covered the %.0f used", p.AskHours, published)
	}
	// Counting whole MI250X modules instead (twice the throughput each)
	// halves the hours: the unit matters.
	module := acc
	module.BF16TFLOPS *= 2
	q, err := training.Estimate(training.Inputs{Params: 30e9, Tokens: 450_000 * 4_718_592, Accelerator: module,
		Accelerators: 384, MFU: 0.3, PUE: training.DefaultPUE, Margin: training.DefaultMargin})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.AcceleratorHours / q.AcceleratorHours; math.Abs(r-2) > 1e-9 {
		t.Errorf("GCD-hours / module-hours = %g, want 2", r)
	}
	t.Logf("TildeOpen: %.3g FLOP, %.0f GCD-hours (%+.1f %%), %.0f days on 768 GCDs, %.0f MWh, ask %.0f",
		p.FLOPs, p.AcceleratorHours, (p.AcceleratorHours/published-1)*100, p.WallClockHours/24, p.EnergyKWh/1000, p.AskHours)
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for _, m := range training.Models() {
		a, err := training.Lookup(strings.ToLower(m))
		if err != nil || a.Model != m || a.BF16TFLOPS <= 0 || a.Watts <= 0 {
			t.Errorf("Lookup(%q) = %+v, %v", strings.ToLower(m), a, err)
		}
	}
	if _, err := training.Lookup("TPUv9"); err == nil || !strings.Contains(err.Error(), "known: A100, H100") {
		t.Errorf("Lookup of an unknown model: %v", err)
	}
}

func TestParseCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "30e9", want: 30e9},
		{in: "30000000000", want: 30e9},
		{in: "30B", want: 30e9},
		{in: "30b", want: 30e9},
		{in: "1.5T", want: 1.5e12},
		{in: "7M", want: 7e6},
		{in: "2G", want: 2e9},
		{in: "4_000K", want: 4e6},
		{in: " 4e12 ", want: 4e12},
		{in: "thirty", wantErr: true},
		{in: "", wantErr: true},
		{in: "B", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
	} {
		got, err := training.ParseCount(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("ParseCount(%q) = %g, %v; want %g, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
