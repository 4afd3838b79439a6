package trace

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// csvFile builds a CSV v1 file: the header, then lines.
func csvFile(lines ...string) string {
	return Header + "\n" + strings.Join(lines, "\n") + "\n"
}

const good = "j1,0,p1,u1,8,1,3600,7200,completed"

func TestReadCSVRejectsMalformedLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, wantErr string
	}{
		{"too few fields", csvFile(good, "j2,5,p1,u1,8,1,3600,completed"),
			"trace.csv:3: has 8 fields; want 9: " + Header},
		{"too many fields", csvFile("j2,5,p1,u1,8,1,3600,,completed,x"),
			"trace.csv:2: has 10 fields; want 9: " + Header},
		{"submit not an integer", csvFile("j2,1.5,p1,u1,8,1,3600,,completed"),
			`trace.csv:2: field submit_s: "1.5" is not a whole number of seconds`},
		{"negative submit", csvFile("j2,-3,p1,u1,8,1,3600,,completed"),
			"trace.csv:2: field submit_s: -3 is negative; give 0 or more"},
		{"negative accelerators", csvFile("j2,3,p1,u1,-8,,3600,,completed"),
			"trace.csv:2: field accelerators: -8 is negative; give 0 or more"},
		{"nodes not an integer", csvFile("j2,3,p1,u1,8,two,3600,,completed"),
			`trace.csv:2: field nodes: "two" is not a whole number of nodes`},
		{"zero runtime", csvFile("j2,3,p1,u1,8,,0,,completed"),
			"trace.csv:2: field runtime_s: 0 is not positive; a job runs at least 1 second"},
		{"empty runtime", csvFile("j2,3,p1,u1,8,,,,completed"),
			`trace.csv:2: field runtime_s: "" is not a whole number of seconds`},
		{"zero limit", csvFile("j2,3,p1,u1,8,,60,0,completed"),
			"trace.csv:2: field limit_s: 0 is not a limit; give a positive number of seconds, or leave it empty when unknown"},
		{"unknown state", csvFile("j2,3,p1,u1,8,,60,,done"),
			`trace.csv:2: field state: "done" is not a state; use completed, failed, cancelled or timeout`},
		{"nodes do not divide accelerators", csvFile("j2,3,p1,u1,12,8,60,,completed"),
			"trace.csv:2: field nodes: 8 nodes do not divide 12 accelerators; give a node count that divides it, or leave it empty to pack"},
		{"duplicate id", csvFile(good, "# a comment", "j1,9,p1,u1,8,1,3600,7200,completed"),
			`trace.csv:4: field id: "j1" already appears on line 2; ids must be unique`},
		{"empty id", csvFile(",3,p1,u1,8,,60,,completed"),
			"trace.csv:2: field id: is empty"},
		{"empty project", csvFile("j2,3,,u1,8,,60,,completed"),
			"trace.csv:2: field project: is empty"},
		{"quote in user", csvFile(`j2,3,p1,"u1",8,,60,,completed`),
			`trace.csv:2: field user: "\"u1\"" contains a space, a comma, a quote, a '#' or a line break; use letters, digits, '-', '_' or '.'`},
		{"header missing", good + "\n",
			`trace.csv:1: no header line: the first line that is not a comment is "` + good + `"; a usine trace CSV v1 starts with the line "` + Header + `"`},
		{"header wrong", "# made by hand\nid,submit,project,user,accelerators,nodes,runtime_s,limit_s,state\n" + good + "\n",
			`trace.csv:2: header is "id,submit,project,user,accelerators,nodes,runtime_s,limit_s,state"; a usine trace CSV v1 starts with the line "` + Header + `"`},
		{"empty file", "",
			`trace.csv: no header line: the file is empty or all comments; a usine trace CSV v1 starts with "` + Header + `"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			recs, _, err := ReadCSV(strings.NewReader(tc.file), "trace.csv", ReadOptions{})
			if err == nil {
				t.Fatalf("ReadCSV gave %d records and no error; want %q", len(recs), tc.wantErr)
			}
			if got := err.Error(); got != tc.wantErr {
				t.Errorf("ReadCSV error:\n got %s\nwant %s", got, tc.wantErr)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Errorf("error %T is not a *LineError", err)
			}
		})
	}
}

// The error of the brief, on line 17: two comments, the header, 13 good
// lines, then the bad one.
func TestReadCSVNamesFileLineAndField(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("# usine trace csv v1\n# hand made\n" + Header + "\n")
	for i := range 13 {
		fmt.Fprintf(&b, "j%d,%d,p1,u1,1,,60,,completed\n", i, i)
	}
	b.WriteString("bad,20,p1,u1,1,,abc,,completed\n")
	_, _, err := ReadCSV(strings.NewReader(b.String()), "trace.csv", ReadOptions{})
	want := `trace.csv:17: field runtime_s: "abc" is not a whole number of seconds`
	if err == nil || err.Error() != want {
		t.Errorf("ReadCSV error = %v; want %s", err, want)
	}
}

func TestReadCSVSkipBadCountsAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("ok%02d,%d,p1,u1,2,1,60,,failed", i, 100-i))
	}
	// 14 bad lines of varied kinds, then a duplicate of a good id.
	for i := range 14 {
		lines = append(lines, fmt.Sprintf("bad%02d,%d,p1,u1,2,1,%d,,failed", i, i, -i))
	}
	lines = append(lines, "ok00,5,p1,u1,2,1,60,,failed", "short,1,2")
	recs, st, err := ReadCSV(strings.NewReader(csvFile(lines...)), "t.csv", ReadOptions{SkipBad: true})
	if err != nil {
		t.Fatalf("ReadCSV with SkipBad: %v", err)
	}
	if len(recs) != 30 || st.Records != 30 {
		t.Errorf("got %d records (stats %d); want 30", len(recs), st.Records)
	}
	if st.Skipped != 16 {
		t.Errorf("Stats.Skipped = %d; want 16", st.Skipped)
	}
	if len(st.Errors) != MaxErrors {
		t.Fatalf("Stats.Errors holds %d messages; want the first %d", len(st.Errors), MaxErrors)
	}
	if want := "t.csv:32: field runtime_s: 0 is not positive; a job runs at least 1 second"; st.Errors[0] != want {
		t.Errorf("first message %q; want %q", st.Errors[0], want)
	}
	if recs[0].ID != "ok29" || recs[0].Submit != 71 || recs[0].Line != 31 {
		t.Errorf("first record %+v; want ok29 submitted at 71 from line 31 (sorted by submit)", recs[0])
	}
	// A wrong header is fatal even with SkipBad.
	if _, _, err := ReadCSV(strings.NewReader("a,b\n"), "t.csv", ReadOptions{SkipBad: true}); err == nil {
		t.Error("a wrong header with SkipBad gave no error")
	}
}

func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()
	in := []Record{
		{ID: "b", Submit: 10, Project: "p1", User: "u1", Accelerators: 16, Nodes: 2, Runtime: 3600, Limit: 7200, State: StateCompleted},
		{ID: "a", Submit: 10, Project: "p1", User: "u2", Accelerators: 1, Runtime: 1, State: StateFailed},
		{ID: "c", Submit: 0, Project: "p2", User: "u3", Accelerators: 0, Runtime: 99, Limit: 60, State: StateTimeout},
		{ID: "d", Submit: 7, Project: "p2", User: "u3", Accelerators: 4, Nodes: 1, Runtime: 5, State: StateCancelled,
			Model: "V100M16", Models: []string{"V100M16", "V100M32"}, Milli: 0, CPUs: 4, MemoryMiB: 100},
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, in, "usine trace csv v1", "made by a test"); err != nil {
		t.Fatal(err)
	}
	wantText := "# usine trace csv v1\n# made by a test\n" + Header + "\n" +
		"b,10,p1,u1,16,2,3600,7200,completed\n" +
		"a,10,p1,u2,1,,1,,failed\n" +
		"c,0,p2,u3,0,,99,60,timeout\n" +
		"d,7,p2,u3,4,1,5,,cancelled\n"
	if diff := cmp.Diff(wantText, buf.String()); diff != "" {
		t.Errorf("WriteCSV text (-want +got):\n%s", diff)
	}
	got, st, err := ReadCSV(&buf, "rt.csv", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{in[2], in[3], in[1], in[0]} // by submit, then id
	want[1].Model, want[1].Models, want[1].CPUs, want[1].MemoryMiB = "", nil, 0, 0
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Record{}, "Line")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if st.Records != 4 || st.Skipped != 0 {
		t.Errorf("stats %+v; want 4 records, none skipped", st)
	}
}

func TestWriteCSVRefusesWhatReadCSVWould(t *testing.T) {
	t.Parallel()
	ok := Record{ID: "a", Project: "p", User: "u", Accelerators: 1, Runtime: 1, State: StateCompleted}
	tests := []struct {
		name    string
		recs    []Record
		wantErr string
	}{
		{"zero runtime", []Record{func() Record { r := ok; r.Runtime = 0; return r }()},
			`write trace: record 0 (id "a"): field runtime_s: 0 is not positive; a job runs at least 1 second`},
		{"comma in project", []Record{func() Record { r := ok; r.Project = "a,b"; return r }()},
			`write trace: record 0 (id "a"): field project: "a,b" contains a space, a comma, a quote, a '#' or a line break; use letters, digits, '-', '_' or '.'`},
		{"duplicate id", []Record{ok, ok},
			`write trace: record 1: field id: "a" appears twice; ids must be unique`},
		{"unknown state", []Record{func() Record { r := ok; r.State = "running"; return r }()},
			`write trace: record 0 (id "a"): field state: "running" is not a state; use completed, failed, cancelled or timeout`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := WriteCSV(&bytes.Buffer{}, tc.recs)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("WriteCSV error = %v; want %s", err, tc.wantErr)
			}
		})
	}
	if err := WriteCSV(&bytes.Buffer{}, nil, "two\nlines"); err == nil {
		t.Error("a comment with a line break gave no error")
	}
}

func TestReadCSVAcceptsCRLFAndBlankLines(t *testing.T) {
	t.Parallel()
	in := "\xef\xbb\xbf# c\r\n" + Header + "\r\n\r\n" + "j1,0,p1,u1,8,,3600,,completed\r\n"
	recs, _, err := ReadCSV(strings.NewReader(in), "w.csv", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].State != StateCompleted || recs[0].Line != 4 {
		t.Errorf("got %+v; want one completed record from line 4", recs)
	}
}

func TestRoundTripOfConvertedAndGeneratedTraces(t *testing.T) {
	t.Parallel()
	gen, err := Generate(GenOptions{Jobs: 10_000, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for name, recs := range map[string][]Record{
		"philly-gavel": convertPhilly(t, 0, seed0),
		"generated":    gen,
	} {
		got, _, err := ReadCSV(bytes.NewReader(csvBytes(t, recs)), name+".csv", ReadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(recs, got, cmpopts.IgnoreFields(Record{}, "Line")); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
}
