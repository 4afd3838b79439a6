package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func TestALostAcceleratorDrainsTheNodeUntilItIsBack(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 0)
	var visible atomic.Int64
	visible.Store(8)
	f.startAgentWith("node1", func(c *agent.Config) {
		c.HealthEvery = 20 * time.Millisecond
		c.Accelerators = func(context.Context) (int, error) { return int(visible.Load()), nil }
	})
	f.waitNode("node1", func(n api.NodeView) bool { return n.State == model.NodeUp })
	visible.Store(6)
	n := f.waitNode("node1", func(n api.NodeView) bool { return n.State == model.NodeDrain })
	if want := "health: accelerator lost: only 6 of 8 are visible"; n.Reason != want {
		t.Errorf("drained with reason %q; want %q", n.Reason, want)
	}
	// A drained node starts nothing; once healthy it takes the job.
	spec := f.job("echo ran\n")
	spec.Accelerators = 1
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "waiting with a reason", func(j store.Job) bool { return j.Reason != "" || j.State != model.JobPending })
	if j.State != model.JobPending {
		t.Errorf("a job submitted while the only node is drained is %s; want pending", j.State)
	}
	visible.Store(8)
	f.waitNode("node1", func(n api.NodeView) bool { return n.State == model.NodeUp && n.Reason == "" })
	if j := f.waitJob(id, "ended", ended); j.State != model.JobCompleted {
		t.Errorf("the job after the node came back: %s (%s)", j.State, j.Reason)
	}
}

func TestAFullDiskDrainsTheNode(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 0)
	f.startAgentWith("node1", func(c *agent.Config) { c.DiskFull = 1e-9 }) // whatever is in use is too much
	n := f.waitNode("node1", func(n api.NodeView) bool { return n.State == model.NodeDrain })
	if want := "health: disk full: the file system of " + f.dir + "/agents/node1 is "; len(n.Reason) < len(want) || n.Reason[:len(want)] != want {
		t.Errorf("drained with reason %q; want it to start %q", n.Reason, want)
	}
}
