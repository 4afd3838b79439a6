package trace

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
)

// GenOptions describe a synthetic workload.
type GenOptions struct {
	Jobs         int     // how many jobs; at least 1
	Seed         uint64  // the same options and seed give the same records
	Accelerators int     // accelerators of the cluster; 0 = 100,000 (the gigafactory example)
	PerNode      int     // accelerators per node, the unit of gangs; 0 = 8
	Load         float64 // offered load as a fraction of Accelerators; 0 = 0.9
	Projects     int     // 0 = Jobs/5,000 kept within 20–200
}

// JobKind is a class of job of the synthetic mix.
type JobKind struct {
	Name     string    // the ID prefix: "<name>-<n>"
	Share    float64   // fraction of jobs
	Sizes    []int     // accelerators
	Weights  []float64 // probability of each size
	MinRun   int64     // run time is log-uniform in [MinRun, MaxRun] seconds
	MaxRun   int64
	Frontier bool // only the largest projects submit it
}

// Mix is the synthetic gigafactory workload: most jobs are small, most
// accelerator-hours go to pre-training gangs. docs/TRACES.md explains it.
func Mix() []JobKind {
	return []JobKind{
		{Name: "pretrain", Share: 0.005, Sizes: []int{512, 1024, 2048, 4096, 8192}, Weights: []float64{0.35, 0.30, 0.20, 0.10, 0.05}, MinRun: 1 * day, MaxRun: 14 * day, Frontier: true},
		{Name: "finetune", Share: 0.15, Sizes: []int{8, 16, 32, 64, 128, 256}, Weights: []float64{0.30, 0.25, 0.20, 0.12, 0.08, 0.05}, MinRun: 1 * hour, MaxRun: 48 * hour},
		{Name: "eval", Share: 0.30, Sizes: []int{1, 2, 4, 8}, Weights: []float64{0.40, 0.25, 0.20, 0.15}, MinRun: 5 * 60, MaxRun: 2 * hour},
		{Name: "single", Share: 0.545, Sizes: []int{1}, Weights: []float64{1}, MinRun: 10 * 60, MaxRun: 24 * hour},
	}
}

// End states of the synthetic jobs; the rest complete.
const (
	genFailed    = 0.05 // run a fraction of their time, skewed early
	genCancelled = 0.03 // run a uniform fraction of their time
	genTimeout   = 0.02 // would run past their limit
)

// genRand draws everything from one PCG through fixed transforms, so the
// output does not depend on how math/rand/v2 shapes its helpers.
type genRand struct{ *rand.PCG }

func (g genRand) float() float64 { return float64(g.Uint64()>>11) / (1 << 53) } // [0, 1)

func (g genRand) intn(n int) int {
	hi, _ := bits.Mul64(g.Uint64(), uint64(n))
	return int(hi)
}

func (g genRand) logUniform(lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + g.float()*(math.Log(hi)-math.Log(lo)))
}

func (g genRand) pick(cum []float64) int { // cum: cumulative weights, last = total
	u := g.float() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

func cumulative(w []float64) []float64 {
	c := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		c[i] = s
	}
	return c
}

// Generate makes a synthetic workload of opt.Jobs jobs for a cluster of
// opt.Accelerators, sorted by submit time. Arrivals are a Poisson process
// whose rate makes the offered load — accelerator-seconds the jobs use
// (run time cut at the limit) over the accelerator-seconds of the cluster
// between the first and the last arrival — equal opt.Load.
func Generate(opt GenOptions) ([]Record, error) {
	if opt.Accelerators == 0 {
		opt.Accelerators = 100_000
	}
	if opt.PerNode == 0 {
		opt.PerNode = 8
	}
	if opt.Load == 0 {
		opt.Load = 0.9
	}
	if opt.Projects == 0 {
		opt.Projects = min(max(opt.Jobs/5000, 20), 200)
	}
	switch {
	case opt.Jobs < 1 || opt.Jobs > 100_000_000:
		return nil, fmt.Errorf("generate: %d jobs; give 1 to 100,000,000", opt.Jobs)
	case opt.Accelerators < 0:
		return nil, fmt.Errorf("generate: %d accelerators; give a positive cluster size", opt.Accelerators)
	case opt.PerNode < 0:
		return nil, fmt.Errorf("generate: %d accelerators per node; give a positive number", opt.PerNode)
	case !(opt.Load > 0 && opt.Load <= 100):
		return nil, fmt.Errorf("generate: load %g; give a fraction of the cluster above 0, such as 0.9", opt.Load)
	case opt.Projects < 1 || opt.Projects > 100_000:
		return nil, fmt.Errorf("generate: %d projects; give 1 to 100,000", opt.Projects)
	}
	rng := genRand{rand.NewPCG(opt.Seed, 0x75736976_6e652d67)} // "usine-g"

	// Projects: popularity follows Zipf (weight 1/rank^1.1); the top tenth
	// (at least two) are the frontier labs that pre-train.
	projCum := make([]float64, opt.Projects)
	users := make([][]string, opt.Projects)
	projNames := make([]string, opt.Projects)
	width := len(strconv.Itoa(opt.Projects))
	s := 0.0
	for p := range opt.Projects {
		s += 1 / math.Pow(float64(p+1), 1.1)
		projCum[p] = s
		projNames[p] = fmt.Sprintf("p%0*d", max(width, 3), p+1)
		n := 1 + rng.intn(20)
		for u := range n {
			users[p] = append(users[p], fmt.Sprintf("%s-u%02d", projNames[p], u+1))
		}
	}
	frontier := min(max(opt.Projects/10, 2), opt.Projects)

	mix := Mix()
	shares := make([]float64, len(mix))
	sizeCum := make([][]float64, len(mix))
	for i, k := range mix {
		shares[i] = k.Share
		sizeCum[i] = cumulative(k.Weights)
	}
	kindCum := cumulative(shares)
	idWidth := len(strconv.Itoa(opt.Jobs))
	maxGang := opt.Accelerators / opt.PerNode * opt.PerNode

	recs := make([]Record, opt.Jobs)
	var work float64 // accelerator-seconds used
	gaps := make([]float64, opt.Jobs)
	var span float64
	var id []byte
	for i := range recs {
		r := &recs[i]
		k := rng.pick(kindCum)
		kind := &mix[k]
		size := kind.Sizes[rng.pick(sizeCum[k])]
		if size > opt.Accelerators {
			size = maxGang
			if size == 0 {
				size = opt.Accelerators
			}
		}
		r.Accelerators = size
		switch {
		case kind.Name == "single":
			// packed anywhere
		case size <= opt.PerNode:
			r.Nodes = 1
		case size%opt.PerNode == 0:
			r.Nodes = size / opt.PerNode
		}
		var p int
		if kind.Frontier {
			p = rng.pick(projCum[:frontier])
		} else {
			p = rng.pick(projCum)
		}
		r.Project = projNames[p]
		r.User = users[p][rng.intn(len(users[p]))]

		want := rng.logUniform(float64(kind.MinRun), float64(kind.MaxRun))
		over := rng.logUniform(1.2, 5) // users over-estimate their run time
		r.Limit = DefaultLimit(int64(math.Ceil(want * over)))
		if r.Limit > 30*day {
			r.Limit = max(30*day, DefaultLimit(int64(math.Ceil(want))))
		}
		u := rng.float()
		f := rng.float()
		switch {
		case u < genFailed:
			r.State, r.Runtime = StateFailed, int64(want*f*f)
		case u < genFailed+genCancelled:
			r.State, r.Runtime = StateCancelled, int64(want*f)
		case u < genFailed+genCancelled+genTimeout:
			r.State, r.Runtime = StateTimeout, r.Limit+1+int64(f*float64(r.Limit)/2)
		default:
			r.State, r.Runtime = StateCompleted, int64(math.Ceil(want))
		}
		r.Runtime = max(r.Runtime, 1)
		work += float64(size) * float64(min(r.Runtime, r.Limit))
		if i > 0 {
			gaps[i] = -math.Log(1 - rng.float())
			span += gaps[i]
		}
		id = append(append(id[:0], kind.Name...), '-')
		for n := len(strconv.Itoa(i + 1)); n < idWidth; n++ {
			id = append(id, '0')
		}
		r.ID = string(strconv.AppendInt(id, int64(i+1), 10))
	}
	if math.IsInf(work, 0) {
		return nil, errors.New("generate: the workload overflows; ask for fewer jobs")
	}
	// Scale the exponential gaps so the last arrival lands at the span that
	// gives the asked-for load.
	want := work / (opt.Load * float64(opt.Accelerators))
	scale := 0.0
	if span > 0 {
		scale = want / span
	}
	t := 0.0
	for i := range recs {
		t += gaps[i] * scale
		recs[i].Submit = int64(t)
	}
	sortRecords(recs) // arrivals in the same second order by ID
	return recs, nil
}
