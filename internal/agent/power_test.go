package agent

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
)

func TestMeterIntegratesReadingsOverTheRun(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type reading struct{ at, watts float64 }
	for _, tc := range []struct {
		name     string
		readings []reading
		end      float64
		wantJ    float64
		wantOK   bool
	}{
		{"a steady draw: the first reading holds back to the start, the last forward to the end",
			[]reading{{0.5, 100}, {1.5, 100}, {2.5, 100}}, 3, 300, true},
		{"a draw that ramps up is counted by trapezoids",
			[]reading{{0, 0}, {1, 100}, {2, 200}}, 2, 200, true},
		{"a reading after the end takes back what it counted past the end",
			[]reading{{1, 100}, {2.5, 100}}, 2, 200, true},
		{"a reading older than one counted is ignored",
			[]reading{{1, 100}, {0.5, 1000}, {2, 100}}, 2, 200, true},
		{"a reading from before the start counts from the start",
			[]reading{{-1, 100}, {1, 100}}, 1, 100, true},
		{"no reading while it ran: no measurement", nil, 2, 0, false},
	} {
		m := &meter{start: t0}
		for _, r := range tc.readings {
			m.sample(at(r.at), r.watts)
		}
		j, ok := m.end(at(tc.end))
		if math.Abs(j-tc.wantJ) > 1e-9 || ok != tc.wantOK {
			t.Errorf("%s: %g J, ok %v; want %g J, %v", tc.name, j, ok, tc.wantJ, tc.wantOK)
		}
	}
}

// powerAgent runs an agent of 8 emulated H100s that reads power every
// 10 ms, with change applied to its configuration.
func powerAgent(t *testing.T, f *fakeServer, change func(*Config)) *Agent {
	t.Helper()
	cfg := Config{Server: f.url, Token: "t", StateDir: filepath.Join(t.TempDir(), "state"), Grace: 200 * time.Millisecond, Address: "x",
		StopOnExit: true, Node: model.Node{Name: "n1", CPUs: 4}, Devices: h100(t, 8), PowerEvery: 10 * time.Millisecond}
	change(&cfg)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// runTimes is how long the agent says a run lasted, seconds, from its
// record (milliseconds; the report rounds to seconds).
func runTimes(t *testing.T, a *Agent, job string) float64 {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, r := range a.runs {
		if k.Job == job {
			return float64(r.rec.End-r.rec.Start) / 1000
		}
	}
	t.Fatalf("no record of job %s", job)
	return 0
}

func TestARunsEnergyIsMeasuredOverItsOwnDevices(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	// Device i draws 100·(i+1) W: which devices a run is charged for shows.
	a := powerAgent(t, f, func(c *Config) {
		c.Power = func(context.Context) ([]float64, bool) {
			return []float64{100, 200, 300, 400, 500, 600, 700, 800}, true
		}
	})
	two := job("1", 1, "sleep 0.3\n", 2)   // devices 0 and 1: 300 W
	three := job("2", 1, "sleep 0.4\n", 3) // devices 2, 3 and 4: 1,200 W
	f.set(1, []api.Run{two, three})
	for _, tc := range []struct {
		job   string
		watts float64
	}{{"1", 300}, {"2", 1200}} {
		end := f.waitEnd(tc.job, 0)
		want := tc.watts * runTimes(t, a, tc.job)
		if math.Abs(end.EnergyJ-want) > 0.01*want {
			t.Errorf("job %s: %g J; want %g W × its run time = %g J (±1%%)", tc.job, end.EnergyJ, tc.watts, want)
		}
	}
	f.mu.Lock()
	reg := f.lastReg
	f.mu.Unlock()
	if reg.Power != "emulated" || reg.Limits == nil || (reg.Limits.Enforced == (reg.Limits.Reason != "")) {
		t.Errorf("registration says power %q, limits %+v; want power read from emulated devices and limits either enforced or with a reason", reg.Power, reg.Limits)
	}
}

func TestEmulatedDevicesEnergyComesFromTheirSyntheticDraw(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	a := powerAgent(t, f, func(c *Config) {
		for i := range c.Devices {
			c.Devices[i].SyntheticWatts = 250
		}
	})
	f.set(1, []api.Run{job("1", 1, "sleep 0.2\n", 4)})
	end := f.waitEnd("1", 0)
	want := 4 * 250 * runTimes(t, a, "1")
	if math.Abs(end.EnergyJ-want) > 0.01*want {
		t.Errorf("%g J; want 4 × 250 W × its run time = %g J (±1%%)", end.EnergyJ, want)
	}
}

func TestRunsWithoutReadablePowerReportNoEnergy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"emulated devices without a synthetic draw", func(*Config) {}},
		{"a reader that always fails", func(c *Config) {
			c.Power = func(context.Context) ([]float64, bool) { return nil, false }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t)
			powerAgent(t, f, tc.change)
			f.set(1, []api.Run{job("1", 1, "sleep 0.05\n", 2)})
			if end := f.waitEnd("1", 0); end.EnergyJ != 0 {
				t.Errorf("%g J reported; want none (not measured)", end.EnergyJ)
			}
			f.mu.Lock()
			power := f.lastReg.Power
			f.mu.Unlock()
			if power != "" {
				t.Errorf("registration says power %q; want none", power)
			}
		})
	}
}
