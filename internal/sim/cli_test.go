package sim_test

// The usine sim command is tested here, beside the package it drives: it
// is a thin layer over RunAll, and these tests run it end to end.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/cli"
	"github.com/usine-project/usine/internal/trace"
)

func usine(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), append([]string{"usine"}, args...), &out, &errb)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), cli.ExitCode(err)
}

// writeTrace writes the three-job trace of the package's tests (on the
// built-in laptop cluster, 4 nodes × 8 in 2 blocks) and returns its path.
func writeTrace(t *testing.T, extra ...trace.Record) string {
	t.Helper()
	recs := []trace.Record{
		{ID: "j1", Submit: 0, Project: "p", User: "u", Accelerators: 16, Nodes: 2, Runtime: 100, Limit: 200, State: "completed"},
		{ID: "j2", Submit: 5, Project: "p", User: "u", Accelerators: 32, Nodes: 4, Runtime: 50, Limit: 100, State: "completed"},
		{ID: "j3", Submit: 10, Project: "p", User: "u", Accelerators: 4, Runtime: 30, Limit: 60, State: "completed"},
	}
	recs = append(recs, extra...)
	path := filepath.Join(t.TempDir(), "three.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.WriteCSV(f, recs); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSimCommandUsage(t *testing.T) {
	t.Parallel()
	tr := writeTrace(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no cluster", []string{"sim", "--trace", tr}, "--cluster is required"},
		{"no trace", []string{"sim", "--cluster", "laptop"}, "--trace is required"},
		{"unknown policy", []string{"sim", "--cluster", "laptop", "--trace", tr, "--policy", "fifo,lottery"}, `unknown policy "lottery"`},
		{"policy twice", []string{"sim", "--cluster", "laptop", "--trace", tr, "--policy", "easy,easy"}, "names easy twice"},
		{"unknown format", []string{"sim", "--cluster", "laptop", "--trace", tr, "--from", "xls"}, `unknown format "xls"`},
		{"zero pass interval", []string{"sim", "--cluster", "laptop", "--trace", tr, "--pass-interval", "0s"}, "--pass-interval 0s"},
		{"negative fail rate", []string{"sim", "--cluster", "laptop", "--trace", tr, "--fail-rate", "-1"}, "--fail-rate -1"},
		{"bad duration", []string{"sim", "--cluster", "laptop", "--trace", tr, "--half-life", "soon"}, "invalid argument"},
		{"unknown cluster", []string{"sim", "--cluster", "nowhere", "--trace", tr}, "--cluster"},
		{"an argument", []string{"sim", "--cluster", "laptop", tr}, "give the trace with --trace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := usine(t, tc.args...)
			if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, cli.ExitUsage, tc.want)
			}
		})
	}
}

func TestSimCommandJSONAndReport(t *testing.T) {
	t.Parallel()
	tr := writeTrace(t)
	report := filepath.Join(t.TempDir(), "out.html")
	stdout, stderr, code := usine(t, "sim", "--cluster", "laptop", "--trace", tr, "--json", "--report", report)
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Policies []struct {
			Policy  string  `json:"policy"`
			Jobs    int     `json:"jobs"`
			AvgJCT  float64 `json:"avg_jct_s"`
			P95JCT  float64 `json:"p95_jct_s"`
			WallS   float64 `json:"wall_s"`
			Util    float64 `json:"utilization"`
			Makspan int64   `json:"makespan_s"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not the JSON document: %v\n%s", err, stdout)
	}
	if len(doc.Policies) != 3 || doc.Policies[0].Policy != "fifo" || doc.Policies[1].Policy != "easy" || doc.Policies[2].Policy != "usine" {
		t.Fatalf("policies %+v; want fifo, easy, usine", doc.Policies)
	}
	if f := doc.Policies[0]; f.Jobs != 3 || f.AvgJCT != 415.0/3 || f.P95JCT != 170 || f.Makspan != 180 {
		t.Errorf("fifo %+v; want 3 jobs, avg JCT 138.3, p95 170, makespan 180", f)
	}
	for _, want := range []string{"read 3 jobs", "replaying 3 jobs on laptop", "jobs/s", "wrote " + report} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || bytes.Contains(page, []byte("http://")) || bytes.Contains(page, []byte("https://")) {
		t.Errorf("the report has no <svg or refers outside itself")
	}
}

func TestSimCommandTable(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := usine(t, "sim", "--cluster", "laptop", "--trace", writeTrace(t), "--policy", "easy")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"policy", "avg JCT", "easy", "simulated 3 jobs (1 policies)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "fifo") {
		t.Errorf("stdout shows fifo, which was not asked for:\n%s", stdout)
	}
}

func TestSimCommandImpossibleJobs(t *testing.T) {
	t.Parallel()
	tr := writeTrace(t, trace.Record{ID: "huge", Submit: 20, Project: "p", User: "u", Accelerators: 64, Runtime: 10, Limit: 20, State: "completed"})
	_, stderr, code := usine(t, "sim", "--cluster", "laptop", "--trace", tr)
	// The header is line 1: huge is on line 5.
	if code != cli.ExitError || !strings.Contains(stderr, "trace line 5: job huge: can never run on this cluster") || !strings.Contains(stderr, "--skip-bad") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming line 5 and --skip-bad", code, stderr)
	}
	stdout, stderr, code := usine(t, "sim", "--cluster", "laptop", "--trace", tr, "--skip-bad", "--json")
	if code != cli.ExitOK || !strings.Contains(stderr, "skipped 1 job(s) that can never run on laptop") || !strings.Contains(stdout, `"skipped": 1`) {
		t.Errorf("exit %d, stderr %q; want success counting one skipped job", code, stderr)
	}
}
