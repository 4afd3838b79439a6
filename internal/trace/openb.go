package trace

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

var openbColumns = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time"}

// openbStates maps a pod phase to a record state. Running and Pending pods
// were still alive when the trace was cut; they count as completed.
var openbStates = map[string]string{
	"Succeeded": StateCompleted,
	"Failed":    StateFailed,
	"Running":   StateCompleted,
	"Pending":   StateCompleted,
}

// ReadOpenB reads an Alibaba openb pod list (openb_pod_list_*.csv): a header
// naming the columns name, cpu_milli, memory_mib, num_gpu, gpu_milli,
// gpu_spec, qos, pod_phase, creation_time, deletion_time and scheduled_time
// in any order. A list that lacks one of them is an error naming those
// missing. Each pod becomes one record:
//
//   - ID: the pod name; Nodes: 1 (a pod runs on one node).
//   - Submit: creation_time minus the earliest creation_time of the file.
//   - Runtime: deletion_time − scheduled_time, at least 1 s; a pod never
//     scheduled (empty scheduled_time) counts from its creation_time.
//   - Accelerators: num_gpu; a fractional pod (num_gpu 1, gpu_milli below
//     1000) counts as one whole accelerator, its share kept in Milli.
//   - Model and Models: gpu_spec's alternatives ("V100M16|V100M32"); empty
//     or "nan" means any model.
//   - Project and User: the QoS class (LS, BE, Burstable, Guaranteed).
//   - State: Succeeded → completed, Failed → failed, Running and Pending
//     (alive when the trace was cut) → completed.
//   - CPUs: cpu_milli / 1000 rounded up; MemoryMiB: memory_mib.
//   - Limit: unknown.
func ReadOpenB(r io.Reader, name string, opt ReadOptions) ([]Record, Stats, error) {
	ls := newLines(r, name)
	col := collector{opt: opt}
	strs := interner{}
	ids := map[string]int{}
	var idx [11]int // position of each of openbColumns
	nCols := 0
	recs := make([]Record, 0, ls.count())
	var parts [][]byte
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if len(b) == 0 {
			continue
		}
		if nCols == 0 {
			var err error
			if nCols, err = openbHeader(&idx, string(b)); err != nil {
				return nil, col.stats, &LineError{File: name, Line: ls.n, Msg: err.Error()}
			}
			continue
		}
		parts = splitBytes(parts, b, ',')
		var lerr *LineError
		var rec Record
		if len(parts) != nCols {
			lerr = &LineError{Msg: fmt.Sprintf("has %d fields; the header names %d", len(parts), nCols)}
		} else {
			var f [11][]byte
			for i, j := range idx {
				f[i] = parts[j]
			}
			rec, lerr = parseOpenBLine(&f, strs)
		}
		var err error
		recs, err = col.keep(recs, rec, lerr, ids, name, ls.n, func(first int) *LineError {
			return &LineError{Field: "name", Msg: fmt.Sprintf("%q already appears on line %d; pod names must be unique", rec.ID, first)}
		})
		if err != nil {
			return nil, col.stats, err
		}
	}
	if err := ls.err(); err != nil {
		return nil, col.stats, err
	}
	if nCols == 0 {
		return nil, col.stats, &LineError{File: name, Msg: "is empty; an openb pod list starts with the header " + strings.Join(openbColumns, ",")}
	}
	if len(recs) > 0 {
		first := recs[0].Submit
		for i := range recs {
			first = min(first, recs[i].Submit)
		}
		for i := range recs {
			recs[i].Submit -= first
		}
	}
	sortRecords(recs)
	col.stats.Records = len(recs)
	return recs, col.stats, nil
}

func openbHeader(idx *[11]int, line string) (int, error) {
	have := strings.Split(line, ",")
	var missing []string
	for i, c := range openbColumns {
		j := slices.Index(have, c)
		if j < 0 {
			missing = append(missing, c)
		}
		idx[i] = j
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("header lacks the column(s) %s; an openb pod list needs %s (openb_pod_list_multigpu20.csv, for one, was published without them)",
			strings.Join(missing, ", "), strings.Join(openbColumns, ","))
	}
	return len(have), nil
}

func parseOpenBLine(f *[11][]byte, strs interner) (Record, *LineError) {
	var err *LineError
	num := func(i int) int64 {
		if err != nil {
			return 0
		}
		n, ok := parseCount(f[i])
		switch {
		case !ok:
			err = &LineError{Field: openbColumns[i], Msg: fmt.Sprintf("%q is not a whole number", f[i])}
		case n < 0:
			err = &LineError{Field: openbColumns[i], Msg: fmt.Sprintf("%d is negative", n)}
		}
		return n
	}
	var r Record
	r.ID = string(f[0])
	if m := checkName(r.ID); m != "" {
		return r, &LineError{Field: "name", Msg: m}
	}
	cpuMilli := num(1)
	r.MemoryMiB = num(2)
	gpus := num(3)
	milli := num(4)
	created := num(8)
	deleted := num(9)
	scheduled := created
	if len(f[10]) > 0 {
		scheduled = num(10)
	}
	if err != nil {
		return r, err
	}
	if milli > 1000 {
		return r, &LineError{Field: "gpu_milli", Msg: fmt.Sprintf("%d is more than one GPU (1000)", milli)}
	}
	r.CPUs = int((cpuMilli + 999) / 1000)
	r.Accelerators = int(gpus)
	if gpus == 1 && milli > 0 && milli < 1000 {
		r.Milli = int(milli)
	}
	if spec := string(f[5]); spec != "" && spec != "nan" {
		r.Models = strings.Split(spec, "|")
		for _, m := range r.Models {
			if checkName(m) != "" {
				return r, &LineError{Field: "gpu_spec", Msg: fmt.Sprintf("%q is not a list of GPU models such as V100M16|V100M32", spec)}
			}
		}
		r.Model = r.Models[0]
	}
	r.Project = strs.get(f[6])
	if m := checkName(r.Project); m != "" {
		return r, &LineError{Field: "qos", Msg: m}
	}
	r.User = r.Project
	state, ok := openbStates[string(f[7])]
	if !ok {
		return r, &LineError{Field: "pod_phase", Msg: fmt.Sprintf("%q is not a pod phase; want Succeeded, Failed, Running or Pending", f[7])}
	}
	r.State = state
	if deleted < scheduled {
		return r, &LineError{Field: "deletion_time", Msg: fmt.Sprintf("%d is before the pod started (%d)", deleted, scheduled)}
	}
	if scheduled < created {
		return r, &LineError{Field: "scheduled_time", Msg: fmt.Sprintf("%d is before creation_time %d", scheduled, created)}
	}
	r.Submit = created
	r.Runtime = max(deleted-scheduled, 1)
	r.Nodes = 1
	return r, nil
}
