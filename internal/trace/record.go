package trace

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Record is one job of a usine trace CSV v1 file.
type Record struct {
	ID           string
	Submit       int64 // seconds from the trace start
	Project      string
	User         string
	Accelerators int    // total; 0 = CPU only
	Nodes        int    // 0 = let the scheduler pack
	Runtime      int64  // actual run time, seconds
	Limit        int64  // requested limit, seconds; 0 when the file left it empty (see DefaultLimit)
	State        string // completed, failed, cancelled, timeout
	Model        string // accelerator model constraint; not a CSV v1 column, filled by readers that know it
	Line         int    // line in the file it came from, for errors

	// Fields below are not CSV v1 columns: readers that know them fill them,
	// WriteCSV drops them.

	// Models lists every accelerator model the job accepts when the source
	// names alternatives (openb's "V100M16|V100M32"); Model is Models[0].
	Models []string
	// Milli is the share of one accelerator a fractional job asked for, in
	// thousandths (openb gpu_milli < 1000); 0 = whole accelerators. Such a
	// job still counts Accelerators = 1.
	Milli     int
	CPUs      int   // CPUs asked for in total; 0 = not known
	MemoryMiB int64 // memory asked for in total; 0 = not known
}

// States a record may end in.
const (
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	StateTimeout   = "timeout"
)

// States lists the valid record states.
func States() []string {
	return []string{StateCompleted, StateFailed, StateCancelled, StateTimeout}
}

func validState(s string) bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout:
		return true
	}
	return false
}

// ReadOptions tune how readers treat malformed lines.
type ReadOptions struct {
	// SkipBad skips malformed lines, counting them in Stats, instead of
	// failing on the first one. A wrong header and I/O errors still fail.
	SkipBad bool
}

// MaxErrors is how many messages of skipped lines Stats keeps.
const MaxErrors = 10

// Stats says what a reader did with its input.
type Stats struct {
	Records int      // records returned
	Skipped int      // malformed lines skipped under SkipBad
	Errors  []string // the first MaxErrors messages of skipped lines
	// Dropped counts well-formed lines that hold no job to replay: SWF
	// partial-execution lines and SWF jobs that never ran.
	Dropped int
}

func (s *Stats) add(o Stats) {
	s.Records += o.Records
	s.Skipped += o.Skipped
	s.Dropped += o.Dropped
	for _, e := range o.Errors {
		if len(s.Errors) < MaxErrors {
			s.Errors = append(s.Errors, e)
		}
	}
}

// LineError is a malformed line: which file, which line, which field, and
// what is wrong with it.
type LineError struct {
	File  string
	Line  int    // 1-based; 0 when the error is about the file as a whole
	Field string // column name; "" when the line as a whole is wrong
	Msg   string
}

func (e *LineError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// collector applies ReadOptions.SkipBad to malformed lines.
type collector struct {
	opt   ReadOptions
	stats Stats
}

// bad records a malformed line. It returns the error to stop on, or nil when
// the line is skipped.
func (c *collector) bad(e *LineError) error {
	if !c.opt.SkipBad {
		return e
	}
	c.stats.Skipped++
	if len(c.stats.Errors) < MaxErrors {
		c.stats.Errors = append(c.stats.Errors, e.Error())
	}
	return nil
}

// keep appends a parsed line's record to recs, or counts the line as bad:
// for a parse error, or for an id that already appeared (ids maps ids to
// lines; dup words that error). It returns the error to stop on.
func (c *collector) keep(recs []Record, rec Record, lerr *LineError, ids map[string]int, file string, line int, dup func(first int) *LineError) ([]Record, error) {
	if lerr == nil {
		if first, seen := ids[rec.ID]; seen {
			lerr = dup(first)
		}
	}
	if lerr != nil {
		lerr.File, lerr.Line = file, line
		return recs, c.bad(lerr)
	}
	rec.Line = line
	ids[rec.ID] = line
	return append(recs, rec), nil
}

// checkName says what is wrong with a name (id, project, user), or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > 256:
		return fmt.Sprintf("is %d bytes long; at most 256 are allowed", len(s))
	case badNameChar(s):
		return fmt.Sprintf("%q contains a space, a comma, a quote, a '#' or a line break; use letters, digits, '-', '_' or '.'", s)
	}
	return ""
}

func badNameChar(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n', ',', '"', '#':
			return true
		}
	}
	return false
}

// check reports the first field of r that CSV v1 cannot hold, as
// (field, message), or ("", "") when r is valid.
func (r *Record) check() (field, msg string) {
	if m := checkName(r.ID); m != "" {
		return "id", m
	}
	if r.Submit < 0 {
		return "submit_s", fmt.Sprintf("%d is negative; give seconds from the trace start", r.Submit)
	}
	if m := checkName(r.Project); m != "" {
		return "project", m
	}
	if m := checkName(r.User); m != "" {
		return "user", m
	}
	if r.Accelerators < 0 {
		return "accelerators", fmt.Sprintf("%d is negative; give 0 (CPU only) or more", r.Accelerators)
	}
	if r.Nodes < 0 {
		return "nodes", fmt.Sprintf("%d is negative; give a node count, or 0 or nothing to let the scheduler pack", r.Nodes)
	}
	if r.Nodes > 0 && r.Accelerators%r.Nodes != 0 {
		return "nodes", fmt.Sprintf("%d nodes do not divide %d accelerators; give a node count that divides it, or leave it empty to pack", r.Nodes, r.Accelerators)
	}
	if r.Runtime <= 0 {
		return "runtime_s", fmt.Sprintf("%d is not positive; a job runs at least 1 second", r.Runtime)
	}
	if r.Limit < 0 {
		return "limit_s", fmt.Sprintf("%d is negative; give a positive limit, or leave it empty when unknown", r.Limit)
	}
	if !validState(r.State) {
		return "state", fmt.Sprintf("%q is not a state; use completed, failed, cancelled or timeout", r.State)
	}
	return "", ""
}

// sortRecords puts records in trace order: by submit time, then ID.
func sortRecords(recs []Record) {
	if !slices.IsSortedFunc(recs, compareRecords) {
		slices.SortStableFunc(recs, compareRecords)
	}
}

func compareRecords(a, b Record) int {
	if c := cmp.Compare(a.Submit, b.Submit); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
