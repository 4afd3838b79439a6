// Package ledger keeps the books of grants: every change to a grant is an
// Entry, and a grant's balance is always the sum of its entries. It is pure
// — no I/O, no clock (now is a parameter), no goroutines, no randomness —
// so the same calls in the same order always give the same entries. The
// store persists the entries an operation returns, in the same transaction
// as the change that caused it (a job start, a job end, an officer's
// top-up); Load rebuilds a Ledger from them.
//
// # Accounts
//
// A grant (model.Grant) gives a project accelerator-seconds of one
// accelerator class (or any), at one site (or any), valid in [From, Until).
// Its account moves through these entry kinds:
//
//	grant         the initial amount (Open)
//	topup         more of the same (Topup)
//	transfer-out  to another grant of the same class, and its transfer-in
//	split-out     to a sub-grant for a sub-project, and its split-in (Split)
//	hold          a running job's worst case, set aside (Hold)
//	charge        what the job really cost, paid from its hold (Settle)
//	release       the rest of the hold, given back (Settle, Release)
//	expire        what is left at Until (Expire)
//	adjust        an officer's correction, either way (Adjust)
//
// Amounts are int64 accelerator-seconds, positive for what a grant gains
// and negative for what it loses. Holds and releases do not change the
// balance; they set aside and give back:
//
//	balance   = Σ amounts of every entry but hold and release
//	held      = Σ holds − Σ releases + Σ charges (a charge is negative)
//	available = balance − held
//
// The ledger refuses any operation that would make available negative, so
// a grant is never overspent however many jobs start at once: each Hold
// sees the holds before it.
//
// # Jobs
//
// Hold sets aside a job's worst case, accelerators × time limit × the
// class's charge factor, rounded up to whole accelerator-seconds (see
// Cost). It picks the grant that pays: one of the job's project valid now,
// of the job's class or any class, at the job's site or any site, the one
// expiring first; if no grant of the project covers the worst case, it
// looks at the parent project's grants, then the grandparent's — as the
// scheduler does with sched.Balance, so that a job the scheduler starts is
// one the ledger can hold. A job is never split across grants: when no
// single grant covers its worst case, Hold refuses with an
// *InsufficientError (errors.Is ErrInsufficient) saying how much was
// needed and how much the best grant had; the scheduler shows
// GrantExhausted. Settle charges accelerators × elapsed × factor, capped at
// the hold, and releases exactly the rest, in one call. A job requeued
// after preemption is settled (or released, where the site does not charge
// preempted time) and held again at its next start.
//
// # Sub-grants
//
// Split carves a sub-grant for a sub-project out of a grant's available
// hours: never more than the parent has available, of the parent's class
// and site (or narrower), valid within the parent's period. The hours leave
// the parent (split-out) and enter the child (split-in), so a consortium's
// grant and its members' sub-grants never add up to more than was granted.
//
// # Expiry and notices
//
// At Until, Expire moves what is left to an expire entry, except what
// still-running jobs hold: they stay chargeable, and whatever their
// settlement releases expires at once. Notices reports, once per grant and
// kind, when a grant's use (charged + held) first reaches 80 % and 100 % of
// its credited amount, when it will expire within a given time, and when it
// has expired.
//
// # Using it from a store
//
// A Ledger is not safe for concurrent use: the store serializes the
// operations on one ledger (one transaction at a time, or one ledger per
// transaction loaded from committed entries). Every operation either
// returns its entries and changes the ledger, or returns an error and
// changes nothing. The store writes an operation's entries, in Seq order,
// in the transaction that made them — a job's start with its hold, its end
// with its charge and release — and Load replays them, checking every
// invariant, at start-up. Seq numbers continue from the last entry loaded:
// two writers that loaded the same state give their entries the same
// numbers, so a unique key on Seq makes the second one's transaction fail
// and retry, as it must. Notices are kept apart (Load takes those already
// emitted). Entry.Accelerators and Entry.Factor are stored with a hold so
// that Settle after a restart charges the rate the job was held at.
//
// Balances feeds sched.Snapshot.Grants, rounding as Hold does (Cost);
// Shares feeds model.Project.Shares.
package ledger
