package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// RunGrants runs the conformance suite of store.Grants: calls, proposals,
// grants, the ledger kept in the jobs' own transactions, and the load test
// of concurrent starts against one grant.
func RunGrants(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Opener)
	}{
		{"calls and proposals: submit, return, accept with fewer hours, reject", testProposals},
		{"bad input is refused with a clear error and no partial write", testGrantBadInput},
		{"grants split, top up, transfer, adjust and expire as ledger entries", testGrantOps},
		{"a job is held at start and charged at its end, in the job's transactions", testHoldCharge},
		{"1,000 concurrent starts and ends against a grant covering 600", testGrantLoad},
		{"random concurrent starts and ends never overspend and reconcile", testGrantProperty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, open)
		})
	}
}

// far is an end of validity beyond any test's wall clock: UpdateJob charges
// at the wall clock, and a grant past its end expires what it releases.
const far = 4_000_000_000

// fixture is a store with a consortium tree, a programme, sites and nodes.
func fixture(t *testing.T, open Opener) store.Store {
	t.Helper()
	ctx := context.Background()
	st := open(t, false)
	for _, p := range []model.Project{{Name: "cons", Shares: 1}, {Name: "inst", Parent: "cons", Shares: 1},
		{Name: "team", Parent: "inst", Shares: 1}, {Name: "other", Shares: 1}, {Name: "free", Shares: 1}} {
		must(t, st.PutProject(ctx, p))
	}
	must(t, st.PutProgramme(ctx, store.Programme{Name: "euro", Public: true, Officers: []string{"olga"}}))
	for _, n := range []model.Node{
		{Name: "h1", Site: "s1", Partition: "h100", Group: "g", Block: "b", Accelerators: 8, Model: "H100", CPUs: 64, State: model.NodeUp},
		{Name: "m1", Site: "s2", Partition: "mi", Group: "g", Block: "b", Accelerators: 8, Model: "MI250X", CPUs: 64, State: model.NodeUp},
	} {
		if _, err := st.PutNode(ctx, store.Node{Node: n}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func grant(id, project string, amount int64) store.GrantInfo {
	return store.GrantInfo{Grant: model.Grant{ID: id, Project: project, Model: "H100", Site: "s1", Amount: amount, From: 0, Until: far}, Programme: "euro"}
}

func testProposals(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	c, err := st.PutCall(ctx, store.Call{Name: "AI Factories 2027-1", Programme: "euro", Public: true,
		Offers: []store.CallOffer{{Site: "s1", Model: "H100"}}, Total: 1000 * 3600, Opens: 100, Closes: 200})
	must(t, err)
	if c.ID == "" {
		t.Fatal("a new call got no ID")
	}
	p := store.Proposal{Call: c.ID, Project: "cons", Title: "open model", Plan: "30B tokens", Site: "s1", Model: "H100",
		Amount: 600 * 3600, From: 1000, Until: far}
	if _, err := st.SubmitProposal(ctx, p, 250); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("proposal to a closed call: %v; want ErrInvalid saying the call is closed", err)
	}
	p1, err := st.SubmitProposal(ctx, p, 150)
	must(t, err)
	if p1.State != store.ProposalSubmitted || p1.ID == "" {
		t.Fatalf("submitted proposal = %+v", p1)
	}
	if _, err := st.SubmitProposal(ctx, p, 150); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("a second proposal of the same project, class and period: %v; want ErrInvalid saying it overlaps", err)
	}
	if _, err := st.DecideProposal(ctx, p1.ID, store.Decision{State: store.ProposalReturned, Actor: "olga"}, 160); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("returning a proposal without a comment: %v; want ErrInvalid", err)
	}
	ret, err := st.DecideProposal(ctx, p1.ID, store.Decision{State: store.ProposalReturned, Comment: "say which data", Actor: "olga"}, 160)
	must(t, err)
	if ret.State != store.ProposalReturned || ret.Comment != "say which data" {
		t.Errorf("returned proposal = %+v", ret)
	}
	again := p
	again.ID, again.Plan = p1.ID, "30B tokens of open web data"
	p2, err := st.SubmitProposal(ctx, again, 170)
	must(t, err)
	if p2.ID != p1.ID || p2.State != store.ProposalSubmitted {
		t.Errorf("resubmitted proposal = %+v; want %s submitted again", p2, p1.ID)
	}
	if _, err := st.DecideProposal(ctx, p1.ID, store.Decision{State: store.ProposalAccepted, Amount: 700 * 3600, Actor: "olga"}, 180); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("accepting with more than asked: %v; want ErrInvalid", err)
	}
	acc, err := st.DecideProposal(ctx, p1.ID, store.Decision{State: store.ProposalAccepted, Amount: 500 * 3600, Comment: "fewer hours", Actor: "olga"}, 180)
	must(t, err)
	if acc.State != store.ProposalAccepted || acc.Granted != 500*3600 || acc.Grant == "" {
		t.Fatalf("accepted proposal = %+v; want 500 h granted", acc)
	}
	g, err := st.Grant(ctx, acc.Grant)
	must(t, err)
	if g.Amount != 500*3600 || g.Available != 500*3600 || g.Project != "cons" || g.Call != c.ID || g.Programme != "euro" || !g.Public {
		t.Errorf("the accepted proposal's grant = %+v", g)
	}
	if c2, _ := st.Call(ctx, c.ID); c2.Granted != 500*3600 {
		t.Errorf("call granted %d after the acceptance; want %d", c2.Granted, 500*3600)
	}
	if _, err := st.DecideProposal(ctx, p1.ID, store.Decision{State: store.ProposalRejected, Actor: "olga"}, 190); !errors.Is(err, store.ErrConflict) {
		t.Errorf("deciding an accepted proposal again: %v; want ErrConflict", err)
	}
	other := p
	other.Project, other.Amount = "other", 100*3600
	p3, err := st.SubmitProposal(ctx, other, 190)
	must(t, err)
	rej, err := st.DecideProposal(ctx, p3.ID, store.Decision{State: store.ProposalRejected, Comment: "out of scope", Actor: "olga"}, 195)
	must(t, err)
	if rej.State != store.ProposalRejected || rej.Grant != "" {
		t.Errorf("rejected proposal = %+v", rej)
	}
	if ps, err := st.Proposals(ctx, store.ProposalFilter{Call: c.ID}); err != nil || len(ps) != 2 {
		t.Errorf("proposals of the call = %d, %v; want 2", len(ps), err)
	}
	if ps, err := st.Proposals(ctx, store.ProposalFilter{Projects: []string{"other"}}); err != nil || len(ps) != 1 || ps[0].ID != p3.ID {
		t.Errorf("proposals of project other = %+v, %v", ps, err)
	}
	must(t, st.CheckLedger(ctx))
}

func testGrantBadInput(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	_, err := st.OpenGrant(ctx, grant("g1", "cons", 1000*3600), "olga", "", 10)
	must(t, err)
	entries := func() int {
		es, err := st.LedgerEntries(ctx, "", 0, 0)
		must(t, err)
		return len(es)
	}
	n := entries()
	inverted := grant("g2", "other", 3600)
	inverted.From, inverted.Until = 500, 400
	overlapping := grant("g3", "cons", 3600)
	overlapping.From, overlapping.Until = 100, 200
	big := grant("sub", "inst", 2000*3600)
	for _, tc := range []struct {
		name string
		op   func() error
		want error
		says string
	}{
		{"an inverted period", func() error { _, err := st.OpenGrant(ctx, inverted, "olga", "", 10); return err }, store.ErrInvalid, "not after"},
		{"an overlapping period", func() error { _, err := st.OpenGrant(ctx, overlapping, "olga", "", 10); return err }, store.ErrInvalid, "overlaps"},
		{"negative hours", func() error { _, err := st.OpenGrant(ctx, grant("g4", "other", -5), "olga", "", 10); return err }, store.ErrInvalid, "negative"},
		{"a negative top-up", func() error { _, err := st.TopupGrant(ctx, "g1", -3600, "olga", "", 10); return err }, store.ErrInvalid, "positive"},
		{"a sub-grant larger than its parent", func() error { _, err := st.SplitGrant(ctx, "g1", big, "mia", "", 10); return err }, ledger.ErrInsufficient, "available"},
		{"a sub-grant for a project outside the parent's", func() error {
			_, err := st.SplitGrant(ctx, "g1", grant("sub2", "other", 3600), "mia", "", 10)
			return err
		}, store.ErrInvalid, "not a sub-project"},
		{"a transfer of more than is available", func() error {
			_, err := st.TransferGrant(ctx, "g1", "nope", 3600, "olga", "", 10)
			return err
		}, store.ErrNotFound, "nope"},
		{"a grant of an unknown project", func() error { _, err := st.OpenGrant(ctx, grant("g5", "ghost", 3600), "olga", "", 10); return err }, store.ErrNotFound, "ghost"},
	} {
		err := tc.op()
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	if got := entries(); got != n {
		t.Errorf("refused operations wrote %d ledger entries", got-n)
	}
	gs, err := st.Grants(ctx, store.GrantFilter{})
	must(t, err)
	if len(gs) != 1 || gs[0].Available != 1000*3600 {
		t.Errorf("after refused operations the grants are %+v; want g1 alone, untouched", gs)
	}
	must(t, st.CheckLedger(ctx))
}

func testGrantOps(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	_, err := st.OpenGrant(ctx, grant("g1", "cons", 1000), "olga", "award", 10)
	must(t, err)
	sub, err := st.SplitGrant(ctx, "g1", grant("g1.inst", "inst", 400), "mia", "for inst", 20)
	must(t, err)
	if sub.Parent != "g1" || sub.Total != 400 || sub.Programme != "euro" {
		t.Errorf("sub-grant = %+v", sub)
	}
	top, err := st.TopupGrant(ctx, "g1", 500, "olga", "more", 30)
	must(t, err)
	if top.Total != 1100 || top.Available != 1100 {
		t.Errorf("after a split of 400 and a top-up of 500, g1 = %+v; want total 1100", top)
	}
	_, err = st.OpenGrant(ctx, grant("g2", "other", 100), "olga", "", 10)
	must(t, err)
	both, err := st.TransferGrant(ctx, "g1", "g2", 100, "olga", "move", 40)
	must(t, err)
	if len(both) != 2 || both[0].Total != 1000 || both[1].Total != 200 {
		t.Errorf("after a transfer of 100: %+v", both)
	}
	adj, err := st.AdjustGrant(ctx, "g2", -50, "olga", "correction", 50)
	must(t, err)
	if adj.Total != 150 {
		t.Errorf("after an adjustment of -50, g2 total = %d; want 150", adj.Total)
	}
	short := grant("g3", "other", 100)
	short.Model, short.Site, short.Until = "", "", 100
	_, err = st.OpenGrant(ctx, short, "olga", "", 60)
	must(t, err)
	exp, err := st.ExpireGrants(ctx, 100, 0)
	must(t, err)
	if len(exp) != 1 || exp[0].Grant != "g3" || exp[0].Kind != ledger.KindExpire || exp[0].Amount != -100 {
		t.Errorf("expire at 100 = %+v; want g3's 100 expired", exp)
	}
	es, err := st.LedgerEntries(ctx, "g1", 0, 0)
	must(t, err)
	var kinds []string
	for _, e := range es {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, " "); got != "grant split-out topup transfer-out" {
		t.Errorf("g1's entries: %s", got)
	}
	ns, err := st.GrantNotices(ctx, store.NoticeFilter{Grant: "g3"})
	must(t, err)
	if len(ns) != 1 || ns[0].Kind != ledger.NoticeExpired || ns[0].Project != "other" {
		t.Errorf("notices of g3 = %+v; want one expired", ns)
	}
	if _, err := st.ExpireGrants(ctx, 100, 0); err != nil {
		t.Fatal(err)
	}
	if ns, _ := st.GrantNotices(ctx, store.NoticeFilter{Grant: "g3"}); len(ns) != 1 {
		t.Errorf("a second sweep repeated the notice: %+v", ns)
	}
	if gs, err := st.Grants(ctx, store.GrantFilter{Projects: []string{"inst"}}); err != nil || len(gs) != 1 || gs[0].ID != "g1.inst" {
		t.Errorf("grants of inst = %+v, %v", gs, err)
	}
	must(t, st.CheckLedger(ctx))
}

// runner starts and ends jobs through Apply and UpdateJob, as the
// scheduler loop and the agents' reports do.
type runner struct {
	t     testing.TB
	st    store.Store
	lease store.Lease
}

func newRunner(t testing.TB, st store.Store) *runner {
	lease, ok, err := st.AcquireLease(context.Background(), "sched", time.Now().UnixMilli(), 3_600_000)
	if err != nil || !ok {
		t.Fatalf("take the lease: %v %v", ok, err)
	}
	return &runner{t: t, st: st, lease: lease}
}

// start applies one start of j on node with acc accelerators at now.
func (r *runner) start(j store.Job, node string, acc int, now int64) (store.Job, error) {
	out, err := r.st.Apply(context.Background(), r.lease, store.Decisions{Time: now,
		Starts: []store.StartJob{{ID: j.ID, Rev: j.Rev, Start: now, Alloc: []store.Alloc{{Node: node, Accelerators: acc, CPUs: 2 * acc}}}}})
	if err != nil {
		return store.Job{}, err
	}
	return out[0], nil
}

// end completes a running job after it used used seconds.
func (r *runner) end(j store.Job, used int64) (store.Job, error) {
	return r.st.UpdateJob(context.Background(), j.ID, func(j *store.Job) error {
		if j.State != model.JobRunning {
			return fmt.Errorf("job %s is %s", j.ID, j.State)
		}
		j.State, j.End = model.JobCompleted, j.Start+used
		return nil
	})
}

func testHoldCharge(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	r := newRunner(t, st)
	now := time.Now().Unix()
	_, err := st.OpenGrant(ctx, grant("g1", "cons", 10*3600), "olga", "", now)
	must(t, err)
	must(t, st.PutAccounting(ctx, store.Accounting{ChargeFactors: map[string]float64{"H100": 1, "MI250X": 0.5}}))
	j := job("team")
	j.Limit = 3600
	js := submit(t, st, j, j, job("free"))

	// team's job takes 4 accelerators for at most an hour: the grant of
	// its grandparent holds 4 h.
	run, err := r.start(js[0], "h1", 4, now)
	must(t, err)
	g, _ := st.Grant(ctx, "g1")
	if g.Held != 4*3600 || g.Available != 6*3600 || g.Holds != 1 {
		t.Errorf("after the start: %+v; want 4 h held, 6 h available", g)
	}
	// A second such job needs 8 h of the 6 left: Apply refuses it and
	// writes nothing.
	rev, _ := st.Rev(ctx)
	_, err = r.start(js[1], "h1", 8, now)
	var refusal *store.GrantRefusal
	if !errors.As(err, &refusal) || !errors.Is(err, store.ErrGrantExhausted) || refusal.Jobs[js[1].ID] == "" {
		t.Fatalf("a start beyond the grant: %v; want a *store.GrantRefusal naming job %s", err, js[1].ID)
	}
	if !strings.Contains(refusal.Jobs[js[1].ID], "6.00 accelerator-hours") {
		t.Errorf("the refusal says %q; want how much is left", refusal.Jobs[js[1].ID])
	}
	if rev2, _ := st.Rev(ctx); rev2 != rev {
		t.Errorf("a refused apply moved the revision")
	}
	if j1, _ := st.Job(ctx, js[1].ID); j1.State != model.JobPending {
		t.Errorf("a refused start left job %s %s", j1.ID, j1.State)
	}
	// A project without any grant in its tree runs unaccounted.
	freeRun, err := r.start(js[2], "h1", 1, now)
	must(t, err)
	// The job ends after 30 minutes: 2 h charged, 2 h released.
	_, err = r.end(run, 1800)
	must(t, err)
	g, _ = st.Grant(ctx, "g1")
	if g.Charged != 2*3600 || g.Held != 0 || g.Available != 8*3600 || g.Holds != 0 {
		t.Errorf("after the end: %+v; want 2 h charged, 8 h available", g)
	}
	es, _ := st.LedgerEntries(ctx, "g1", 0, 0)
	var kinds []string
	for _, e := range es {
		kinds = append(kinds, fmt.Sprintf("%s%+d", e.Kind, e.Amount))
	}
	if got, want := strings.Join(kinds, " "), "grant+36000 hold+14400 charge-7200 release+7200"; got != want {
		t.Errorf("g1's entries: %s; want %s", got, want)
	}
	_, err = r.end(freeRun, 60)
	must(t, err)
	parts, err := st.UsageParts(ctx, store.UsageFilter{})
	must(t, err)
	var acc, jobs int64
	programmes := map[string]int64{}
	for _, p := range parts {
		acc += p.AcceleratorSeconds
		jobs += int64(p.Jobs)
		programmes[p.Programme] += p.AcceleratorSeconds
	}
	if acc != 4*1800+60 || jobs != 2 || programmes["euro"] != 4*1800 || programmes[""] != 60 {
		t.Errorf("usage: %d accelerator-seconds over %d jobs, by programme %v; want 7260 over 2, 7200 of euro", acc, jobs, programmes)
	}
	// A requeued run is charged too, and held again at its next start.
	run2, err := r.start(js[1], "h1", 2, now)
	must(t, err)
	_, err = st.UpdateJob(ctx, run2.ID, func(j *store.Job) error {
		j.State, j.Alloc, j.Start = model.JobPending, nil, 0
		return nil
	})
	must(t, err)
	if g, _ := st.Grant(ctx, "g1"); g.Holds != 0 {
		t.Errorf("a requeued run still holds: %+v", g)
	}
	must(t, st.CheckLedger(ctx))
	feed, err := st.GrantFeed(ctx, now)
	must(t, err)
	var consLeft, freeLeft int64
	for _, b := range feed.Balances {
		switch b.Project {
		case "cons":
			consLeft = b.Remaining
		case "free":
			freeLeft = b.Remaining
		}
	}
	g, _ = st.Grant(ctx, "g1")
	if consLeft != g.Available || freeLeft < 1<<60 {
		t.Errorf("feed balances: cons %d (want %d), free %d (want unlimited)", consLeft, g.Available, freeLeft)
	}
	if feed.Shares["cons"] != g.Total || feed.Shares["team"] != 0 {
		t.Errorf("feed shares = %v; want cons's grant total", feed.Shares)
	}
}

// load starts and ends n jobs of one accelerator each from workers
// goroutines against one grant; use draws each job's run time. It returns
// the jobs that ran and what they used.
func load(t *testing.T, st store.Store, n, workers int, limit int64, use func(i int) int64) (ran map[string]int64, refused int) {
	t.Helper()
	r := newRunner(t, st)
	now := time.Now().Unix()
	specs := make([]store.Job, n)
	for i := range specs {
		specs[i] = job("team")
		specs[i].Limit = limit
	}
	js := submit(t, st, specs...)
	var mu sync.Mutex
	ran = map[string]int64{}
	var nrefused atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				run, err := r.start(js[i], "h1", 1, now)
				if errors.Is(err, store.ErrGrantExhausted) {
					nrefused.Add(1)
					continue
				}
				if err != nil {
					errc <- fmt.Errorf("start job %s: %w", js[i].ID, err)
					return
				}
				used := use(i)
				if _, err := r.end(run, used); err != nil {
					errc <- fmt.Errorf("end job %s: %w", js[i].ID, err)
					return
				}
				mu.Lock()
				ran[run.ID] = used
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return ran, int(nrefused.Load())
}

func testGrantLoad(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	const limit = 60
	_, err := st.OpenGrant(ctx, grant("g1", "cons", 600*limit), "olga", "", 0)
	must(t, err)
	// Every job uses its whole limit: exactly 600 fit.
	ran, refused := load(t, st, 1000, 16, limit, func(int) int64 { return limit })
	if len(ran) != 600 || refused != 400 {
		t.Errorf("%d jobs ran and %d were refused; want 600 and 400", len(ran), refused)
	}
	g, err := st.Grant(ctx, "g1")
	must(t, err)
	if g.Charged != 600*limit || g.Available != 0 || g.Held != 0 || g.Holds != 0 {
		t.Errorf("grant after the load: %+v; want all 36000 s charged, nothing held", g)
	}
	reconcile(t, st, ran, g)
}

func testGrantProperty(t *testing.T, open Opener) {
	ctx := context.Background()
	st := fixture(t, open)
	const limit = 100
	_, err := st.OpenGrant(ctx, grant("g1", "cons", 150*limit), "olga", "", 0)
	must(t, err)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	uses := make([]int64, 400)
	for i := range uses {
		uses[i] = rng.Int64N(limit + 1)
	}
	ran, refused := load(t, st, len(uses), 12, limit, func(i int) int64 { return uses[i] })
	g, err := st.Grant(ctx, "g1")
	must(t, err)
	if g.Held != 0 || g.Holds != 0 || g.Available < 0 || g.Charged > g.Total {
		t.Errorf("seed %d: grant after the load: %+v", seed, g)
	}
	if len(ran)+refused != len(uses) {
		t.Errorf("seed %d: %d ran and %d were refused of %d", seed, len(ran), refused, len(uses))
	}
	reconcile(t, st, ran, g)
}

// reconcile checks the books against the jobs that ran, to the
// accelerator-second: the charges are what the jobs used, the usage sums
// agree, every hold is closed and the stored entries replay cleanly.
func reconcile(t *testing.T, st store.Store, ran map[string]int64, g store.GrantAccount) {
	t.Helper()
	ctx := context.Background()
	var used int64
	for _, u := range ran {
		used += u
	}
	es, err := st.LedgerEntries(ctx, g.ID, 0, 0)
	must(t, err)
	var charged, holds, releases int64
	open := map[string]bool{}
	for _, e := range es {
		switch e.Kind {
		case ledger.KindCharge:
			charged -= e.Amount
			if want := ran[e.Job]; -e.Amount != want {
				t.Errorf("job %s charged %d; it used %d", e.Job, -e.Amount, want)
			}
		case ledger.KindHold:
			holds++
			open[e.Job] = true
		case ledger.KindRelease:
			releases++
			delete(open, e.Job)
		}
	}
	if charged != used || g.Charged != used || holds != int64(len(ran)) || releases != holds || len(open) != 0 {
		t.Errorf("entries: %d charged, grant says %d, jobs used %d; %d holds, %d releases, %d open", charged, g.Charged, used, holds, releases, len(open))
	}
	if g.Total-g.Charged-g.Expired-g.Held != g.Available {
		t.Errorf("grant sums do not add up: %+v", g)
	}
	parts, err := st.UsageParts(ctx, store.UsageFilter{})
	must(t, err)
	var acc int64
	for _, p := range parts {
		acc += p.AcceleratorSeconds
	}
	if acc != used {
		t.Errorf("usage sums %d accelerator-seconds; the jobs used %d", acc, used)
	}
	if err := st.CheckLedger(ctx); err != nil {
		t.Errorf("the stored entries do not replay: %v", err)
	}
}
