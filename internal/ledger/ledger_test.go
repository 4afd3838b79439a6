package ledger_test

import (
	"errors"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/model"
)

func TestCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		n       int64
		f       float64
		want    int64
		wantErr bool
	}{
		{name: "factor one is the duration", n: 28800, f: 1, want: 28800},
		{name: "half price", n: 101, f: 0.5, want: 51},
		{name: "a whole product is not rounded up by float error", n: 100, f: 0.7, want: 70},
		{name: "a fraction rounds up", n: 1, f: 0.7, want: 1},
		{name: "free class", n: 1 << 40, f: 0, want: 0},
		{name: "dear class", n: 3, f: 2.5, want: 8},
		{name: "nothing costs nothing", n: 0, f: 3, want: 0},
		{name: "negative factor", n: 10, f: -1, wantErr: true},
		{name: "not a number", n: 10, f: math.NaN(), wantErr: true},
		{name: "infinite factor", n: 10, f: math.Inf(1), wantErr: true},
		{name: "negative duration", n: -1, f: 1, wantErr: true},
		{name: "overflow", n: math.MaxInt64 / 2, f: 4, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ledger.Cost(tc.n, tc.f)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Cost(%d, %g) error %v, want error %v", tc.n, tc.f, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("Cost(%d, %g) = %d, want %d", tc.n, tc.f, got, tc.want)
			}
			if err != nil && !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
		})
	}
}

// TestBalancesMatchHold: for every factor and amount, the Remaining the
// scheduler sees is the largest job Hold accepts on that grant.
func TestBalancesMatchHold(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{1, 0.5, 0.7, 0.3, 1.1, 2, 1.0 / 3} {
		for avail := int64(1); avail <= 2000; avail += 7 {
			l := newLedger(t, model.Project{Name: "p", Shares: 1})
			mustOpen(t, l, model.Grant{ID: "g", Project: "p", Model: "X", Amount: avail, Until: 100})
			bs, err := l.Balances(0, "", ledger.Factors{"X": f})
			if err != nil || len(bs) != 1 {
				t.Fatalf("Balances: %v, %v", bs, err)
			}
			n := bs[0].Remaining
			hold := func(seconds int64) error {
				_, err := l.Hold(ledger.HoldRequest{Job: "j" + strconv.FormatInt(seconds, 10), Project: "p", Model: "X", Site: "s",
					Accelerators: 1, Limit: seconds, Factor: f}, 0)
				return err
			}
			if err := hold(n + 1); !errors.Is(err, ledger.ErrInsufficient) {
				t.Fatalf("factor %g, available %d: Remaining %d, yet a job of %d s: %v", f, avail, n, n+1, err)
			}
			if n > 0 {
				if err := hold(n); err != nil {
					t.Fatalf("factor %g, available %d: Remaining %d, yet Hold refuses it: %v", f, avail, n, err)
				}
			}
		}
	}
}

func TestInsufficientErrorSaysWhatWasNeeded(t *testing.T) {
	t.Parallel()
	l := newLedger(t, model.Project{Name: "p", Shares: 1})
	mustOpen(t, l, model.Grant{ID: "g1", Project: "p", Model: "H100", Amount: 3600, Until: 100})
	mustOpen(t, l, model.Grant{ID: "g2", Project: "p", Amount: 7200, Until: 100})
	_, err := l.Hold(ledger.HoldRequest{Job: "j", Project: "p", Model: "H100", Site: "s", Accelerators: 4, Limit: 3600, Factor: 1}, 0)
	var ie *ledger.InsufficientError
	if !errors.As(err, &ie) || !errors.Is(err, ledger.ErrInsufficient) {
		t.Fatalf("Hold: %v, want an *InsufficientError", err)
	}
	want := &ledger.InsufficientError{Job: "j", Project: "p", Model: "H100", Site: "s", Needed: 14400, Available: 7200, Grant: "g2", Total: 10800}
	if diff := cmp.Diff(want, ie); diff != "" {
		t.Errorf("error fields (-want +got):\n%s", diff)
	}
	for _, s := range []string{"4.00 accelerator-hours", "2.00 accelerator-hours", "grant g2", "top-up"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
}

func TestOpenRefusesBadGrants(t *testing.T) {
	t.Parallel()
	ok := model.Grant{ID: "g", Project: "p", Model: "H100", Amount: 100, From: 0, Until: 100}
	for _, tc := range []struct {
		name    string
		edit    func(g *model.Grant)
		now     int64
		wantErr error
		wantMsg string
	}{
		{"inverted period", func(g *model.Grant) { g.From, g.Until = 100, 50 }, 0, ledger.ErrInvalid, "not after from"},
		{"empty period", func(g *model.Grant) { g.Until = g.From }, 0, ledger.ErrInvalid, "not after from"},
		{"negative hours", func(g *model.Grant) { g.Amount = -1 }, 0, ledger.ErrInvalid, "cannot be negative"},
		{"unknown project", func(g *model.Grant) { g.Project = "q" }, 0, ledger.ErrUnknown, "create the project first"},
		{"taken ID", func(g *model.Grant) { g.ID = "taken" }, 0, ledger.ErrExists, "choose another ID"},
		{"period already over", func(*model.Grant) {}, 100, ledger.ErrInvalid, "not after now"},
		{"no ID", func(g *model.Grant) { g.ID = "" }, 0, ledger.ErrInvalid, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(t, model.Project{Name: "p", Shares: 1})
			mustOpen(t, l, model.Grant{ID: "taken", Project: "p", Amount: 1, Until: 10})
			g := ok
			tc.edit(&g)
			es, err := l.Open(g, "o", "", tc.now)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Open: %v, want %v saying %q", err, tc.wantErr, tc.wantMsg)
			}
			if es != nil || len(l.Accounts()) != 1 || l.Seq() != 1 {
				t.Errorf("a refused Open wrote: entries %v, %d accounts, seq %d", es, len(l.Accounts()), l.Seq())
			}
		})
	}
}

// TestLoadRefusesBrokenLedgers: Load replays entries through the same
// checks as the operations and names the entry that breaks one.
func TestLoadRefusesBrokenLedgers(t *testing.T) {
	t.Parallel()
	projects := []model.Project{{Name: "p", Shares: 1}, {Name: "q", Parent: "p", Shares: 1}}
	grants := []model.Grant{
		{ID: "g", Project: "p", Model: "H100", Amount: 1000, Until: 100},
		{ID: "sub", Project: "q", Model: "H100", Amount: 100, Until: 100},
	}
	open := ledger.Entry{Seq: 1, Grant: "g", Kind: ledger.KindGrant, Amount: 1000}
	hold := ledger.Entry{Seq: 2, Grant: "g", Kind: ledger.KindHold, Amount: 600, Job: "j", Accelerators: 1, Factor: 1}
	for _, tc := range []struct {
		name    string
		entries []ledger.Entry
		wantMsg string
	}{
		{"overspent", []ledger.Entry{open, hold, {Seq: 3, Grant: "g", Kind: ledger.KindHold, Amount: 600, Job: "k", Accelerators: 1, Factor: 1}},
			"entry 3 (hold +600 on grant g): grant exhausted: 400 accelerator-seconds available"},
		{"a release that is not the rest of the hold", []ledger.Entry{open, hold,
			{Seq: 3, Grant: "g", Kind: ledger.KindCharge, Amount: -100, Job: "j"}, {Seq: 4, Grant: "g", Kind: ledger.KindRelease, Amount: 600, Job: "j"}},
			"a release must give back the rest of the hold, 500"},
		{"a charge without a hold", []ledger.Entry{open, {Seq: 2, Grant: "g", Kind: ledger.KindCharge, Amount: -1, Job: "j"}},
			`job "j" holds nothing on this grant`},
		{"a charge left unreleased", []ledger.Entry{open, hold, {Seq: 3, Grant: "g", Kind: ledger.KindCharge, Amount: -100, Job: "j"}},
			"a settlement was cut short"},
		{"a job holding twice", []ledger.Entry{open, hold, {Seq: 3, Grant: "g", Kind: ledger.KindHold, Amount: 1, Job: "j", Accelerators: 1, Factor: 1}},
			"job j: already exists"},
		{"entries out of order", []ledger.Entry{open, {Seq: 1, Grant: "g", Kind: ledger.KindTopup, Amount: 1}}, "increasing Seq order"},
		{"an entry before the grant entry", []ledger.Entry{{Seq: 1, Grant: "g", Kind: ledger.KindTopup, Amount: 1}},
			"a grant's first entry must be grant or split-in"},
		{"a grant entry that is not the grant's amount", []ledger.Entry{{Seq: 1, Grant: "g", Kind: ledger.KindGrant, Amount: 5}},
			"the grant's amount is 1000"},
		{"a split without its other half", []ledger.Entry{open,
			{Seq: 2, Grant: "g", Kind: ledger.KindSplitOut, Amount: -100, Other: "sub"},
			{Seq: 3, Grant: "g", Kind: ledger.KindTopup, Amount: 1},
			{Seq: 4, Grant: "sub", Kind: ledger.KindSplitIn, Amount: 100, Other: "g"}},
			"lacks its other half"},
		{"an entry of an unknown grant", []ledger.Entry{{Seq: 1, Grant: "nope", Kind: ledger.KindGrant}}, "grant nope: not found"},
		{"an unknown kind", []ledger.Entry{open, {Seq: 2, Grant: "g", Kind: "gift", Amount: 1}}, `unknown kind "gift"`},
		{"an expiry before the end", []ledger.Entry{open, {Seq: 2, Grant: "g", Time: 50, Kind: ledger.KindExpire, Amount: -1}},
			"before the grant's end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ledger.Load(projects, grants, tc.entries, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Load: %v, want an error saying %q", err, tc.wantMsg)
			}
		})
	}
}

// TestLoadRoundTrip: a ledger rebuilt from its entries continues where it
// was: same accounts, same holds, the next entry numbered after the last.
func TestLoadRoundTrip(t *testing.T) {
	t.Parallel()
	projects := []model.Project{{Name: "p", Shares: 1}, {Name: "q", Parent: "p", Shares: 1}}
	l := newLedger(t, projects...)
	g := model.Grant{ID: "g", Project: "p", Model: "H100", Amount: 100_000, Until: 10_000}
	sub := model.Grant{ID: "sub", Project: "q", Model: "H100", Amount: 30_000, Until: 5000}
	mustOpen(t, l, g)
	must(t)(l.Split("g", sub, "m", "", 0))
	must(t)(l.Hold(ledger.HoldRequest{Job: "j", Project: "q", Model: "H100", Site: "s", Accelerators: 2, Limit: 1000, Factor: 0.5}, 1))
	r, err := ledger.Load(projects, []model.Grant{g, sub}, l.Entries(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l.Accounts(), r.Accounts()); diff != "" {
		t.Errorf("accounts (-before +after):\n%s", diff)
	}
	es := must(t)(r.Settle("j", 500, 600))
	want := []ledger.Entry{
		{Seq: 5, Grant: "sub", Time: 600, Kind: ledger.KindCharge, Amount: -500, Job: "j", Note: "2 acc × 500 s × 0.5"},
		{Seq: 6, Grant: "sub", Time: 600, Kind: ledger.KindRelease, Amount: 500, Job: "j"},
	}
	if diff := cmp.Diff(want, es); diff != "" {
		t.Errorf("settle after reload (-want +got):\n%s", diff)
	}
}

// TestPure keeps the ledger pure: no I/O, no clock, no randomness, no
// goroutines, no logging in its non-test files.
func TestPure(t *testing.T) {
	t.Parallel()
	forbidden := map[string]bool{
		"net": true, "net/http": true, "os": true, "os/exec": true, "io/fs": true, "database/sql": true,
		"log": true, "log/slog": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true,
		"sync": true, "sync/atomic": true, "time": true, "unsafe": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); forbidden[p] {
				t.Errorf("%s imports %s: the ledger is pure; the caller does I/O and passes now", f, p)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files; is the glob broken?", checked)
	}
}

func newLedger(t *testing.T, ps ...model.Project) *ledger.Ledger {
	t.Helper()
	l, err := ledger.New(ps)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustOpen(t *testing.T, l *ledger.Ledger, g model.Grant) {
	t.Helper()
	if _, err := l.Open(g, "o", "", 0); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T) func([]ledger.Entry, error) []ledger.Entry {
	return func(es []ledger.Entry, err error) []ledger.Entry {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
}
