package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/training"
)

func TestPlanCommand(t *testing.T) {
	t.Parallel()
	mi250x := []string{"plan", "--params", "30e9", "--tokens", "4e12", "--accelerator", "MI250X", "--accelerators", "512", "--mfu", "0.3"}
	with := func(extra ...string) []string { return append(append([]string{}, mi250x...), extra...) }
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{"the issue's example", mi250x, ExitOK, []string{
			"30 B parameters × 4 T tokens", "7.2e+23 FLOP", "one GCD", "3,481,288", "6,799 h (283.3 days) on 512 accelerators",
			"1,169,713 kWh", "4,177,546 accelerator-hours (the estimate + 20 % margin)", "--grid-intensity"}, ""},
		{"suffixed counts and a grid intensity", []string{"plan", "--params", "30B", "--tokens", "4T", "--accelerator", "mi250x",
			"--accelerators", "512", "--mfu", "0.3", "--grid-intensity", "100"}, ExitOK, []string{"3,481,288", "116,971 kg at 100 gCO2e/kWh"}, ""},
		{"an accelerator from a cluster file", []string{"plan", "--params", "7B", "--tokens", "1T", "--accelerator", "H100",
			"--cluster", "laptop", "--accelerators", "8"}, ExitOK, []string{"H100 (nvidia): 989 TFLOP/s", "29,491", "3,686 h (153.6 days) on 8"}, ""},
		{"an accelerator described by hand", []string{"plan", "--params", "1B", "--tokens", "100B", "--accelerator", "X1",
			"--tflops", "400", "--watts", "0", "--accelerators", "8"}, ExitOK, []string{"X1: 400 TFLOP/s peak dense BF16, power unknown", "energy              unknown"}, ""},
		{"a known figure overridden", with("--tflops", "383", "--watts", "560", "--accelerators", "256"), ExitOK,
			[]string{"383 TFLOP/s", "560 W", "1,740,644"}, ""},
		{"params missing", []string{"plan", "--tokens", "4e12", "--accelerator", "H100", "--accelerators", "8"}, ExitUsage, nil,
			"--params is required; give the model's parameter count"},
		{"accelerators missing", []string{"plan", "--params", "1B", "--tokens", "4e12", "--accelerator", "H100"}, ExitUsage, nil,
			"--accelerators is required"},
		{"accelerator missing", []string{"plan", "--params", "1B", "--tokens", "4e12", "--accelerators", "8"}, ExitUsage, nil,
			"--accelerator is required; give one of A100, H100"},
		{"a count that is not one", with("--tokens", "lots"), ExitUsage, nil, `--tokens: "lots" is not a number`},
		{"an unknown accelerator", with("--accelerator", "TPUv9"), ExitUsage, nil, `unknown accelerator "TPUv9"; known: A100`},
		{"an unknown accelerator without its power", with("--accelerator", "X1", "--tflops", "400"), ExitUsage, nil, "give its board power with --watts"},
		{"an accelerator the cluster lacks", with("--cluster", "laptop"), ExitUsage, nil, `cluster laptop has no accelerator "MI250X"; it has H100`},
		{"MFU given in percent", with("--mfu", "30"), ExitUsage, nil, "MFU 30 is not in (0, 1]"},
		{"zero accelerators", with("--accelerators", "0"), ExitUsage, nil, "0 accelerators"},
		{"a bad output format", with("-o", "xml"), ExitUsage, nil, `-o "xml": give text or json`},
		{"a stray argument", with("extra"), ExitUsage, nil, "give the run with flags"},
		{"an unknown flag", with("--gpus", "8"), ExitUsage, nil, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errs, code := run(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errs)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errs, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errs)
			}
		})
	}
}

// TestPlanJSON: -o json is the training.Plan the library computes.
func TestPlanJSON(t *testing.T) {
	t.Parallel()
	out, errs, code := run(t, "plan", "--params", "30e9", "--tokens", "2123366400000", "--accelerator", "MI250X",
		"--accelerators", "768", "--mfu", "0.3", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got training.Plan
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-o json is not a plan: %v\n%s", err, out)
	}
	acc, err := training.Lookup("MI250X")
	if err != nil {
		t.Fatal(err)
	}
	want, err := training.Estimate(training.Inputs{Params: 30e9, Tokens: 2123366400000, Accelerator: acc, Accelerators: 768,
		MFU: 0.3, PUE: training.DefaultPUE, Margin: training.DefaultMargin})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -1234: "-1,234", 15039165600: "15,039,165,600"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%g) = %q, want %q", in, got, want)
		}
	}
}
