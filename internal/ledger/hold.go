package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// HoldRequest is a job about to start.
type HoldRequest struct {
	Job          string
	Project      string
	Model        string // the accelerator class the job starts on
	Site         string // the site it starts at
	Accelerators int
	Limit        int64   // time limit, seconds
	Factor       float64 // the class's charge factor (Factors.Of)
}

// Hold sets aside job r's worst case, accelerators × limit × factor
// rounded up (Cost), on the grant that pays for it: among the grants of the
// job's project valid now, of its class or any class, at its site or any
// site, the one expiring first (then by ID) that covers the whole worst
// case; when none does, the parent project's, and so on up the tree. A job
// is never split across grants. When no grant covers it, Hold returns an
// *InsufficientError (errors.Is ErrInsufficient).
func (l *Ledger) Hold(r HoldRequest, now int64) ([]Entry, error) {
	what := "hold for job " + r.Job
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", what, ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Job == "":
		return nil, bad("name the job")
	case r.Model == "":
		return nil, bad("name the accelerator class the job starts on")
	case r.Site == "":
		return nil, bad("name the site the job starts at")
	case r.Accelerators <= 0:
		return nil, bad("%d accelerators; a job holds at least one", r.Accelerators)
	case r.Limit <= 0:
		return nil, bad("time limit %d s; give a positive limit", r.Limit)
	case !l.knows(r.Project):
		return nil, fmt.Errorf("%s: project %q: %w", what, r.Project, ErrUnknown)
	}
	if h := l.holds[r.Job]; h != nil {
		return nil, fmt.Errorf("%s: %w: it holds %d on grant %s; settle or release it first", what, ErrExists, h.amount-h.charged, h.grant)
	}
	cost, err := costOf(r.Accelerators, r.Limit, r.Factor)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	short := &InsufficientError{Job: r.Job, Project: r.Project, Model: r.Model, Site: r.Site, Needed: cost}
	var payer *account
	seen := map[string]bool{}
	for p := r.Project; p != "" && !seen[p] && payer == nil; p = l.parent[p] {
		seen[p] = true
		for _, a := range l.candidates(p, r.Model, r.Site, now) {
			av := a.available()
			short.Total += av
			if short.Grant == "" || av > short.Available {
				short.Grant, short.Available = a.grant.ID, av
			}
			if av >= cost {
				payer = a
				break
			}
		}
	}
	if payer == nil {
		return nil, short
	}
	t := l.begin()
	note := fmt.Sprintf("%d acc × %d s × %s", r.Accelerators, r.Limit, strconv.FormatFloat(r.Factor, 'g', -1, 64))
	if err := t.add(Entry{Grant: payer.grant.ID, Time: now, Kind: KindHold, Amount: cost, Job: r.Job,
		Note: note, Accelerators: r.Accelerators, Factor: r.Factor}); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// candidates are project p's grants valid now for class m at site s, the
// first to expire first.
func (l *Ledger) candidates(p, m, s string, now int64) []*account {
	var out []*account
	for _, id := range l.owned[p] {
		a := l.accounts[id]
		g := &a.grant
		if a.validAt(now) && (g.Model == "" || g.Model == m) && (g.Site == "" || g.Site == s) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y *account) int {
		return cmp.Or(cmp.Compare(x.grant.Until, y.grant.Until), cmp.Compare(x.grant.ID, y.grant.ID))
	})
	return out
}

// Settle ends job's hold: it charges accelerators × used seconds × the
// hold's factor (Cost), capped at the hold, and releases exactly the rest.
// On a grant past its end, what the release gives back expires at once.
func (l *Ledger) Settle(job string, used int64, now int64) ([]Entry, error) {
	what := fmt.Sprintf("settle job %s", job)
	h := l.holds[job]
	if h == nil {
		return nil, fmt.Errorf("%s: %w: it holds nothing (never held, or settled already)", what, ErrUnknown)
	}
	if used < 0 {
		return nil, fmt.Errorf("%s: %w: it used %d s; a run time cannot be negative", what, ErrInvalid, used)
	}
	cost, err := costOf(h.accelerators, used, h.factor)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	note := fmt.Sprintf("%d acc × %d s × %s", h.accelerators, used, strconv.FormatFloat(h.factor, 'g', -1, 64))
	rest := h.amount - h.charged
	if cost > rest {
		note += fmt.Sprintf(" = %d, capped at the hold", cost)
		cost = rest
	}
	t := l.begin()
	err = errors.Join(
		t.add(Entry{Grant: h.grant, Time: now, Kind: KindCharge, Amount: -cost, Job: job, Note: note}),
		t.add(Entry{Grant: h.grant, Time: now, Kind: KindRelease, Amount: rest - cost, Job: job}),
		t.expireRest(h.grant, now),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// Release gives back all of job's hold without charging it: the job never
// ran (its launch failed), or was preempted where the site does not charge
// preempted time. A requeued job holds again at its next start.
func (l *Ledger) Release(job, note string, now int64) ([]Entry, error) {
	what := fmt.Sprintf("release job %s", job)
	h := l.holds[job]
	if h == nil {
		return nil, fmt.Errorf("%s: %w: it holds nothing (never held, or settled already)", what, ErrUnknown)
	}
	t := l.begin()
	if err := errors.Join(
		t.add(Entry{Grant: h.grant, Time: now, Kind: KindRelease, Amount: h.amount - h.charged, Job: job, Note: note}),
		t.expireRest(h.grant, now),
	); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// expireRest expires what grant id has available when it is past its end.
func (t *tx) expireRest(id string, now int64) error {
	a := t.account(id)
	if a == nil || now < a.grant.Until || a.available() <= 0 {
		return nil
	}
	return t.add(Entry{Grant: id, Time: now, Kind: KindExpire, Amount: -a.available(),
		Note: fmt.Sprintf("expired at %d", a.grant.Until)})
}

// Expire moves what every grant past its end still has available to an
// expire entry, by grant ID. Holds of jobs still running stay: Settle
// charges them and expires the rest.
func (l *Ledger) Expire(now int64) ([]Entry, error) {
	t := l.begin()
	var errs []error
	for _, id := range l.ids {
		errs = append(errs, t.expireRest(id, now))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("expire grants: %w", err)
	}
	return t.commit(true), nil
}
