package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/model"
)

// MaxNodes bounds the nodes one file may declare, so a typo in a count
// cannot exhaust memory.
const MaxNodes = 10_000_000

// maxErrors is how many problems one Parse reports.
const maxErrors = 20

// Load reads a cluster file. Errors name the file by its base name.
func Load(path string) (*model.Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cluster: %w", err)
	}
	return Parse(data, filepath.Base(path))
}

// Parse reads a cluster file's JSON; name is the file name errors give and
// the cluster's name when the file has none. Unknown fields are errors.
// Every error is an *Error naming the file and the field path, joined
// (errors.Join) when there are several. The cluster it returns has its
// nodes sorted by name and has passed model.Cluster.Validate.
func Parse(data []byte, name string) (*model.Cluster, error) {
	b := builder{file: name}
	var f fileJSON
	if err := decodeStrict(name, data, "", &f); err != nil {
		return nil, err
	}
	c := b.build(&f)
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// builder turns a decoded file into a cluster, gathering errors.
type builder struct {
	file string
	errs []error
}

func (b *builder) errf(path, format string, args ...any) {
	if len(b.errs) == maxErrors {
		b.errs = append(b.errs, &Error{File: b.file, Msg: "more problems not shown; fix these first"})
	}
	if len(b.errs) > maxErrors {
		return
	}
	b.errs = append(b.errs, &Error{File: b.file, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) decode(raw []byte, path string, v any) bool {
	if err := decodeStrict(b.file, raw, path, v); err != nil {
		if len(b.errs) <= maxErrors {
			b.errs = append(b.errs, err)
		}
		return false
	}
	return true
}

// badName says what is wrong with a name, as model validation would, or "".
func badName(s string) string {
	switch {
	case s == "":
		return "is empty; give a name"
	case len(s) > 256:
		return fmt.Sprintf("is %d bytes long; at most 256 are allowed", len(s))
	case strings.ContainsAny(s, " \t\r\n,"):
		return fmt.Sprintf("%q contains a space, a comma or a line break; use letters, digits, '-', '_' or '.'", s)
	}
	return ""
}

// pool is a pool decoded, with what expansion needs.
type pool struct {
	path     string
	partPath string
	part     *model.Partition
	p        poolJSON
	start    int
	blocks   int
	groups   int
	firstB   int // number of its first block within the site
	firstG   int
}

func (b *builder) build(f *fileJSON) *model.Cluster {
	c := &model.Cluster{Name: f.Name, Accelerators: map[string]model.Accelerator{}}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(b.file, filepath.Ext(b.file))
	} else if m := badName(c.Name); m != "" {
		b.errf("name", "%s", m)
	}

	sites := map[string]bool{}
	for i, raw := range f.Sites {
		path := fmt.Sprintf("sites[%d]", i)
		var s siteJSON
		if !b.decode(raw, path, &s) {
			continue
		}
		if m := badName(s.Name); m != "" {
			b.errf(path+".name", "%s", m)
		} else if sites[s.Name] {
			b.errf(path+".name", "%q appears twice; site names must be unique", s.Name)
		}
		if len(s.Country) != 2 || strings.ToUpper(s.Country) != s.Country || !isLetters(s.Country) {
			b.errf(path+".country", "%q is not an ISO 3166-1 alpha-2 code; give two capital letters such as FI, FR or DE", s.Country)
		}
		sites[s.Name] = true
		c.Sites = append(c.Sites, model.Site{Name: s.Name, Country: s.Country})
	}
	if len(f.Sites) == 0 {
		b.errf("sites", "is empty; declare at least one site, such as {\"name\": \"eu1\", \"country\": \"FI\"}")
	}

	for _, key := range sortedKeys(f.Accelerators) {
		path := "accelerators." + key
		var a accelJSON
		if !b.decode(f.Accelerators[key], path, &a) {
			continue
		}
		if m := badName(key); m != "" {
			b.errf(path, "the model name %s", m)
		}
		if a.Model != "" && a.Model != key {
			b.errf(path+".model", "%q differs from its key %q; leave it out or make them equal", a.Model, key)
		}
		if a.Vendor == "" {
			b.errf(path+".vendor", "is empty; name the vendor (nvidia, amd, axelera, …)")
		}
		if a.MemoryGiB < 0 {
			b.errf(path+".memory_gib", "is %d; give 0 (not published) or more", a.MemoryGiB)
		}
		if a.BF16TFLOPS < 0 {
			b.errf(path+".bf16_tflops", "is %g; give 0 (none or not published) or more", a.BF16TFLOPS)
		}
		if a.Watts < 0 {
			b.errf(path+".watts", "is %d; give 0 (not published) or more", a.Watts)
		}
		c.Accelerators[key] = model.Accelerator{Vendor: a.Vendor, Model: key, MemoryGiB: a.MemoryGiB, BF16TFLOPS: a.BF16TFLOPS, Watts: a.Watts}
	}

	var pools []*pool
	type explicit struct {
		path string
		part *model.Partition
		n    nodeJSON
	}
	var listed []explicit
	partNames := map[string]bool{}
	c.Partitions = make([]model.Partition, 0, len(f.Partitions))
	for i, raw := range f.Partitions {
		path := fmt.Sprintf("partitions[%d]", i)
		var p partitionJSON
		if !b.decode(raw, path, &p) {
			continue
		}
		if m := badName(p.Name); m != "" {
			b.errf(path+".name", "%s", m)
		} else if partNames[p.Name] {
			b.errf(path+".name", "%q appears twice; partition names must be unique", p.Name)
		}
		partNames[p.Name] = true
		if p.Site == "" && len(c.Sites) == 1 {
			p.Site = c.Sites[0].Name
		}
		switch {
		case p.Site == "":
			b.errf(path+".site", "is empty; name one of the sites (%s)", siteList(c.Sites))
		case !sites[p.Site]:
			b.errf(path+".site", "%q is not a site of this file; declare it under sites or use one of %s", p.Site, siteList(c.Sites))
		}
		if p.Model != "" {
			if _, ok := f.Accelerators[p.Model]; !ok {
				b.errf(path+".model", "%q is not described under accelerators; add its vendor, memory_gib, bf16_tflops and watts", p.Model)
			}
		}
		if len(p.Pools) == 0 && len(p.Nodes) == 0 {
			b.errf(path, "has neither pools nor nodes; give at least one")
		}
		c.Partitions = append(c.Partitions, model.Partition{Name: p.Name, Site: p.Site, Model: p.Model, Down: p.Down})
		part := &c.Partitions[len(c.Partitions)-1]
		for j, raw := range p.Pools {
			pp := &pool{path: fmt.Sprintf("%s.pools[%d]", path, j), partPath: path, part: part}
			if !b.decode(raw, pp.path, &pp.p) {
				continue
			}
			if b.checkPool(pp) {
				pools = append(pools, pp)
			}
		}
		for j, raw := range p.Nodes {
			e := explicit{path: fmt.Sprintf("%s.nodes[%d]", path, j), part: part}
			if !b.decode(raw, e.path, &e.n) {
				continue
			}
			listed = append(listed, e)
		}
	}
	if len(f.Partitions) == 0 {
		b.errf("partitions", "is empty; declare at least one partition of nodes")
	}

	total := len(listed)
	for _, pp := range pools {
		total += pp.p.Count
	}
	if total > MaxNodes {
		b.errf("partitions", "declare %d nodes; at most %d are allowed", total, MaxNodes)
		return c
	}
	if len(b.errs) > 0 {
		return c
	}

	// Blocks and groups are numbered across each site, in file order, so
	// their names are unique within the site. Widths fit the largest number.
	nBlocks, nGroups := map[string]int{}, map[string]int{}
	for _, pp := range pools {
		site := pp.part.Site
		pp.firstB, pp.firstG = nBlocks[site]+1, nGroups[site]+1
		nBlocks[site] += pp.blocks
		nGroups[site] += pp.groups
	}
	origin := make(map[string]string, total) // node name → path that made it
	generated := map[string]string{}         // site/block → pool path
	c.Nodes = make([]model.Node, 0, total)
	for _, pp := range pools {
		site := pp.part.Site
		bw, gw := max(4, digits(nBlocks[site])), max(3, digits(nGroups[site]))
		width := pp.p.Digits
		if width == 0 {
			width = digits(pp.start + pp.p.Count - 1)
		}
		perBlock := pp.p.NodesPerBlock
		if perBlock == 0 {
			perBlock = pp.p.Count
		}
		perGroup := pp.p.BlocksPerGroup
		if perGroup == 0 {
			perGroup = pp.blocks
		}
		for i := range pp.p.Count {
			blk := i / perBlock
			n := model.Node{
				Name:         pp.p.Prefix + pad(pp.start+i, width),
				Site:         site,
				Partition:    pp.part.Name,
				Block:        "b" + pad(pp.firstB+blk, bw),
				Group:        "g" + pad(pp.firstG+blk/perGroup, gw),
				Accelerators: pp.p.Accelerators,
				CPUs:         pp.p.CPUs,
				MemoryMiB:    pp.p.MemoryMiB,
				State:        model.NodeUp,
			}
			if pp.p.Accelerators > 0 {
				n.Model = pp.part.Model
			}
			if prev, dup := origin[n.Name]; dup {
				b.errf(pp.path, "makes node %s, which %s already declares; give another prefix or start", n.Name, prev)
				return c
			}
			origin[n.Name] = pp.path
			generated[site+"/"+n.Block] = pp.path
			c.Nodes = append(c.Nodes, n)
		}
	}
	for _, e := range listed {
		n := model.Node{
			Name: e.n.Name, Site: e.part.Site, Partition: e.part.Name,
			Block: e.n.Block, Group: e.n.Group,
			Accelerators: e.n.Accelerators, CPUs: e.n.CPUs, MemoryMiB: e.n.MemoryMiB,
			State: model.NodeState(e.n.State), Reason: e.n.Reason,
		}
		if n.State == "" {
			n.State = model.NodeUp
		}
		if n.Accelerators > 0 {
			n.Model = e.part.Model
		}
		b.checkNode(e.path, &n, e.part)
		if prev, dup := origin[n.Name]; dup && n.Name != "" {
			b.errf(e.path+".name", "%q is already declared by %s; node names must be unique", n.Name, prev)
		}
		origin[n.Name] = e.path
		if p, ok := generated[n.Site+"/"+n.Block]; ok && n.Block != "" {
			b.errf(e.path+".block", "%q is also a block that %s makes; pools name their blocks b0001, b0002, …: give this one another name", n.Block, p)
		}
		c.Nodes = append(c.Nodes, n)
	}
	slices.SortStableFunc(c.Nodes, func(x, y model.Node) int { return strings.Compare(x.Name, y.Name) })
	return c
}

func (b *builder) checkPool(pp *pool) bool {
	ok := true
	bad := func(field, format string, args ...any) {
		b.errf(pp.path+"."+field, format, args...)
		ok = false
	}
	p := &pp.p
	if m := badName(p.Prefix); m != "" {
		bad("prefix", "%s", m)
	}
	if p.Count <= 0 {
		bad("count", "must be positive; got %d", p.Count)
	} else if p.Count > MaxNodes {
		bad("count", "is %d; at most %d nodes are allowed", p.Count, MaxNodes)
	}
	pp.start = 1
	if p.Start != nil {
		pp.start = *p.Start
		if pp.start < 0 {
			bad("start", "is %d; give the first node's number, 0 or more", pp.start)
		}
	}
	if p.Digits < 0 || p.Digits > 12 {
		bad("digits", "is %d; give 1 to 12, or 0 for the width of the last number", p.Digits)
	}
	if p.Accelerators < 0 {
		bad("accelerators", "is %d; give the accelerators of each node, 0 or more", p.Accelerators)
	}
	if p.Accelerators > 0 && pp.part.Model == "" {
		b.errf(pp.partPath+".model", "is empty but the nodes of %s have accelerators; name their model (a key of accelerators)", pp.path)
		ok = false
	}
	if p.CPUs < 0 {
		bad("cpus", "is %d; give 0 (not limited) or more", p.CPUs)
	}
	if p.MemoryMiB < 0 {
		bad("memory_mib", "is %d; give 0 (not limited) or more", p.MemoryMiB)
	}
	if p.NodesPerBlock < 0 {
		bad("nodes_per_block", "is %d; give a positive number, or 0 for one block", p.NodesPerBlock)
	}
	if p.BlocksPerGroup < 0 {
		bad("blocks_per_group", "is %d; give a positive number, or 0 for one group", p.BlocksPerGroup)
	}
	if !ok {
		return false
	}
	per := p.NodesPerBlock
	if per == 0 {
		per = p.Count
	}
	pp.blocks = (p.Count + per - 1) / per
	g := p.BlocksPerGroup
	if g == 0 {
		g = pp.blocks
	}
	pp.groups = (pp.blocks + g - 1) / g
	return true
}

func (b *builder) checkNode(path string, n *model.Node, part *model.Partition) {
	if m := badName(n.Name); m != "" {
		b.errf(path+".name", "%s", m)
	}
	if m := badName(n.Block); m != "" {
		b.errf(path+".block", "%s (the node's scale-up domain or leaf switch)", m)
	}
	if m := badName(n.Group); m != "" {
		b.errf(path+".group", "%s (the spine its block hangs from)", m)
	}
	if n.Accelerators < 0 {
		b.errf(path+".accelerators", "is %d; give 0 or more", n.Accelerators)
	}
	if n.Accelerators > 0 && part.Model == "" {
		b.errf(path+".accelerators", "is %d but partition %s names no model; give the partition a model", n.Accelerators, part.Name)
	}
	if n.CPUs < 0 {
		b.errf(path+".cpus", "is %d; give 0 (not limited) or more", n.CPUs)
	}
	if n.MemoryMiB < 0 {
		b.errf(path+".memory_mib", "is %d; give 0 (not limited) or more", n.MemoryMiB)
	}
	switch n.State {
	case model.NodeUp, model.NodeDrain, model.NodeDown:
	default:
		b.errf(path+".state", "%q is not a node state; use up, drain or down", n.State)
	}
}

func pad(n, width int) string {
	s := strconv.Itoa(n)
	if len(s) >= width {
		return s
	}
	return strings.Repeat("0", width-len(s)) + s
}

func digits(n int) int { return len(strconv.Itoa(max(n, 0))) }

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func siteList(sites []model.Site) string {
	var names []string
	for _, s := range sites {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "none declared"
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
