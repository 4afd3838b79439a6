package usage_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
)

var tree = []model.Project{
	{Name: "cons", Shares: 1},
	{Name: "lv", Parent: "cons", Shares: 1},
	{Name: "lv-team", Parent: "lv", Shares: 1},
	{Name: "fi", Parent: "cons", Shares: 1},
	{Name: "solo", Shares: 1},
}

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

// records: an hour of 8 H100 by the Latvian team, measured; two hours of 4
// MI250X by fi across a month boundary, estimated; a solo job on a class
// without rated power at a site without a grid intensity.
var records = []usage.Record{
	{Job: "j1", User: "anna", Project: "lv-team", Site: "lumi", Model: "H100", Programme: "euro", Start: at("2025-01-10T10:00:00Z"),
		End: at("2025-01-10T11:00:00Z"), Accelerators: 8, CPUs: 64, EnergyKWh: 5, Measured: true},
	{Job: "j2", User: "juha", Project: "fi", Site: "lumi", Model: "MI250X", Programme: "euro", Start: at("2025-01-31T23:00:00Z"),
		End: at("2025-02-01T01:00:00Z"), Accelerators: 4, CPUs: 32},
	{Job: "j3", User: "sol", Project: "solo", Site: "home", Model: "G2", Programme: "private", Start: at("2025-02-03T00:00:00Z"),
		End: at("2025-02-03T00:30:00Z"), Accelerators: 1, CPUs: 2},
}

// cpuOnly is an hour of 16 CPUs and no accelerator.
var cpuOnly = usage.Record{Job: "c1", User: "sol", Project: "solo", Site: "home", Programme: "private",
	Start: at("2025-02-04T00:00:00Z"), End: at("2025-02-04T01:00:00Z"), CPUs: 16}

var opts = usage.Options{
	Projects:      tree,
	RatedWatts:    map[string]float64{"H100": 700, "MI250X": 500},
	GridIntensity: map[string]float64{"lumi": 100},
}

func TestSum(t *testing.T) {
	t.Parallel()
	// j2's estimate: 4 × 500 W × 0.7 × 2 h = 2.8 kWh, 1.4 in each month.
	for _, tc := range []struct {
		name   string
		by     []usage.Key
		rollUp bool
		want   [][]string // Cells of each row
	}{
		{name: "by project", by: []usage.Key{usage.ByProject}, want: [][]string{
			{"fi", "1", "8.00", "64.00", "2.00", "2.80", "estimated", "0.28", "0.00", "0.00"},
			{"lv-team", "1", "8.00", "64.00", "1.00", "5.00", "measured", "0.50", "0.00", "0.00"},
			{"solo", "1", "0.50", "1.00", "0.50", "0.00", "none", "0.00", "0.50", "0.00"},
		}},
		{name: "rolled up the project tree, a consortium holds its members' use", by: []usage.Key{usage.ByProject}, rollUp: true, want: [][]string{
			{"cons", "2", "16.00", "128.00", "3.00", "7.80", "mixed", "0.78", "0.00", "0.00"},
			{"fi", "1", "8.00", "64.00", "2.00", "2.80", "estimated", "0.28", "0.00", "0.00"},
			{"lv", "1", "8.00", "64.00", "1.00", "5.00", "measured", "0.50", "0.00", "0.00"},
			{"lv-team", "1", "8.00", "64.00", "1.00", "5.00", "measured", "0.50", "0.00", "0.00"},
			{"solo", "1", "0.50", "1.00", "0.50", "0.00", "none", "0.00", "0.50", "0.00"},
		}},
		{name: "by consortium and month, a job split at the month boundary and counted where it ended",
			by: []usage.Key{usage.ByConsortium, usage.ByMonth}, want: [][]string{
				{"cons", "2025-01", "1", "12.00", "96.00", "2.00", "6.40", "mixed", "0.64", "0.00", "0.00"},
				{"cons", "2025-02", "1", "4.00", "32.00", "1.00", "1.40", "estimated", "0.14", "0.00", "0.00"},
				{"solo", "2025-02", "1", "0.50", "1.00", "0.50", "0.00", "none", "0.00", "0.50", "0.00"},
			}},
		{name: "by site and class", by: []usage.Key{usage.BySite, usage.ByModel}, want: [][]string{
			{"home", "G2", "1", "0.50", "1.00", "0.50", "0.00", "none", "0.00", "0.50", "0.00"},
			{"lumi", "H100", "1", "8.00", "64.00", "1.00", "5.00", "measured", "0.50", "0.00", "0.00"},
			{"lumi", "MI250X", "1", "8.00", "64.00", "2.00", "2.80", "estimated", "0.28", "0.00", "0.00"},
		}},
		{name: "by user and programme", by: []usage.Key{usage.ByProgramme, usage.ByUser}, want: [][]string{
			{"euro", "anna", "1", "8.00", "64.00", "1.00", "5.00", "measured", "0.50", "0.00", "0.00"},
			{"euro", "juha", "1", "8.00", "64.00", "2.00", "2.80", "estimated", "0.28", "0.00", "0.00"},
			{"private", "sol", "1", "0.50", "1.00", "0.50", "0.00", "none", "0.00", "0.50", "0.00"},
		}},
		{name: "everything in one row", by: nil, want: [][]string{
			{"3", "16.50", "129.00", "3.50", "7.80", "mixed", "0.78", "0.50", "0.00"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := opts
			o.By, o.RollUp = tc.by, tc.rollUp
			rep, err := usage.Sum(records, o)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, r := range rep.Rows {
				got = append(got, r.Cells())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if h := usage.Header(tc.by); len(got) > 0 && len(h) != len(got[0]) {
				t.Errorf("header has %d columns, rows %d", len(h), len(got[0]))
			}
		})
	}
}

func TestEnergySaysHowItWasFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		records  []usage.Record
		util     float64
		wantNote string
		wantKWh  float64
	}{
		{"estimated at the default utilisation", records[1:2], 0,
			"accelerator energy: estimated as rated accelerator power × 70 % utilisation (an assumption, not a measurement) × run time", 2.8},
		{"estimated at a given utilisation", records[1:2], 0.5,
			"accelerator energy: estimated as rated accelerator power × 50 % utilisation (an assumption, not a measurement) × run time", 2},
		{"measured", records[:1], 0, "accelerator energy: measured by the node agents", 5},
		{"unknown", records[2:], 0, "accelerator energy: unknown (no measurement, no rated power)", 0},
		{"measured, and unknown for a class without rated power", []usage.Record{records[0], records[2]}, 0,
			"accelerator energy: measured by the node agents; unknown for the accelerator time of models without a measurement or a rated power (no_energy_accelerator_s)", 5},
		{"no accelerator time: a CPU-only job", []usage.Record{cpuOnly}, 0, "accelerator energy: none (no accelerator time)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := opts
			o.Utilisation = tc.util
			rep, err := usage.Sum(tc.records, o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.EnergyNote != tc.wantNote {
				t.Errorf("note %q, want %q", rep.EnergyNote, tc.wantNote)
			}
			if got := rep.Rows[0].EnergyKWh; fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", tc.wantKWh) {
				t.Errorf("energy %g kWh, want %g", got, tc.wantKWh)
			}
		})
	}
}

func TestSumRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		records []usage.Record
		opts    usage.Options
		wantMsg string
	}{
		{"a job ending before it starts", []usage.Record{{Job: "x", Start: 10, End: 5}}, usage.Options{}, "record 0 (job x): ends at 5, before it starts at 10"},
		{"negative accelerators", []usage.Record{{Job: "x", Accelerators: -1}}, usage.Options{}, "neither can be negative"},
		{"negative measured energy", []usage.Record{{Job: "x", Measured: true, EnergyKWh: -1}}, usage.Options{}, "cannot be negative"},
		{"an unknown grouping", nil, usage.Options{By: []usage.Key{"colour"}}, `unknown grouping "colour"; use user, project`},
		{"a grouping twice", nil, usage.Options{By: []usage.Key{usage.ByUser, usage.ByUser}}, "given twice"},
		{"roll-up without projects", nil, usage.Options{RollUp: true}, "roll-up needs grouping by project"},
		{"utilisation over one", nil, usage.Options{Utilisation: 70}, "utilisation 70 is not in (0, 1]"},
		{"negative power", nil, usage.Options{RatedWatts: map[string]float64{"H100": -700}}, "rated power of H100 is -700 W"},
		{"negative intensity", nil, usage.Options{GridIntensity: map[string]float64{"lumi": -1}}, "grid intensity of site lumi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := usage.Sum(tc.records, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Sum: %v, want an error saying %q", err, tc.wantMsg)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	o := opts
	o.By = []usage.Key{usage.BySite, usage.ByMonth}
	rep, err := usage.Sum(records[:1], o)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(rep.Rows[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"group":{"month":"2025-01","site":"lumi"},"jobs":1,"accelerator_s":28800,"cpu_s":230400,"wall_s":3600,` +
		`"energy_kwh":5,"measured_kwh":5,"estimated_kwh":0,"no_energy_accelerator_s":0,"co2e_kg":0.5,"no_intensity_kwh":0}`
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

// TestNoClock: the package converts times it is given, never reads the
// clock.
func TestNoClock(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" &&
					(sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until" || sel.Sel.Name == "Sleep") {
					t.Errorf("%s calls time.%s: times are the caller's", f, sel.Sel.Name)
				}
			}
			return true
		})
	}
}

// BenchmarkSumMillionJobs sums one million jobs by project (rolled up)
// and month:
//
//	go test ./internal/ledger/usage -run - -bench SumMillion -benchmem
func BenchmarkSumMillionJobs(b *testing.B) {
	rs := make([]usage.Record, 1_000_000)
	projects := []string{"lv-team", "lv", "fi", "solo", "cons"}
	start := at("2025-01-01T00:00:00Z")
	for i := range rs {
		s := start + int64(i)*30
		rs[i] = usage.Record{Job: fmt.Sprint(i), User: fmt.Sprintf("u%d", i%500), Project: projects[i%len(projects)], Site: "lumi",
			Model: "MI250X", Start: s, End: s + int64(600+i%7200), Accelerators: 1 + i%64, CPUs: 8, Measured: i%3 == 0, EnergyKWh: 1}
	}
	o := opts
	o.By, o.RollUp = []usage.Key{usage.ByProject, usage.ByMonth}, true
	for b.Loop() {
		if _, err := usage.Sum(rs, o); err != nil {
			b.Fatal(err)
		}
	}
}
