package trace

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// swfFields names the 18 fields of a Standard Workload Format line, as
// errors call them.
var swfFields = [18]string{
	"job_number", "submit_time", "wait_time", "run_time", "allocated_processors",
	"average_cpu_time", "used_memory", "requested_processors", "requested_time",
	"requested_memory", "status", "user_id", "group_id", "executable",
	"queue", "partition", "preceding_job", "think_time",
}

// SWFOptions tune ReadSWF.
type SWFOptions struct {
	ReadOptions
	// PerNode, when positive, is the processors of one node of the logged
	// machine: a job whose processor count it divides becomes a gang of
	// processors/PerNode nodes; any other job is packed.
	PerNode int
}

// ReadSWF reads a Standard Workload Format log of the Parallel Workloads
// Archive: 18 whitespace-separated fields a line, ';' starting a comment.
// A line becomes a record as follows (one processor = one accelerator):
//
//   - ID: job number; Submit: submit time (already relative to the log start).
//   - Runtime: run time. A job that never ran (run time 0 or -1) is dropped
//     and counted in Stats.Dropped.
//   - Accelerators: allocated processors, or requested processors when the
//     allocation is missing (-1); Nodes: see SWFOptions.PerNode, else packed.
//   - Limit: requested time; -1 or 0 leaves it unknown.
//   - State: status 1 → completed, 0 → failed, 5 → cancelled, -1 (unknown) →
//     completed. Status 2, 3 and 4 mark partial executions of a checkpointed
//     job whose whole is on another line: dropped, counted in Stats.Dropped.
//   - User: "u" + user id; Project: "g" + group id, or the user when the
//     group is missing (-1). A missing user id gives user "unknown".
//
// Only the fields above are parsed; the others must be present but are not
// checked.
func ReadSWF(r io.Reader, name string, opt SWFOptions) ([]Record, Stats, error) {
	if opt.PerNode < 0 {
		return nil, Stats{}, fmt.Errorf("swf: per-node processors %d is negative; give 0 (pack) or more", opt.PerNode)
	}
	ls := newLines(r, name)
	col := collector{opt: opt.ReadOptions}
	strs := interner{}
	ids := map[string]int{}
	recs := make([]Record, 0, ls.count())
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if i := bytes.IndexByte(b, ';'); i >= 0 {
			b = b[:i]
		}
		f := bytes.Fields(b)
		if len(f) == 0 {
			continue
		}
		rec, drop, lerr := parseSWFLine(f, opt.PerNode, strs)
		if drop {
			col.stats.Dropped++
			continue
		}
		var err error
		recs, err = col.keep(recs, rec, lerr, ids, name, ls.n, func(first int) *LineError {
			return &LineError{Field: "job_number", Msg: fmt.Sprintf("%s already appears on line %d; job numbers must be unique", rec.ID, first)}
		})
		if err != nil {
			return nil, col.stats, err
		}
	}
	if err := ls.err(); err != nil {
		return nil, col.stats, err
	}
	sortRecords(recs)
	col.stats.Records = len(recs)
	return recs, col.stats, nil
}

// parseSWFLine maps the fields of one SWF line; drop says the line is well
// formed but holds no job to replay.
func parseSWFLine(f [][]byte, perNode int, strs interner) (rec Record, drop bool, _ *LineError) {
	if len(f) != len(swfFields) {
		return rec, false, &LineError{Msg: fmt.Sprintf("has %d fields; an SWF line has %d", len(f), len(swfFields))}
	}
	var v [18]int64
	for _, i := range []int{0, 1, 3, 4, 7, 8, 10, 11, 12} {
		n, ok := parseCount(f[i])
		if !ok {
			return rec, false, &LineError{Field: swfFields[i], Msg: fmt.Sprintf("%q is not a whole number", f[i])}
		}
		if n < -1 {
			return rec, false, &LineError{Field: swfFields[i], Msg: fmt.Sprintf("%d is negative; SWF marks a missing value with -1", n)}
		}
		v[i] = n
	}
	switch {
	case v[0] < 0:
		return rec, false, &LineError{Field: "job_number", Msg: "is missing (-1); every job needs a number"}
	case v[1] < 0:
		return rec, false, &LineError{Field: "submit_time", Msg: "is missing (-1); every job needs a submit time"}
	}
	switch v[10] {
	case 1, -1:
		rec.State = StateCompleted
	case 0:
		rec.State = StateFailed
	case 5:
		rec.State = StateCancelled
	case 2, 3, 4:
		return rec, true, nil
	default:
		return rec, false, &LineError{Field: "status", Msg: fmt.Sprintf("%d is not an SWF status; want 0 (failed), 1 (completed), 5 (cancelled), 2–4 (partial execution) or -1", v[10])}
	}
	if v[3] <= 0 {
		return rec, true, nil
	}
	procs := v[4]
	if procs < 0 {
		procs = v[7]
	}
	if procs < 0 {
		return rec, false, &LineError{Field: "allocated_processors", Msg: "is missing (-1) and so are requested_processors; a job needs a processor count"}
	}
	rec.ID = strconv.FormatInt(v[0], 10)
	rec.Submit = v[1]
	rec.Runtime = v[3]
	rec.Accelerators = int(procs)
	if perNode > 0 && procs > 0 && procs%int64(perNode) == 0 {
		rec.Nodes = int(procs) / perNode
	}
	rec.Limit = max(v[8], 0)
	rec.User = "unknown"
	if v[11] >= 0 {
		rec.User = strs.get(strconv.AppendInt([]byte("u"), v[11], 10))
	}
	rec.Project = rec.User
	if v[12] >= 0 {
		rec.Project = strs.get(strconv.AppendInt([]byte("g"), v[12], 10))
	}
	return rec, false, nil
}
