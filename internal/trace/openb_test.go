package trace

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var openbDir = filepath.Join(traces, "alibaba_openb_v2023")

func TestOpenBDefaultConvertsEveryPod(t *testing.T) {
	t.Parallel()
	recs, st, err := Convert(context.Background(), "openb", []string{filepath.Join(openbDir, "openb_pod_list_default.csv")}, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 8152 || st.Records != 8152 || st.Skipped != 0 {
		t.Fatalf("converted %d pods (stats %+v); want all 8,152", len(recs), st)
	}
	// Counts from the published columns (cut | sort | uniq -c).
	states := map[string]int{}
	projects := map[string]int{}
	gpus := map[int]int{}
	fractional, cpuOnly := 0, 0
	for _, r := range recs {
		states[r.State]++
		projects[r.Project]++
		gpus[r.Accelerators]++
		if r.Milli > 0 {
			fractional++
			if r.Accelerators != 1 || r.Milli >= 1000 {
				t.Errorf("%s: fractional pod with %d accelerators, milli %d", r.ID, r.Accelerators, r.Milli)
			}
		}
		if r.Accelerators == 0 {
			cpuOnly++
		}
		if r.Nodes != 1 || r.Runtime < 1 || r.Limit != 0 || r.User != r.Project {
			t.Fatalf("%+v: want one node, a positive run time, no limit, user = project", r)
		}
	}
	if diff := cmp.Diff(map[string]int{StateCompleted: 192 + 5193 + 897, StateFailed: 1870}, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"BE": 3398, "Burstable": 100, "Guaranteed": 7, "LS": 4647}, projects); diff != "" {
		t.Errorf("projects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int{0: 1088, 1: 3911 + 3078, 2: 16, 4: 15, 8: 44}, gpus); diff != "" {
		t.Errorf("pods by accelerators (-want +got):\n%s", diff)
	}
	if fractional != 3078 {
		t.Errorf("%d fractional pods; want 3,078", fractional)
	}
	// The first line: openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0
	var first Record
	for _, r := range recs {
		if r.ID == "openb-pod-0000" {
			first = r
		}
	}
	want := Record{ID: "openb-pod-0000", Submit: 0, Project: "LS", User: "LS", Accelerators: 1, Nodes: 1,
		Runtime: 12537496, State: StateCompleted, Line: 2, CPUs: 12, MemoryMiB: 16384}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("openb-pod-0000 (-want +got):\n%s", diff)
	}
}

func TestOpenBMultiGPU20LacksColumns(t *testing.T) {
	t.Parallel()
	_, _, err := Convert(context.Background(), "openb", []string{filepath.Join(openbDir, "openb_pod_list_multigpu20.csv")}, ConvertOptions{ReadOptions: ReadOptions{SkipBad: true}})
	want := "openb_pod_list_multigpu20.csv:1: header lacks the column(s) gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time; " +
		"an openb pod list needs name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time " +
		"(openb_pod_list_multigpu20.csv, for one, was published without them)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
}

const openbHead = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

func TestOpenBLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		line    string
		want    Record
		wantErr string
	}{
		{"fractional GPU with a model constraint", "p1,1500,100,1,250,V100M16|V100M32,BE,Succeeded,100,400,150",
			Record{ID: "p1", Project: "BE", User: "BE", Accelerators: 1, Nodes: 1, Runtime: 250, State: StateCompleted, Line: 2,
				Model: "V100M16", Models: []string{"V100M16", "V100M32"}, Milli: 250, CPUs: 2, MemoryMiB: 100}, ""},
		{"never scheduled counts from creation", "p2,0,0,8,1000,nan,LS,Pending,100,160,",
			Record{ID: "p2", Project: "LS", User: "LS", Accelerators: 8, Nodes: 1, Runtime: 60, State: StateCompleted, Line: 2}, ""},
		{"deleted when scheduled runs one second", "p3,0,0,0,0,,Burstable,Failed,5,9,9",
			Record{ID: "p3", Project: "Burstable", User: "Burstable", Nodes: 1, Runtime: 1, State: StateFailed, Line: 2}, ""},
		{"unknown phase", "p4,0,0,0,0,,LS,Evicted,5,9,9", Record{},
			`o.csv:2: field pod_phase: "Evicted" is not a pod phase; want Succeeded, Failed, Running or Pending`},
		{"deleted before scheduled", "p5,0,0,0,0,,LS,Failed,5,6,9", Record{},
			"o.csv:2: field deletion_time: 6 is before the pod started (9)"},
		{"GPU count not a number", "p6,0,0,x,0,,LS,Failed,5,6,6", Record{},
			`o.csv:2: field num_gpu: "x" is not a whole number`},
		{"too many fields", "p7,0,0,0,0,,LS,Failed,5,6,6,1", Record{},
			"o.csv:2: has 12 fields; the header names 11"},
		{"more than one GPU of milli", "p8,0,0,1,1500,,LS,Failed,5,6,6", Record{},
			"o.csv:2: field gpu_milli: 1500 is more than one GPU (1000)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recs, _, err := ReadOpenB(strings.NewReader(openbHead+tc.line+"\n"), "o.csv", ReadOptions{})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error = %v; want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Record{tc.want}, recs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenBSkipBadAndColumnOrder(t *testing.T) {
	t.Parallel()
	// Columns in another order; submit is relative to the earliest good pod.
	in := "qos,name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,pod_phase,creation_time,deletion_time,scheduled_time\n" +
		"LS,a,0,0,1,1000,,Running,500,900,600\n" +
		"LS,b,0,0,1,1000,,Running,zero,900,600\n" +
		"LS,a,0,0,1,1000,,Running,700,900,800\n" +
		"BE,c,0,0,2,1000,,Succeeded,300,900,300\n"
	recs, st, err := ReadOpenB(strings.NewReader(in), "o.csv", ReadOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`o.csv:3: field creation_time: "zero" is not a whole number`,
		`o.csv:4: field name: "a" already appears on line 2; pod names must be unique`,
	}
	if diff := cmp.Diff(want, st.Errors); diff != "" || st.Skipped != 2 {
		t.Errorf("skipped %d; messages (-want +got):\n%s", st.Skipped, diff)
	}
	if len(recs) != 2 || recs[0].ID != "c" || recs[0].Submit != 0 || recs[1].ID != "a" || recs[1].Submit != 200 || recs[1].Runtime != 300 {
		t.Errorf("records %+v; want c at 0, then a at 200 running 300 s", recs)
	}
}
