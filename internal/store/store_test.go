package store

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/usine-project/usine/internal/model"
)

// The computed priority and the administrator's adjustment are both on
// the wire: neither hides the other.
func TestJobJSONKeepsBothPriorities(t *testing.T) {
	in := Job{Job: model.Job{ID: "7", Project: "p", Priority: 5}, Priority: 1234, State: model.JobPending}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Job
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("job through JSON %s (-want +got):\n%s", data, diff)
	}
}

func TestMeasuredEnergyNeedsEveryRankWithAccelerators(t *testing.T) {
	gang := []Alloc{{Node: "a", Accelerators: 8}, {Node: "b", Accelerators: 0}, {Node: "c", Accelerators: 8}}
	end := func(epoch int64, rank int, joules float64) RankEnd {
		return RankEnd{Epoch: epoch, Rank: rank, EnergyJ: joules}
	}
	for _, tc := range []struct {
		name    string
		ranks   []RankEnd
		alloc   []Alloc
		wantKWh float64
		wantOK  bool
	}{
		{"every rank with accelerators measured; the CPU-only rank needs none",
			[]RankEnd{end(2, 0, 3.6e6), end(2, 2, 1.8e6)}, gang, 1.5, true},
		{"a rank not yet reported leaves it to the estimate",
			[]RankEnd{end(2, 0, 3.6e6)}, gang, 0, false},
		{"a rank reported without a measurement leaves it to the estimate",
			[]RankEnd{end(2, 0, 3.6e6), end(2, 2, 0)}, gang, 0, false},
		{"another epoch's ends do not count",
			[]RankEnd{end(1, 0, 3.6e6), end(1, 2, 3.6e6), end(2, 0, 3.6e6)}, gang, 0, false},
		{"a job without accelerators has nothing measured",
			[]RankEnd{end(2, 0, 5)}, []Alloc{{Node: "a"}}, 0, false},
	} {
		kwh, ok := MeasuredEnergy(tc.ranks, 2, tc.alloc)
		if kwh != tc.wantKWh || ok != tc.wantOK {
			t.Errorf("%s: %g kWh, ok %v; want %g, %v", tc.name, kwh, ok, tc.wantKWh, tc.wantOK)
		}
	}
}
