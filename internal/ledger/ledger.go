package ledger

import (
	"errors"
	"fmt"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// Ledger holds the accounts of grants and the holds of running jobs. Build
// one with New (empty) or Load (from stored entries).
type Ledger struct {
	parent   map[string]string // project → its parent, "" for a root: the project tree
	accounts map[string]*account
	holds    map[string]*hold // by job
	entries  []Entry
	byGrant  map[string][]int    // indexes into entries
	owned    map[string][]string // project → its grants' IDs, sorted
	ids      []string            // every grant's ID, sorted
	seq      int64
	emitted  map[noticeKey]bool
	// restored: built by Restore from sums, without entries.
	restored bool
}

// account is one grant's running sums.
type account struct {
	grant   model.Grant
	parent  string // the grant this one was split from, "" for a root grant
	opened  bool   // has its first entry (grant or split-in)
	total   int64  // credited: grant, top-ups, transfers, splits, adjustments
	charged int64  // Σ charges, positive
	expired int64  // Σ expiries, positive
	held    int64
	holds   int
	reached [2]crossing // when use first reached 80 % and 100 % of total
}

// crossing records when a grant's use first reached a threshold.
type crossing struct {
	ok                bool
	time, used, total int64
}

func (a *account) balance() int64   { return a.total - a.charged - a.expired }
func (a *account) available() int64 { return a.balance() - a.held }
func (a *account) used() int64      { return a.charged + a.held }
func (a *account) validAt(now int64) bool {
	return a.grant.From <= now && now < a.grant.Until
}

// thresholds are the percentages of use that raise a notice.
var thresholds = [2]int64{80, 100}

// mark records the thresholds use has just reached.
func (a *account) mark(now int64) {
	u, tot := a.used(), a.total
	if tot <= 0 {
		return
	}
	for k, pct := range thresholds {
		if !a.reached[k].ok && u*100 >= pct*tot {
			a.reached[k] = crossing{ok: true, time: now, used: u, total: tot}
		}
	}
}

// hold is what a running job has set aside.
type hold struct {
	grant        string
	amount       int64
	charged      int64 // non-zero only between a Settle's charge and release
	accelerators int
	factor       float64
}

// New returns an empty ledger over the project tree. Grants may only be
// opened for projects of the tree.
func New(projects []model.Project) (*Ledger, error) {
	if err := model.ValidateProjects(projects); err != nil {
		return nil, fmt.Errorf("ledger: project tree: %w", err)
	}
	l := &Ledger{
		parent:   make(map[string]string, len(projects)),
		accounts: map[string]*account{},
		holds:    map[string]*hold{},
		byGrant:  map[string][]int{},
		owned:    map[string][]string{},
		emitted:  map[noticeKey]bool{},
	}
	for _, p := range projects {
		l.parent[p.Name] = p.Parent
	}
	return l, nil
}

// Load rebuilds a ledger from stored grants and their entries, in Seq
// order, and the notices already emitted (Notices will not emit them
// again). It replays every entry through the same checks the operations
// make and fails, naming the entry, on any that breaks an invariant: a
// negative available amount, a release that is not exactly the rest of its
// hold, a charge without a hold … A store may load a subset of grants as
// long as it gives every entry of each. Grants of projects no longer in the
// tree are kept; new ones cannot be opened for them.
func Load(projects []model.Project, grants []model.Grant, entries []Entry, emitted []Notice) (*Ledger, error) {
	l, err := New(projects)
	if err != nil {
		return nil, err
	}
	t := l.begin()
	for i := range grants {
		g := grants[i]
		if err := g.Validate(); err != nil {
			return nil, fmt.Errorf("load ledger: %w: %w", ErrInvalid, err)
		}
		if t.account(g.ID) != nil {
			return nil, fmt.Errorf("load ledger: grant %s: %w: it appears twice", g.ID, ErrExists)
		}
		t.create(g)
	}
	for _, e := range entries {
		if e.Seq <= l.seq {
			return nil, fmt.Errorf("load ledger: entry %d after entry %d: %w: entries must come in increasing Seq order", e.Seq, l.seq, ErrInvalid)
		}
		if err := t.add(e); err != nil {
			return nil, fmt.Errorf("load ledger: %w", err)
		}
		l.seq = e.Seq
	}
	t.commit(false)
	for _, n := range emitted {
		l.emitted[noticeKey{n.Grant, n.Kind}] = true
	}
	if err := l.Check(); err != nil {
		return nil, fmt.Errorf("load ledger: %w", err)
	}
	return l, nil
}

// tx gathers an operation's entries on copies of the accounts and holds it
// touches; commit writes them back, so that a failed operation changes
// nothing.
type tx struct {
	l       *Ledger
	accts   map[string]*account
	holds   map[string]*hold // nil: released in this tx
	entries []Entry
}

func (l *Ledger) begin() *tx {
	return &tx{l: l, accts: map[string]*account{}, holds: map[string]*hold{}}
}

// account returns the tx's copy of grant id's account, or nil.
func (t *tx) account(id string) *account {
	if a, ok := t.accts[id]; ok {
		return a
	}
	a := t.l.accounts[id]
	if a == nil {
		return nil
	}
	c := *a
	t.accts[id] = &c
	return &c
}

func (t *tx) create(g model.Grant) *account {
	a := &account{grant: g}
	t.accts[g.ID] = a
	return a
}

// hold returns the tx's copy of job's hold, or nil.
func (t *tx) hold(job string) *hold {
	if h, ok := t.holds[job]; ok {
		return h
	}
	h := t.l.holds[job]
	if h == nil {
		return nil
	}
	c := *h
	t.holds[job] = &c
	return &c
}

// add checks e against the accounts as they stand and applies it.
func (t *tx) add(e Entry) error {
	what := fmt.Sprintf("entry %s %+d on grant %s", e.Kind, e.Amount, e.Grant)
	if e.Seq != 0 {
		what = fmt.Sprintf("entry %d (%s %+d on grant %s)", e.Seq, e.Kind, e.Amount, e.Grant)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", what, ErrInvalid, fmt.Sprintf(format, args...))
	}
	a := t.account(e.Grant)
	if a == nil {
		return fmt.Errorf("%s: grant %s: %w", what, e.Grant, ErrUnknown)
	}
	if !e.Kind.Valid() {
		return bad("unknown kind %q", e.Kind)
	}
	first := e.Kind == KindGrant || e.Kind == KindSplitIn
	if a.opened == first {
		if first {
			return bad("the grant already has its first entry")
		}
		return bad("a grant's first entry must be grant or split-in")
	}
	needOther := func() error {
		if e.Other == "" || e.Other == e.Grant {
			return bad("names no other grant")
		}
		return nil
	}
	spend := func() error {
		if -e.Amount > a.available() {
			return fmt.Errorf("%s: %w: %d accelerator-seconds available", what, ErrInsufficient, a.available())
		}
		return nil
	}
	var err error
	switch e.Kind {
	case KindGrant, KindSplitIn:
		switch {
		case e.Amount < 0 || (e.Kind == KindSplitIn && e.Amount == 0):
			err = bad("the amount must be positive")
		case e.Amount != a.grant.Amount:
			err = bad("the grant's amount is %d", a.grant.Amount)
		case e.Kind == KindSplitIn:
			err = needOther()
		}
		if err == nil {
			a.opened = true
			a.total += e.Amount
			if e.Kind == KindSplitIn {
				a.parent = e.Other
			}
		}
	case KindTopup, KindTransferIn:
		if e.Amount <= 0 {
			err = bad("the amount must be positive")
		} else if e.Kind == KindTransferIn {
			err = needOther()
		}
		if err == nil {
			a.total += e.Amount
		}
	case KindTransferOut, KindSplitOut:
		if e.Amount >= 0 {
			err = bad("the amount must be negative")
		} else if err = needOther(); err == nil {
			err = spend()
		}
		if err == nil {
			a.total += e.Amount
		}
	case KindAdjust:
		if e.Amount == 0 {
			err = bad("an adjustment of 0 changes nothing")
		} else if err = spend(); err == nil {
			a.total += e.Amount
		}
	case KindExpire:
		if e.Amount >= 0 {
			err = bad("the amount must be negative")
		} else if e.Time < a.grant.Until {
			err = bad("time %d is before the grant's end %d", e.Time, a.grant.Until)
		} else if err = spend(); err == nil {
			a.expired -= e.Amount
		}
	case KindHold:
		switch {
		case e.Job == "":
			err = bad("names no job")
		case e.Amount < 0:
			err = bad("the amount must not be negative")
		case e.Accelerators <= 0:
			err = bad("holds for %d accelerators", e.Accelerators)
		case t.hold(e.Job) != nil:
			err = fmt.Errorf("%s: job %s: %w: it holds on grant %s", what, e.Job, ErrExists, t.hold(e.Job).grant)
		default:
			if _, cerr := Cost(0, e.Factor); cerr != nil {
				err = bad("%v", cerr)
			} else {
				if e.Amount > a.available() {
					err = fmt.Errorf("%s: %w: %d accelerator-seconds available", what, ErrInsufficient, a.available())
				}
			}
		}
		if err == nil {
			a.held += e.Amount
			a.holds++
			t.holds[e.Job] = &hold{grant: e.Grant, amount: e.Amount, accelerators: e.Accelerators, factor: e.Factor}
		}
	case KindCharge, KindRelease:
		h := t.hold(e.Job)
		switch {
		case h == nil || h.grant != e.Grant:
			err = fmt.Errorf("%s: job %q holds nothing on this grant: %w", what, e.Job, ErrUnknown)
		case e.Kind == KindCharge && e.Amount > 0:
			err = bad("a charge must not be positive")
		case e.Kind == KindCharge && h.charged-e.Amount > h.amount:
			err = bad("charges %d of a hold of %d already charged %d", -e.Amount, h.amount, h.charged)
		case e.Kind == KindRelease && e.Amount != h.amount-h.charged:
			err = bad("a release must give back the rest of the hold, %d", h.amount-h.charged)
		}
		if err == nil && e.Kind == KindCharge {
			h.charged -= e.Amount
			a.charged -= e.Amount
			a.held += e.Amount
		}
		if err == nil && e.Kind == KindRelease {
			a.held -= e.Amount
			a.holds--
			t.holds[e.Job] = nil
		}
	}
	if err != nil {
		return err
	}
	a.mark(e.Time)
	t.entries = append(t.entries, e)
	return nil
}

// commit writes the tx back; with number set it gives the entries their
// sequence numbers. It returns the entries.
func (t *tx) commit(number bool) []Entry {
	var fresh []string
	for id, a := range t.accts {
		if t.l.accounts[id] == nil {
			fresh = append(fresh, id)
		}
		t.l.accounts[id] = a
	}
	t.l.index(fresh)
	for job, h := range t.holds {
		if h == nil {
			delete(t.l.holds, job)
		} else {
			t.l.holds[job] = h
		}
	}
	for i := range t.entries {
		if number {
			t.l.seq++
			t.entries[i].Seq = t.l.seq
		}
		t.l.byGrant[t.entries[i].Grant] = append(t.l.byGrant[t.entries[i].Grant], len(t.l.entries))
		t.l.entries = append(t.l.entries, t.entries[i])
	}
	return slices.Clone(t.entries)
}

// index adds new grants to the sorted indexes: one by one when they are
// few (an operation), by sorting when they are many (Load).
func (l *Ledger) index(fresh []string) {
	if len(fresh) <= 2 {
		for _, id := range fresh {
			p := l.accounts[id].grant.Project
			l.owned[p] = insertSorted(l.owned[p], id)
			l.ids = insertSorted(l.ids, id)
		}
		return
	}
	touched := map[string]bool{}
	for _, id := range fresh {
		p := l.accounts[id].grant.Project
		l.owned[p] = append(l.owned[p], id)
		touched[p] = true
	}
	for p := range touched {
		slices.Sort(l.owned[p])
	}
	l.ids = append(l.ids, fresh...)
	slices.Sort(l.ids)
}

func insertSorted(ids []string, id string) []string {
	k, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, k, id)
}

// knows reports whether project p is in the tree.
func (l *Ledger) knows(p string) bool {
	_, ok := l.parent[p]
	return ok
}

// below reports whether project p lies strictly below project anc.
func (l *Ledger) below(p, anc string) bool {
	seen := map[string]bool{}
	for q := l.parent[p]; q != "" && !seen[q]; q = l.parent[q] {
		if q == anc {
			return true
		}
		seen[q] = true
	}
	return false
}

// Open creates grant g with its initial amount.
func (l *Ledger) Open(g model.Grant, actor, note string, now int64) ([]Entry, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("open grant: %w: %w", ErrInvalid, err)
	}
	what := "open grant " + g.ID
	switch {
	case !l.knows(g.Project):
		return nil, fmt.Errorf("%s: project %q: %w; create the project first", what, g.Project, ErrUnknown)
	case l.accounts[g.ID] != nil:
		return nil, fmt.Errorf("%s: %w; choose another ID", what, ErrExists)
	case g.Until <= now:
		return nil, fmt.Errorf("%s: %w: it ends at %d, which is not after now (%d); give a period that is not over", what, ErrInvalid, g.Until, now)
	}
	t := l.begin()
	t.create(g)
	if err := t.add(Entry{Grant: g.ID, Time: now, Kind: KindGrant, Amount: g.Amount, Actor: actor, Note: note}); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// Split carves sub-grant child, for a project below the parent grant's
// project, out of grant parent's available hours. The child's class and
// site are the parent's, or narrower when the parent's are "any"; its
// period lies within the parent's; its Amount is what moves. It fails with
// ErrInsufficient when the parent has less available than that.
func (l *Ledger) Split(parent string, child model.Grant, actor, note string, now int64) ([]Entry, error) {
	what := fmt.Sprintf("split grant %s into %s", parent, child.ID)
	p := l.accounts[parent]
	if p == nil {
		return nil, fmt.Errorf("%s: grant %s: %w", what, parent, ErrUnknown)
	}
	if err := child.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrInvalid, err)
	}
	pg := p.grant
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", what, ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case !l.knows(child.Project):
		return nil, fmt.Errorf("%s: project %q: %w; create the project first", what, child.Project, ErrUnknown)
	case l.accounts[child.ID] != nil:
		return nil, fmt.Errorf("%s: %w; choose another ID for the sub-grant", what, ErrExists)
	case !l.below(child.Project, pg.Project):
		return nil, bad("project %s is not a sub-project of %s, which owns grant %s", child.Project, pg.Project, parent)
	case pg.Model != "" && child.Model != pg.Model:
		return nil, bad("class %q differs from the parent's %q", child.Model, pg.Model)
	case pg.Site != "" && child.Site != pg.Site:
		return nil, bad("site %q differs from the parent's %q", child.Site, pg.Site)
	case child.From < pg.From || child.Until > pg.Until:
		return nil, bad("period [%d, %d) is not within the parent's [%d, %d)", child.From, child.Until, pg.From, pg.Until)
	case child.Until <= now:
		return nil, bad("the sub-grant ends at %d, which is not after now (%d)", child.Until, now)
	case child.Amount <= 0:
		return nil, bad("amount is %d; a sub-grant needs a positive amount", child.Amount)
	case child.Amount > p.available():
		return nil, fmt.Errorf("%s: %w: %d accelerator-seconds asked, grant %s has %d available", what, ErrInsufficient, child.Amount, parent, p.available())
	}
	t := l.begin()
	t.create(child)
	if err := errors.Join(
		t.add(Entry{Grant: parent, Time: now, Kind: KindSplitOut, Amount: -child.Amount, Other: child.ID, Actor: actor, Note: note}),
		t.add(Entry{Grant: child.ID, Time: now, Kind: KindSplitIn, Amount: child.Amount, Other: parent, Actor: actor, Note: note}),
	); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// Topup adds amount to a grant that has not expired.
func (l *Ledger) Topup(grant string, amount int64, actor, note string, now int64) ([]Entry, error) {
	what := fmt.Sprintf("top up grant %s", grant)
	a := l.accounts[grant]
	switch {
	case a == nil:
		return nil, fmt.Errorf("%s: %w", what, ErrUnknown)
	case amount <= 0:
		return nil, fmt.Errorf("%s: %w: amount %d; give a positive amount", what, ErrInvalid, amount)
	case now >= a.grant.Until:
		return nil, fmt.Errorf("%s: %w: it expired at %d; open a new grant instead", what, ErrInvalid, a.grant.Until)
	}
	t := l.begin()
	if err := t.add(Entry{Grant: grant, Time: now, Kind: KindTopup, Amount: amount, Actor: actor, Note: note}); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// Transfer moves amount from one grant's available hours to another's.
// Both must be of the same class, or the source of any class (any-class
// hours may become hours of one class, not the other way), and neither may
// have expired.
func (l *Ledger) Transfer(from, to string, amount int64, actor, note string, now int64) ([]Entry, error) {
	what := fmt.Sprintf("transfer from grant %s to %s", from, to)
	a, b := l.accounts[from], l.accounts[to]
	switch {
	case a == nil:
		return nil, fmt.Errorf("%s: grant %s: %w", what, from, ErrUnknown)
	case b == nil:
		return nil, fmt.Errorf("%s: grant %s: %w", what, to, ErrUnknown)
	case from == to:
		return nil, fmt.Errorf("%s: %w: a grant cannot transfer to itself", what, ErrInvalid)
	case amount <= 0:
		return nil, fmt.Errorf("%s: %w: amount %d; give a positive amount", what, ErrInvalid, amount)
	case a.grant.Model != "" && a.grant.Model != b.grant.Model:
		return nil, fmt.Errorf("%s: %w: class %s cannot become class %s; transfers stay within one accelerator class",
			what, ErrInvalid, classOf(a.grant.Model), classOf(b.grant.Model))
	case now >= a.grant.Until:
		return nil, fmt.Errorf("%s: %w: grant %s expired at %d", what, ErrInvalid, from, a.grant.Until)
	case now >= b.grant.Until:
		return nil, fmt.Errorf("%s: %w: grant %s expired at %d", what, ErrInvalid, to, b.grant.Until)
	case amount > a.available():
		return nil, fmt.Errorf("%s: %w: %d accelerator-seconds asked, grant %s has %d available", what, ErrInsufficient, amount, from, a.available())
	}
	t := l.begin()
	if err := errors.Join(
		t.add(Entry{Grant: from, Time: now, Kind: KindTransferOut, Amount: -amount, Other: to, Actor: actor, Note: note}),
		t.add(Entry{Grant: to, Time: now, Kind: KindTransferIn, Amount: amount, Other: from, Actor: actor, Note: note}),
	); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

func classOf(m string) string {
	if m == "" {
		return "any"
	}
	return m
}

// Adjust corrects a grant by amount, either way (an officer's correction,
// say a refund for a job lost to a hardware fault). A negative adjustment
// can take no more than is available.
func (l *Ledger) Adjust(grant string, amount int64, actor, note string, now int64) ([]Entry, error) {
	what := fmt.Sprintf("adjust grant %s by %+d", grant, amount)
	a := l.accounts[grant]
	switch {
	case a == nil:
		return nil, fmt.Errorf("%s: %w", what, ErrUnknown)
	case amount == 0:
		return nil, fmt.Errorf("%s: %w: an adjustment of 0 changes nothing", what, ErrInvalid)
	case note == "":
		return nil, fmt.Errorf("%s: %w: say why in the note", what, ErrInvalid)
	case -amount > a.available():
		return nil, fmt.Errorf("%s: %w: grant %s has %d accelerator-seconds available", what, ErrInsufficient, grant, a.available())
	}
	t := l.begin()
	if err := t.add(Entry{Grant: grant, Time: now, Kind: KindAdjust, Amount: amount, Actor: actor, Note: note}); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t.commit(true), nil
}

// Account is a grant's state, as sums of its entries.
type Account struct {
	Grant model.Grant `json:"grant"`
	// Parent is the grant this one was split from, "" for a root grant.
	Parent string `json:"parent,omitempty"`
	// Total is what the grant was credited: its amount, top-ups,
	// transfers and splits in, minus transfers and splits out, plus
	// adjustments.
	Total     int64 `json:"total_s"`
	Charged   int64 `json:"charged_s"`
	Expired   int64 `json:"expired_s"`
	Held      int64 `json:"held_s"`
	Balance   int64 `json:"balance_s"`   // Total − Charged − Expired
	Available int64 `json:"available_s"` // Balance − Held
	Holds     int   `json:"holds"`       // jobs holding on it
}

func (a *account) view() Account {
	return Account{Grant: a.grant, Parent: a.parent, Total: a.total, Charged: a.charged, Expired: a.expired,
		Held: a.held, Balance: a.balance(), Available: a.available(), Holds: a.holds}
}

// Account returns grant id's account.
func (l *Ledger) Account(id string) (Account, bool) {
	a := l.accounts[id]
	if a == nil {
		return Account{}, false
	}
	return a.view(), true
}

// Accounts returns every account, by grant ID.
func (l *Ledger) Accounts() []Account {
	out := make([]Account, 0, len(l.accounts))
	for _, id := range l.ids {
		out = append(out, l.accounts[id].view())
	}
	return out
}

// Entries returns grant id's entries in order, or every entry when id is "".
func (l *Ledger) Entries(id string) []Entry {
	if id == "" {
		return slices.Clone(l.entries)
	}
	out := make([]Entry, 0, len(l.byGrant[id]))
	for _, k := range l.byGrant[id] {
		out = append(out, l.entries[k])
	}
	return out
}

// Seq is the sequence number of the last entry.
func (l *Ledger) Seq() int64 { return l.seq }

// Held returns the grant job holds on and the amount still held.
func (l *Ledger) Held(job string) (grant string, amount int64, ok bool) {
	h := l.holds[job]
	if h == nil {
		return "", 0, false
	}
	return h.grant, h.amount - h.charged, true
}
