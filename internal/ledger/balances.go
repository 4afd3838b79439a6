package ledger

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/usine-project/usine/internal/sched"
)

// Balances is what the scheduler's snapshot needs (sched.Snapshot.Grants):
// one sched.Balance per grant valid now with something available, sorted
// by project, then end, then grant ID — so that the scheduler, taking the
// first balance of a project that covers a job, picks the grant Hold
// would pick.
//
// The scheduler costs a job at accelerators × limit, without a charge
// factor, so Remaining is in accelerator-seconds of the grant's class: the
// most n such that Cost(n, factor) fits in what is available. A grant of
// any class is divided by the dearest factor (1 at least), so that a job
// the scheduler starts is one Hold accepts whatever class it lands on.
// A class whose factor is 0 is free: its Remaining is math.MaxInt64.
//
// sched.Balance has no site: with site "", every grant counts; with a site
// named, only that site's grants and the grants of any site do. A
// scheduler that plans several sites in one snapshot should give "" and
// rely on Hold, which checks the site, to refuse a start on the wrong one.
func (l *Ledger) Balances(now int64, site string, f Factors) ([]sched.Balance, error) {
	if err := f.Check(); err != nil {
		return nil, fmt.Errorf("grant balances: %w", err)
	}
	var as []*account
	for _, a := range l.accounts {
		if a.validAt(now) && a.available() > 0 && (site == "" || a.grant.Site == "" || a.grant.Site == site) {
			as = append(as, a)
		}
	}
	slices.SortFunc(as, func(x, y *account) int {
		return cmp.Or(cmp.Compare(x.grant.Project, y.grant.Project), cmp.Compare(x.grant.Until, y.grant.Until),
			cmp.Compare(x.grant.ID, y.grant.ID))
	})
	out := make([]sched.Balance, 0, len(as))
	for _, a := range as {
		factor := f.max()
		if a.grant.Model != "" {
			factor = f.Of(a.grant.Model)
		}
		out = append(out, sched.Balance{Project: a.grant.Project, Model: a.grant.Model, Site: a.grant.Site, Remaining: spendable(a.available(), factor)})
	}
	return out, nil
}

// spendable is the most accelerator-seconds n with Cost(n, f) <= avail.
func spendable(avail int64, f float64) int64 {
	if f == 0 {
		return math.MaxInt64
	}
	q := float64(avail) / f
	if q >= math.MaxInt64/4 {
		return math.MaxInt64 / 4
	}
	n := int64(q) + 1
	for n > 0 {
		if c, err := Cost(n, f); err == nil && c <= avail {
			break
		}
		n--
	}
	return n
}

// Shares is each project's fair-share entitlement from its grants: the
// credited amount (Account.Total) of the grants valid now that it and its
// sub-projects own, in accelerator-seconds. A sub-grant's hours leave its
// parent grant when split, so a consortium's entitlement is its own grant's
// rest plus its members' sub-grants: what was granted, counted once. Feed
// it to model.Project.Shares, which weighs each project against its
// siblings; projects without a grant are absent (give them the site's
// minimum share).
func (l *Ledger) Shares(now int64) map[string]int64 {
	out := map[string]int64{}
	for _, a := range l.accounts {
		if !a.validAt(now) || a.total <= 0 {
			continue
		}
		seen := map[string]bool{}
		for p := a.grant.Project; p != "" && !seen[p]; p = l.parent[p] {
			seen[p] = true
			out[p] += a.total
		}
	}
	return out
}
