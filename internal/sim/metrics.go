package sim

import (
	"math"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// SlowdownBound is the run time, in seconds, below which a job counts as
// this long in its bounded slowdown, so that very short jobs do not swamp
// the mean: max(1, (wait + run) / max(run, SlowdownBound)).
const SlowdownBound = 10

// Stats are the aggregates of a set of jobs. Times are in seconds;
// percentiles are nearest-rank.
type Stats struct {
	Jobs               int     `json:"jobs"`
	AvgJCT             float64 `json:"avg_jct_s"` // completion time: end − submit
	P50JCT             float64 `json:"p50_jct_s"`
	P95JCT             float64 `json:"p95_jct_s"`
	P99JCT             float64 `json:"p99_jct_s"`
	AvgQueue           float64 `json:"avg_queue_s"` // queueing delay: first start − submit
	P50Queue           float64 `json:"p50_queue_s"`
	P95Queue           float64 `json:"p95_queue_s"`
	P99Queue           float64 `json:"p99_queue_s"`
	AvgBoundedSlowdown float64 `json:"avg_bounded_slowdown"`
}

// SizeStats are the aggregates of the jobs of one size class.
type SizeStats struct {
	Class string `json:"class"` // "1", "2-8", "9-64", "65-512", ">512" accelerators
	Min   int    `json:"min_accelerators"`
	Max   int    `json:"max_accelerators"` // 0: no upper bound
	Stats
}

// sizeClasses bound the size classes; CPU-only jobs count with the
// single-accelerator ones.
var sizeClasses = []SizeStats{
	{Class: "1", Min: 0, Max: 1},
	{Class: "2-8", Min: 2, Max: 8},
	{Class: "9-64", Min: 9, Max: 64},
	{Class: "65-512", Min: 65, Max: 512},
	{Class: ">512", Min: 513},
}

func sizeClass(acc int) int {
	for k := len(sizeClasses) - 1; k > 0; k-- {
		if acc >= sizeClasses[k].Min {
			return k
		}
	}
	return 0
}

// ProjectStats is what one project received, against what its shares
// entitle it to.
type ProjectStats struct {
	Project            string  `json:"project"`
	Shares             int64   `json:"shares"`
	Jobs               int     `json:"jobs"`
	AcceleratorSeconds int64   `json:"accelerator_s"`  // held by its jobs, lost work included
	ShareReceived      float64 `json:"share_received"` // its fraction of all accelerator-seconds held
	ShareEntitled      float64 `json:"share_entitled"` // its shares over all projects' shares
	// ShareContended is its fraction of the accelerator-seconds held while
	// jobs waited: when the policy, not the demand, decided who ran.
	ShareContended     float64 `json:"share_contended"`
	AvgBoundedSlowdown float64 `json:"avg_bounded_slowdown"`
	AvgJCT             float64 `json:"avg_jct_s"`
	AvgQueue           float64 `json:"avg_queue_s"`
}

// Sample is the state of the cluster over one step of the timeline,
// averaged over the step.
type Sample struct {
	T           int64   `json:"t_s"` // start of the step
	Utilization float64 `json:"utilization"`
	Queue       float64 `json:"queue"` // jobs waiting
}

// Outcome is how one job went.
type Outcome struct {
	ID           string         `json:"id"`
	Line         int            `json:"line,omitempty"`
	Project      string         `json:"project"`
	Accelerators int            `json:"accelerators"`
	Submit       int64          `json:"submit_s"`
	Start        int64          `json:"start_s"` // first start
	End          int64          `json:"end_s"`
	Starts       int            `json:"starts"` // 1, plus one per preemption or node failure
	State        model.JobState `json:"state"`
}

// Result is what one policy did with the trace.
type Result struct {
	Policy string `json:"policy"`
	Stats
	// Utilization is accelerator-seconds held over capacity × makespan.
	Utilization float64 `json:"utilization"`
	Makespan    int64   `json:"makespan_s"` // first submit to last end
	Preemptions int     `json:"preemptions"`
	// FailureRequeues counts jobs stopped by node failures and requeued.
	FailureRequeues int `json:"failure_requeues"`
	// LostAcceleratorSeconds were held by runs that preemption or failure
	// cut short.
	LostAcceleratorSeconds int64 `json:"lost_accelerator_s"`
	Timeouts               int   `json:"timeouts"` // jobs killed at their time limit
	// Passes counts the scheduling passes of the replay, and FullPasses
	// the full ones among them; PlanCalls those the scheduler was asked
	// for (the others were known to decide nothing).
	Passes     int `json:"passes"`
	FullPasses int `json:"full_passes"`
	PlanCalls  int `json:"plan_calls"`
	// Skipped jobs could never run on the cluster (Options.SkipImpossible);
	// SkipErrors holds the first few reasons.
	Skipped            int      `json:"skipped"`
	SkipErrors         []string `json:"skip_errors,omitempty"`
	Capacity           int      `json:"capacity"` // accelerators of the cluster
	AcceleratorSeconds int64    `json:"accelerator_s"`
	// Fairness is Jain's index of the projects' mean bounded slowdowns: 1
	// when every project's jobs were slowed alike, towards 1/n as one
	// project's jobs bear all the waiting.
	Fairness float64        `json:"fairness"`
	BySize   []SizeStats    `json:"by_size"`
	Projects []ProjectStats `json:"projects"`
	// JCTQuantiles[k] is the k/200 quantile of completion time: the CDF.
	JCTQuantiles []float64 `json:"jct_quantiles_s"`
	Timeline     []Sample  `json:"timeline"`

	// WallSeconds and JobsPerSecond are filled by callers that time the
	// run (usine sim); the simulator reads no clock.
	WallSeconds   float64 `json:"wall_s,omitempty"`
	JobsPerSecond float64 `json:"jobs_per_s,omitempty"`

	// Outcomes, in submit order, when Options.Outcomes asks for them.
	Outcomes []Outcome `json:"-"`
}

// quantileSteps is how many steps JCTQuantiles divides [0, 1] into.
const quantileSteps = 200

// timelinePoints is how many samples a timeline has at most.
const timelinePoints = 500

func (r *runner) result() *Result {
	p := r.p
	res := &Result{
		Policy:                 r.full.Name,
		Preemptions:            r.preemptions,
		FailureRequeues:        r.failRequeues,
		LostAcceleratorSeconds: r.lostAccSeconds,
		Passes:                 r.passes,
		FullPasses:             r.fullPasses,
		PlanCalls:              r.planCalls,
		Skipped:                p.skipped + r.dropped,
		Capacity:               p.capacity,
	}
	res.SkipErrors = append(slices.Clone(p.skipErrors), r.dropErrors...)
	if len(res.SkipErrors) > maxSkipErrors {
		res.SkipErrors = res.SkipErrors[:maxSkipErrors]
	}

	n := r.nDone
	jct := make([]int64, 0, n)
	queue := make([]int64, 0, n)
	class := make([]int8, 0, n)
	var bsld float64
	classBSLD := make([]float64, len(sizeClasses))
	np := len(p.projects)
	projJobs := make([]int, np)
	projJCT := make([]float64, np)
	projQueue := make([]float64, np)
	projBSLD := make([]float64, np)
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	if r.opt.Outcomes {
		res.Outcomes = make([]Outcome, 0, n)
	}
	for i := range int32(p.n) {
		if r.status[i] != stDone {
			continue
		}
		sub, st, end := p.submit[i], r.firstStart[i], r.end[i]
		first, last = min(first, sub), max(last, end)
		c, q := end-sub, st-sub
		jct, queue = append(jct, c), append(queue, q)
		k := sizeClass(p.total(i))
		class = append(class, int8(k))
		b := max(1, float64(c)/float64(max(p.run[i], SlowdownBound)))
		bsld += b
		classBSLD[k] += b
		pj := p.proj[i]
		projJobs[pj]++
		projJCT[pj] += float64(c)
		projQueue[pj] += float64(q)
		projBSLD[pj] += b
		state := finalStates[p.final[i]]
		if state == model.JobTimeout {
			res.Timeouts++
		}
		if r.opt.Outcomes {
			res.Outcomes = append(res.Outcomes, Outcome{ID: p.id(i), Line: int(p.line[i]), Project: p.projects[pj],
				Accelerators: p.total(i), Submit: sub, Start: st, End: end, Starts: int(r.starts[i]), State: state})
		}
	}
	if n > 0 {
		res.Makespan = last - first
	}

	// Per size class, before the overall stats sort the columns.
	byClass := make([][2][]int64, len(sizeClasses))
	for k, c := range class {
		byClass[c][0] = append(byClass[c][0], jct[k])
		byClass[c][1] = append(byClass[c][1], queue[k])
	}
	res.BySize = slices.Clone(sizeClasses)
	for k := range res.BySize {
		res.BySize[k].Stats = stats(byClass[k][0], byClass[k][1], classBSLD[k])
	}
	res.Stats = stats(jct, queue, bsld) // sorts jct
	res.JCTQuantiles = make([]float64, quantileSteps+1)
	for k := range res.JCTQuantiles {
		res.JCTQuantiles[k] = quantile(jct, float64(k)/quantileSteps)
	}

	var total int64
	for _, a := range r.projAccS {
		total += a
	}
	res.AcceleratorSeconds = total
	if res.Makespan > 0 && p.capacity > 0 {
		res.Utilization = float64(total) / (float64(p.capacity) * float64(res.Makespan))
	}
	var shares, contended int64
	for _, s := range p.shares {
		shares += s
	}
	for pj := range p.projects {
		r.accrue(int32(pj)) // flush what each held while jobs waited
		contended += r.projContAccS[pj]
	}
	res.Projects = make([]ProjectStats, np)
	slowdowns := make([]float64, 0, np)
	for pj, name := range p.projects {
		ps := ProjectStats{Project: name, Shares: p.shares[pj], Jobs: projJobs[pj], AcceleratorSeconds: r.projAccS[pj],
			ShareEntitled: float64(p.shares[pj]) / float64(shares)}
		if total > 0 {
			ps.ShareReceived = float64(r.projAccS[pj]) / float64(total)
		}
		if contended > 0 {
			ps.ShareContended = float64(r.projContAccS[pj]) / float64(contended)
		}
		if projJobs[pj] > 0 {
			ps.AvgJCT = projJCT[pj] / float64(projJobs[pj])
			ps.AvgQueue = projQueue[pj] / float64(projJobs[pj])
			ps.AvgBoundedSlowdown = projBSLD[pj] / float64(projJobs[pj])
			slowdowns = append(slowdowns, ps.AvgBoundedSlowdown)
		}
		res.Projects[pj] = ps
	}
	res.Fairness = jain(slowdowns)
	res.Timeline = r.tl.samples(first, last, p.capacity)
	return res
}

// stats aggregates completion times and queueing delays; it sorts both.
func stats(jct, queue []int64, bsld float64) Stats {
	s := Stats{Jobs: len(jct)}
	if len(jct) == 0 {
		return s
	}
	slices.Sort(jct)
	slices.Sort(queue)
	s.AvgJCT, s.AvgQueue = mean(jct), mean(queue)
	s.P50JCT, s.P95JCT, s.P99JCT = quantile(jct, 0.50), quantile(jct, 0.95), quantile(jct, 0.99)
	s.P50Queue, s.P95Queue, s.P99Queue = quantile(queue, 0.50), quantile(queue, 0.95), quantile(queue, 0.99)
	s.AvgBoundedSlowdown = bsld / float64(len(jct))
	return s
}

func mean(xs []int64) float64 {
	var s float64
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}

// quantile is the nearest-rank q-quantile of sorted xs: the smallest x
// such that at least a fraction q of xs is at most x.
func quantile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[min(max(k, 0), len(sorted)-1)])
}

// jain is Jain's fairness index of xs: (Σx)² / (n Σx²).
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

// timeline integrates busy accelerators and queued jobs over time in
// buckets whose width doubles (pairs merge) whenever the replay outgrows
// them, so it stays small however long the trace.
type timeline struct {
	t0, last int64
	width    int64
	busy     []int64 // accelerator-seconds per bucket
	queue    []int64 // job-seconds per bucket
}

const maxBuckets = 2048

func newTimeline(t0 int64) timeline { return timeline{t0: t0, last: t0, width: 1} }

// advance accounts [last, t) at busy accelerators and queue jobs.
func (tl *timeline) advance(t, busy, queue int64) {
	if t <= tl.last {
		return
	}
	for (t-1-tl.t0)/tl.width >= maxBuckets {
		tl.halve()
	}
	for from := tl.last; from < t; {
		b := (from - tl.t0) / tl.width
		to := min(t, tl.t0+(b+1)*tl.width)
		for int64(len(tl.busy)) <= b {
			tl.busy, tl.queue = append(tl.busy, 0), append(tl.queue, 0)
		}
		tl.busy[b] += busy * (to - from)
		tl.queue[b] += queue * (to - from)
		from = to
	}
	tl.last = t
}

func (tl *timeline) halve() {
	for k := range (len(tl.busy) + 1) / 2 {
		b, q := tl.busy[2*k], tl.queue[2*k]
		if 2*k+1 < len(tl.busy) {
			b, q = b+tl.busy[2*k+1], q+tl.queue[2*k+1]
		}
		tl.busy[k], tl.queue[k] = b, q
	}
	h := (len(tl.busy) + 1) / 2
	tl.busy, tl.queue = tl.busy[:h], tl.queue[:h]
	tl.width *= 2
}

// samples averages the buckets over at most timelinePoints equal steps of
// [from, to].
func (tl *timeline) samples(from, to int64, capacity int) []Sample {
	span := to - from
	if span <= 0 || len(tl.busy) == 0 {
		return nil
	}
	n := int(min(span, timelinePoints))
	prefix := func(col []int64) []float64 { // cumulative sums, to keep samples linear
		out := make([]float64, len(col)+1)
		for k, v := range col {
			out[k+1] = out[k] + float64(v)
		}
		return out
	}
	pb, pq := prefix(tl.busy), prefix(tl.queue)
	at := func(pre []float64, col []int64, x float64) float64 {
		u := (x - float64(tl.t0)) / float64(tl.width)
		b := min(int(u), len(col))
		s := pre[b]
		if b < len(col) {
			s += (u - float64(b)) * float64(col[b])
		}
		return s
	}
	out := make([]Sample, n)
	for k := range out {
		a := float64(from) + float64(span)*float64(k)/float64(n)
		b := float64(from) + float64(span)*float64(k+1)/float64(n)
		busy := (at(pb, tl.busy, b) - at(pb, tl.busy, a)) / (b - a)
		out[k] = Sample{T: int64(math.Round(a)), Queue: (at(pq, tl.queue, b) - at(pq, tl.queue, a)) / (b - a)}
		if capacity > 0 {
			out[k].Utilization = busy / float64(capacity)
		}
	}
	return out
}
