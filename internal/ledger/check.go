package ledger

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Check recomputes every account from its entries and reports where the
// sums or the invariants do not hold: the balance is the sum of the
// entries; nothing held or available is negative; each job's hold is what
// its hold entry set aside, less its release and charges, and no hold is
// left half-settled; what a grant split out equals what its sub-grants
// (those loaded) split in. Load runs it; tests run it after every
// operation.
func (l *Ledger) Check() error {
	if l.restored {
		return l.checkSums()
	}
	type sums struct {
		total, charged, expired, held int64
		holds                         int
	}
	per := map[string]*sums{}
	type jh struct {
		grant  string
		amount int64
		open   bool
	}
	jobs := map[string]*jh{}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for k, e := range l.entries {
		s := per[e.Grant]
		if s == nil {
			s = &sums{}
			per[e.Grant] = s
		}
		if k > 0 && e.Seq <= l.entries[k-1].Seq {
			bad("entry %d follows entry %d: sequence numbers must increase", e.Seq, l.entries[k-1].Seq)
		}
		switch e.Kind {
		case KindHold:
			s.held += e.Amount
			s.holds++
			if j := jobs[e.Job]; j != nil && j.open {
				bad("entry %d: job %s holds twice", e.Seq, e.Job)
			}
			jobs[e.Job] = &jh{grant: e.Grant, amount: e.Amount, open: true}
		case KindRelease:
			s.held -= e.Amount
			s.holds--
			if j := jobs[e.Job]; j == nil || !j.open || j.grant != e.Grant || j.amount != e.Amount {
				bad("entry %d: job %s's release of %d is not the rest of its hold", e.Seq, e.Job, e.Amount)
			} else {
				j.open = false
			}
		case KindCharge:
			s.charged -= e.Amount
			s.held += e.Amount
			if j := jobs[e.Job]; j == nil || !j.open || j.grant != e.Grant {
				bad("entry %d: job %s is charged without a hold on grant %s", e.Seq, e.Job, e.Grant)
			} else {
				j.amount += e.Amount
			}
		case KindExpire:
			s.expired -= e.Amount
		default:
			s.total += e.Amount

		}
	}
	for _, id := range l.ids {
		a := l.accounts[id]
		s := per[id]
		if s == nil {
			s = &sums{}
		}
		if a.total != s.total || a.charged != s.charged || a.expired != s.expired || a.held != s.held || a.holds != s.holds {
			bad("grant %s: account total=%d charged=%d expired=%d held=%d holds=%d, entries say %d %d %d %d %d",
				id, a.total, a.charged, a.expired, a.held, a.holds, s.total, s.charged, s.expired, s.held, s.holds)
		}
		if a.held < 0 || a.available() < 0 {
			bad("grant %s: held %d, available %d: neither may be negative", id, a.held, a.available())
		}
	}
	// Each transfer or split out is followed by its other half, the next
	// entry, when the other grant is loaded.
	bySeq := make(map[int64]int, len(l.entries))
	for k, e := range l.entries {
		bySeq[e.Seq] = k
	}
	halves := map[Kind]Kind{KindTransferOut: KindTransferIn, KindSplitOut: KindSplitIn,
		KindTransferIn: KindTransferOut, KindSplitIn: KindSplitOut}
	for _, e := range l.entries {
		other := halves[e.Kind]
		if other == "" || l.accounts[e.Other] == nil {
			continue
		}
		seq := e.Seq + 1
		if e.Kind == KindTransferIn || e.Kind == KindSplitIn {
			seq = e.Seq - 1
		}
		k, ok := bySeq[seq]
		if f := l.entries[k]; !ok || f.Kind != other || f.Grant != e.Other || f.Other != e.Grant || f.Amount != -e.Amount {
			bad("entry %d: %s of %d with grant %s lacks its other half, a %s next to it", e.Seq, e.Kind, e.Amount, e.Other, other)
		}
	}
	held := map[string]int64{}
	for _, job := range slices.Sorted(maps.Keys(l.holds)) {
		h := l.holds[job]
		if h.charged != 0 {
			bad("job %s: its hold on grant %s is charged %d but not released: a settlement was cut short", job, h.grant, h.charged)
		}
		held[h.grant] += h.amount - h.charged
		if j := jobs[job]; j == nil || !j.open || j.grant != h.grant {
			bad("job %s holds on grant %s without a hold entry", job, h.grant)
		}
	}
	for _, id := range l.ids {
		if a := l.accounts[id]; held[id] != a.held {
			bad("grant %s: held %d, its jobs' holds sum to %d", id, a.held, held[id])
		}
	}
	return errors.Join(errs...)
}

// checkSums is Check on a restored ledger: only the sums are there.
func (l *Ledger) checkSums() error {
	var errs []error
	for _, id := range l.ids {
		if a := l.accounts[id]; a.held < 0 || a.available() < 0 {
			errs = append(errs, fmt.Errorf("grant %s: held %d, available %d: neither may be negative", id, a.held, a.available()))
		}
	}
	return errors.Join(errs...)
}
