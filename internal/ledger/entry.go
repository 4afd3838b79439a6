package ledger

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Kind is what an entry does to its grant.
type Kind string

// Entry kinds. See the package comment for what each does to the balance.
const (
	KindGrant       Kind = "grant"
	KindTopup       Kind = "topup"
	KindTransferOut Kind = "transfer-out"
	KindTransferIn  Kind = "transfer-in"
	KindSplitOut    Kind = "split-out"
	KindSplitIn     Kind = "split-in"
	KindHold        Kind = "hold"
	KindRelease     Kind = "release"
	KindCharge      Kind = "charge"
	KindExpire      Kind = "expire"
	KindAdjust      Kind = "adjust"
)

// Kinds lists every entry kind.
func Kinds() []Kind {
	return []Kind{KindGrant, KindTopup, KindTransferOut, KindTransferIn, KindSplitOut, KindSplitIn,
		KindHold, KindRelease, KindCharge, KindExpire, KindAdjust}
}

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool { return slices.Contains(Kinds(), k) }

// moves reports whether entries of kind k change the balance.
func (k Kind) moves() bool { return k != KindHold && k != KindRelease }

// Entry is one change to one grant.
type Entry struct {
	// Seq orders entries across the whole ledger: 1, 2, 3, … in the order
	// they were made. An operation's entries have consecutive numbers.
	Seq   int64  `json:"seq"`
	Grant string `json:"grant"`
	Time  int64  `json:"time"`
	Kind  Kind   `json:"kind"`
	// Amount in accelerator-seconds: positive for what the grant gains,
	// negative for what it loses (transfer-out, split-out, charge, expire,
	// a negative adjust). A hold's amount is what it sets aside and a
	// release's what it gives back, both positive.
	Amount int64  `json:"amount_s"`
	Job    string `json:"job,omitempty"`   // hold, charge, release
	Other  string `json:"other,omitempty"` // the other grant of a transfer or split
	Actor  string `json:"actor,omitempty"` // who asked; "" for the system
	Note   string `json:"note,omitempty"`
	// Accelerators and Factor are a hold's: Settle charges
	// Accelerators × elapsed × Factor.
	Accelerators int     `json:"accelerators,omitempty"`
	Factor       float64 `json:"factor,omitempty"`
}

// Errors the operations return, wrapped with what was being done; test
// them with errors.Is.
var (
	// ErrInsufficient: no single grant covers a job's worst case. Hold
	// returns it as an *InsufficientError.
	ErrInsufficient = errors.New("grant exhausted")
	// ErrUnknown: a grant, project or job hold the operation names does not
	// exist.
	ErrUnknown = errors.New("not found")
	// ErrInvalid: the arguments make no sense (a negative amount, a period
	// outside the parent's, a class mismatch …); the message says which.
	ErrInvalid = errors.New("invalid")
	// ErrExists: a grant with that ID exists, or the job already holds.
	ErrExists = errors.New("already exists")
)

// InsufficientError says that no single grant covers a job's worst case,
// how much was needed and how much the best candidate had.
type InsufficientError struct {
	Job     string
	Project string
	Model   string
	Site    string
	Needed  int64 // the worst case, in accelerator-seconds
	// Available is the most any one candidate grant had available, and
	// Grant that grant ("" when no grant of the project or its ancestors
	// is valid now for this class and site).
	Available int64
	Grant     string
	// Total is what all candidate grants have available together: more
	// than Needed means the hours exist but are spread over several grants,
	// and a job is never split across grants.
	Total int64
}

func (e *InsufficientError) Error() string {
	where := fmt.Sprintf("%s at site %s", e.Model, e.Site)
	if e.Grant == "" {
		return fmt.Sprintf("job %s: project %s has no grant of %s valid now (neither have its parent projects); ask for a grant or a sub-grant of one",
			e.Job, e.Project, where)
	}
	msg := fmt.Sprintf("job %s: needs %s (%d accelerator-seconds) of %s, but the most any grant of project %s or its parents has available is %s (%d, grant %s)",
		e.Job, Hours(e.Needed), e.Needed, where, e.Project, Hours(e.Available), e.Available, e.Grant)
	if e.Total >= e.Needed {
		msg += fmt.Sprintf("; its grants hold %s together, but a job is never split across grants: transfer hours into one grant", Hours(e.Total))
	} else {
		msg += "; ask for a top-up, or shorten the job's time limit or accelerator count"
	}
	return msg
}

// Is makes errors.Is(err, ErrInsufficient) true.
func (e *InsufficientError) Is(target error) bool { return target == ErrInsufficient }

// Hours formats accelerator-seconds as accelerator-hours for messages.
func Hours(s int64) string {
	return fmt.Sprintf("%.2f accelerator-hours", float64(s)/3600)
}

// Cost is what n accelerator-seconds of a class with charge factor f cost,
// rounded up to whole accelerator-seconds. A product within one part in
// 10⁹ of a whole number counts as that number, so that 100 × 0.7 costs 70
// and not 71 through floating-point error. It returns an error when f is
// negative, not a number, or the cost overflows.
func Cost(n int64, f float64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("cost of %d accelerator-seconds: %w: a duration cannot be negative", n, ErrInvalid)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("charge factor %g: %w: give a finite factor of 0 or more", f, ErrInvalid)
	}
	if f == 1 {
		return n, nil
	}
	p := float64(n) * f
	if p >= math.MaxInt64/2 {
		return 0, fmt.Errorf("cost of %d accelerator-seconds × %g: %w: too large", n, f, ErrInvalid)
	}
	if r := math.Round(p); math.Abs(p-r) <= 1e-9*math.Max(1, r) {
		return int64(r), nil
	}
	return int64(math.Ceil(p)), nil
}

// costOf is Cost of accelerators × seconds, checking the product.
func costOf(accelerators int, seconds int64, f float64) (int64, error) {
	if accelerators < 0 || seconds < 0 {
		return 0, fmt.Errorf("cost of %d accelerators × %d s: %w: neither can be negative", accelerators, seconds, ErrInvalid)
	}
	if accelerators > 0 && seconds > math.MaxInt64/4/int64(accelerators) {
		return 0, fmt.Errorf("cost of %d accelerators × %d s: %w: too large", accelerators, seconds, ErrInvalid)
	}
	return Cost(int64(accelerators)*seconds, f)
}

// Factors maps an accelerator class to its charge factor: what one second
// of one accelerator of that class costs in grant accelerator-seconds (say
// H100 1.0, MI250X 0.5). A class not listed costs 1.
type Factors map[string]float64

// Of returns the factor of class m.
func (f Factors) Of(m string) float64 {
	if v, ok := f[m]; ok {
		return v
	}
	return 1
}

// max is the dearest class's factor, 1 at least (unlisted classes cost 1).
func (f Factors) max() float64 {
	m := 1.0
	for _, v := range f {
		m = math.Max(m, v)
	}
	return m
}

// Check reports a factor that is negative or not finite.
func (f Factors) Check() error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if v := f[k]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			errs = append(errs, fmt.Errorf("charge factor of %s is %g: %w: give a finite factor of 0 or more", k, v, ErrInvalid))
		}
	}
	return errors.Join(errs...)
}
