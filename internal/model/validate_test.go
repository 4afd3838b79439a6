package model

import (
	"errors"
	"strings"
	"testing"
)

func goodJob() Job {
	return Job{ID: "j1", Project: "p", Nodes: 2, AcceleratorsPerNode: 8, Limit: 3600}
}

func TestJobValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		edit    func(j *Job)
		wantErr string // "" = valid; else a substring naming the field and the fix
	}{
		{"a gang is fine", func(j *Job) {}, ""},
		{"packed anywhere is fine", func(j *Job) { j.Nodes, j.AcceleratorsPerNode, j.Accelerators = 0, 0, 12 }, ""},
		{"CPU only is fine", func(j *Job) { j.Nodes, j.AcceleratorsPerNode, j.CPUs = 0, 0, 4 }, ""},
		{"missing id", func(j *Job) { j.ID = "" }, "job: id: is empty"},
		{"id with a space", func(j *Job) { j.ID = "a b" }, "contains a space"},
		{"missing project", func(j *Job) { j.Project = "" }, "job j1: project: is empty"},
		{"negative nodes", func(j *Job) { j.Nodes = -1 }, "nodes: is -1"},
		{"both shapes disagree", func(j *Job) { j.Accelerators = 10 }, "accelerators: is 10 but nodes × accelerators_per_node is 16"},
		{"per node without nodes", func(j *Job) { j.Nodes = 0 }, "accelerators_per_node: is set without nodes"},
		{"no limit", func(j *Job) { j.Limit = 0 }, "limit_s: is 0; a job needs a positive time limit"},
		{"negative memory", func(j *Job) { j.MemoryMiB = -5 }, "memory_mib: is -5"},
		{"unknown dependency type", func(j *Job) { j.Deps = []Dependency{{Type: "before", JobID: "j0"}} }, `deps[0].type: "before" is not a dependency type`},
		{"depends on itself", func(j *Job) { j.Deps = []Dependency{{Type: AfterOK, JobID: "j1"}} }, "cannot wait for itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := goodJob()
			tc.edit(&j)
			err := j.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestJobValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	j := Job{ID: "j", Nodes: -1, Limit: -1}
	err := j.Validate()
	for _, want := range []string{"project", "nodes", "limit_s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func goodCluster() Cluster {
	return Cluster{
		Name:         "c",
		Sites:        []Site{{Name: "s", Country: "FR"}},
		Partitions:   []Partition{{Name: "gpu", Site: "s", Model: "H100"}},
		Accelerators: map[string]Accelerator{"H100": {Vendor: "nvidia", Model: "H100", MemoryGiB: 80}},
		Nodes: []Node{
			{Name: "n1", Partition: "gpu", Block: "b1", Group: "g1", Accelerators: 8, Model: "H100", State: NodeUp},
			{Name: "n2", Partition: "gpu", Block: "b1", Group: "g1", Accelerators: 8, Model: "H100", State: NodeDrain},
		},
	}
}

func TestClusterValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		edit    func(c *Cluster)
		wantErr string
	}{
		{"a good cluster", func(c *Cluster) {}, ""},
		{"no nodes", func(c *Cluster) { c.Nodes = nil }, "cluster has no nodes"},
		{"duplicate node", func(c *Cluster) { c.Nodes[1].Name = "n1" }, "node n1: name: appears twice"},
		{"unknown partition", func(c *Cluster) { c.Nodes[0].Partition = "cpu" }, `partition: "cpu" is not a partition`},
		{"partition on an unknown site", func(c *Cluster) { c.Partitions[0].Site = "x" }, `site: "x" is not a site`},
		{"undescribed model", func(c *Cluster) { c.Partitions[0].Model = "MI300X" }, `"MI300X" is not described under accelerators`},
		{"two models in a partition", func(c *Cluster) { c.Nodes[1].Model = "A100" }, "a partition holds one accelerator model"},
		{"a block in two groups", func(c *Cluster) { c.Nodes[1].Group = "g2" }, "a block belongs to one group"},
		{"bad state", func(c *Cluster) { c.Nodes[0].State = "broken" }, `"broken" is not a node state`},
		{"accelerators without a model", func(c *Cluster) { c.Nodes[0].Model = "" }, "name their model"},
		{"negative CPUs", func(c *Cluster) { c.Nodes[0].CPUs = -2 }, "cpus: is -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := goodCluster()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	c := goodCluster()
	if got := c.TotalAccelerators(); got != 16 {
		t.Errorf("TotalAccelerators = %d, want 16", got)
	}
}

func TestGrantValidate(t *testing.T) {
	t.Parallel()
	g := Grant{ID: "g1", Project: "p", Amount: 3600, From: 10, Until: 20}
	if err := g.Validate(); err != nil {
		t.Fatalf("good grant: %v", err)
	}
	bad := g
	bad.Amount, bad.Until = -1, 10
	err := bad.Validate()
	for _, want := range []string{"amount_s: is -1", "until: 10 is not after from 10"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestValidateProjects(t *testing.T) {
	t.Parallel()
	good := []Project{{Name: "consortium", Shares: 1}, {Name: "inst", Parent: "consortium", Shares: 3}, {Name: "team", Parent: "inst", Shares: 1}}
	if err := ValidateProjects(good); err != nil {
		t.Fatalf("good tree: %v", err)
	}
	for _, tc := range []struct {
		name    string
		ps      []Project
		wantErr string
	}{
		{"unknown parent", []Project{{Name: "a", Parent: "z", Shares: 1}}, `parent: "z" is not a project`},
		{"zero shares", []Project{{Name: "a"}}, "shares: is 0"},
		{"duplicate", []Project{{Name: "a", Shares: 1}, {Name: "a", Shares: 1}}, "appears twice"},
		{"cycle", []Project{{Name: "a", Parent: "b", Shares: 1}, {Name: "b", Parent: "a", Shares: 1}}, "forms a cycle"},
	} {
		if err := ValidateProjects(tc.ps); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestJobStateFinal(t *testing.T) {
	t.Parallel()
	for s, want := range map[JobState]bool{JobPending: false, JobRunning: false, JobCompleted: true, JobFailed: true, JobCancelled: true, JobTimeout: true} {
		if s.Final() != want {
			t.Errorf("%s.Final() = %v, want %v", s, !want, want)
		}
	}
}
