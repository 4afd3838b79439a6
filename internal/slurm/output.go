package slurm

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
)

// JobInfo is one job as squeue, sacct and scontrol print it.
type JobInfo struct {
	ID          string // the job's own id
	ArrayJobID  string // the array's job id; "" when not in an array
	ArrayTaskID int
	Name        string
	User        string
	Account     string
	Partition   string
	QoS         string
	State       model.JobState // usine's states; Slurm's other names ("node_fail", "preempted"…) print too
	// Reason is why a pending job waits, in Slurm's words (Priority,
	// Resources, Dependency, BeginTime, JobHeldUser…); "" = None.
	Reason              string
	NumNodes            int      // nodes asked for (0 = packed: as many as it got, else 1)
	Nodes               []string // nodes it runs or ran on, in rank order
	SchedNodes          []string // where a pending job is expected to start (squeue --start)
	CPUs                int      // in total
	Accelerators        int      // in total
	AcceleratorsPerNode int      // for gangs; 0 when packed
	Model               string   // accelerator model, "" = any
	MemoryMiB           int64    // in total
	Limit               int64    // seconds; <= 0 = UNLIMITED
	Submit              time.Time
	Start               time.Time // when it started; for a pending job, when it is expected to (zero = unknown)
	End                 time.Time // when it ended; zero while it runs
	ExitCode            int
	Signal              int // the signal that ended it, 0 = none
	Priority            int64
	Deps                []model.Dependency
	Constraint          string
	WorkDir             string
	Command             string
	Stdout, Stderr      string
	Requeue             bool
	Steps               []StepInfo // for sacct; usually the batch step
}

// StepInfo is one step of a job, as sacct prints it below the job.
type StepInfo struct {
	ID       string // "batch", "extern", "0"…
	Name     string // "batch" for the batch step, else the command
	State    model.JobState
	Start    time.Time
	End      time.Time
	ExitCode int
	Signal   int
	CPUs     int
	GPUs     int // accelerators the step holds
	Nodes    []string
}

// jobStates are Slurm's job state names and compact codes.
var jobStates = map[string][2]string{
	"pending":       {"PENDING", "PD"},
	"running":       {"RUNNING", "R"},
	"completed":     {"COMPLETED", "CD"},
	"failed":        {"FAILED", "F"},
	"cancelled":     {"CANCELLED", "CA"},
	"timeout":       {"TIMEOUT", "TO"},
	"completing":    {"COMPLETING", "CG"},
	"configuring":   {"CONFIGURING", "CF"},
	"node_fail":     {"NODE_FAIL", "NF"},
	"out_of_memory": {"OUT_OF_MEMORY", "OOM"},
	"preempted":     {"PREEMPTED", "PR"},
	"requeued":      {"REQUEUED", "RQ"},
	"suspended":     {"SUSPENDED", "S"},
	"boot_fail":     {"BOOT_FAIL", "BF"},
	"deadline":      {"DEADLINE", "DL"},
	"signaling":     {"SIGNALING", "SI"},
	"stopped":       {"STOPPED", "ST"},
}

// StateName is a job state as Slurm names it: PENDING, RUNNING, COMPLETED,
// FAILED, CANCELLED, TIMEOUT…
func StateName(s model.JobState) string {
	if n, ok := jobStates[strings.ToLower(string(s))]; ok {
		return n[0]
	}
	return strings.ToUpper(string(s))
}

// StateCode is a job state's compact code: PD, R, CD, F, CA, TO…
func StateCode(s model.JobState) string {
	if n, ok := jobStates[strings.ToLower(string(s))]; ok {
		return n[1]
	}
	return strings.ToUpper(string(s))
}

func (j *JobInfo) pending() bool { return strings.EqualFold(string(j.State), string(model.JobPending)) }
func (j *JobInfo) running() bool { return strings.EqualFold(string(j.State), string(model.JobRunning)) }

// elapsed is how long the job has run, at now.
func (j *JobInfo) elapsed(now time.Time) int64 {
	return elapsed(j.pending(), j.Start, j.End, now)
}

func elapsed(pending bool, start, end, now time.Time) int64 {
	switch {
	case pending || start.IsZero():
		return 0
	case !end.IsZero():
		return max(int64(end.Sub(start)/time.Second), 0)
	}
	return max(int64(now.Sub(start)/time.Second), 0)
}

// nodeCount is how many nodes the job has, or asks for.
func (j *JobInfo) nodeCount() int {
	if len(j.Nodes) > 0 {
		return len(j.Nodes)
	}
	return max(j.NumNodes, 1)
}

// arrayID is the job's id in squeue's %i form: array_task for array tasks.
func (j *JobInfo) arrayID() string {
	if j.ArrayJobID != "" {
		return j.ArrayJobID + "_" + strconv.Itoa(j.ArrayTaskID)
	}
	return j.ID
}

// gres is the accelerators per node as squeue's %b prints them.
func (j *JobInfo) gres() string {
	n := j.AcceleratorsPerNode
	if n == 0 {
		n = j.Accelerators
	}
	if n == 0 {
		return "N/A"
	}
	if j.Model != "" {
		return fmt.Sprintf("gres/gpu:%s:%d", strings.ToLower(j.Model), n)
	}
	return fmt.Sprintf("gres/gpu:%d", n)
}

// formatDeps prints what a job still waits on; as in Slurm, a job that has
// started waits on nothing and prints (null).
func formatDeps(j *JobInfo) string {
	deps := j.Deps
	if len(deps) == 0 || j.State != model.JobPending {
		return "(null)"
	}
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = string(d.Type) + ":" + d.JobID
	}
	return strings.Join(parts, ",")
}

// formatMem prints MiB as Slurm does: 512000M, 64G, 2T.
func formatMem(mib int64) string {
	switch {
	case mib == 0:
		return "0"
	case mib%(1024*1024) == 0:
		return fmt.Sprintf("%dT", mib/(1024*1024))
	case mib%1024 == 0:
		return fmt.Sprintf("%dG", mib/1024)
	}
	return fmt.Sprintf("%dM", mib)
}

// tres prints trackable resources in Slurm's order: cpu, mem, node, then
// accelerators, with the model-typed count when the model is known.
func tres(cpus int, memMiB int64, nodes, gpus int, gpuModel string) string {
	var parts []string
	if cpus > 0 {
		parts = append(parts, "cpu="+strconv.Itoa(cpus))
	}
	if memMiB > 0 {
		parts = append(parts, "mem="+formatMem(memMiB))
	}
	if nodes > 0 {
		parts = append(parts, "node="+strconv.Itoa(nodes))
	}
	if gpus > 0 {
		parts = append(parts, "gres/gpu="+strconv.Itoa(gpus))
		if gpuModel != "" {
			parts = append(parts, "gres/gpu:"+strings.ToLower(gpuModel)+"="+strconv.Itoa(gpus))
		}
	}
	return strings.Join(parts, ",")
}

func exitCode(code, sig int) string { return strconv.Itoa(code) + ":" + strconv.Itoa(sig) }

// spec is one piece of a %-format: literal text, or a field.
type spec struct {
	lit     string
	field   string // the letter, or a -O name
	width   int    // 0 = as wide as the value
	right   bool   // '.': right-justified
	dynamic bool   // '#': as wide as the widest value
}

// parseFormat reads squeue and sinfo -o formats: literal text and
// %[.|-|#][width]letter fields; "%%" is a percent sign.
func parseFormat(format string, known func(byte) bool, cmd string) ([]spec, error) {
	var specs []spec
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			specs = append(specs, spec{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			lit.WriteByte(format[i])
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			lit.WriteByte('%')
			continue
		}
		var s spec
		for i < len(format) && strings.IndexByte(".-#", format[i]) >= 0 {
			switch format[i] {
			case '.':
				s.right = true
			case '#':
				s.dynamic = true
			}
			i++
		}
		start := i
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			i++
		}
		if i > start {
			s.width, _ = strconv.Atoi(format[start:i])
		}
		if i >= len(format) {
			return nil, fmt.Errorf("%s: error: Invalid format specification %q: it ends in the middle of a field", cmd, format)
		}
		if !known(format[i]) {
			return nil, fmt.Errorf("%s: error: Invalid format specification %q: %%%c is not a field", cmd, format, format[i])
		}
		s.field = string(format[i])
		flush()
		specs = append(specs, s)
	}
	flush()
	return specs, nil
}

// writeTable prints a header (unless noHeader) and rows, each cell fitted
// to its spec: padded, and cut when it is wider than a set width.
func writeTable(w io.Writer, specs []spec, header []string, rows [][]string, noHeader bool) error {
	widths := make([]int, len(specs))
	for i, s := range specs {
		widths[i] = s.width
		if s.dynamic && s.lit == "" {
			widths[i] = max(widths[i], len(header[i]))
			for _, r := range rows {
				widths[i] = max(widths[i], len(r[i]))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, s := range specs {
			if s.field == "" {
				b.WriteString(s.lit)
				continue
			}
			b.WriteString(fit(cells[i], widths[i], s.right))
		}
		b.WriteByte('\n')
	}
	if !noHeader {
		line(header)
	}
	for _, r := range rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fit pads v to width, cutting it when longer; width 0 leaves it as is.
func fit(v string, width int, right bool) string {
	if width == 0 {
		return v
	}
	if len(v) > width {
		return v[:width]
	}
	pad := strings.Repeat(" ", width-len(v))
	if right {
		return pad + v
	}
	return v + pad
}

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

// FormatsMarkdown lists the fields squeue, sacct and sinfo print, for
// docs/SLURM.md.
func FormatsMarkdown() string {
	var b strings.Builder
	b.WriteString("squeue fields (`-o %letter`, `-O name`):\n\n| -o | -O | header |\n|---|---|---|\n")
	for _, f := range jobFields() {
		letter, name := "", ""
		if f.letter != 0 {
			letter = "`%" + string(f.letter) + "`"
		}
		if f.name != "" {
			name = "`" + f.name + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", letter, name, f.header)
	}
	b.WriteString("\nsacct fields (`-o Name[%width]`):\n\n| field | default width |\n|---|---|\n")
	for _, f := range acctFields() {
		fmt.Fprintf(&b, "| `%s` | %d |\n", f.name, f.width)
	}
	b.WriteString("\nsinfo fields (`-o %letter`):\n\n| -o | header |\n|---|---|\n")
	fields := sinfoFields()
	letters := make([]string, 0, len(fields))
	for c := range fields {
		letters = append(letters, string(c))
	}
	slices.Sort(letters)
	for _, c := range letters {
		fmt.Fprintf(&b, "| `%%%s` | %s |\n", c, fields[c[0]].header)
	}
	return b.String()
}
