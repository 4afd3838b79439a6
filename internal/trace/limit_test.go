package trace

import "testing"

func TestDefaultLimitRoundsUpTheLadder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		runtime, want int64
	}{
		{0, hour},
		{1, hour},
		{hour, hour},
		{hour + 1, 2 * hour},
		{5 * hour, 8 * hour},
		{11 * hour, 12 * hour},
		{13 * hour, 24 * hour},
		{25 * hour, 48 * hour},
		{49 * hour, 72 * hour},
		{72*hour + 1, 7 * day},
		{8 * day, 14 * day},
		{15 * day, 30 * day},
		{30 * day, 30 * day},
		{30*day + 1, 60 * day},
		{5_196_151, 90 * day}, // Philly's longest run
	}
	for _, tc := range tests {
		if got := DefaultLimit(tc.runtime); got != tc.want {
			t.Errorf("DefaultLimit(%d) = %d; want %d", tc.runtime, got, tc.want)
		}
	}
}

func TestApplyDefaultLimitKeepsGivenLimits(t *testing.T) {
	t.Parallel()
	recs := []Record{{Runtime: 100}, {Runtime: 100, Limit: 50}, {Runtime: 5 * hour}}
	ApplyDefaultLimit(recs)
	for i, want := range []int64{hour, 50, 8 * hour} {
		if recs[i].Limit != want {
			t.Errorf("record %d: limit %d; want %d", i, recs[i].Limit, want)
		}
	}
}

func TestOutcomeKillsAtTheLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		rec         Record
		wantRuntime int64
		wantState   string
	}{
		{"within its limit", Record{Runtime: 10, Limit: 60, State: StateFailed}, 10, StateFailed},
		{"exactly its limit", Record{Runtime: 60, Limit: 60, State: StateCompleted}, 60, StateCompleted},
		{"past its limit", Record{Runtime: 61, Limit: 60, State: StateCompleted}, 60, StateTimeout},
		{"unknown limit", Record{Runtime: 1e6, State: StateCancelled}, 1e6, StateCancelled},
	}
	for _, tc := range tests {
		rt, st := tc.rec.Outcome()
		if rt != tc.wantRuntime || st != tc.wantState {
			t.Errorf("%s: Outcome() = %d, %s; want %d, %s", tc.name, rt, st, tc.wantRuntime, tc.wantState)
		}
	}
}
