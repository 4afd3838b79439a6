package sched

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/usine-project/usine/internal/model"
)

// The planner ranks projects with a fair tree it keeps from pass to pass,
// re-sorting a level only when its order changed. It must rank exactly as
// the straightforward walk below (FairShare as first written) does, for
// any tree, usage (ties and zeros included) and set of unknown projects,
// pass after pass.
func TestFairTreeMatchesReference(t *testing.T) {
	t.Parallel()
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		projects := randomProjects(rng)
		var ft fairTree
		var nodes []int32
		for round := range 12 {
			if rng.IntN(5) == 0 {
				projects = randomProjects(rng)
			}
			usage := map[string]float64{}
			for _, p := range projects {
				switch rng.IntN(4) {
				case 0: // none
				case 1:
					usage[p.Name] = float64(rng.IntN(3)) // ties
				default:
					usage[p.Name] = rng.Float64() * 1e6
				}
			}
			var pending []model.Job
			for k := range rng.IntN(30) {
				name := fmt.Sprintf("p%d", rng.IntN(len(projects)+3)) // some unknown
				if rng.IntN(4) == 0 {
					usage[name] = rng.Float64() * 1e6
				}
				pending = append(pending, model.Job{ID: fmt.Sprintf("j%03d", k), Project: name})
			}
			var extra []string
			for _, j := range pending {
				extra = append(extra, j.Project)
			}
			want := fairShareReference(projects, usage, extra)
			if got := FairShare(projects, usage, extra); !mapsEqual(want, got) {
				t.Fatalf("seed %d round %d: FairShare = %v, want %v", seed, round, got, want)
			}
			nodes = ft.nodesOf(projects, usage, pending, nodes)
			ft.rank(usage)
			for i, j := range pending {
				if got := ft.factor[nodes[i]]; got != want[j.Project] {
					t.Fatalf("seed %d round %d: project %s ranks %v, want %v\nprojects %v\nusage %v",
						seed, round, j.Project, got, want[j.Project], projects, usage)
				}
			}
		}
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// randomProjects draws a forest of up to three levels, shares 0–3.
func randomProjects(rng *rand.Rand) []model.Project {
	n := 1 + rng.IntN(12)
	ps := make([]model.Project, n)
	for i := range ps {
		ps[i] = model.Project{Name: fmt.Sprintf("p%d", i), Shares: int64(rng.IntN(4))}
		if i > 0 && rng.IntN(2) == 0 {
			ps[i].Parent = fmt.Sprintf("p%d", rng.IntN(i))
		}
	}
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	return ps
}

// fairShareReference is FairShare as first written: a fresh tree, each
// level sorted with the level fair share computed in the comparison.
func fairShareReference(projects []model.Project, usage map[string]float64, extra []string) map[string]float64 {
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
