package ledger_test

// Golden scenario scripts, in the manner of internal/sched's: each file in
// testdata/*.txt is a list of blocks, a block being one or more command
// lines, a "----" line, and the expected output up to a blank line. Lines
// starting with '#' between blocks are comments. Run
//
//	go test ./internal/ledger -run TestScenarios -update
//
// to rewrite the expected outputs in place, then read every changed block
// and check it says what the scenario's comment promises. After every
// command the ledger's invariants are checked (Ledger.Check).
//
// Commands (key=value arguments):
//
//	project NAME [parent=P]        add a project (the ledger is reloaded
//	                               from its entries, as a store would)
//	time T                         the clock, for the commands that follow
//	open ID project=P amount=S [from=T until=T model=M site=S]
//	split PARENT ID project=P amount=S [from= until= model= site=]
//	topup ID amount=S
//	transfer FROM TO amount=S
//	adjust ID amount=±S note=WORD
//	hold JOB project=P acc=N limit=S [model=H100 site=s factor=F]
//	settle JOB used=S
//	release JOB
//	expire
//	notices [soon=S]
//	balances [site=S] [factors=M:F,…]
//	shares
//	accounts                       every grant's sums
//	reload                         rebuild from the entries; prints ok
//
// Operations print the entries they made, one a line, or "error: …".

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/model"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of testdata/*.txt")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScript(t, f)
		})
	}
}

// block is one step of a script.
type block struct {
	pre  []string // comment and blank lines before it
	cmds []string
	line int // of the first command
	want []string
}

type script struct {
	blocks  []block
	trailer []string
}

func parseScript(path, text string) (*script, error) {
	lines := strings.Split(text, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	s := &script{}
	var pre []string
	for k := 0; k < len(lines); {
		l := lines[k]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			k++
			continue
		}
		b := block{pre: pre, line: k + 1}
		pre = nil
		for ; k < len(lines) && lines[k] != "----"; k++ {
			if strings.TrimSpace(lines[k]) == "" {
				return nil, fmt.Errorf("%s:%d: blank line inside commands; end them with ----", path, k+1)
			}
			b.cmds = append(b.cmds, lines[k])
		}
		if k == len(lines) {
			return nil, fmt.Errorf("%s:%d: commands without a ---- line", path, b.line)
		}
		k++ // ----
		for ; k < len(lines) && lines[k] != ""; k++ {
			b.want = append(b.want, lines[k])
		}
		k++ // the blank line that ends the output
		s.blocks = append(s.blocks, b)
	}
	s.trailer = pre
	return s, nil
}

func (s *script) String() string {
	var b strings.Builder
	for k, bl := range s.blocks {
		for _, l := range bl.pre {
			b.WriteString(l + "\n")
		}
		for _, l := range bl.cmds {
			b.WriteString(l + "\n")
		}
		b.WriteString("----\n")
		for _, l := range bl.want {
			b.WriteString(l + "\n")
		}
		if k < len(s.blocks)-1 || len(s.trailer) > 0 {
			b.WriteString("\n")
		}
	}
	for _, l := range s.trailer {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseScript(path, string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.blocks) == 0 || !strings.HasPrefix(strings.TrimSpace(strings.Join(s.blocks[0].pre, "\n")), "#") {
		t.Fatalf("%s must start with a comment saying what must happen", path)
	}
	w := &world{}
	changed := false
	for k := range s.blocks {
		b := &s.blocks[k]
		var out []string
		for n, c := range b.cmds {
			lines, err := w.do(c)
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", path, b.line+n, c, err)
			}
			if w.l != nil {
				if err := w.l.Check(); err != nil {
					t.Fatalf("%s:%d: %s: the ledger breaks an invariant: %v", path, b.line+n, c, err)
				}
			}
			out = append(out, lines...)
		}
		if len(out) == 0 {
			out = []string{"ok"}
		}
		if slices.Equal(out, b.want) {
			continue
		}
		if *update {
			b.want = out
			changed = true
			continue
		}
		t.Errorf("%s:%d: %s\nwant:\n%s\ngot:\n%s", path, b.line, strings.Join(b.cmds, "\n"),
			strings.Join(b.want, "\n"), strings.Join(out, "\n"))
	}
	if changed {
		if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
	}
}

// world is what a script builds up.
type world struct {
	projects []model.Project
	grants   []model.Grant
	notices  []ledger.Notice
	l        *ledger.Ledger
	now      int64
}

// args are the key=value pairs of one command; every one must be used, so
// that a typo fails the script instead of being ignored.
type args struct {
	pos  []string
	kv   map[string]string
	used map[string]bool
	err  error
}

func parseArgs(fields []string) *args {
	a := &args{kv: map[string]string{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.pos = append(a.pos, f)
		}
	}
	return a
}

func (a *args) str(k, def string) string {
	a.used[k] = true
	if v, ok := a.kv[k]; ok {
		return v
	}
	return def
}

func (a *args) int(k string, def int64) int64 {
	v := a.str(k, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("%s=%s: %v", k, v, err)
	}
	return n
}

func (a *args) float(k string, def float64) float64 {
	v := a.str(k, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("%s=%s: %v", k, v, err)
	}
	return f
}

func (a *args) done(npos int) error {
	if a.err != nil {
		return a.err
	}
	if len(a.pos) != npos {
		return fmt.Errorf("want %d positional arguments, got %q", npos, a.pos)
	}
	for k := range a.kv {
		if !a.used[k] {
			return fmt.Errorf("unknown argument %q", k)
		}
	}
	return nil
}

func (a *args) grant(id string) model.Grant {
	return model.Grant{ID: id, Project: a.str("project", ""), Model: a.str("model", ""), Site: a.str("site", ""),
		Amount: a.int("amount", 0), From: a.int("from", 0), Until: a.int("until", 86400)}
}

func (w *world) ledger() (*ledger.Ledger, error) {
	if w.l == nil {
		l, err := ledger.New(w.projects)
		if err != nil {
			return nil, err
		}
		w.l = l
	}
	return w.l, nil
}

func (w *world) do(line string) ([]string, error) {
	fields := strings.Fields(line)
	a := parseArgs(fields[1:])
	npos := 1
	var res []ledger.Entry
	var opErr error
	var out []string
	var l *ledger.Ledger
	if fields[0] != "project" {
		var err error
		if l, err = w.ledger(); err != nil {
			return nil, err
		}
	}
	switch fields[0] {
	case "project":
		w.projects = append(w.projects, model.Project{Name: pos(a, 0), Parent: a.str("parent", ""), Shares: 1})
		if w.l != nil {
			if err := w.reload(); err != nil {
				return nil, err
			}
		}
	case "time":
		t, err := strconv.ParseInt(pos(a, 0), 10, 64)
		if err != nil || t < w.now {
			return nil, fmt.Errorf("time %s: give a time not before %d", pos(a, 0), w.now)
		}
		w.now = t
	case "open":
		g := a.grant(pos(a, 0))
		res, opErr = l.Open(g, "officer", "", w.now)
		if opErr == nil {
			w.grants = append(w.grants, g)
		}
	case "split":
		npos = 2
		g := a.grant(pos(a, 1))
		res, opErr = l.Split(pos(a, 0), g, "manager", "", w.now)
		if opErr == nil {
			w.grants = append(w.grants, g)
		}
	case "topup":
		res, opErr = l.Topup(pos(a, 0), a.int("amount", 0), "officer", "", w.now)
	case "transfer":
		npos = 2
		res, opErr = l.Transfer(pos(a, 0), pos(a, 1), a.int("amount", 0), "officer", "", w.now)
	case "adjust":
		res, opErr = l.Adjust(pos(a, 0), a.int("amount", 0), "officer", a.str("note", ""), w.now)
	case "hold":
		res, opErr = l.Hold(ledger.HoldRequest{Job: pos(a, 0), Project: a.str("project", ""), Model: a.str("model", "H100"),
			Site: a.str("site", "s"), Accelerators: int(a.int("acc", 1)), Limit: a.int("limit", 3600), Factor: a.float("factor", 1)}, w.now)
	case "settle":
		res, opErr = l.Settle(pos(a, 0), a.int("used", 0), w.now)
	case "release":
		res, opErr = l.Release(pos(a, 0), "requeued", w.now)
	case "expire":
		npos = 0
		res, opErr = l.Expire(w.now)
	case "notices":
		npos = 0
		ns := l.Notices(w.now, a.int("soon", 0))
		w.notices = append(w.notices, ns...)
		for _, n := range ns {
			out = append(out, fmt.Sprintf("notice %s %s t=%d used=%d amount=%d", n.Grant, n.Kind, n.Time, n.Used, n.Amount))
		}
		if len(out) == 0 {
			out = []string{"no notices"}
		}
	case "balances":
		npos = 0
		f := ledger.Factors{}
		if v := a.str("factors", ""); v != "" {
			for _, kv := range strings.Split(v, ",") {
				m, x, _ := strings.Cut(kv, ":")
				n, err := strconv.ParseFloat(x, 64)
				if err != nil {
					return nil, fmt.Errorf("factors=%s: %v", v, err)
				}
				f[m] = n
			}
		}
		bs, err := l.Balances(w.now, a.str("site", ""), f)
		if err != nil {
			out = append(out, "error: "+err.Error())
		}
		for _, b := range bs {
			out = append(out, fmt.Sprintf("balance %s %s remaining=%d", b.Project, class(b.Model), b.Remaining))
		}
		if len(out) == 0 {
			out = []string{"no balances"}
		}
	case "shares":
		npos = 0
		sh := l.Shares(w.now)
		for _, p := range slices.Sorted(maps.Keys(sh)) {
			out = append(out, fmt.Sprintf("share %s %d", p, sh[p]))
		}
		if len(out) == 0 {
			out = []string{"no shares"}
		}
	case "accounts":
		npos = 0
		for _, ac := range l.Accounts() {
			g := ac.Grant
			site := g.Site
			if site == "" {
				site = "any"
			}
			line := fmt.Sprintf("account %s %s %s@%s [%d,%d) total=%d charged=%d expired=%d held=%d available=%d holds=%d",
				g.ID, g.Project, class(g.Model), site, g.From, g.Until, ac.Total, ac.Charged, ac.Expired, ac.Held, ac.Available, ac.Holds)
			if ac.Parent != "" {
				line += " parent=" + ac.Parent
			}
			out = append(out, line)
		}
	case "reload":
		npos = 0
		if err := w.reload(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown command %q", fields[0])
	}
	if err := a.done(npos); err != nil {
		return nil, err
	}
	if opErr != nil {
		if !errors.Is(opErr, ledger.ErrInsufficient) && !errors.Is(opErr, ledger.ErrInvalid) &&
			!errors.Is(opErr, ledger.ErrUnknown) && !errors.Is(opErr, ledger.ErrExists) {
			return nil, fmt.Errorf("error matches no documented sentinel: %v", opErr)
		}
		return []string{"error: " + opErr.Error()}, nil
	}
	for _, e := range res {
		out = append(out, formatEntry(e))
	}
	return out, nil
}

func pos(a *args, k int) string {
	if k < len(a.pos) {
		return a.pos[k]
	}
	return ""
}

// reload rebuilds the ledger from its entries, as a store would, and
// checks that it lands on the same accounts.
func (w *world) reload() error {
	l, err := ledger.Load(w.projects, w.grants, w.l.Entries(""), w.notices)
	if err != nil {
		return err
	}
	if diff := cmp.Diff(w.l.Accounts(), l.Accounts()); diff != "" {
		return fmt.Errorf("reloaded accounts differ (-before +after):\n%s", diff)
	}
	w.l = l
	return nil
}

func class(m string) string {
	if m == "" {
		return "any"
	}
	return m
}

func formatEntry(e ledger.Entry) string {
	s := fmt.Sprintf("#%d t=%d %s %s %+d", e.Seq, e.Time, e.Grant, e.Kind, e.Amount)
	if e.Job != "" {
		s += " job=" + e.Job
	}
	if e.Other != "" {
		s += " other=" + e.Other
	}
	if e.Kind == ledger.KindHold {
		s += fmt.Sprintf(" acc=%d factor=%s", e.Accelerators, strconv.FormatFloat(e.Factor, 'g', -1, 64))
	}
	if e.Note != "" {
		s += fmt.Sprintf(" %q", e.Note)
	}
	return s
}
