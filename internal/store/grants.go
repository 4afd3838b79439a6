package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// Grants is the store's share of calls, proposals, grants and their ledger
// (see internal/ledger for the rules, which the store runs inside its
// transactions). A job's hold is written in the transaction of its start
// (Apply) and its charge in the transaction of its end (UpdateJob, or a
// requeue in Apply), so that the books and the jobs never disagree.
//
// Errors: ErrNotFound, ErrConflict, and ErrInvalid for input that makes no
// sense (the message says what and how to fix it); ledger.ErrInsufficient
// when a grant has less available than asked. Nothing is written when an
// error is returned.
type Grants interface {
	// PutProgramme creates or replaces a funding programme.
	PutProgramme(ctx context.Context, p Programme) error
	Programmes(ctx context.Context) ([]Programme, error)

	// PutCall creates a call or changes it (by ID).
	PutCall(ctx context.Context, c Call) (Call, error)
	Call(ctx context.Context, id string) (Call, error)
	Calls(ctx context.Context) ([]Call, error)

	// SubmitProposal files a proposal to an open call (now within
	// [Opens, Closes)); a returned proposal may be submitted again by ID.
	SubmitProposal(ctx context.Context, p Proposal, now int64) (Proposal, error)
	Proposal(ctx context.Context, id string) (Proposal, error)
	Proposals(ctx context.Context, f ProposalFilter) ([]Proposal, error)
	// DecideProposal accepts (opening its grant in the same transaction),
	// rejects or returns a submitted proposal.
	DecideProposal(ctx context.Context, id string, d Decision, now int64) (Proposal, error)

	// OpenGrant opens a grant outside any call (an officer's direct award).
	OpenGrant(ctx context.Context, g GrantInfo, actor, note string, now int64) (GrantAccount, error)
	SplitGrant(ctx context.Context, parent string, child GrantInfo, actor, note string, now int64) (GrantAccount, error)
	TopupGrant(ctx context.Context, id string, amount int64, actor, note string, now int64) (GrantAccount, error)
	TransferGrant(ctx context.Context, from, to string, amount int64, actor, note string, now int64) ([]GrantAccount, error)
	AdjustGrant(ctx context.Context, id string, amount int64, actor, note string, now int64) (GrantAccount, error)
	// ExpireGrants expires what grants past their end still have available
	// and records expiry notices: those past their end, and those ending
	// within soon seconds of now.
	ExpireGrants(ctx context.Context, now, soon int64) ([]ledger.Entry, error)

	Grant(ctx context.Context, id string) (GrantAccount, error)
	Grants(ctx context.Context, f GrantFilter) ([]GrantAccount, error)
	// LedgerEntries pages a grant's entries (every grant's when grant is
	// ""), after the sequence number after.
	LedgerEntries(ctx context.Context, grant string, after int64, limit int) ([]ledger.Entry, error)
	// GrantNotices pages the notices (80 %, 100 %, expiring, expired), by ID.
	GrantNotices(ctx context.Context, f NoticeFilter) ([]GrantNotice, error)
	// GrantFeed is what a scheduling pass needs: spendable balances
	// (sched.Snapshot.Grants, with projects that need no grant given an
	// unlimited one) and each project's fair-share entitlement.
	GrantFeed(ctx context.Context, now int64) (GrantFeed, error)
	// CheckLedger replays every stored entry through the ledger's checks
	// and compares the result with the stored sums and holds.
	CheckLedger(ctx context.Context) error

	PutAccounting(ctx context.Context, a Accounting) error
	Accounting(ctx context.Context) (Accounting, error)

	// UsageParts sums finished jobs' use by user, project, site, class,
	// programme and month (see usage.Part), in the filter's range.
	UsageParts(ctx context.Context, f UsageFilter) ([]usage.Part, error)
	// RecordUsage writes finished jobs' use directly, outside a job's end
	// (an import from another system, a benchmark's fill).
	RecordUsage(ctx context.Context, records []usage.Record) error
}

// ErrInvalid: the input makes no sense; the message says what and how to
// fix it.
var ErrInvalid = errors.New("invalid")

// ErrGrantExhausted: Apply refused starts no grant covers (a
// *GrantRefusal).
var ErrGrantExhausted = ledger.ErrInsufficient

// GrantRefusal is Apply's answer when some starts of a pass cannot be
// held: nothing was written. The caller drops those starts (and their
// events) and applies the rest again; the refused jobs wait with reason
// GrantExhausted.
type GrantRefusal struct {
	Jobs map[string]string // job ID → why (an *ledger.InsufficientError's message)
}

func (e *GrantRefusal) Error() string {
	ids := slices.Sorted(maps.Keys(e.Jobs))
	var b strings.Builder
	fmt.Fprintf(&b, "%d starts refused, no grant covers them", len(ids))
	for i, id := range ids {
		if i == 3 {
			fmt.Fprintf(&b, "; … %d more", len(ids)-3)
			break
		}
		b.WriteString("; " + e.Jobs[id])
	}
	return b.String()
}

// Is makes errors.Is(err, ErrGrantExhausted) true.
func (e *GrantRefusal) Is(target error) bool { return target == ErrGrantExhausted }

// Programme is a funding programme (EuroHPC AI Factories, a national
// programme, a private customer). Its officers open its calls, decide its
// proposals and manage its grants; a site-wide officer acts in every one.
type Programme struct {
	Name     string   `json:"name"`
	Public   bool     `json:"public"` // public money
	Officers []string `json:"officers,omitempty"`
}

// CallOffer is what a call offers of one accelerator class.
type CallOffer struct {
	Site  string `json:"site,omitempty"` // "" = any site
	Model string `json:"model"`          // accelerator class
}

// Call is a funding round.
type Call struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Programme string      `json:"programme"`
	Public    bool        `json:"public"`
	Offers    []CallOffer `json:"offers"`
	// Total is the accelerator-seconds the call gives out at most;
	// Granted is what its accepted proposals took.
	Total   int64  `json:"total_s"`
	Granted int64  `json:"granted_s"`
	Opens   int64  `json:"opens"`
	Closes  int64  `json:"closes"`
	Actor   string `json:"actor,omitempty"`
}

// Open reports whether proposals may be submitted at now.
func (c *Call) Open(now int64) bool { return c.Opens <= now && now < c.Closes }

// Proposal states.
const (
	ProposalSubmitted = "submitted"
	ProposalAccepted  = "accepted"
	ProposalRejected  = "rejected"
	ProposalReturned  = "returned" // to its authors, with a comment; they may submit it again
)

// Proposal asks a call for accelerator-seconds for a project.
type Proposal struct {
	ID      string `json:"id"`
	Call    string `json:"call"`
	Project string `json:"project"`
	Title   string `json:"title"`
	Plan    string `json:"plan,omitempty"` // a short plan
	Site    string `json:"site,omitempty"`
	Model   string `json:"model"`
	Amount  int64  `json:"amount_s"` // asked
	From    int64  `json:"from"`
	Until   int64  `json:"until"`
	State   string `json:"state"`
	// Granted is what an accepted proposal received (at most Amount),
	// Grant the grant it became; Comment is the officer's word.
	Granted   int64  `json:"granted_s,omitempty"`
	Grant     string `json:"grant,omitempty"`
	Comment   string `json:"comment,omitempty"`
	Submitter string `json:"submitter,omitempty"`
	Decider   string `json:"decider,omitempty"`
	Submitted int64  `json:"submitted,omitempty"`
	Decided   int64  `json:"decided,omitempty"`
}

// ProposalFilter selects proposals; empty fields select all.
type ProposalFilter struct {
	Call     string
	Projects []string
	State    string
}

// Decision is an officer's word on a proposal.
type Decision struct {
	State   string `json:"state"` // accepted, rejected or returned
	Amount  int64  `json:"amount_s,omitempty"`
	Comment string `json:"comment,omitempty"`
	Actor   string `json:"-"`
	// GrantID names the grant an acceptance opens; "" = the proposal's ID.
	GrantID string `json:"grant,omitempty"`
}

// GrantInfo is a grant and where it came from.
type GrantInfo struct {
	model.Grant
	Programme string `json:"programme,omitempty"`
	Call      string `json:"call,omitempty"`
	Proposal  string `json:"proposal,omitempty"`
}

// GrantAccount is a grant with its ledger sums.
type GrantAccount struct {
	GrantInfo
	Parent    string `json:"parent,omitempty"`
	Total     int64  `json:"total_s"`
	Charged   int64  `json:"charged_s"`
	Expired   int64  `json:"expired_s"`
	Held      int64  `json:"held_s"`
	Balance   int64  `json:"balance_s"`
	Available int64  `json:"available_s"`
	Holds     int    `json:"holds"`
}

// GrantFilter selects grants; empty fields select all.
type GrantFilter struct {
	Projects  []string
	Programme string
	// ValidAt, when not 0, keeps grants valid at that time.
	ValidAt int64
}

// GrantNotice is a notice about a grant, as an event of the API.
type GrantNotice struct {
	ID int64 `json:"id"`
	ledger.Notice
	Project string `json:"project"`
}

// NoticeFilter selects notices after ID After, at most Limit.
type NoticeFilter struct {
	Projects []string
	Grant    string
	After    int64
	Limit    int
}

// GrantFeed is what a scheduling pass needs of the grants.
type GrantFeed struct {
	// Balances is nil when no project needs a grant (accounting is off).
	Balances []sched.Balance
	// Shares is each granted project's entitlement in the current period,
	// accelerator-seconds (ledger.Shares).
	Shares map[string]int64
	// RefuseUncovered is Accounting.RefuseUncovered.
	RefuseUncovered bool
}

// Accounting is how a factory accounts for its use.
type Accounting struct {
	// ChargeFactors: what one second of one accelerator of a class costs
	// in grant accelerator-seconds (unlisted: 1).
	ChargeFactors map[string]float64 `json:"charge_factors,omitempty"`
	// RatedWatts: each class's rated board power, W, for estimated energy.
	RatedWatts map[string]float64 `json:"rated_watts,omitempty"`
	// Utilisation: the share of rated power assumed when power was not
	// measured (0 = usage.DefaultUtilisation).
	Utilisation float64 `json:"utilisation,omitempty"`
	// GridIntensity: each site's grid carbon intensity, gCO2e/kWh.
	GridIntensity map[string]float64 `json:"grid_intensity,omitempty"`
	// RequireGrant makes every job need a grant. Without it, only jobs of
	// projects that (or whose ancestors) own a grant are held; the others
	// run unaccounted (a factory without funders).
	RequireGrant bool `json:"require_grant,omitempty"`
	// RefuseUncovered refuses at submit, saying how much is left, a job
	// that no grant of its project can cover now; without it such a job
	// waits with GrantExhausted (a top-up may come).
	RefuseUncovered bool `json:"refuse_uncovered,omitempty"`
}

// Check says what is wrong with a.
func (a *Accounting) Check() error {
	var errs []error
	if err := ledger.Factors(a.ChargeFactors).Check(); err != nil {
		errs = append(errs, err)
	}
	opts := usage.Options{RatedWatts: a.RatedWatts, Utilisation: a.Utilisation, GridIntensity: a.GridIntensity}
	if err := usage.Check(opts); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("accounting settings: %w: %w", ErrInvalid, err)
	}
	return nil
}

// UsageFilter selects finished jobs' use by the month they ran in
// (YYYY-MM, inclusive; "" = no bound) and by project.
type UsageFilter struct {
	From, To string
	Projects []string
	User     string
}
