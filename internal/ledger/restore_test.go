package ledger_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/model"
)

// TestRestoreActsAsLoad: an operation on a ledger restored from sums gives
// the entries the same operation gives on the ledger loaded from every
// entry — the store relies on it to avoid replaying a grant's history at
// each job start.
func TestRestoreActsAsLoad(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	for round := range 200 {
		d := newDriver(t, rng)
		for range 30 {
			d.step()
		}
		var states []ledger.State
		var holds []ledger.OpenHold
		for _, a := range d.l.Accounts() {
			states = append(states, ledger.State{Grant: a.Grant, Parent: a.Parent, Total: a.Total, Charged: a.Charged,
				Expired: a.Expired, Held: a.Held, Holds: a.Holds})
		}
		for _, job := range d.running {
			g, amount, _ := d.l.Held(job)
			h := d.limits[job]
			holds = append(holds, ledger.OpenHold{Job: job, Grant: g, Amount: amount, Accelerators: h.req.Accelerators, Factor: h.req.Factor})
		}
		r, err := ledger.Restore(treeProjects, states, holds, d.l.Seq())
		if err != nil {
			t.Fatalf("round %d: restore: %v", round, err)
		}
		req := ledger.HoldRequest{Job: "probe", Project: "team", Model: "H100", Site: "s1", Accelerators: 1 + rng.IntN(8),
			Limit: int64(1 + rng.IntN(50_000)), Factor: 1}
		want, werr := d.l.Hold(req, d.now)
		got, gerr := r.Hold(req, d.now)
		if errors.Is(werr, ledger.ErrInsufficient) != errors.Is(gerr, ledger.ErrInsufficient) || len(want) != len(got) {
			t.Fatalf("round %d: hold on the loaded ledger: %v %v; on the restored one: %v %v", round, want, werr, got, gerr)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("round %d: entry %d: loaded %+v, restored %+v", round, i, want[i], got[i])
			}
		}
		if len(d.running) > 0 {
			job := d.running[0]
			w, _ := d.l.Settle(job, 10, d.now)
			g, err := r.Settle(job, 10, d.now)
			if err != nil || len(w) != len(g) || w[0] != g[0] {
				t.Fatalf("round %d: settle %s: loaded %+v, restored %+v %v", round, job, w, g, err)
			}
		}
		if err := r.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestRestoreRefusesNegativeSums(t *testing.T) {
	t.Parallel()
	g := model.Grant{ID: "g", Project: "cons", Amount: 10, From: 0, Until: 100}
	_, err := ledger.Restore(treeProjects, []ledger.State{{Grant: g, Total: 10, Charged: 5, Held: 6}}, nil, 0)
	if !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("restore of an overdrawn grant: %v; want ErrInvalid", err)
	}
}
