package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
)

// TestGrantsEndToEnd walks the life of a grant through the CLI, the API,
// the store and the scheduler loop: an officer opens a call, a manager
// proposes, the officer accepts with fewer hours, the manager splits a
// sub-grant for a lab, a lab member's job that the sub-grant cannot cover
// waits GrantExhausted while one it covers starts with its hold, a
// cancelled job is charged and released, notices and usage follow.
func TestGrantsEndToEnd(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	ctx := context.Background()
	f.admin("projects", "create", "cons", "--shares", "1").ok(t)
	f.admin("projects", "create", "lab", "--parent", "cons", "--shares", "1").ok(t)
	if err := f.Admin.Do(ctx, http.MethodPut, api.Prefix+"/programmes/euro", store.Programme{Name: "euro", Public: true, Officers: []string{"olga"}}, nil); err != nil {
		t.Fatal(err)
	}
	olga := strings.TrimSpace(f.admin("token", "create", "--user", "olga", "--name", "t").ok(t))
	mia := f.newUser("mia", "cons", "manager")
	alice := f.newUser("alice", "lab", "member")
	now := time.Now().Unix()
	unix := func(d int64) string { return strconv.FormatInt(now+d, 10) }

	call := strings.TrimSpace(f.usine(olga, "calls", "create", "--name", "AI Factories", "--programme", "euro", "--public",
		"--offer", "H100", "--hours", "100", "--opens", unix(-3600), "--closes", unix(86400)).ok(t))
	if r := f.usine(mia, "calls", "create", "--name", "x", "--programme", "euro", "--offer", "H100", "--hours", "1",
		"--opens", unix(0), "--closes", unix(10)); r.code != ExitDenied {
		t.Errorf("a manager opening a call: exit %d; want %d (denied)", r.code, ExitDenied)
	}
	prop := strings.TrimSpace(f.usine(mia, "proposals", "submit", "--call", call, "--project", "cons", "--title", "open model",
		"--model", "H100", "--hours", "10", "--from", unix(-60), "--until", unix(10*86400), "--plan", "30B").ok(t))
	if r := f.usine(mia, "proposals", "accept", prop); r.code != ExitDenied {
		t.Errorf("a manager accepting their own proposal: exit %d; want denied", r.code)
	}
	out := f.usine(olga, "proposals", "accept", prop, "--hours", "8", "--comment", "in part").ok(t)
	if !strings.Contains(out, "grant "+prop+" of 8.0 accelerator-hours") {
		t.Errorf("accept printed %q", out)
	}
	f.usine(mia, "grants", "split", prop, "--id", "lab1", "--project", "lab", "--model", "H100", "--hours", "2",
		"--from", unix(-60), "--until", unix(10*86400)).ok(t)
	if r := f.usine(mia, "grants", "split", prop, "--id", "lab2", "--project", "lab", "--model", "H100", "--hours", "100",
		"--from", unix(-60), "--until", unix(10*86400)); r.code != ExitConflict || !strings.Contains(r.stderr, "available") {
		t.Errorf("a sub-grant larger than its parent: exit %d %s; want a conflict saying what is available", r.code, r.stderr)
	}

	// 8 accelerators for an hour is 8 h; lab1 has 2: it waits.
	big := f.submit(alice, "-p", "lab", "--gpus", "8", "-t", "1:00:00", "--", "true")[0]
	f.wait(big, func(j store.Job) bool { return j.Reason == "GrantExhausted" })
	// 1 accelerator for 2 h uses all of lab1: it starts, and its hold
	// crosses 80 % and 100 %.
	small := f.submit(alice, "-p", "lab", "--gpus", "1", "-t", "2:00:00", "--", "true")[0]
	f.wait(small, running)
	var g store.GrantAccount
	decodeJSONLoose(t, f.usine(alice, "grants", "show", "lab1", "-o", "json").ok(t), &g)
	if g.Held != 7200 || g.Holds != 1 || g.Available != 0 {
		t.Errorf("lab1 while the job runs: %+v; want 2 h held", g)
	}
	var ns server.Notices
	decodeJSONLoose(t, f.usine(alice, "grants", "notices", "-o", "json").ok(t), &ns)
	kinds := map[ledger.NoticeKind]bool{}
	for _, n := range ns.Items {
		if n.Grant == "lab1" {
			kinds[n.Kind] = true
		}
	}
	if !kinds[ledger.NoticeUsed80] || !kinds[ledger.NoticeUsed100] {
		t.Errorf("notices of lab1: %+v; want 80 %% and 100 %%", ns.Items)
	}
	f.usine(alice, "cancel", small).ok(t)
	f.wait(small, func(j store.Job) bool { return j.State.Final() })
	decodeJSONLoose(t, f.usine(alice, "grants", "show", "lab1", "-o", "json").ok(t), &g)
	if g.Held != 0 || g.Holds != 0 || g.Charged+g.Available != 7200 {
		t.Errorf("lab1 after the cancel: %+v; want the run charged and the rest released", g)
	}
	if err := f.Store.CheckLedger(ctx); err != nil {
		t.Errorf("ledger: %v", err)
	}

	csvOut := f.usine(mia, "usage", "--by", "project,month", "-o", "csv").ok(t)
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "project" || rows[1][0] != "lab" || rows[1][2] != "1" {
		t.Errorf("usage -o csv = %q (%v); want a header and lab's row with 1 job", csvOut, err)
	}
	var rep server.UsageReport
	decodeJSONLoose(t, f.usine(alice, "usage", "--by", "user", "-o", "json").ok(t), &rep)
	if len(rep.Rows) != 1 || rep.Rows[0].Labels["user"] != "alice" || rep.Utilisation != 0.7 || rep.EnergyNote == "" {
		t.Errorf("alice's usage: %+v", rep)
	}
	table := f.usine(olga, "grants").ok(t)
	for _, want := range []string{"lab1", prop, "AVAILABLE_H"} {
		if !strings.Contains(table, want) {
			t.Errorf("usine grants as the officer lacks %q:\n%s", want, table)
		}
	}
	if r := f.usine(olga, "usage", "-o", "xml"); r.code != ExitUsage {
		t.Errorf("usage -o xml: exit %d; want usage error", r.code)
	}

	// A site that refuses what no grant covers says so at submit, with
	// how much is left; what a grant covers is still taken.
	acct, err := f.Store.Accounting(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acct.RefuseUncovered = true
	if err := f.Admin.Do(ctx, http.MethodPut, api.Prefix+"/accounting", acct, nil); err != nil {
		t.Fatal(err)
	}
	r := f.usine(alice, "submit", "-p", "lab", "--gpus", "8", "-t", "1:00:00", "--", "true")
	if r.code != ExitConflict || !strings.Contains(r.stderr, "cannot cover") || !strings.Contains(r.stderr, "left") {
		t.Errorf("a job no grant covers, under refuse_uncovered: exit %d %q; want a conflict saying how much is left", r.code, r.stderr)
	}
	f.submit(alice, "-p", "lab", "--gpus", "1", "-t", "0:30", "--", "true")
}

// decodeJSONLoose decodes s into v, allowing fields v does not name.
func decodeJSONLoose(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
}
