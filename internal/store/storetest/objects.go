package storetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func testLease(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	steps := []struct {
		name      string
		holder    string
		now, ttl  int64
		want      store.Lease
		wantTaken bool
	}{
		{"a takes the free lease", "a", 0, 100, store.Lease{Holder: "a", Term: 1, Expires: 100}, true},
		{"b waits while a's runs", "b", 50, 100, store.Lease{Holder: "a", Term: 1, Expires: 100}, false},
		{"a renews in the same term", "a", 60, 100, store.Lease{Holder: "a", Term: 1, Expires: 160}, true},
		{"b takes over after expiry", "b", 160, 100, store.Lease{Holder: "b", Term: 2, Expires: 260}, true},
		{"a cannot renew what it lost", "a", 170, 100, store.Lease{Holder: "b", Term: 2, Expires: 260}, false},
		{"b gives up with ttl 0", "b", 210, 0, store.Lease{Holder: "b", Term: 2, Expires: 210}, false},
		{"a takes the given-up lease at once", "a", 211, 100, store.Lease{Holder: "a", Term: 3, Expires: 311}, true},
	}
	for _, s := range steps {
		got, ok, err := st.AcquireLease(ctx, s.holder, s.now, s.ttl)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ok != s.wantTaken {
			t.Errorf("%s: ok = %v; want %v", s.name, ok, s.wantTaken)
		}
		if diff := gocmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s: lease (-want +got):\n%s", s.name, diff)
		}
	}
}

func testLeaseRace(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	for round, now := range []int64{1000, 5000} { // a free lease, then an expired one
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []store.Lease
		)
		for i := range 10 {
			wg.Go(func() {
				l, ok, err := st.AcquireLease(ctx, string(rune('a'+i)), now, 1000)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					winners = append(winners, l)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || winners[0].Term != int64(round+1) {
			t.Errorf("round %d: winners %+v; want exactly one, at term %d", round, winners, round+1)
		}
	}
}

func testFencing(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	js := submit(t, st, job("p"), job("p"))
	a, ok, err := st.AcquireLease(ctx, "a", 0, 100)
	if err != nil || !ok {
		t.Fatalf("a takes the lease: %v %v", ok, err)
	}
	b, ok, err := st.AcquireLease(ctx, "b", 100, 100)
	if err != nil || !ok {
		t.Fatalf("b takes the expired lease: %v %v", ok, err)
	}
	start := func(j store.Job) store.Decisions {
		return store.Decisions{Starts: []store.StartJob{{ID: j.ID, Rev: j.Rev, Start: 1, Alloc: []store.Alloc{{Node: "n", Accelerators: 1}}}}}
	}
	if _, err := st.Apply(ctx, a, start(js[0])); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("apply by deposed a (term %d): %v; want ErrNotLeader", a.Term, err)
	}
	if _, err := st.Apply(ctx, store.Lease{Holder: "b", Term: a.Term}, start(js[0])); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("apply by b with a's old term: %v; want ErrNotLeader", err)
	}
	if j, _ := st.Job(ctx, js[0].ID); j.State != model.JobPending {
		t.Errorf("a fenced-off apply started job %s", j.ID)
	}
	if out, err := st.Apply(ctx, b, start(js[1])); err != nil || len(out) != 1 {
		t.Errorf("apply by leader b = %+v, %v", out, err)
	}
}

// sorted returns xs sorted by key: the interface leaves the order of these
// lists open.
func sorted[T any](xs []T, key func(T) string) []T {
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return xs
}

func testObjects(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	must(t, st.PutSite(ctx, model.Site{Name: "mn5", Country: "ES"}))
	must(t, st.PutSite(ctx, model.Site{Name: "lumi", Country: "FI"}))
	must(t, st.PutSite(ctx, model.Site{Name: "mn5", Country: "EU"}))
	sites, err := st.Sites(ctx)
	must(t, err)
	if diff := gocmp.Diff([]model.Site{{Name: "lumi", Country: "FI"}, {Name: "mn5", Country: "EU"}}, sorted(sites, func(s model.Site) string { return s.Name })); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}

	must(t, st.PutPartition(ctx, model.Partition{Name: "gpu", Site: "mn5", Model: "H100"}))
	must(t, st.PutPartition(ctx, model.Partition{Name: "gpu", Site: "mn5", Model: "H100", Down: true}))
	must(t, st.PutPartition(ctx, model.Partition{Name: "amd", Site: "lumi", Model: "MI250X"}))
	parts, err := st.Partitions(ctx)
	must(t, err)
	wantParts := []model.Partition{{Name: "amd", Site: "lumi", Model: "MI250X"}, {Name: "gpu", Site: "mn5", Model: "H100", Down: true}}
	if diff := gocmp.Diff(wantParts, sorted(parts, func(p model.Partition) string { return p.Name })); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}

	must(t, st.PutProject(ctx, model.Project{Name: "consortium", Shares: 1}))
	must(t, st.PutProject(ctx, model.Project{Name: "team", Parent: "consortium", Shares: 1}))
	must(t, st.PutProject(ctx, model.Project{Name: "team", Parent: "consortium", Shares: 3}))
	ps, err := st.Projects(ctx)
	must(t, err)
	wantPs := []model.Project{{Name: "consortium", Shares: 1}, {Name: "team", Parent: "consortium", Shares: 3}}
	if diff := gocmp.Diff(wantPs, sorted(ps, func(p model.Project) string { return p.Name })); diff != "" {
		t.Errorf("projects (-want +got):\n%s", diff)
	}
}

func testNodes(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	node := func(name string) store.Node {
		return store.Node{Node: model.Node{Name: name, Site: "s", Partition: "gpu", Group: "g1", Block: "b1",
			Accelerators: 8, Model: "H100", CPUs: 96, MemoryMiB: 1 << 20, State: model.NodeUp}}
	}
	n2, err := st.PutNode(ctx, node("n2"))
	must(t, err)
	first := node("n1")
	first.Address, first.AgentURL = "10.0.0.1", "https://10.0.0.1:7070"
	n1, err := st.PutNode(ctx, first)
	must(t, err)
	if n1.Rev == 0 {
		t.Errorf("PutNode gave no revision: %+v", n1)
	}
	if got, err := st.Node(ctx, "n1"); err != nil || !gocmp.Equal(n1, got) {
		t.Errorf("Node(n1) = %v (-want +got):\n%s", err, gocmp.Diff(n1, got))
	}
	replaced := node("n2")
	replaced.Accelerators = 4
	n2b, err := st.PutNode(ctx, replaced)
	must(t, err)
	if n2b.Accelerators != 4 || n2b.Rev <= n2.Rev {
		t.Errorf("PutNode over n2 = %+v; want 4 accelerators and a revision above %d", n2b, n2.Rev)
	}

	up, err := st.UpdateNode(ctx, "n1", func(n *store.Node) error {
		n.State, n.Reason = model.NodeDrain, "fan"
		n.Name = "renamed"
		return nil
	})
	must(t, err)
	want := n1
	want.State, want.Reason = model.NodeDrain, "fan"
	want.Rev = up.Rev
	if diff := gocmp.Diff(want, up); diff != "" || up.Rev <= n1.Rev {
		t.Errorf("UpdateNode drains n1 with a new revision above %d (-want +got):\n%s", n1.Rev, diff)
	}
	refuse := errors.New("refused")
	if _, err := st.UpdateNode(ctx, "n1", func(n *store.Node) error { n.State = model.NodeDown; return refuse }); !errors.Is(err, refuse) {
		t.Errorf("UpdateNode whose fn fails: %v", err)
	}
	if _, err := st.UpdateNode(ctx, "ghost", func(*store.Node) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateNode(ghost): %v; want ErrNotFound", err)
	}
	if _, err := st.Node(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Node(ghost): %v; want ErrNotFound", err)
	}

	must(t, st.Heartbeats(ctx, []string{"n1", "n2", "ghost"}, 42))
	must(t, st.Heartbeats(ctx, []string{"n1"}, 41)) // late: ignored
	must(t, st.Heartbeats(ctx, nil, 43))
	nodes, err := st.Nodes(ctx)
	must(t, err)
	want.Heartbeat = 42
	n2b.Heartbeat = 42
	if diff := gocmp.Diff([]store.Node{want, n2b}, sorted(nodes, func(n store.Node) string { return n.Name })); diff != "" {
		t.Errorf("nodes after heartbeats at 42, then a late one at 41: same revisions (-want +got):\n%s", diff)
	}
}

func testMembers(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	for _, m := range []store.Member{
		{Project: "team", User: "ann", Role: store.RoleMember},
		{Project: "team", User: "ann", Role: store.RoleManager}, // replaces
		{Project: "", User: "ann", Role: store.RoleOperator},
		{Project: "team", User: "bob", Role: store.RoleMember},
		{Project: "other", User: "cat", Role: store.RoleMember},
	} {
		must(t, st.PutMember(ctx, m))
	}
	key := func(m store.Member) string { return m.Project + "\x00" + m.User }
	for _, tc := range []struct {
		name          string
		project, user string
		want          []store.Member
	}{
		{"one project", "team", "", []store.Member{{Project: "team", User: "ann", Role: store.RoleManager}, {Project: "team", User: "bob", Role: store.RoleMember}}},
		{"site-wide", "", "", []store.Member{{Project: "", User: "ann", Role: store.RoleOperator}}},
		{"a user's", "", "ann", []store.Member{{Project: "", User: "ann", Role: store.RoleOperator}, {Project: "team", User: "ann", Role: store.RoleManager}}},
		{"everyone", "*", "", []store.Member{
			{Project: "", User: "ann", Role: store.RoleOperator},
			{Project: "other", User: "cat", Role: store.RoleMember},
			{Project: "team", User: "ann", Role: store.RoleManager},
			{Project: "team", User: "bob", Role: store.RoleMember},
		}},
		{"nobody's", "", "dan", nil},
	} {
		got, err := st.Members(ctx, tc.project, tc.user)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := gocmp.Diff(tc.want, sorted(got, key)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	must(t, st.DeleteMember(ctx, "team", "bob"))
	if err := st.DeleteMember(ctx, "team", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting bob twice: %v; want ErrNotFound", err)
	}
	if got, _ := st.Members(ctx, "team", ""); len(got) != 1 {
		t.Errorf("team after bob left = %+v", got)
	}
}

func testTokens(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	k1 := store.Token{ID: "k1", User: "ann", Name: "laptop", Hash: []byte{0, 1, 2, 255}, Created: 5, Expires: 500}
	k2 := store.Token{ID: "k2", User: "ann", Hash: []byte{9}, Created: 6}
	k3 := store.Token{ID: "k3", User: "bob", Hash: []byte{8}, Created: 7}
	for _, k := range []store.Token{k1, k2, k3} {
		must(t, st.PutToken(ctx, k))
	}
	got, err := st.TokenByHash(ctx, []byte{0, 1, 2, 255})
	must(t, err)
	if diff := gocmp.Diff(k1, got); diff != "" {
		t.Errorf("TokenByHash (-want +got):\n%s", diff)
	}
	if _, err := st.TokenByHash(ctx, []byte{0, 1, 2}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash of an unknown hash: %v; want ErrNotFound", err)
	}
	anns, err := st.Tokens(ctx, "ann")
	must(t, err)
	if diff := gocmp.Diff([]store.Token{k1, k2}, sorted(anns, func(k store.Token) string { return k.ID })); diff != "" {
		t.Errorf("ann's tokens (-want +got):\n%s", diff)
	}
	if err := st.PutToken(ctx, store.Token{ID: "k1", User: "cat", Hash: []byte{7}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second token k1: %v; want ErrConflict", err)
	}
	if err := st.PutToken(ctx, store.Token{ID: "k4", User: "cat", Hash: bytes.Clone(k2.Hash)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second token with k2's hash: %v; want ErrConflict", err)
	}
	must(t, st.DeleteToken(ctx, "k1"))
	if _, err := st.TokenByHash(ctx, k1.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted token still found: %v", err)
	}
	if err := st.DeleteToken(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting k1 twice: %v; want ErrNotFound", err)
	}
}

func testLogs(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	var want []store.AuditEntry
	for i := range 5 {
		e := store.AuditEntry{Time: int64(i), Actor: "ann", Action: "POST /api/v1/nodes/n1/drain", Target: "n1", Remote: "[::1]:4000", Status: 200 + i}
		must(t, st.Audit(ctx, e))
		want = append(want, e)
	}
	first, err := st.AuditLog(ctx, 0, 2)
	must(t, err)
	if len(first) != 2 {
		t.Fatalf("first audit page has %d entries; want 2", len(first))
	}
	rest, err := st.AuditLog(ctx, first[1].ID, 10)
	must(t, err)
	all := append(first, rest...)
	var last int64
	for i := range all {
		if all[i].ID <= last {
			t.Errorf("audit entry ID %d after %d", all[i].ID, last)
		}
		last, all[i].ID = all[i].ID, 0
	}
	if diff := gocmp.Diff(want, all); diff != "" {
		t.Errorf("audit log in two pages (-want +got):\n%s", diff)
	}

	js := submit(t, st, job("p"), job("p"))
	must(t, st.AddEvents(ctx, []store.Event{
		{Job: js[0].ID, Time: 1, Kind: "submitted"},
		{Job: js[1].ID, Time: 1, Kind: "submitted"},
		{Job: js[0].ID, Time: 2, Kind: "started", Detail: "on n1"},
	}))
	must(t, st.AddEvents(ctx, []store.Event{{Job: js[0].ID, Time: 3, Kind: "ended", Detail: "exit 0"}}))
	must(t, st.AddEvents(ctx, nil))
	evs, err := st.Events(ctx, js[0].ID, 0, 2)
	must(t, err)
	if len(evs) == 2 {
		more, err := st.Events(ctx, js[0].ID, evs[1].ID, 10)
		must(t, err)
		evs = append(evs, more...)
	}
	for i := range evs {
		evs[i].ID = 0
	}
	wantEv := []store.Event{
		{Job: js[0].ID, Time: 1, Kind: "submitted"},
		{Job: js[0].ID, Time: 2, Kind: "started", Detail: "on n1"},
		{Job: js[0].ID, Time: 3, Kind: "ended", Detail: "exit 0"},
	}
	if diff := gocmp.Diff(wantEv, evs); diff != "" {
		t.Errorf("job %s's events in pages of 2 (-want +got):\n%s", js[0].ID, diff)
	}
	if evs, err := st.Events(ctx, "999", 0, 10); err != nil || len(evs) != 0 {
		t.Errorf("events of an unknown job = %+v, %v; want none", evs, err)
	}
}

func testSecret(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			var err error
			if got[i], err = st.Secret(ctx, "step"); err != nil {
				t.Errorf("secret: %v", err)
			}
		})
	}
	wg.Wait()
	if len(got[0]) != 32 {
		t.Fatalf("secret of %d bytes; want 32", len(got[0]))
	}
	for _, g := range got[1:] {
		if !bytes.Equal(g, got[0]) {
			t.Fatalf("racing callers got different secrets: %x and %x", got[0], g)
		}
	}
	other, err := st.Secret(ctx, "other")
	must(t, err)
	if bytes.Equal(other, got[0]) {
		t.Error("two names share one secret")
	}
	st.Close()
	again, err := open(t, true).Secret(ctx, "step")
	must(t, err)
	if !bytes.Equal(again, got[0]) {
		t.Error("the secret changed across a reopen")
	}
}
