package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"seconds alone", fmtDuration(45), "45s"},
		{"minutes and seconds", fmtDuration(133), "2m13s"},
		{"hours pad minutes and seconds", fmtDuration(3*3600 + 2*60 + 5), "3h02m05s"},
		{"a day and more as Slurm prints it", fmtDuration(86400 + 2*3600 + 3*60 + 4), "1-02:03:04"},
		{"a negative duration is none", fmtDuration(-5), "0s"},
		{"MiB that are not whole GiB", fmtMiB(1500), "1500M"},
		{"whole GiB", fmtMiB(64 << 10), "64G"},
		{"whole TiB", fmtMiB(2 << 20), "2T"},
		{"no memory", fmtMiB(0), "-"},
		{"consecutive IDs make ranges", compactIDs([]string{"12", "13", "14", "18", "20", "19"}), "12-14,18-20"},
		{"a lone ID", compactIDs([]string{"7"}), "7"},
		{"IDs that are no numbers come last", compactIDs([]string{"b", "3", "007"}), "3,b,007"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestFmtTimeIsLocalAndShortensRecentTimes(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, loc)
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"today: the clock", time.Date(2026, 11, 24, 9, 5, 7, 0, loc), "09:05:07"},
		{"today in UTC prints in the local zone", time.Date(2026, 11, 24, 8, 5, 7, 0, time.UTC), "09:05:07"},
		{"this season: day and clock", time.Date(2026, 11, 2, 9, 5, 0, 0, loc), "Nov 02 09:05"},
		{"long ago: the date", time.Date(2025, 1, 2, 9, 5, 0, 0, loc), "2025-01-02"},
	}
	for _, tc := range tests {
		if got := fmtTime(tc.t.Unix(), now); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := fmtTime(0, now); got != "-" {
		t.Errorf("no time: got %q, want -", got)
	}
}

func TestParsers(t *testing.T) {
	t.Parallel()
	mem := []struct {
		in   string
		want int64
		err  bool
	}{
		{"4000", 4000, false}, {"500M", 500, false}, {"32G", 32 << 10, false}, {"1T", 1 << 20, false},
		{"32GB", 32 << 10, false}, {"32GiB", 32 << 10, false}, {"1k", 1, false}, {"2049K", 3, false},
		{"", 0, true}, {"G", 0, true}, {"-1G", 0, true}, {"lots", 0, true}, {"9999999T", 0, true},
	}
	for _, tc := range mem {
		got, err := parseMemory(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	sig := []struct {
		in     string
		want   string
		before int64
		err    bool
	}{
		{"USR1", "USR1", 60, false}, {"SIGUSR2@30", "USR2", 30, false}, {"B:10@120", "USR1", 120, false},
		{"TERM@x", "", 0, true}, {"NOPE", "", 0, true}, {"X:USR1", "", 0, true},
	}
	for _, tc := range sig {
		got, before, err := parseSignalSpec(tc.in)
		if (err != nil) != tc.err || got != tc.want || before != tc.before {
			t.Errorf("parseSignalSpec(%q) = %s, %d, %v; want %s, %d, error %v", tc.in, got, before, err, tc.want, tc.before, tc.err)
		}
	}
	states, err := parseStates("PD,r,ended")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pending", "running", "completed", "failed", "cancelled", "timeout"}, states); diff != "" {
		t.Errorf("parseStates (-want +got):\n%s", diff)
	}
	exp := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false}, {"2w", 14 * 24 * time.Hour, false}, {"12h", 12 * time.Hour, false},
		{"90m", 90 * time.Minute, false}, {"0d", 0, true}, {"soon", 0, true}, {"-1h", 0, true},
	}
	for _, tc := range exp {
		got, err := parseExpiry(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNodeStateAsSinfoSaysIt(t *testing.T) {
	t.Parallel()
	node := func(st model.NodeState, used int, jobs ...string) *api.NodeView {
		return &api.NodeView{Node: store.Node{Node: model.Node{State: st, Accelerators: 8}}, Allocated: used, Jobs: jobs}
	}
	tests := []struct {
		name string
		n    *api.NodeView
		want string
	}{
		{"up with nothing running", node(model.NodeUp, 0), "idle"},
		{"up and partly used", node(model.NodeUp, 3, "1"), "mixed"},
		{"up and full", node(model.NodeUp, 8, "1"), "allocated"},
		{"up with a CPU-only job", node(model.NodeUp, 0, "1"), "mixed"},
		{"drained with jobs still running", node(model.NodeDrain, 8, "1"), "draining"},
		{"drained and empty", node(model.NodeDrain, 0), "drained"},
		{"down", node(model.NodeDown, 0), "down"},
	}
	for _, tc := range tests {
		if got := nodeState(tc.n); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestTablesAlignAndKeepCellsOnOneLine(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	tb := (&output{}).table(&b, "A", "LONG HEADER")
	tb.row("x\ty", "multi\nline")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "A    LONG HEADER\nx y  multi line\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
