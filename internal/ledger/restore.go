package ledger

import (
	"fmt"

	"github.com/usine-project/usine/internal/model"
)

// State is one grant's account as a store keeps it between operations:
// the running sums of its entries, so that an operation need not replay
// every entry the grant ever had (a grant that paid for a million jobs has
// three million).
type State struct {
	Grant   model.Grant
	Parent  string // the grant it was split from, "" for a root grant
	Total   int64
	Charged int64
	Expired int64
	Held    int64
	Holds   int
}

// OpenHold is a running job's hold, as a store keeps it.
type OpenHold struct {
	Job          string
	Grant        string
	Amount       int64 // what is still set aside
	Accelerators int
	Factor       float64
}

// Restore rebuilds a ledger from stored account sums instead of entries:
// the grants an operation may touch, the holds of the jobs it may settle,
// and seq, the last entry's sequence number. A store runs one operation
// on it inside the transaction that read those rows (locked), writes the
// entries the operation returns and the sums Account gives back, and
// throws the ledger away. The rules are the same as on a loaded ledger:
// the operations check what they check against the sums.
//
// A restored ledger holds no entries: Check recomputes nothing on it and
// only checks that no sum is negative; Entries returns only what was done
// since Restore. Load and Check over all stored entries remain the way to
// prove the books (a store's CheckLedger).
func Restore(projects []model.Project, states []State, holds []OpenHold, seq int64) (*Ledger, error) {
	l, err := New(projects)
	if err != nil {
		return nil, err
	}
	l.restored = true
	l.seq = seq
	var fresh []string
	for _, s := range states {
		if err := s.Grant.Validate(); err != nil {
			return nil, fmt.Errorf("restore ledger: %w: %w", ErrInvalid, err)
		}
		if l.accounts[s.Grant.ID] != nil {
			return nil, fmt.Errorf("restore ledger: grant %s: %w: it appears twice", s.Grant.ID, ErrExists)
		}
		a := &account{grant: s.Grant, parent: s.Parent, opened: true, total: s.Total, charged: s.Charged,
			expired: s.Expired, held: s.Held, holds: s.Holds}
		if a.held < 0 || a.available() < 0 {
			return nil, fmt.Errorf("restore ledger: grant %s: %w: held %d, available %d: neither may be negative",
				s.Grant.ID, ErrInvalid, a.held, a.available())
		}
		// Thresholds already crossed are not crossed again.
		a.mark(0)
		l.accounts[s.Grant.ID] = a
		fresh = append(fresh, s.Grant.ID)
	}
	l.index(fresh)
	for _, h := range holds {
		if l.accounts[h.Grant] == nil {
			return nil, fmt.Errorf("restore ledger: job %s holds on grant %s, which is not restored: %w", h.Job, h.Grant, ErrUnknown)
		}
		if l.holds[h.Job] != nil {
			return nil, fmt.Errorf("restore ledger: job %s: %w: it holds twice", h.Job, ErrExists)
		}
		l.holds[h.Job] = &hold{grant: h.Grant, amount: h.Amount, accelerators: h.Accelerators, factor: h.Factor}
	}
	return l, nil
}

// Crossed reports whether grant id's use (charged + held) has reached 80 %
// and 100 % of what it was credited, as the sums stand now.
func (a Account) Crossed() (used80, used100 bool) {
	if a.Total <= 0 {
		return false, false
	}
	used := a.Charged + a.Held
	return used*100 >= 80*a.Total, used >= a.Total
}
