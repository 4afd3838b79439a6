package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/trace"
)

// Defaults of Options.
const (
	DefaultPassInterval     = 10 * time.Second
	DefaultBackfillInterval = 60 * time.Second
	DefaultHalfLife         = 7 * 24 * time.Hour
	DefaultRepairTime       = 4 * time.Hour
)

// Options tune a replay. The zero value is a good start.
type Options struct {
	// PassInterval spaces the passes that follow submits and ends: at most
	// one per interval of simulated time, and only when something changed.
	// 0 = DefaultPassInterval.
	PassInterval time.Duration
	// BackfillInterval spaces the full passes (the policy's backfill and
	// all) while jobs wait. 0 = DefaultBackfillInterval.
	BackfillInterval time.Duration
	// HalfLife of the decayed usage that fair share weighs. 0 =
	// DefaultHalfLife.
	HalfLife time.Duration

	// Shares of each trace project in fair share; a project not listed has
	// one share.
	Shares map[string]int64
	// QoS classes handed to every pass, and Classify maps each record onto
	// one (and says whether it may be preempted). Traces carry no QoS: by
	// default every job has none and nothing is ever preempted.
	QoS      []sched.QoS
	Classify func(r *trace.Record) (qos string, preemptible bool)

	// NodeEvents fail and repair nodes at given times.
	NodeEvents []NodeEvent
	// FailRate, when positive, also fails random up nodes: each fails on
	// average FailRate times a day (a Poisson process drawn from Seed) and
	// comes back RepairTime later (0 = DefaultRepairTime).
	FailRate   float64
	RepairTime time.Duration
	Seed       uint64
	// Checkpoint, when set, is how often running jobs save their progress:
	// a job stopped by a failure or a preemption resumes from its last
	// checkpoint. 0: it restarts from scratch.
	Checkpoint time.Duration

	// SkipImpossible skips, and counts, jobs that could never run on the
	// cluster, instead of failing with a *RecordError wrapping ErrCannotFit.
	SkipImpossible bool
	// Outcomes keeps every job's Outcome in Result.Outcomes.
	Outcomes bool
	// Progress, when set, is called now and then from the goroutine that
	// replays the policy (RunAll calls it from several at once).
	Progress func(Progress)

	// everyPass asks the scheduler at every pass, even those known to
	// decide nothing; tests check that it changes no result.
	everyPass bool
}

// NodeEvent takes a node down (its jobs are requeued) or brings it back up.
type NodeEvent struct {
	At   int64  `json:"at_s"` // seconds, on the trace's clock
	Node string `json:"node"`
	Up   bool   `json:"up"` // false: fails; true: repaired
}

// Progress says how far a replay is.
type Progress struct {
	Policy string
	Index  int   // the policy's position in RunAll's list
	Done   int   // jobs finished
	Total  int   // jobs to finish
	Now    int64 // simulated time, seconds
}

// settings are Options resolved to seconds.
type settings struct {
	passInterval, backfillInterval int64
	decay                          float64 // λ of the usage decay, per second
	repair                         int64
	failPerSecond                  float64 // per node
	checkpoint                     int64   // 0: none
}

func resolve(o *Options) (settings, error) {
	var s settings
	secs := func(name string, d, def time.Duration) (int64, error) {
		switch {
		case d == 0:
			d = def
		case d < 0:
			return 0, fmt.Errorf("simulate: %s is %v; give a positive duration", name, d)
		case d < time.Second:
			return 0, fmt.Errorf("simulate: %s is %v; the simulated clock ticks in seconds, give at least 1s", name, d)
		}
		return int64(d / time.Second), nil
	}
	var err error
	var half int64
	errs := []error{}
	s.passInterval, err = secs("pass interval", o.PassInterval, DefaultPassInterval)
	errs = append(errs, err)
	s.backfillInterval, err = secs("backfill interval", o.BackfillInterval, DefaultBackfillInterval)
	errs = append(errs, err)
	half, err = secs("fair-share half-life", o.HalfLife, DefaultHalfLife)
	errs = append(errs, err)
	s.repair, err = secs("repair time", o.RepairTime, DefaultRepairTime)
	errs = append(errs, err)
	if o.Checkpoint != 0 {
		s.checkpoint, err = secs("checkpoint interval", o.Checkpoint, 0)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	s.decay = math.Ln2 / float64(half)
	if o.FailRate < 0 || math.IsNaN(o.FailRate) || math.IsInf(o.FailRate, 0) {
		return s, fmt.Errorf("simulate: failure rate %g; give failures per node per day, 0 or more", o.FailRate)
	}
	s.failPerSecond = o.FailRate / 86400
	return s, nil
}
