package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/sched"
)

func compared(t *testing.T) []*Result {
	t.Helper()
	in := Input{Cluster: cluster(1, 2, 2, 8), Records: threeJobs()}
	results, err := RunAll(context.Background(), in, sched.Policies(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return results
}

func TestJSONContract(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteJSON(&b, compared(t)); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []map[string]json.RawMessage `json:"policies"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	if len(doc.Policies) != 3 {
		t.Fatalf("%d policies, want 3", len(doc.Policies))
	}
	// The names docs/SIM.md promises.
	contract := []string{"policy", "jobs", "avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s",
		"avg_queue_s", "p50_queue_s", "p95_queue_s", "p99_queue_s", "avg_bounded_slowdown",
		"utilization", "makespan_s", "preemptions", "passes", "by_size", "projects"}
	for _, p := range doc.Policies {
		for _, key := range contract {
			if _, ok := p[key]; !ok {
				t.Errorf("policy %s: no %q field", p["policy"], key)
			}
		}
	}
	var fifo struct {
		Policy  string  `json:"policy"`
		Jobs    int     `json:"jobs"`
		AvgJCT  float64 `json:"avg_jct_s"`
		Util    float64 `json:"utilization"`
		Span    int64   `json:"makespan_s"`
		Passes  int     `json:"passes"`
		BySize  []map[string]any
		Project []struct {
			Project  string  `json:"project"`
			Received float64 `json:"share_received"`
			Entitled float64 `json:"share_entitled"`
		} `json:"projects"`
	}
	raw, _ := json.Marshal(doc.Policies[0])
	if err := json.Unmarshal(raw, &fifo); err != nil {
		t.Fatal(err)
	}
	if fifo.Policy != "fifo" || fifo.Jobs != 3 || fifo.Span != 180 || fifo.AvgJCT != 415.0/3 {
		t.Errorf("fifo = %+v; want policy fifo, 3 jobs, makespan 180, avg JCT 138.3", fifo)
	}
	want := []struct {
		Project  string  `json:"project"`
		Received float64 `json:"share_received"`
		Entitled float64 `json:"share_entitled"`
	}{{"p", 1, 1}}
	if diff := cmp.Diff(want, fifo.Project); diff != "" {
		t.Errorf("projects (-want +got):\n%s", diff)
	}
}

func TestHTMLReportIsSelfContained(t *testing.T) {
	t.Parallel()
	results := compared(t)
	results[0].Policy = `<script>alert("x")</script>`
	var b bytes.Buffer
	if err := WriteReport(&b, results, ReportInfo{Cluster: "test & co", Trace: "t.csv", Notes: []string{"a < b"}}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"http://", "https://", "<script", "src=", "<link", "@import", "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("the report contains %q", bad)
		}
	}
	for _, want := range []string{"<svg", "<polyline", "test &amp; co", "a &lt; b", "&lt;script&gt;", "easy", "usine",
		"Completion time", "Utilisation over time", "Queue length over time", "By job size"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// One line per policy in each of the three charts.
	if got := strings.Count(page, "<polyline"); got != 9 {
		t.Errorf("%d polylines, want 9", got)
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteTable(&b, compared(t)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// fifo: avg JCT 138 s = 2.3m, p95 JCT 170 s = 2.8m, utilisation 57.6 %.
	for _, want := range []string{"policy", "avg JCT", "fifo", "easy", "usine", "2.3m", "2.8m", "57.6%", "9-64"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    float64
		want string
	}{{0, "0s"}, {59, "59s"}, {90, "1.5m"}, {5400, "1.5h"}, {3 * 86400, "3.0d"}} {
		if got := Duration(tc.s); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
