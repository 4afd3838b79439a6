package trace

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSWFSmallLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		perNode int
		want    []Record
	}{
		{"one processor one accelerator, packed", 0, []Record{
			{ID: "1", Submit: 0, Project: "g1", User: "u3", Accelerators: 64, Runtime: 3600, Limit: 7200, State: StateCompleted, Line: 12},
			{ID: "2", Submit: 30, Project: "g1", User: "u3", Accelerators: 1, Runtime: 120, State: StateFailed, Line: 13},
			{ID: "3", Submit: 30, Project: "u4", User: "u4", Accelerators: 32, Runtime: 500, Limit: 600, State: StateCancelled, Line: 14},
			{ID: "5", Submit: 90, Project: "unknown", User: "unknown", Accelerators: 128, Runtime: 9000, Limit: 3600, State: StateCompleted, Line: 16},
			{ID: "6", Submit: 100, Project: "g2", User: "u5", Accelerators: 16, Runtime: 300, Limit: 1000, State: StateCompleted, Line: 18},
			{ID: "7", Submit: 200, Project: "g2", User: "u5", Accelerators: 40, Runtime: 50, State: StateCompleted, Line: 19},
		}},
		{"32 processors a node", 32, []Record{
			{ID: "1", Submit: 0, Project: "g1", User: "u3", Accelerators: 64, Nodes: 2, Runtime: 3600, Limit: 7200, State: StateCompleted, Line: 12},
			{ID: "2", Submit: 30, Project: "g1", User: "u3", Accelerators: 1, Runtime: 120, State: StateFailed, Line: 13},
			{ID: "3", Submit: 30, Project: "u4", User: "u4", Accelerators: 32, Nodes: 1, Runtime: 500, Limit: 600, State: StateCancelled, Line: 14},
			{ID: "5", Submit: 90, Project: "unknown", User: "unknown", Accelerators: 128, Nodes: 4, Runtime: 9000, Limit: 3600, State: StateCompleted, Line: 16},
			{ID: "6", Submit: 100, Project: "g2", User: "u5", Accelerators: 16, Runtime: 300, Limit: 1000, State: StateCompleted, Line: 18},
			{ID: "7", Submit: 200, Project: "g2", User: "u5", Accelerators: 40, Runtime: 50, State: StateCompleted, Line: 19},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recs, st, err := Convert(context.Background(), "swf", []string{"testdata/small.swf"}, ConvertOptions{PerNode: tc.perNode})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, recs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Dropped: job 4 and 8 never ran, job 6's partial execution.
			if diff := cmp.Diff(Stats{Records: 6, Dropped: 3}, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSWFBadLines(t *testing.T) {
	t.Parallel()
	const ok = "1 0 0 60 4 -1 -1 4 120 -1 1 1 1 -1 -1 -1 -1 -1"
	tests := []struct {
		name, line, wantErr string
	}{
		{"missing field", "2 0 0 60 4 -1 -1 4 120 -1 1 1 1 -1 -1 -1 -1",
			"x.swf:2: has 17 fields; an SWF line has 18"},
		{"run time not a number", "2 0 0 6o 4 -1 -1 4 120 -1 1 1 1 -1 -1 -1 -1 -1",
			`x.swf:2: field run_time: "6o" is not a whole number`},
		{"unknown status", "2 0 0 60 4 -1 -1 4 120 -1 7 1 1 -1 -1 -1 -1 -1",
			"x.swf:2: field status: 7 is not an SWF status; want 0 (failed), 1 (completed), 5 (cancelled), 2–4 (partial execution) or -1"},
		{"no processor count", "2 0 0 60 -1 -1 -1 -1 120 -1 1 1 1 -1 -1 -1 -1 -1",
			"x.swf:2: field allocated_processors: is missing (-1) and so are requested_processors; a job needs a processor count"},
		{"negative beyond -1", "2 -5 0 60 4 -1 -1 4 120 -1 1 1 1 -1 -1 -1 -1 -1",
			"x.swf:2: field submit_time: -5 is negative; SWF marks a missing value with -1"},
		{"duplicate job number", ok,
			"x.swf:2: field job_number: 1 already appears on line 1; job numbers must be unique"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := ReadSWF(strings.NewReader(ok+"\n"+tc.line+"\n"), "x.swf", SWFOptions{})
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error = %v; want %s", err, tc.wantErr)
			}
			recs, st, err := ReadSWF(strings.NewReader(ok+"\n"+tc.line+"\n"), "x.swf", SWFOptions{ReadOptions: ReadOptions{SkipBad: true}})
			if err != nil || len(recs) != 1 || st.Skipped != 1 || st.Errors[0] != tc.wantErr {
				t.Errorf("SkipBad: %d records, stats %+v, error %v; want 1 record and the line skipped", len(recs), st, err)
			}
		})
	}
}

func TestConvertFormats(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]string{"csv", "openb", "philly-gavel", "swf"}, Formats()); diff != "" {
		t.Errorf("Formats (-want +got):\n%s", diff)
	}
	_, _, err := Convert(context.Background(), "slurm", []string{"x"}, ConvertOptions{})
	if want := `unknown trace format "slurm"; use one of: csv, openb, philly-gavel, swf`; err == nil || err.Error() != want {
		t.Errorf("unknown format: error = %v; want %s", err, want)
	}
	_, _, err = Convert(context.Background(), "swf", []string{"testdata/small.swf", "testdata/small.swf"}, ConvertOptions{})
	if want := "swf reads one file; got 2 inputs"; err == nil || err.Error() != want {
		t.Errorf("two inputs: error = %v; want %s", err, want)
	}
	_, _, err = Convert(context.Background(), "csv", []string{"testdata/none.csv"}, ConvertOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error = %v; want a not-exist error", err)
	}
}
