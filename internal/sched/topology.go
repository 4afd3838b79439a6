package sched

import (
	"fmt"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// Topology is a cluster compiled for fast placement: nodes indexed, grouped
// into partitions, blocks and groups. It is immutable and safe to share
// between passes and goroutines.
type Topology struct {
	nodes      []model.Node
	partitions []model.Partition
	partIndex  map[string]int32

	nodePart  []int32 // node → partition
	nodeBlock []int32 // node → block
	nodeClass []int32 // node → capacity class within its partition
	cap       []res   // node → what it offers when idle
	blocks    []block
	groups    []group
	parts     []partInfo
}

type block struct {
	name  string
	part  int32
	group int32
	pos   int32   // position in its partition's block list
	nodes []int32 // ascending
}

type group struct {
	name   string
	part   int32
	blocks []int32 // ascending
}

// capClass is a distinct node capacity within a partition.
type capClass struct {
	cap        res
	nodes      int
	maxInBlock int // the most nodes of this class in one block
}

type partInfo struct {
	classes   []capClass
	model     string
	maxAcc    int     // accelerators of its largest node
	nodes     []int32 // ascending
	blocks    []int32
	groups    []int32
	totalAcc  int
	maxBlockN int // nodes in its largest block
}

// Compile validates a cluster and indexes it. Nodes keep their order, so
// Slot.Node indexes both c.Nodes and Snapshot.Nodes.
func Compile(c *model.Cluster) (*Topology, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	t := &Topology{
		nodes:      slices.Clone(c.Nodes),
		partitions: slices.Clone(c.Partitions),
		partIndex:  map[string]int32{},
		nodePart:   make([]int32, len(c.Nodes)),
		nodeBlock:  make([]int32, len(c.Nodes)),
		nodeClass:  make([]int32, len(c.Nodes)),
		cap:        make([]res, len(c.Nodes)),
		parts:      make([]partInfo, len(c.Partitions)),
	}
	for i, p := range c.Partitions {
		t.partIndex[p.Name] = int32(i)
		t.parts[i].model = p.Model
	}
	type key struct {
		part int32
		name string
	}
	blockIdx := map[key]int32{}
	groupIdx := map[key]int32{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		p := t.partIndex[n.Partition]
		g, ok := groupIdx[key{p, n.Group}]
		if !ok {
			g = int32(len(t.groups))
			groupIdx[key{p, n.Group}] = g
			t.groups = append(t.groups, group{name: n.Group, part: p})
			t.parts[p].groups = append(t.parts[p].groups, g)
		}
		b, ok := blockIdx[key{p, n.Block}]
		if !ok {
			b = int32(len(t.blocks))
			blockIdx[key{p, n.Block}] = b
			t.blocks = append(t.blocks, block{name: n.Block, part: p, group: g, pos: int32(len(t.parts[p].blocks))})
			t.groups[g].blocks = append(t.groups[g].blocks, b)
			t.parts[p].blocks = append(t.parts[p].blocks, b)
		}
		t.nodePart[i] = p
		t.nodeBlock[i] = b
		t.cap[i] = nodeCap(n)
		t.blocks[b].nodes = append(t.blocks[b].nodes, int32(i))
		pi := &t.parts[p]
		pi.nodes = append(pi.nodes, int32(i))
		pi.totalAcc += n.Accelerators
		pi.maxAcc = max(pi.maxAcc, n.Accelerators)
	}
	for _, b := range t.blocks {
		pi := &t.parts[b.part]
		pi.maxBlockN = max(pi.maxBlockN, len(b.nodes))
		inBlock := map[int32]int{}
		for _, i := range b.nodes {
			c := nodeCap(&c.Nodes[i])
			k := slices.IndexFunc(pi.classes, func(cc capClass) bool { return cc.cap == c })
			if k < 0 {
				k = len(pi.classes)
				pi.classes = append(pi.classes, capClass{cap: c})
			}
			t.nodeClass[i] = int32(k)
			pi.classes[k].nodes++
			inBlock[int32(k)]++
		}
		for k, n := range inBlock {
			pi.classes[k].maxInBlock = max(pi.classes[k].maxInBlock, n)
		}
	}
	return t, nil
}

// Nodes returns the compiled node list. Callers must not modify it.
func (t *Topology) Nodes() []model.Node { return t.nodes }

// Partitions returns the compiled partitions. Callers must not modify it.
func (t *Topology) Partitions() []model.Partition { return t.partitions }

// NodeIndex finds a node by name; it returns -1 when there is none.
func (t *Topology) NodeIndex(name string) int32 {
	i, ok := slices.BinarySearchFunc(t.nodes, name, func(n model.Node, name string) int {
		switch {
		case n.Name < name:
			return -1
		case n.Name > name:
			return 1
		}
		return 0
	})
	if ok {
		return int32(i)
	}
	for i := range t.nodes { // not sorted by name: fall back to a scan
		if t.nodes[i].Name == name {
			return int32(i)
		}
	}
	return -1
}

// Block names the block and group of node i.
func (t *Topology) Block(i int32) (blockName, groupName string) {
	b := &t.blocks[t.nodeBlock[i]]
	return b.name, t.groups[b.group].name
}
