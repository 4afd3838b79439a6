package trace

// Limit ladder: the round time limits users ask for.
const (
	hour = 3600
	day  = 24 * hour
)

// Ladder is the list of round time limits, in seconds, that DefaultLimit
// rounds a run time up to: 1h, 2h, 4h, 8h, 12h, 24h, 48h, 72h, 7d, 14d, 30d.
func Ladder() []int64 {
	return []int64{1 * hour, 2 * hour, 4 * hour, 8 * hour, 12 * hour, 24 * hour, 48 * hour, 72 * hour, 7 * day, 14 * day, 30 * day}
}

// DefaultLimit is the time limit a job with an unknown limit_s gets: its run
// time rounded up to the next step of the Ladder (the smallest step at
// least as long as the run time, so a run of exactly 1h gets 1h). Beyond
// 30 days it is the next whole multiple of 30 days. A run time below 1 s
// counts as 1 s.
func DefaultLimit(runtime int64) int64 {
	runtime = max(runtime, 1)
	for _, step := range Ladder() {
		if runtime <= step {
			return step
		}
	}
	const month = 30 * day
	return (runtime + month - 1) / month * month
}

// ApplyDefaultLimit gives every record whose limit is unknown (Limit == 0)
// its DefaultLimit. Records with a limit keep it, even one shorter than the
// run time: such a job is killed at its limit and ends in state timeout.
func ApplyDefaultLimit(recs []Record) {
	for i := range recs {
		if recs[i].Limit == 0 {
			recs[i].Limit = DefaultLimit(recs[i].Runtime)
		}
	}
}

// Outcome is how a replay ends the job: a job whose run time exceeds its
// limit is killed at the limit and ends in state timeout; any other job runs
// for its run time and ends in its recorded state. An unknown limit (0)
// counts as DefaultLimit(Runtime), which never cuts the run short.
func (r *Record) Outcome() (runtime int64, state string) {
	if r.Limit > 0 && r.Runtime > r.Limit {
		return r.Limit, StateTimeout
	}
	return r.Runtime, r.State
}
