package sched

import (
	"cmp"
	"math"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// FairShare ranks projects in the spirit of Slurm's fair tree: at every
// level of the project tree, siblings are ordered by their level fair share
// (shares over usage, each normalised among the siblings); a depth-first
// walk in that order ranks every project; the factor is 1 for the first
// and falls linearly to 1/n for the last.
//
// A project with sub-projects ranks its own jobs as one more child whose
// shares are the mean of its children's shares. Projects absent from the
// tree (jobs naming an unknown project) rank as roots with one share.
// Usage is each project's own decayed usage; a subtree's usage is the sum.
func FairShare(projects []model.Project, usage map[string]float64, extra []string) map[string]float64 {
	type node struct {
		name     string
		shares   float64
		own      float64
		total    float64
		children []*node
		self     bool // the pseudo-child holding a parent's own jobs
	}
	byName := make(map[string]*node, len(projects)+len(extra))
	get := func(name string) *node {
		n := byName[name]
		if n == nil {
			n = &node{name: name, shares: 1, own: usage[name]}
			byName[name] = n
		}
		return n
	}
	root := &node{}
	for _, p := range projects {
		n := get(p.Name)
		n.shares = float64(max(p.Shares, 1))
	}
	for _, p := range projects {
		n := byName[p.Name]
		parent := root
		if p.Parent != "" && byName[p.Parent] != nil {
			parent = byName[p.Parent]
		}
		parent.children = append(parent.children, n)
	}
	for _, name := range extra {
		if byName[name] == nil {
			root.children = append(root.children, get(name))
		}
	}
	var sum func(n *node) float64
	sum = func(n *node) float64 {
		n.total = n.own
		for _, c := range n.children {
			n.total += sum(c)
		}
		return n.total
	}
	sum(root)

	rank := map[string]float64{}
	var order []string
	var walk func(n *node)
	walk = func(n *node) {
		kids := slices.Clone(n.children)
		if n != root && len(kids) > 0 {
			mean := 0.0
			for _, c := range kids {
				mean += c.shares
			}
			kids = append(kids, &node{name: n.name, shares: mean / float64(len(kids)), own: n.own, total: n.own, self: true})
		}
		var shares, used float64
		for _, c := range kids {
			shares += c.shares
			used += c.total
		}
		lf := func(c *node) float64 {
			s := c.shares / shares
			if used == 0 || c.total == 0 {
				return math.Inf(1) * s
			}
			return s / (c.total / used)
		}
		slices.SortStableFunc(kids, func(a, b *node) int {
			if c := cmp.Compare(lf(b), lf(a)); c != 0 {
				return c
			}
			return cmp.Compare(a.name, b.name)
		})
		for _, c := range kids {
			if c.self || len(c.children) == 0 {
				order = append(order, c.name)
				continue
			}
			walk(c)
		}
	}
	walk(root)
	for i, name := range order {
		rank[name] = float64(len(order)-i) / float64(len(order))
	}
	return rank
}

// ranked is a pending job with its computed priority.
type ranked struct {
	job  *model.Job
	prio int64
	// eff is the ordering key for FIFO (submit time).
}

// order ranks pending jobs: FIFO by submit time, or multifactor.
func order(s *Snapshot, now int64, qos map[string]*QoS, totalAcc int) []ranked {
	out := make([]ranked, len(s.Pending))
	for i := range s.Pending {
		out[i].job = &s.Pending[i]
	}
	cfg := &s.Config
	if cfg.Order == OrderMultifactor {
		var extra []string
		for i := range s.Pending {
			extra = append(extra, s.Pending[i].Project)
		}
		fs := FairShare(s.Projects, s.Usage, extra)
		maxQ := 0
		for _, q := range qos {
			maxQ = max(maxQ, q.Priority)
		}
		maxAge := float64(max(cfg.MaxAge, 1))
		w := cfg.Weights
		for i := range out {
			j := out[i].job
			age := min(float64(max(now-j.Submit, 0))/maxAge, 1)
			qf := 0.0
			if q := qos[j.QoS]; q != nil && maxQ > 0 {
				qf = float64(q.Priority) / float64(maxQ)
			}
			size := 0.0
			if totalAcc > 0 {
				size = min(float64(j.TotalAccelerators())/float64(totalAcc), 1)
			}
			if cfg.FavorSmall {
				size = 1 - size
			}
			p := float64(w.Age)*age + float64(w.FairShare)*fs[j.Project] + float64(w.QoS)*qf + float64(w.Size)*size
			out[i].prio = int64(math.Round(p)) + j.Priority
		}
		slices.SortStableFunc(out, func(a, b ranked) int {
			if c := cmp.Compare(b.prio, a.prio); c != 0 {
				return c
			}
			if c := cmp.Compare(a.job.Submit, b.job.Submit); c != 0 {
				return c
			}
			return cmp.Compare(a.job.ID, b.job.ID)
		})
		return out
	}
	slices.SortStableFunc(out, func(a, b ranked) int {
		if c := cmp.Compare(a.job.Submit, b.job.Submit); c != 0 {
			return c
		}
		return cmp.Compare(a.job.ID, b.job.ID)
	})
	return out
}
