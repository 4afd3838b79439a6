package e2e

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
)

// An agent whose emulated devices have a synthetic draw meters a job's
// energy; the job's usage then says measured, and its kWh is that draw ×
// the devices × the run time. The node says how it reads power and
// whether it enforces job limits.
func TestAJobsMeasuredEnergyBecomesItsUsage(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 0)
	const watts = 400.0
	nd := f.startAgentWith("node1", func(c *agent.Config) {
		for i := range c.Devices {
			c.Devices[i].SyntheticWatts = watts
		}
		c.PowerEvery = 50 * time.Millisecond
	})
	n := f.waitNode("node1", func(n api.NodeView) bool { return n.State == model.NodeUp })
	caps := nd.agent.Capabilities()
	if n.Power != "emulated" || n.Limits == nil || n.Limits.Enforced != caps.Cgroup || n.Limits.Reason != caps.CgroupReason {
		t.Errorf("node1 says power %q, limits %+v; want emulated, and the agent's own %+v", n.Power, n.Limits, caps)
	}

	spec := f.job("sleep 2\n")
	spec.Accelerators = 2
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "ended", ended)
	if j.State != model.JobCompleted {
		t.Fatalf("job %s (%s); want completed", j.State, j.Reason)
	}
	var rep server.UsageReport
	if err := f.admin.Do(context.Background(), http.MethodGet, api.Prefix+"/usage?by=project", nil, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 {
		t.Fatalf("usage rows %+v; want one, of project default", rep.Rows)
	}
	row := rep.Rows[0]
	wall := j.End - j.Start // the run time the server recorded, whole seconds
	if row.EnergyMethod() != "measured" || row.AcceleratorSeconds != 2*wall {
		t.Errorf("usage %+v: energy %s over %d accelerator-seconds; want measured over 2 × %d s", row, row.EnergyMethod(), row.AcceleratorSeconds, wall)
	}
	// The agent metered the run from its launch to its end, to the
	// millisecond; the server's start and end are whole seconds, and its
	// start precedes the launch: the two run times differ by up to about
	// a second either way.
	want := 2 * watts * float64(wall) / 3.6e6
	if slack := 2 * watts * 1.5 / 3.6e6; math.Abs(row.MeasuredKWh-want) > slack {
		t.Errorf("measured %.6f kWh; want 2 devices × %g W × %d s = %.6f kWh (± %.6f)", row.MeasuredKWh, watts, wall, want, slack)
	}
	if row.Labels[usage.ByProject] != "default" {
		t.Errorf("usage row of %v; want project default", row.Labels)
	}
}
