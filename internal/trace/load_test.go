package trace

import (
	"math"
	"testing"
)

func TestScaleLoadReachesTheTarget(t *testing.T) {
	t.Parallel()
	recs := []Record{
		{ID: "a", Submit: 100, Accelerators: 4, Runtime: 1000, Limit: 2000},
		{ID: "b", Submit: 1100, Accelerators: 2, Runtime: 500, Limit: 600},
		{ID: "c", Submit: 10100, Accelerators: 8, Runtime: 9000, Limit: 3600}, // killed at its limit
	}
	// work = 4×1000 + 2×500 + 8×3600 = 33,800 acc-s over 16 acc × 10,000 s.
	if got, want := OfferedLoad(recs, 16), 33800.0/160000; math.Abs(got-want) > 1e-12 {
		t.Fatalf("OfferedLoad = %v, want %v", got, want)
	}
	if err := ScaleLoad(recs, 16, 0.8); err != nil {
		t.Fatal(err)
	}
	if got := OfferedLoad(recs, 16); math.Abs(got-0.8) > 0.01 {
		t.Errorf("after scaling, load = %v, want 0.8", got)
	}
	if recs[0].Submit != 100 || !(recs[0].Submit <= recs[1].Submit && recs[1].Submit <= recs[2].Submit) {
		t.Errorf("scaling must keep the first arrival and the order: %d %d %d", recs[0].Submit, recs[1].Submit, recs[2].Submit)
	}
	if recs[2].Runtime != 9000 || recs[2].Limit != 3600 {
		t.Errorf("scaling changed a job's run time or limit: %+v", recs[2])
	}
}

func TestScaleLoadRefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	same := []Record{{ID: "a", Submit: 5, Accelerators: 1, Runtime: 10}, {ID: "b", Submit: 5, Accelerators: 1, Runtime: 10}}
	for _, tc := range []struct {
		name string
		recs []Record
		load float64
	}{
		{"zero load", same, 0},
		{"negative load", same, -1},
		{"infinite load", same, math.Inf(1)},
		{"all at once", same, 0.5},
	} {
		if err := ScaleLoad(tc.recs, 8, tc.load); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
