package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpComparesThePolicies(t *testing.T) {
	t.Parallel()
	out, errs, code := run(t, "up", "--jobs", "300")
	if code != ExitOK {
		t.Fatalf("usine up: exit %d\n%s", code, errs)
	}
	for _, want := range []string{`factory "laptop"`, "fifo", "easy", "usine", "Try next"} {
		if !strings.Contains(out, want) {
			t.Errorf("usine up output lacks %q:\n%s", want, out)
		}
	}
	if _, errs, code := run(t, "up", "--policy", "sjf"); code != ExitUsage || !strings.Contains(errs, `unknown policy "sjf"`) {
		t.Errorf("an unknown policy: exit %d, %s", code, errs)
	}
}

func TestSimLoadRescalesArrivals(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.csv")
	out, errs, code := run(t, "trace", "gen", "--cluster", "laptop", "--jobs", "400", "--seed", "2", "--load", "0.3")
	if code != ExitOK {
		t.Fatalf("trace gen: %s", errs)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	queue := func(load string) float64 {
		t.Helper()
		out, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--policy", "easy", "--json", "--load", load)
		if code != ExitOK {
			t.Fatalf("sim --load %s: exit %d: %s", load, code, errs)
		}
		if !strings.Contains(errs, "arrivals rescaled") {
			t.Errorf("sim --load %s does not say it rescaled arrivals: %s", load, errs)
		}
		var res struct {
			Policies []struct {
				AvgQueue float64 `json:"avg_queue_s"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Policies) != 1 {
			t.Fatalf("sim --json: %v\n%s", err, out)
		}
		return res.Policies[0].AvgQueue
	}
	light, heavy := queue("0.2"), queue("1.5")
	if !(heavy > light) {
		t.Errorf("average queueing delay at load 1.5 (%v s) is not above that at load 0.2 (%v s)", heavy, light)
	}
	if _, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--load", "-1"); code != ExitUsage || !strings.Contains(errs, "--load") {
		t.Errorf("a negative load: exit %d, %s", code, errs)
	}
}
