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
	var ft fairTree
	ft.build(projects, usage, extra)
	ft.rank(usage)
	rank := make(map[string]float64, len(ft.order))
	for _, x := range ft.order {
		rank[ft.nodes[x].name] = ft.factor[x]
	}
	return rank
}

// fairTree is the project tree FairShare walks. A Planner keeps one from
// pass to pass: it is rebuilt only when the projects change, and each pass
// re-reads the usage and re-sorts a level only when its order changed, so
// ranking a few hundred projects costs little more than reading their
// usage.
type fairTree struct {
	projects []model.Project // as built, to notice a change
	extras   int             // extra roots: projects of pending jobs absent from projects
	nodes    []fairNode      // nodes[0] is the root
	index    map[string]int32
	order    []int32   // the last walk's leaves and pseudo-children, ranked
	factor   []float64 // per node: the fair-share factor of its own jobs (0 when not ranked)
	seen     []uint32  // per node: the stamp of the last pass that saw a job of it
	stamp    uint32
}

type fairNode struct {
	name       string
	shares     float64
	own, total float64
	children   []int32
	// kids are the children and, under a project with sub-projects, the
	// pseudo-child holding its own jobs (self), in the last walk's order.
	kids []fairKid
}

type fairKid struct {
	node int32
	self bool
	pos  int32   // place among the children as given: the stable sort's tie-break
	lf   float64 // level fair share in the current walk
}

// build makes the tree: projects in their given order, then extra names
// absent from them as roots with one share, each once.
func (ft *fairTree) build(projects []model.Project, usage map[string]float64, extra []string) {
	ft.projects = append(ft.projects[:0], projects...)
	ft.nodes = append(ft.nodes[:0], fairNode{})
	ft.index = make(map[string]int32, len(projects))
	get := func(name string) int32 {
		x, ok := ft.index[name]
		if !ok {
			x = int32(len(ft.nodes))
			ft.nodes = append(ft.nodes, fairNode{name: name, shares: 1})
			ft.index[name] = x
		}
		return x
	}
	for _, p := range projects {
		ft.nodes[get(p.Name)].shares = float64(max(p.Shares, 1))
	}
	for _, p := range projects {
		x := ft.index[p.Name]
		parent := int32(0)
		if px, ok := ft.index[p.Parent]; p.Parent != "" && ok {
			parent = px
		}
		ft.nodes[parent].children = append(ft.nodes[parent].children, x)
	}
	ft.extras = 0
	for _, name := range extra {
		if _, ok := ft.index[name]; !ok {
			ft.nodes[0].children = append(ft.nodes[0].children, get(name))
			ft.extras++
		}
	}
	for x := range ft.nodes {
		n := &ft.nodes[x]
		for k, c := range n.children {
			n.kids = append(n.kids, fairKid{node: c, pos: int32(k)})
		}
		if x != 0 && len(n.children) > 0 {
			n.kids = append(n.kids, fairKid{node: int32(x), self: true, pos: int32(len(n.children))})
		}
	}
	ft.factor = make([]float64, len(ft.nodes))
	ft.seen = make([]uint32, len(ft.nodes))
}

// sameProjects says whether the tree was built from these projects.
func (ft *fairTree) sameProjects(projects []model.Project) bool {
	return ft.nodes != nil && slices.Equal(ft.projects, projects)
}

// rank reads every project's usage and walks the tree, filling order and
// factor.
func (ft *fairTree) rank(usage map[string]float64) {
	for x := 1; x < len(ft.nodes); x++ {
		ft.nodes[x].own = usage[ft.nodes[x].name]
	}
	ft.sum(0)
	ft.order = ft.order[:0]
	ft.walk(0)
	clear(ft.factor)
	for i, x := range ft.order {
		ft.factor[x] = float64(len(ft.order)-i) / float64(len(ft.order))
	}
}

func (ft *fairTree) sum(x int32) float64 {
	n := &ft.nodes[x]
	n.total = n.own
	for _, c := range n.children {
		n.total += ft.sum(c)
	}
	return n.total
}

// walk ranks x's subtree: siblings by level fair share (shares over usage,
// each normalised among the siblings), highest first, then by name.
func (ft *fairTree) walk(x int32) {
	n := &ft.nodes[x]
	kids := n.kids
	var shares, used float64
	meanShares := 0.0
	if x != 0 && len(n.children) > 0 {
		for _, c := range n.children {
			meanShares += ft.nodes[c].shares
		}
		meanShares /= float64(len(n.children))
	}
	kidShares := func(k *fairKid) float64 {
		if k.self {
			return meanShares
		}
		return ft.nodes[k.node].shares
	}
	kidTotal := func(k *fairKid) float64 {
		if k.self {
			return ft.nodes[k.node].own
		}
		return ft.nodes[k.node].total
	}
	// Sum in the given order, as the sums' last bits may decide a tie.
	for _, c := range n.children {
		shares += ft.nodes[c].shares
		used += ft.nodes[c].total
	}
	if x != 0 && len(n.children) > 0 {
		shares += meanShares
		used += n.own
	}
	sorted := true
	for k := range kids {
		c := &kids[k]
		s, t := kidShares(c)/shares, kidTotal(c)
		if used == 0 || t == 0 {
			c.lf = math.Inf(1) * s
		} else {
			c.lf = s / (t / used)
		}
		if k > 0 && ft.kidCompare(&kids[k-1], c) > 0 {
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(kids, func(a, b fairKid) int { return ft.kidCompare(&a, &b) })
	}
	for k := range kids {
		c := &kids[k]
		if c.self || len(ft.nodes[c.node].children) == 0 {
			ft.order = append(ft.order, c.node)
			continue
		}
		ft.walk(c.node)
	}
}

// kidCompare orders siblings: higher level fair share first, then by name,
// then as given (what a stable sort keeps).
func (ft *fairTree) kidCompare(a, b *fairKid) int {
	if c := cmp.Compare(b.lf, a.lf); c != 0 {
		return c
	}
	if c := cmp.Compare(ft.nodes[a.node].name, ft.nodes[b.node].name); c != 0 {
		return c
	}
	return cmp.Compare(a.pos, b.pos)
}

// nodesOf finds the tree node of every pending job's project, rebuilding
// the tree when the projects changed or the extra roots (projects of
// pending jobs that Projects lacks) are not exactly those of the last
// build. out[i] is pending job i's node.
func (ft *fairTree) nodesOf(projects []model.Project, usage map[string]float64, pending []model.Job, out []int32) []int32 {
	out = out[:0]
	if ft.sameProjects(projects) {
		ft.stamp++
		extras := 0
		for i := range pending {
			x, ok := ft.index[pending[i].Project]
			if !ok {
				break
			}
			if x > int32(len(ft.nodes))-1-int32(ft.extras) && ft.seen[x] != ft.stamp {
				ft.seen[x] = ft.stamp
				extras++
			}
			out = append(out, x)
		}
		if len(out) == len(pending) && extras == ft.extras {
			return out
		}
	}
	extra := make([]string, len(pending))
	for i := range pending {
		extra[i] = pending[i].Project
	}
	ft.build(projects, usage, extra)
	out = out[:0]
	for i := range pending {
		out = append(out, ft.index[pending[i].Project])
	}
	return out
}

// ranked is a pending job with its computed priority.
type ranked struct {
	job  *model.Job
	prio int64
	// eff is the ordering key for FIFO (submit time).
}

// order ranks pending jobs: FIFO by submit time, or multifactor.
// The planner's fair tree ft and scratch slices are reused; the result
// aliases out.
func order(s *Snapshot, now int64, qos map[string]*QoS, totalAcc int, ft *fairTree, out []ranked, nodes *[]int32) []ranked {
	out = slices.Grow(out[:0], len(s.Pending))[:len(s.Pending)]
	for i := range s.Pending {
		out[i] = ranked{job: &s.Pending[i]}
	}
	cfg := &s.Config
	if cfg.Order == OrderMultifactor {
		*nodes = ft.nodesOf(s.Projects, s.Usage, s.Pending, *nodes)
		ft.rank(s.Usage)
		jobNode := *nodes
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
			p := float64(w.Age)*age + float64(w.FairShare)*ft.factor[jobNode[i]] + float64(w.QoS)*qf + float64(w.Size)*size
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
