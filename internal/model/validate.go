package model

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError says which field of which object is wrong, and how to fix it.
type FieldError struct {
	Object string // "job j1", "node gpu001"
	Field  string // JSON name of the field
	Msg    string // what is wrong and what is expected
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Object, e.Field, e.Msg)
}

func fieldErr(obj, field, format string, args ...any) error {
	return &FieldError{Object: obj, Field: field, Msg: fmt.Sprintf(format, args...)}
}

const maxNameLen = 256

func checkName(obj, field, name string) error {
	switch {
	case name == "":
		return fieldErr(obj, field, "is empty; give a name")
	case len(name) > maxNameLen:
		return fieldErr(obj, field, "is %d bytes long; at most %d are allowed", len(name), maxNameLen)
	case strings.ContainsAny(name, " \t\r\n,"):
		return fieldErr(obj, field, "%q contains a space, a comma or a line break; use letters, digits, '-', '_' or '.'", name)
	}
	return nil
}

// Validate checks a job on its own: shape, limits and references that need
// no cluster. Fit against a cluster is the scheduler's question.
func (j *Job) Validate() error {
	if err := checkName("job", "id", j.ID); err != nil {
		return err
	}
	obj := "job " + j.ID
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkName(obj, "project", j.Project))
	switch {
	case j.Nodes < 0:
		add(fieldErr(obj, "nodes", "is %d; give 0 (pack anywhere) or a positive node count", j.Nodes))
	case j.Nodes > 0 && j.AcceleratorsPerNode < 0:
		add(fieldErr(obj, "accelerators_per_node", "is %d; give 0 or more", j.AcceleratorsPerNode))
	case j.Nodes > 0 && j.Accelerators != 0 && j.Accelerators != j.Nodes*j.AcceleratorsPerNode:
		add(fieldErr(obj, "accelerators", "is %d but nodes × accelerators_per_node is %d; give one or the other", j.Accelerators, j.Nodes*j.AcceleratorsPerNode))
	case j.Nodes == 0 && j.Accelerators < 0:
		add(fieldErr(obj, "accelerators", "is %d; give 0 (CPU only) or more", j.Accelerators))
	case j.Nodes == 0 && j.AcceleratorsPerNode != 0:
		add(fieldErr(obj, "accelerators_per_node", "is set without nodes; give nodes too, or use accelerators to pack anywhere"))
	}
	if j.CPUs < 0 {
		add(fieldErr(obj, "cpus", "is %d; give 0 or more", j.CPUs))
	}
	if j.MemoryMiB < 0 {
		add(fieldErr(obj, "memory_mib", "is %d; give 0 or more", j.MemoryMiB))
	}
	if j.Limit <= 0 {
		add(fieldErr(obj, "limit_s", "is %d; a job needs a positive time limit in seconds", j.Limit))
	}
	if j.ArrayIndex < 0 {
		add(fieldErr(obj, "array_index", "is %d; array indices start at 0", j.ArrayIndex))
	}
	if j.ArrayThrottle < 0 {
		add(fieldErr(obj, "array_throttle", "is %d; give 0 (no limit) or how many elements may run at once", j.ArrayThrottle))
	}
	for i, d := range j.Deps {
		f := fmt.Sprintf("deps[%d]", i)
		switch d.Type {
		case AfterStart, AfterAny, AfterOK, AfterNotOK:
		default:
			add(fieldErr(obj, f+".type", "%q is not a dependency type; use after, afterany, afterok or afternotok", d.Type))
		}
		if d.JobID == "" {
			add(fieldErr(obj, f+".job_id", "is empty; name the job to wait for"))
		} else if d.JobID == j.ID {
			add(fieldErr(obj, f+".job_id", "is the job itself; a job cannot wait for itself"))
		}
	}
	return errors.Join(errs...)
}

// Validate checks a node on its own.
func (n *Node) Validate() error {
	if err := checkName("node", "name", n.Name); err != nil {
		return err
	}
	obj := "node " + n.Name
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkName(obj, "partition", n.Partition))
	add(checkName(obj, "block", n.Block))
	add(checkName(obj, "group", n.Group))
	if n.Accelerators < 0 {
		add(fieldErr(obj, "accelerators", "is %d; give 0 or more", n.Accelerators))
	}
	if n.Accelerators > 0 && n.Model == "" {
		add(fieldErr(obj, "model", "is empty but the node has %d accelerators; name their model", n.Accelerators))
	}
	if n.CPUs < 0 {
		add(fieldErr(obj, "cpus", "is %d; give 0 or more", n.CPUs))
	}
	if n.MemoryMiB < 0 {
		add(fieldErr(obj, "memory_mib", "is %d; give 0 or more", n.MemoryMiB))
	}
	switch n.State {
	case NodeUp, NodeDrain, NodeDown:
	default:
		add(fieldErr(obj, "state", "%q is not a node state; use up, drain or down", n.State))
	}
	return errors.Join(errs...)
}

// Validate checks the cluster as a whole: unique names, references between
// sites, partitions and nodes, one model per partition, and a tree-shaped
// topology (a block belongs to one group).
func (c *Cluster) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	sites := map[string]bool{}
	for i, s := range c.Sites {
		add(checkName(fmt.Sprintf("sites[%d]", i), "name", s.Name))
		if sites[s.Name] {
			add(fieldErr("site "+s.Name, "name", "appears twice; site names must be unique"))
		}
		sites[s.Name] = true
	}
	parts := map[string]Partition{}
	for i, p := range c.Partitions {
		add(checkName(fmt.Sprintf("partitions[%d]", i), "name", p.Name))
		obj := "partition " + p.Name
		if _, dup := parts[p.Name]; dup {
			add(fieldErr(obj, "name", "appears twice; partition names must be unique"))
		}
		parts[p.Name] = p
		if !sites[p.Site] {
			add(fieldErr(obj, "site", "%q is not a site of this cluster; declare it under sites", p.Site))
		}
		if p.Model != "" {
			if _, ok := c.Accelerators[p.Model]; !ok {
				add(fieldErr(obj, "model", "%q is not described under accelerators; add its vendor, memory, TFLOP/s and watts", p.Model))
			}
		}
	}
	for m, a := range c.Accelerators {
		obj := "accelerator " + m
		if a.Model != "" && a.Model != m {
			add(fieldErr(obj, "model", "%q differs from its key %q", a.Model, m))
		}
		if a.MemoryGiB < 0 || a.BF16TFLOPS < 0 || a.Watts < 0 {
			add(fieldErr(obj, "memory_gib/bf16_tflops/watts", "must not be negative"))
		}
	}
	names := map[string]bool{}
	blockGroup := map[string]string{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if err := n.Validate(); err != nil {
			add(err)
			continue
		}
		obj := "node " + n.Name
		if names[n.Name] {
			add(fieldErr(obj, "name", "appears twice; node names must be unique"))
		}
		names[n.Name] = true
		p, ok := parts[n.Partition]
		if !ok {
			add(fieldErr(obj, "partition", "%q is not a partition of this cluster; declare it under partitions", n.Partition))
			continue
		}
		if n.Site != "" && n.Site != p.Site {
			add(fieldErr(obj, "site", "%q differs from its partition's site %q", n.Site, p.Site))
		}
		if n.Accelerators > 0 && p.Model != n.Model {
			add(fieldErr(obj, "model", "%q differs from partition %s's model %q; a partition holds one accelerator model", n.Model, p.Name, p.Model))
		}
		key := p.Site + "/" + n.Block
		if g, ok := blockGroup[key]; ok && g != n.Group {
			add(fieldErr(obj, "group", "%q, but block %s is already in group %q; a block belongs to one group", n.Group, n.Block, g))
		}
		blockGroup[key] = n.Group
		if len(errs) > 20 {
			errs = append(errs, errors.New("… more errors not shown"))
			break
		}
	}
	if len(c.Nodes) == 0 {
		add(errors.New("cluster has no nodes; declare at least one"))
	}
	return errors.Join(errs...)
}

// Validate checks a grant on its own.
func (g *Grant) Validate() error {
	if err := checkName("grant", "id", g.ID); err != nil {
		return err
	}
	obj := "grant " + g.ID
	var errs []error
	if err := checkName(obj, "project", g.Project); err != nil {
		errs = append(errs, err)
	}
	if g.Amount < 0 {
		errs = append(errs, fieldErr(obj, "amount_s", "is %d; a grant cannot be negative", g.Amount))
	}
	if g.Until <= g.From {
		errs = append(errs, fieldErr(obj, "until", "%d is not after from %d; give a period that ends after it starts", g.Until, g.From))
	}
	return errors.Join(errs...)
}

// ValidateProjects checks that project names are unique, parents exist, shares
// are positive and the tree has no cycle.
func ValidateProjects(ps []Project) error {
	byName := map[string]*Project{}
	var errs []error
	for i := range ps {
		p := &ps[i]
		if err := checkName(fmt.Sprintf("projects[%d]", i), "name", p.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if byName[p.Name] != nil {
			errs = append(errs, fieldErr("project "+p.Name, "name", "appears twice; project names must be unique"))
		}
		byName[p.Name] = p
		if p.Shares <= 0 {
			errs = append(errs, fieldErr("project "+p.Name, "shares", "is %d; give a positive number of shares", p.Shares))
		}
	}
	for i := range ps {
		p := &ps[i]
		if byName[p.Name] != p {
			continue
		}
		if p.Parent != "" && byName[p.Parent] == nil {
			errs = append(errs, fieldErr("project "+p.Name, "parent", "%q is not a project; create it first or leave parent empty", p.Parent))
			continue
		}
		seen := map[string]bool{p.Name: true}
		for q := byName[p.Parent]; q != nil; q = byName[q.Parent] {
			if seen[q.Name] {
				errs = append(errs, fieldErr("project "+p.Name, "parent", "forms a cycle through %q; projects must form a tree", q.Name))
				break
			}
			seen[q.Name] = true
		}
	}
	return errors.Join(errs...)
}

// CheckOpenMode says what is wrong with an output open mode, if anything.
func CheckOpenMode(m string) error {
	if m != "" && m != OpenAppend && m != OpenTruncate {
		return fmt.Errorf("open mode %q: give %q, %q, or nothing (truncate on the first run, append when requeued)", m, OpenAppend, OpenTruncate)
	}
	return nil
}
