package ledger_test

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/model"
)

// source draws the choices of a random operation sequence: a seeded PCG
// for the property tests, the fuzzer's bytes for FuzzOperations.
type source interface{ IntN(n int) int }

// bytesSource reads choices from fuzz input, then zeros.
type bytesSource struct{ b []byte }

func (s *bytesSource) IntN(n int) int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	return v % n
}

// tree is the project tree the random sequences use: a consortium with
// two institutions, one with a team; and an unrelated project.
var treeProjects = []model.Project{
	{Name: "cons", Shares: 1},
	{Name: "inst1", Parent: "cons", Shares: 1},
	{Name: "inst2", Parent: "cons", Shares: 1},
	{Name: "team", Parent: "inst1", Shares: 1},
	{Name: "solo", Shares: 1},
}

// driver runs random operations on a ledger and checks every invariant
// after each.
type driver struct {
	t       testing.TB
	src     source
	l       *ledger.Ledger
	grants  []model.Grant
	notices []ledger.Notice
	now     int64
	jobs    int
	running []string        // jobs holding
	limits  map[string]hold // what each running job asked
	ops     []string        // what was done, for failure messages

	// What the returned entries add up to.
	entries           []ledger.Entry
	sums              map[string]sums
	splitIn, splitOut map[string]int64 // by parent grant
}

type sums struct{ balance, held int64 }

type hold struct {
	req  ledger.HoldRequest
	cost int64
}

func newDriver(t testing.TB, src source) *driver {
	l, err := ledger.New(treeProjects)
	if err != nil {
		t.Fatal(err)
	}
	return &driver{t: t, src: src, l: l, limits: map[string]hold{},
		sums: map[string]sums{}, splitIn: map[string]int64{}, splitOut: map[string]int64{}}
}

var (
	classes = []string{"", "H100", "H100", "MI250X"}
	sites   = []string{"", "", "s1", "s2"}
	factors = ledger.Factors{"H100": 1, "MI250X": 0.5}
)

func (d *driver) pick(xs []string) string { return xs[d.src.IntN(len(xs))] }

func (d *driver) grantID() string {
	if len(d.grants) == 0 || d.src.IntN(10) == 0 {
		return "nope"
	}
	return d.grants[d.src.IntN(len(d.grants))].ID
}

// fingerprint is everything an operation may change.
type fingerprint struct {
	Accounts []ledger.Account
	Seq      int64
}

func (d *driver) fingerprint() fingerprint {
	return fingerprint{d.l.Accounts(), d.l.Seq()}
}

func (f fingerprint) equal(g fingerprint) bool {
	return f.Seq == g.Seq && slices.Equal(f.Accounts, g.Accounts)
}

// step does one random operation and checks the invariants.
func (d *driver) step() {
	before := d.fingerprint()
	var what string
	var es []ledger.Entry
	var err error
	switch op := d.src.IntN(20); {
	case op == 0: // time passes
		d.now += int64(d.src.IntN(2000))
		what = fmt.Sprintf("time %d", d.now)
	case op <= 2:
		g := model.Grant{ID: fmt.Sprintf("g%d", len(d.grants)), Project: d.pick([]string{"cons", "inst1", "inst2", "team", "solo"}),
			Model: d.pick(classes), Site: d.pick(sites), Amount: int64(d.src.IntN(100_000)),
			From: d.now + int64(d.src.IntN(3)-1)*500, Until: d.now + int64(d.src.IntN(20_000)) - 500}
		what = fmt.Sprintf("open %+v", g)
		if es, err = d.l.Open(g, "o", "", d.now); err == nil {
			d.grants = append(d.grants, g)
		}
	case op == 3:
		parent := d.grantID()
		pa, _ := d.l.Account(parent)
		g := model.Grant{ID: fmt.Sprintf("g%d", len(d.grants)), Project: d.pick([]string{"inst1", "inst2", "team", "solo"}),
			Model: pa.Grant.Model, Site: pa.Grant.Site, Amount: int64(d.src.IntN(60_000)),
			From: pa.Grant.From + int64(d.src.IntN(3)-1)*100, Until: pa.Grant.Until - int64(d.src.IntN(3)-1)*100}
		if d.src.IntN(5) == 0 {
			g.Model = d.pick(classes)
		}
		what = fmt.Sprintf("split %s %+v", parent, g)
		if es, err = d.l.Split(parent, g, "m", "", d.now); err == nil {
			d.grants = append(d.grants, g)
			d.checkSplit(parent, g)
		}
	case op == 4:
		id, n := d.grantID(), int64(d.src.IntN(10_000))
		what = fmt.Sprintf("topup %s %d", id, n)
		es, err = d.l.Topup(id, n, "o", "", d.now)
	case op == 5:
		from, to, n := d.grantID(), d.grantID(), int64(d.src.IntN(30_000))
		what = fmt.Sprintf("transfer %s %s %d", from, to, n)
		es, err = d.l.Transfer(from, to, n, "o", "", d.now)
	case op == 6:
		id, n := d.grantID(), int64(d.src.IntN(20_000)-10_000)
		what = fmt.Sprintf("adjust %s %d", id, n)
		es, err = d.l.Adjust(id, n, "o", "fix", d.now)
	case op <= 12:
		es, err, what = d.hold()
	case op <= 17:
		es, err, what = d.settle(op == 17)
	case op == 18:
		what = "expire"
		es, err = d.l.Expire(d.now)
		for _, e := range es {
			if e.Kind != ledger.KindExpire {
				d.fail(what, "made a %s entry", e.Kind)
			}
		}
	default:
		what = "notices"
		d.notices = append(d.notices, d.l.Notices(d.now, int64(d.src.IntN(3000)))...)
	}
	d.ops = append(d.ops, what)
	d.record(es)
	if err != nil {
		for _, s := range []error{ledger.ErrInsufficient, ledger.ErrInvalid, ledger.ErrUnknown, ledger.ErrExists} {
			if errors.Is(err, s) {
				goto documented
			}
		}
		d.fail(what, "error %v matches no documented sentinel", err)
	documented:
		if len(es) > 0 {
			d.fail(what, "returned entries with an error")
		}
		if after := d.fingerprint(); !before.equal(after) {
			d.fail(what, "failed (%v) but changed the ledger (-before +after):\n%s", err, gocmp.Diff(before, after))
		}
	}
	d.invariants(what)
}

func (d *driver) fail(what, format string, args ...any) {
	d.t.Helper()
	tail := d.ops[max(0, len(d.ops)-8):]
	d.t.Fatalf("after %q: %s\nlast operations:\n%v", what, fmt.Sprintf(format, args...), tail)
}

// hold starts a random job (sometimes one that holds already).
func (d *driver) hold() ([]ledger.Entry, error, string) {
	job := fmt.Sprintf("j%d", d.jobs)
	if len(d.running) > 0 && d.src.IntN(20) == 0 {
		job = d.running[0]
	} else {
		d.jobs++
	}
	m := d.pick([]string{"H100", "H100", "MI250X"})
	r := ledger.HoldRequest{Job: job, Project: d.pick([]string{"cons", "inst1", "inst2", "team", "solo"}), Model: m,
		Site: d.pick([]string{"s1", "s2"}), Accelerators: 1 + d.src.IntN(16), Limit: int64(1 + d.src.IntN(4000)), Factor: factors.Of(m)}
	what := fmt.Sprintf("hold %+v", r)
	cost, err := ledger.Cost(int64(r.Accelerators)*r.Limit, r.Factor)
	if err != nil {
		d.fail(what, "cost: %v", err)
	}
	want, ok := d.payer(r, cost)
	es, err := d.l.Hold(r, d.now)
	_, already := d.limits[job]
	switch {
	case already:
		if !errors.Is(err, ledger.ErrExists) {
			d.fail(what, "a job holding already held again: %v", err)
		}
	case !ok:
		var ie *ledger.InsufficientError
		if !errors.As(err, &ie) || ie.Needed != cost {
			d.fail(what, "no grant covers %d, yet Hold said %v", cost, err)
		}
	case err != nil:
		d.fail(what, "grant %s covers %d, yet Hold failed: %v", want, cost, err)
	default:
		if len(es) != 1 || es[0].Kind != ledger.KindHold || es[0].Grant != want || es[0].Amount != cost {
			d.fail(what, "entries %+v, want one hold of %d on %s", es, cost, want)
		}
		d.running = append(d.running, job)
		d.limits[job] = hold{r, cost}
	}
	return es, err, what
}

// payer is the grant Hold must choose, worked out from the accounts: the
// job's project's grants valid now, of its class or any, at its site or
// any, the first to expire that covers the cost; then the parent's.
func (d *driver) payer(r ledger.HoldRequest, cost int64) (string, bool) {
	parent := map[string]string{}
	for _, p := range treeProjects {
		parent[p.Name] = p.Parent
	}
	accts := d.l.Accounts()
	slices.SortFunc(accts, func(x, y ledger.Account) int {
		return cmp.Or(cmp.Compare(x.Grant.Until, y.Grant.Until), cmp.Compare(x.Grant.ID, y.Grant.ID))
	})
	for p := r.Project; p != ""; p = parent[p] {
		for _, a := range accts {
			g := a.Grant
			if g.Project == p && g.From <= d.now && d.now < g.Until && (g.Model == "" || g.Model == r.Model) &&
				(g.Site == "" || g.Site == r.Site) && a.Available >= cost {
				return g.ID, true
			}
		}
	}
	return "", false
}

// settle ends a random running job (or one that holds nothing), charging
// it for a random run time, sometimes past its limit; or releases it.
func (d *driver) settle(release bool) ([]ledger.Entry, error, string) {
	job := "never-held"
	k := -1
	if len(d.running) > 0 && d.src.IntN(20) != 0 {
		k = d.src.IntN(len(d.running))
		job = d.running[k]
	}
	h := d.limits[job]
	grant, rest, holding := d.l.Held(job)
	if holding != (k >= 0) || (holding && rest != h.cost) {
		d.fail("settle "+job, "Held says %v %d, want %v %d", holding, rest, k >= 0, h.cost)
	}
	used := int64(d.src.IntN(int(h.req.Limit*5/4 + 1)))
	what := fmt.Sprintf("settle %s used=%d", job, used)
	var es []ledger.Entry
	var err error
	if release {
		what = "release " + job
		es, err = d.l.Release(job, "", d.now)
	} else {
		es, err = d.l.Settle(job, used, d.now)
	}
	if k < 0 {
		if !errors.Is(err, ledger.ErrUnknown) {
			d.fail(what, "settled a job that holds nothing: %v", err)
		}
		return es, err, what
	}
	if err != nil {
		d.fail(what, "%v", err)
	}
	all := es
	charge := int64(0)
	if !release {
		c, _ := ledger.Cost(int64(h.req.Accelerators)*used, h.req.Factor)
		charge = min(c, h.cost)
		if es[0].Kind != ledger.KindCharge || es[0].Amount != -charge {
			d.fail(what, "first entry %+v, want a charge of %d", es[0], charge)
		}
		es = es[1:]
	}
	// The release gives back exactly the unheld part.
	if es[0].Kind != ledger.KindRelease || es[0].Amount != h.cost-charge || es[0].Grant != grant {
		d.fail(what, "entry %+v, want a release of %d on %s", es[0], h.cost-charge, grant)
	}
	if len(es) > 1 && (len(es) != 2 || es[1].Kind != ledger.KindExpire) {
		d.fail(what, "trailing entries %+v", es[1:])
	}
	d.running = slices.Delete(d.running, k, k+1)
	delete(d.limits, job)
	return all, err, what
}

// checkSplit checks what Split accepted: a sub-grant for a project below
// its parent's, within its period, of its class and site or narrower.
func (d *driver) checkSplit(parent string, g model.Grant) {
	pa, _ := d.l.Account(parent)
	p := pa.Grant
	below := false
	for _, q := range treeProjects {
		if q.Name == g.Project {
			for x := q.Parent; x != ""; {
				if x == p.Project {
					below = true
				}
				x = parentOf(x)
			}
		}
	}
	if !below || g.From < p.From || g.Until > p.Until || (p.Model != "" && g.Model != p.Model) || (p.Site != "" && g.Site != p.Site) {
		d.fail("split", "accepted sub-grant %+v of %+v", g, p)
	}
}

func parentOf(name string) string {
	for _, q := range treeProjects {
		if q.Name == name {
			return q.Parent
		}
	}
	return ""
}

// invariants checks the whole ledger.
func (d *driver) invariants(what string) {
	// Check recomputes everything from the entries: every few steps is
	// enough to catch drift, and keeps thousands of sequences fast.
	if len(d.ops)%8 == 0 {
		if err := d.l.Check(); err != nil {
			d.fail(what, "Check: %v", err)
		}
	}
	for _, a := range d.l.Accounts() {
		// Never overspent: charges and holds fit in what was credited.
		if a.Charged+a.Held+a.Expired > a.Total || a.Available < 0 || a.Held < 0 {
			d.fail(what, "grant %s overspent: %+v", a.Grant.ID, a)
		}
		// The balance is the sum of the entries the operations returned;
		// held is holds less releases plus charges.
		if s := d.sums[a.Grant.ID]; s.balance != a.Balance || s.held != a.Held {
			d.fail(what, "grant %s: entries sum to balance %d held %d, account says %d %d", a.Grant.ID, s.balance, s.held, a.Balance, a.Held)
		}
	}
	// Sub-grants never hold more than their parent gave.
	if !maps.Equal(d.splitOut, d.splitIn) {
		d.fail(what, "split out and in differ (-out +in):\n%s", gocmp.Diff(d.splitOut, d.splitIn))
	}
	// The holds the ledger knows are the running jobs'.
	for _, job := range d.running {
		if _, rest, ok := d.l.Held(job); !ok || rest != d.limits[job].cost {
			d.fail(what, "job %s should hold %d", job, d.limits[job].cost)
		}
	}
}

// record adds the entries an operation returned to the driver's own sums.
func (d *driver) record(es []ledger.Entry) {
	for _, e := range es {
		s := d.sums[e.Grant]
		switch e.Kind {
		case ledger.KindHold:
			s.held += e.Amount
		case ledger.KindRelease:
			s.held -= e.Amount
		default:
			s.balance += e.Amount
			switch e.Kind {
			case ledger.KindCharge:
				s.held += e.Amount
			case ledger.KindSplitIn:
				d.splitIn[e.Other] += e.Amount
			case ledger.KindSplitOut:
				d.splitOut[e.Grant] -= e.Amount
			}
		}
		d.sums[e.Grant] = s
	}
	d.entries = append(d.entries, es...)
}

// reload checks that Load rebuilds the same ledger from its entries.
func (d *driver) reload() {
	if all := d.l.Entries(""); !slices.Equal(d.entries, all) {
		d.fail("reload", "the ledger's entries are not those the operations returned (-returned +ledger):\n%s", gocmp.Diff(d.entries, all))
	}
	l, err := ledger.Load(treeProjects, d.grants, d.entries, d.notices)
	if err != nil {
		d.fail("reload", "%v", err)
	}
	if before, after := d.l.Accounts(), l.Accounts(); !slices.Equal(before, after) {
		d.fail("reload", "accounts differ (-before +after):\n%s", gocmp.Diff(before, after))
	}
	// The reloaded ledger emits what the old one had yet to emit, and
	// nothing it had emitted.
	before, after := d.l.Notices(d.now, 0), l.Notices(d.now, 0)
	if !slices.Equal(before, after) {
		d.fail("reload", "notices differ (-before +after):\n%s", gocmp.Diff(before, after))
	}
	d.notices = append(d.notices, after...)
	d.l = l
}

// TestRandomOperations runs thousands of random operation sequences —
// grants, sub-grants, top-ups, transfers, adjustments, job starts and ends
// in arbitrary interleavings, expiry — and checks every invariant after
// each operation, and that Load rebuilds the same ledger.
func TestRandomOperations(t *testing.T) {
	t.Parallel()
	const sequences, steps = 2000, 120
	for seed := range uint64(sequences) {
		d := newDriver(t, rand.New(rand.NewPCG(seed, 0x1ed6e7)))
		for k := range steps {
			d.step()
			if k%40 == 39 {
				d.reload()
			}
		}
	}
}

// TestConcurrentStartsNeverOverspend: 1,000 jobs start and end in random
// interleavings against one grant that covers only 600 of their worst
// cases. The grant is never overspent, exactly the jobs that fit hold,
// every hold is charged and released, and the sums reconcile to the
// accelerator-second.
func TestConcurrentStartsNeverOverspend(t *testing.T) {
	t.Parallel()
	const jobs, fit, acc, limit = 1000, 600, 8, 3600
	const cost = acc * limit
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 600))
		l, err := ledger.New([]model.Project{{Name: "p", Shares: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Open(model.Grant{ID: "g", Project: "p", Model: "H100", Amount: fit * cost, Until: 1 << 40}, "o", "", 0); err != nil {
			t.Fatal(err)
		}
		// Each job is a start then an end; shuffle all events, keeping
		// each job's start before its end. Seed 0 starts every job first.
		type event struct {
			job   int
			start bool
		}
		var events []event
		for j := range jobs {
			events = append(events, event{j, true})
		}
		if seed == 0 {
			for j := range jobs {
				events = append(events, event{j, false})
			}
		} else {
			rng.Shuffle(len(events), func(a, b int) { events[a], events[b] = events[b], events[a] })
			var started []int
			out := events[:0:0]
			for _, e := range events {
				out = append(out, e)
				started = append(started, e.job)
				if rng.IntN(3) == 0 { // some end soon after, in random order
					k := rng.IntN(len(started))
					out = append(out, event{started[k], false})
					started = slices.Delete(started, k, k+1)
				}
			}
			for _, j := range started {
				out = append(out, event{j, false})
			}
			events = out
		}
		held := map[int]bool{}
		outstanding, maxOutstanding, wantCharged, holds := 0, 0, int64(0), 0
		for now, e := range events {
			job := fmt.Sprintf("j%d", e.job)
			if e.start {
				_, err := l.Hold(ledger.HoldRequest{Job: job, Project: "p", Model: "H100", Site: "s", Accelerators: acc, Limit: limit, Factor: 1}, int64(now))
				switch {
				case err == nil:
					held[e.job] = true
					outstanding++
					holds++
					maxOutstanding = max(maxOutstanding, outstanding)
				case !errors.Is(err, ledger.ErrInsufficient):
					t.Fatalf("seed %d: hold %s: %v", seed, job, err)
				}
				continue
			}
			if !held[e.job] {
				continue // it never started: the scheduler kept it waiting
			}
			used := int64(rng.IntN(limit + 1))
			if _, err := l.Settle(job, used, int64(now)); err != nil {
				t.Fatalf("seed %d: settle %s: %v", seed, job, err)
			}
			outstanding--
			wantCharged += acc * used
			a, _ := l.Account("g")
			if a.Available < 0 {
				t.Fatalf("seed %d: available %d", seed, a.Available)
			}
		}
		if maxOutstanding > fit {
			t.Fatalf("seed %d: %d jobs held at once; the grant covers %d", seed, maxOutstanding, fit)
		}
		if seed == 0 && holds != fit {
			t.Fatalf("all 1000 starts before any end: %d held, want exactly %d", holds, fit)
		}
		a, _ := l.Account("g")
		want := ledger.Account{Grant: a.Grant, Total: fit * cost, Charged: wantCharged, Balance: fit*cost - wantCharged, Available: fit*cost - wantCharged}
		if diff := gocmp.Diff(want, a); diff != "" {
			t.Fatalf("seed %d: account (-want +got):\n%s", seed, diff)
		}
		var holdSum, chargeSum, releaseSum int64
		for _, e := range l.Entries("g") {
			switch e.Kind {
			case ledger.KindHold:
				holdSum += e.Amount
			case ledger.KindCharge:
				chargeSum -= e.Amount
			case ledger.KindRelease:
				releaseSum += e.Amount
			}
		}
		if holdSum != chargeSum+releaseSum || chargeSum != wantCharged {
			t.Fatalf("seed %d: held %d, charged %d + released %d; want charges %d", seed, holdSum, chargeSum, releaseSum, wantCharged)
		}
		if err := l.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// FuzzOperations drives the random-operation checker from the fuzzer's
// bytes: no sequence of operations breaks an invariant.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{1, 2, 0, 50, 60, 10, 7, 7, 7, 7, 13, 13, 18, 0, 0, 200})
	f.Add([]byte{2, 2, 3, 1, 40, 3, 0, 9, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19})
	f.Add([]byte("open a grant, split it, hold, settle, expire: \x01\x02\x03\x07\x0d\x12"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDriver(t, &bytesSource{b: data})
		for len(d.src.(*bytesSource).b) > 0 && len(d.ops) < 500 {
			d.step()
		}
		d.reload()
	})
}
