package slurm

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// squeue's built-in formats.
const (
	SqueueDefault = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"      // squeue
	SqueueLong    = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R" // squeue -l
	SqueueStart   = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R" // squeue --start
)

// SqueueOptions say how squeue prints.
type SqueueOptions struct {
	Format   string // -o/--format; "" = Fields, else SqueueDefault
	Fields   string // -O/--Format: comma-separated names, each with an optional :[.]width
	NoHeader bool   // -h
	Now      time.Time
	Loc      *time.Location // nil = UTC
}

type jobField struct {
	letter byte   // -o letter; 0 = -O only
	name   string // -O name; "" = -o only
	header string
	value  func(j *JobInfo, c *jobCtx) string
}

type jobCtx struct {
	now time.Time
	loc *time.Location
}

func (c *jobCtx) time(t time.Time) string { return FormatTime(t, c.loc, "N/A") }

func orNull(s string) string {
	if s == "" {
		return "(null)"
	}
	return s
}

// jobFields are squeue's columns, by -o letter and -O name.
func jobFields() []jobField {
	return []jobField{
		{'i', "JobArrayID", "JOBID", func(j *JobInfo, _ *jobCtx) string { return j.arrayID() }},
		{'A', "JobID", "JOBID", func(j *JobInfo, _ *jobCtx) string { return j.ID }},
		{'F', "ArrayJobID", "ARRAY_JOB_ID", func(j *JobInfo, _ *jobCtx) string {
			if j.ArrayJobID != "" {
				return j.ArrayJobID
			}
			return j.ID
		}},
		{'K', "ArrayTaskID", "ARRAY_TASK_ID", func(j *JobInfo, _ *jobCtx) string {
			if j.ArrayJobID != "" {
				return strconv.Itoa(j.ArrayTaskID)
			}
			return "N/A"
		}},
		{'j', "Name", "NAME", func(j *JobInfo, _ *jobCtx) string { return j.Name }},
		{'u', "UserName", "USER", func(j *JobInfo, _ *jobCtx) string { return j.User }},
		{'a', "Account", "ACCOUNT", func(j *JobInfo, _ *jobCtx) string { return j.Account }},
		{'P', "Partition", "PARTITION", func(j *JobInfo, _ *jobCtx) string { return j.Partition }},
		{'q', "QOS", "QOS", func(j *JobInfo, _ *jobCtx) string { return orNull(j.QoS) }},
		{'t', "StateCompact", "ST", func(j *JobInfo, _ *jobCtx) string { return StateCode(j.State) }},
		{'T', "State", "STATE", func(j *JobInfo, _ *jobCtx) string { return StateName(j.State) }},
		{'M', "TimeUsed", "TIME", func(j *JobInfo, c *jobCtx) string { return FormatDuration(j.elapsed(c.now)) }},
		{'l', "TimeLimit", "TIME_LIMIT", func(j *JobInfo, _ *jobCtx) string { return FormatDuration(limitOrUnlimited(j.Limit)) }},
		{'L', "TimeLeft", "TIME_LEFT", func(j *JobInfo, c *jobCtx) string {
			if j.Limit <= 0 {
				return "UNLIMITED"
			}
			return FormatDuration(max(j.Limit-j.elapsed(c.now), 0))
		}},
		{'D', "NumNodes", "NODES", func(j *JobInfo, _ *jobCtx) string { return strconv.Itoa(j.nodeCount()) }},
		{'C', "NumCPUs", "CPUS", func(j *JobInfo, _ *jobCtx) string { return strconv.Itoa(j.CPUs) }},
		{'c', "MinCpus", "MIN_CPUS", func(j *JobInfo, _ *jobCtx) string { return strconv.Itoa(j.CPUs / j.nodeCount()) }},
		{'m', "MinMemory", "MIN_MEMORY", func(j *JobInfo, _ *jobCtx) string { return formatMem(j.MemoryMiB / int64(j.nodeCount())) }},
		{'b', "tres-per-node", "TRES_PER_NODE", func(j *JobInfo, _ *jobCtx) string { return j.gres() }},
		{0, "tres-alloc", "TRES_ALLOC", func(j *JobInfo, _ *jobCtx) string {
			return tres(j.CPUs, j.MemoryMiB, j.nodeCount(), j.Accelerators, j.Model)
		}},
		{'N', "NodeList", "NODELIST", func(j *JobInfo, _ *jobCtx) string { return hostlist.Compress(j.Nodes) }},
		{'R', "ReasonList", "NODELIST(REASON)", func(j *JobInfo, _ *jobCtx) string {
			if j.pending() {
				return "(" + reason(j.Reason) + ")"
			}
			return hostlist.Compress(j.Nodes)
		}},
		{'r', "Reason", "REASON", func(j *JobInfo, _ *jobCtx) string { return reason(j.Reason) }},
		{'S', "StartTime", "START_TIME", func(j *JobInfo, c *jobCtx) string { return c.time(j.Start) }},
		{'V', "SubmitTime", "SUBMIT_TIME", func(j *JobInfo, c *jobCtx) string { return c.time(j.Submit) }},
		{'e', "EndTime", "END_TIME", func(j *JobInfo, c *jobCtx) string {
			if j.End.IsZero() && j.running() && j.Limit > 0 {
				return c.time(j.Start.Add(time.Duration(j.Limit) * time.Second))
			}
			return c.time(j.End)
		}},
		{'Q', "PriorityLong", "PRIORITY", func(j *JobInfo, _ *jobCtx) string { return strconv.FormatInt(j.Priority, 10) }},
		{'p', "Priority", "PRIORITY", func(j *JobInfo, _ *jobCtx) string {
			return strconv.FormatFloat(float64(j.Priority)/4294967295, 'f', 8, 64)
		}},
		{'E', "Dependency", "DEPENDENCY", func(j *JobInfo, _ *jobCtx) string { return formatDeps(j) }},
		{'f', "Feature", "FEATURES", func(j *JobInfo, _ *jobCtx) string { return orNull(j.Constraint) }},
		{'Y', "SchedNodes", "SCHEDNODES", func(j *JobInfo, _ *jobCtx) string { return orNull(hostlist.Compress(j.SchedNodes)) }},
		{'Z', "WorkDir", "WORK_DIR", func(j *JobInfo, _ *jobCtx) string { return orNull(j.WorkDir) }},
		{'o', "Command", "COMMAND", func(j *JobInfo, _ *jobCtx) string { return orNull(j.Command) }},
		{0, "STDOUT", "STDOUT", func(j *JobInfo, _ *jobCtx) string { return orNull(j.Stdout) }},
		{0, "STDERR", "STDERR", func(j *JobInfo, _ *jobCtx) string { return orNull(j.Stderr) }},
		{0, "ExitCode", "EXIT_CODE", func(j *JobInfo, _ *jobCtx) string { return exitCode(j.ExitCode, j.Signal) }},
		{'k', "Comment", "COMMENT", func(*JobInfo, *jobCtx) string { return "(null)" }},
	}
}

func limitOrUnlimited(l int64) int64 {
	if l <= 0 {
		return Unlimited
	}
	return l
}

func reason(r string) string {
	if r == "" {
		return "None"
	}
	return r
}

// Squeue prints jobs as squeue does, in the order given.
func Squeue(w io.Writer, jobs []JobInfo, opt SqueueOptions) error {
	fields := jobFields()
	specs, err := squeueSpecs(opt, fields)
	if err != nil {
		return err
	}
	byName := map[string]*jobField{}
	for i := range fields {
		f := &fields[i]
		if f.letter != 0 {
			byName[string(f.letter)] = f
		}
		if f.name != "" {
			byName[strings.ToLower(f.name)] = f
		}
	}
	c := &jobCtx{now: opt.Now, loc: orUTC(opt.Loc)}
	header := make([]string, len(specs))
	for i, s := range specs {
		if s.field != "" {
			header[i] = byName[s.field].header
		}
	}
	rows := make([][]string, len(jobs))
	for r := range jobs {
		row := make([]string, len(specs))
		for i, s := range specs {
			if s.field != "" {
				row[i] = byName[s.field].value(&jobs[r], c)
			}
		}
		rows[r] = row
	}
	return writeTable(w, specs, header, rows, opt.NoHeader)
}

func squeueSpecs(opt SqueueOptions, fields []jobField) ([]spec, error) {
	if opt.Format == "" && opt.Fields != "" {
		return parseFields(opt.Fields, fields)
	}
	format := opt.Format
	if format == "" {
		format = SqueueDefault
	}
	letters := map[byte]bool{}
	for _, f := range fields {
		if f.letter != 0 {
			letters[f.letter] = true
		}
	}
	return parseFormat(format, func(c byte) bool { return letters[c] }, "squeue")
}

// parseFields reads -O: comma-separated field names, each with an optional
// :[.]width; fields are 20 characters wide by default.
func parseFields(list string, fields []jobField) ([]spec, error) {
	names := map[string]bool{}
	for _, f := range fields {
		if f.name != "" {
			names[strings.ToLower(f.name)] = true
		}
	}
	var specs []spec
	for item := range strings.SplitSeq(list, ",") {
		name, size, hasSize := strings.Cut(item, ":")
		key := strings.ToLower(strings.TrimSpace(name))
		if !names[key] {
			return nil, fmt.Errorf("squeue: error: Invalid job format specification: %s", name)
		}
		s := spec{field: key, width: 20}
		if hasSize {
			if rest, ok := strings.CutPrefix(size, "."); ok {
				s.right, size = true, rest
			}
			n, err := strconv.Atoi(size)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("squeue: error: Invalid --Format width %q for %s: give a number, as in %s:30", size, name, name)
			}
			s.width = n
		}
		specs = append(specs, s)
	}
	return specs, nil
}
