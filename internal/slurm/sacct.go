package slurm

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// SacctDefault is the fields sacct prints when -o is not given.
const SacctDefault = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"

// SacctOptions say how sacct prints.
type SacctOptions struct {
	Fields          string // -o/--format: comma-separated names, each with an optional %width; "" = SacctDefault
	Parsable        bool   // -p: fields end with '|'
	Parsable2       bool   // -P: fields are separated by '|'
	NoHeader        bool   // -n
	AllocationsOnly bool   // -X: jobs without their steps
	Now             time.Time
	Loc             *time.Location // nil = UTC
}

// acctRow is what one sacct line describes: a job, or one of its steps.
type acctRow struct {
	job  *JobInfo
	step *StepInfo // nil for the job's own line
}

func (r acctRow) pending() bool {
	if r.step != nil {
		return false
	}
	return r.job.pending()
}

func (r acctRow) start() time.Time {
	if r.step != nil {
		return r.step.Start
	}
	if r.job.pending() {
		return time.Time{}
	}
	return r.job.Start
}

func (r acctRow) end() time.Time {
	if r.step != nil {
		return r.step.End
	}
	return r.job.End
}

func (r acctRow) elapsed(now time.Time) int64 {
	return elapsed(r.pending(), r.start(), r.end(), now)
}

func (r acctRow) nodes() []string {
	if r.step != nil {
		return r.step.Nodes
	}
	return r.job.Nodes
}

func (r acctRow) allocCPUs() int {
	switch {
	case r.step != nil:
		return r.step.CPUs
	case r.job.pending():
		return 0
	}
	return r.job.CPUs
}

type acctField struct {
	name  string
	width int
	value func(r acctRow, c *jobCtx) string
}

func acctTime(t time.Time, c *jobCtx) string { return FormatTime(t, c.loc, "Unknown") }

// acctFields are sacct's fields and their default widths.
func acctFields() []acctField {
	return []acctField{
		{"JobID", 12, func(r acctRow, _ *jobCtx) string {
			id := r.job.arrayID()
			if r.step != nil {
				id += "." + r.step.ID
			}
			return id
		}},
		{"JobIDRaw", 12, func(r acctRow, _ *jobCtx) string {
			if r.step != nil {
				return r.job.ID + "." + r.step.ID
			}
			return r.job.ID
		}},
		{"JobName", 10, func(r acctRow, _ *jobCtx) string {
			if r.step != nil {
				return r.step.Name
			}
			return r.job.Name
		}},
		{"Partition", 10, func(r acctRow, _ *jobCtx) string { return jobOnly(r, r.job.Partition) }},
		{"Account", 10, func(r acctRow, _ *jobCtx) string { return r.job.Account }},
		{"User", 9, func(r acctRow, _ *jobCtx) string { return jobOnly(r, r.job.User) }},
		{"QOS", 10, func(r acctRow, _ *jobCtx) string { return jobOnly(r, r.job.QoS) }},
		{"State", 10, func(r acctRow, _ *jobCtx) string {
			if r.step != nil {
				return StateName(r.step.State)
			}
			return StateName(r.job.State)
		}},
		{"ExitCode", 8, func(r acctRow, _ *jobCtx) string {
			if r.step != nil {
				return exitCode(r.step.ExitCode, r.step.Signal)
			}
			return exitCode(r.job.ExitCode, r.job.Signal)
		}},
		{"Elapsed", 10, func(r acctRow, c *jobCtx) string { return FormatClock(r.elapsed(c.now)) }},
		{"ElapsedRaw", 10, func(r acctRow, c *jobCtx) string { return strconv.FormatInt(r.elapsed(c.now), 10) }},
		{"CPUTime", 10, func(r acctRow, c *jobCtx) string { return FormatClock(r.elapsed(c.now) * int64(r.allocCPUs())) }},
		{"CPUTimeRAW", 10, func(r acctRow, c *jobCtx) string {
			return strconv.FormatInt(r.elapsed(c.now)*int64(r.allocCPUs()), 10)
		}},
		{"Submit", 19, func(r acctRow, c *jobCtx) string { return acctTime(r.job.Submit, c) }},
		{"Eligible", 19, func(r acctRow, c *jobCtx) string { return acctTime(r.job.Submit, c) }},
		{"Start", 19, func(r acctRow, c *jobCtx) string { return acctTime(r.start(), c) }},
		{"End", 19, func(r acctRow, c *jobCtx) string { return acctTime(r.end(), c) }},
		{"Timelimit", 10, func(r acctRow, _ *jobCtx) string { return jobOnly(r, FormatClock(limitOrUnlimited(r.job.Limit))) }},
		{"TimelimitRaw", 10, func(r acctRow, _ *jobCtx) string {
			if r.job.Limit <= 0 {
				return jobOnly(r, "UNLIMITED")
			}
			return jobOnly(r, strconv.FormatInt(r.job.Limit/60, 10))
		}},
		{"AllocCPUS", 10, func(r acctRow, _ *jobCtx) string { return strconv.Itoa(r.allocCPUs()) }},
		{"NCPUS", 10, func(r acctRow, _ *jobCtx) string { return strconv.Itoa(r.allocCPUs()) }},
		{"ReqCPUS", 8, func(r acctRow, _ *jobCtx) string { return strconv.Itoa(r.job.CPUs) }},
		{"NNodes", 8, func(r acctRow, _ *jobCtx) string {
			if n := len(r.nodes()); n > 0 {
				return strconv.Itoa(n)
			}
			return strconv.Itoa(r.job.nodeCount())
		}},
		{"AllocNodes", 10, func(r acctRow, _ *jobCtx) string { return strconv.Itoa(len(r.nodes())) }},
		{"ReqNodes", 8, func(r acctRow, _ *jobCtx) string { return strconv.Itoa(r.job.nodeCount()) }},
		{"NodeList", 15, func(r acctRow, _ *jobCtx) string {
			if len(r.nodes()) == 0 {
				return "None assigned"
			}
			return hostlist.Compress(r.nodes())
		}},
		{"ReqMem", 10, func(r acctRow, _ *jobCtx) string { return jobOnly(r, formatMem(r.job.MemoryMiB)) }},
		{"AllocTRES", 10, func(r acctRow, _ *jobCtx) string {
			if r.pending() {
				return ""
			}
			j := r.job
			if r.step != nil {
				return tres(r.step.CPUs, 0, len(r.step.Nodes), r.step.GPUs, j.Model)
			}
			return tres(j.CPUs, j.MemoryMiB, j.nodeCount(), j.Accelerators, j.Model)
		}},
		{"ReqTRES", 10, func(r acctRow, _ *jobCtx) string {
			j := r.job
			return jobOnly(r, tres(j.CPUs, j.MemoryMiB, j.nodeCount(), j.Accelerators, j.Model))
		}},
		{"Priority", 10, func(r acctRow, _ *jobCtx) string { return jobOnly(r, strconv.FormatInt(r.job.Priority, 10)) }},
		{"Reason", 20, func(r acctRow, _ *jobCtx) string { return jobOnly(r, reason(r.job.Reason)) }},
		{"Constraints", 19, func(r acctRow, _ *jobCtx) string { return jobOnly(r, r.job.Constraint) }},
		{"WorkDir", 15, func(r acctRow, _ *jobCtx) string { return jobOnly(r, r.job.WorkDir) }},
	}
}

// jobOnly is v on a job's line and empty on its steps', as sacct leaves
// job-level fields blank below the job.
func jobOnly(r acctRow, v string) string {
	if r.step != nil {
		return ""
	}
	return v
}

// Sacct prints jobs, each followed by its steps unless AllocationsOnly, as
// sacct does.
func Sacct(w io.Writer, jobs []JobInfo, opt SacctOptions) error {
	all := acctFields()
	byName := map[string]*acctField{}
	for i := range all {
		byName[strings.ToLower(all[i].name)] = &all[i]
	}
	list := opt.Fields
	if list == "" {
		list = SacctDefault
	}
	type column struct {
		f     *acctField
		width int
	}
	var cols []column
	for item := range strings.SplitSeq(list, ",") {
		name, width, hasWidth := strings.Cut(strings.TrimSpace(item), "%")
		f, ok := byName[strings.ToLower(name)]
		if !ok {
			return fmt.Errorf("sacct: error: Invalid field requested: %q", name)
		}
		c := column{f: f, width: f.width}
		if hasWidth {
			n, err := strconv.Atoi(width)
			if err != nil || n < 1 {
				return fmt.Errorf("sacct: error: Invalid width %q for field %s: give a number, as in %s%%20", width, f.name, f.name)
			}
			c.width = n
		}
		cols = append(cols, c)
	}
	c := &jobCtx{now: opt.Now, loc: orUTC(opt.Loc)}
	var rows []acctRow
	for i := range jobs {
		rows = append(rows, acctRow{job: &jobs[i]})
		if !opt.AllocationsOnly {
			for s := range jobs[i].Steps {
				rows = append(rows, acctRow{job: &jobs[i], step: &jobs[i].Steps[s]})
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, v := range cells {
			switch {
			case opt.Parsable2:
				if i > 0 {
					b.WriteByte('|')
				}
				b.WriteString(v)
			case opt.Parsable:
				b.WriteString(v)
				b.WriteByte('|')
			default:
				b.WriteString(acctFit(v, cols[i].width, cols[i].f.name != "JobID" && cols[i].f.name != "JobIDRaw"))
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	if !opt.NoHeader {
		header := make([]string, len(cols))
		dashes := make([]string, len(cols))
		for i, col := range cols {
			header[i] = col.f.name
			dashes[i] = strings.Repeat("-", col.width)
		}
		line(header)
		if !opt.Parsable && !opt.Parsable2 {
			line(dashes)
		}
	}
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, col := range cols {
			cells[i] = col.f.value(r, c)
		}
		line(cells)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// acctFit pads v to width; a longer value is cut and ends in '+', as sacct
// marks it.
func acctFit(v string, width int, right bool) string {
	if len(v) > width {
		return v[:width-1] + "+"
	}
	return fit(v, width, right)
}
