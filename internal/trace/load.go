package trace

import (
	"fmt"
	"math"
)

// OfferedLoad is the work of recs (accelerator-seconds actually run) over
// what capacity accelerators offer between the first and the last submit.
// It returns 0 when every job arrives at the same instant.
func OfferedLoad(recs []Record, capacity int) float64 {
	if len(recs) < 2 || capacity <= 0 {
		return 0
	}
	first, last := recs[0].Submit, recs[0].Submit
	work := 0.0
	for i := range recs {
		first, last = min(first, recs[i].Submit), max(last, recs[i].Submit)
		run, _ := recs[i].Outcome()
		work += float64(recs[i].Accelerators) * float64(run)
	}
	if last == first {
		return 0
	}
	return work / (float64(capacity) * float64(last-first))
}

// ScaleLoad stretches or compresses the arrival times of recs, in place and
// keeping their order, so that their offered load on capacity accelerators
// becomes load. Run times, sizes and limits stay as they are. This is how a
// trace recorded on a lightly used cluster is replayed under contention.
func ScaleLoad(recs []Record, capacity int, load float64) error {
	if !(load > 0) || math.IsInf(load, 0) {
		return fmt.Errorf("load %g: give a fraction of the cluster above 0, such as 0.9", load)
	}
	cur := OfferedLoad(recs, capacity)
	if cur == 0 {
		return fmt.Errorf("cannot scale the load of a trace whose jobs all arrive at once (or that has no work)")
	}
	first := recs[0].Submit
	for i := range recs {
		first = min(first, recs[i].Submit)
	}
	f := cur / load
	for i := range recs {
		recs[i].Submit = first + int64(math.Round(float64(recs[i].Submit-first)*f))
	}
	return nil
}
