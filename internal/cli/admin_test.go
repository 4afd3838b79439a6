package cli

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// deadServer is the URL of a port nobody listens on any more.
func deadServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

func TestExitCodesScriptsCanRelyOn(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	bob := f.newUser("bob", "default", "member")
	adminJob := f.submit(f.AdminToken, "--gpus", "1", "--", "true")[0]
	bobJob := f.submit(bob, "--gpus", "1", "--", "true")[0] // bob's only project is the default
	ended := f.submit(f.AdminToken, "--hold", "--", "true")[0]
	f.admin("cancel", ended).ok(t)

	tests := []struct {
		name     string
		token    string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"a job that does not exist", f.AdminToken, []string{"show", "999999"}, ExitNotFound, "job 999999 not found"},
		{"a member may not cancel another's job", bob, []string{"cancel", adminJob}, ExitDenied, "bob may not cancel"},
		{"a member may not drain nodes", bob, []string{"drain", "node1", "--reason", "x"}, ExitDenied, "operator"},
		{"a member may not make tokens for others", bob, []string{"token", "create", "--user", "carol"}, ExitDenied, "only admins"},
		{"a member may not create projects", bob, []string{"projects", "create", "side"}, ExitDenied, "may not create"},
		{"an unknown token", "usine_nope", []string{"queue"}, ExitDenied, "unknown API token"},
		{"cancel an ended job", f.AdminToken, []string{"cancel", ended}, ExitConflict, "already ended"},
		{"release a job that is not held", f.AdminToken, []string{"release", bobJob}, ExitConflict, "only a held pending job"},
		{"one failure among several gives its code", f.AdminToken, []string{"cancel", "999998", "999999"}, ExitNotFound, "2 of 2 failed"},
		{"failures that disagree give 1", bob, []string{"cancel", adminJob, "999999"}, ExitError, "2 of 2 failed"},
		{"an unknown flag", f.AdminToken, []string{"queue", "--colour"}, ExitUsage, "unknown flag"},
		{"an unknown output format", f.AdminToken, []string{"nodes", "-o", "yaml"}, ExitUsage, "use table, wide or json"},
		{"an unknown state", f.AdminToken, []string{"queue", "--state", "sleeping"}, ExitUsage, "--state"},
		{"a partition the server does not know", f.AdminToken, []string{"submit", "--partition", "tpu", "--", "true"}, ExitUsage, `partition "tpu" does not exist`},
		{"a project bob is not in", bob, []string{"submit", "-p", "nope", "--", "true"}, ExitUsage, "does not exist"},
		{"drain without a reason", f.AdminToken, []string{"drain", "node1"}, ExitUsage, "--reason"},
		{"no job to act on", f.AdminToken, []string{"hold"}, ExitUsage, "give job IDs"},
	}
	for _, tc := range tests {
		r := f.usine(tc.token, tc.args...)
		if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
			t.Errorf("%s: exit %d, %q; want %d and %q", tc.name, r.code, r.stderr, tc.wantCode, tc.wantErr)
		}
	}

	// Bob sees his project's jobs, acts on his own, and nobody else's.
	var list api.Jobs
	decodeJSON(t, f.usine(bob, "queue", "-o", "json").ok(t), &list)
	if len(list.Items) != 2 {
		t.Errorf("bob sees %d jobs of project default; want 2", len(list.Items))
	}
	decodeJSON(t, f.usine(bob, "queue", "--me", "-o", "json").ok(t), &list)
	if len(list.Items) != 1 || list.Items[0].ID != bobJob {
		t.Errorf("bob's queue --me: %+v", list.Items)
	}
	f.usine(bob, "cancel", bobJob).ok(t)

	r := runCLI(t, "queue", "--server", deadServer(t), "--token", "x")
	if r.code != ExitUnreachable || !strings.Contains(r.stderr, "cannot reach the usine server") {
		t.Errorf("a server that is not there: exit %d, %q; want %d", r.code, r.stderr, ExitUnreachable)
	}
}

func TestNodesDrainResume(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	out := f.admin("nodes").ok(t)
	want := `NAME   PARTITION  STATE  ACCEL  USED/TOTAL  BLOCK  LIMITS  JOBS  REASON
node1  h100       idle   H100   0/8         b0001  -       -     -
node2  h100       idle   H100   0/8         b0001  -       -     -
node3  h100       idle   H100   0/8         b0002  -       -     -
node4  h100       idle   H100   0/8         b0002  -       -     -
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("nodes of an idle laptop (-want +got):\n%s", diff)
	}
	if out := f.admin("drain", "node[1-2]", "--reason", "replace GPU 3").ok(t); out != "node node1 drained\nnode node2 drained\n" {
		t.Errorf("drain printed %q", out)
	}
	id := f.submit(f.AdminToken, "-N", "1", "--gpus-per-node", "8", "--", "true")[0]
	j := f.wait(id, running)
	if n := j.Alloc[0].Node; n != "node3" && n != "node4" {
		t.Errorf("a job started on %s, which is drained", n)
	}
	var nodes api.Nodes
	decodeJSON(t, f.admin("nodes", "--state", "drained", "-o", "json").ok(t), &nodes)
	var got []string
	for _, n := range nodes.Items {
		got = append(got, n.Name+":"+string(n.State)+":"+n.Reason)
	}
	if diff := cmp.Diff([]string{"node1:drain:replace GPU 3", "node2:drain:replace GPU 3"}, got); diff != "" {
		t.Errorf("nodes --state drained (-want +got):\n%s", diff)
	}
	if out := f.admin("nodes", "--state", "allocated", "--no-headers").ok(t); strings.Count(out, "\n") != 1 || !strings.Contains(out, id) {
		t.Errorf("nodes --state allocated: want the one node that runs job %s:\n%s", id, out)
	}
	if r := f.admin("drain", "node9", "--reason", "x"); r.code != ExitNotFound {
		t.Errorf("drain an unknown node: exit %d; want %d", r.code, ExitNotFound)
	}
	f.admin("resume", "node1", "node2").ok(t)
	if out := f.admin("nodes", "--state", "drain,down").ok(t); strings.Count(out, "\n") != 1 {
		t.Errorf("nodes still drained after resume:\n%s", out)
	}
	if out := f.admin("partitions").ok(t); !strings.Contains(out, "h100  local  H100   up     4/4              8/32") {
		t.Errorf("partitions:\n%s", out)
	}
}

func TestProjectsMembersAndTokens(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	if out := f.admin("projects", "create", "uni", "--shares", "10").ok(t); out != "project uni created (parent -, 10 shares)\n" {
		t.Errorf("projects create printed %q", out)
	}
	f.admin("projects", "create", "lab", "--parent", "uni").ok(t)
	if r := f.admin("projects", "create", "lab"); r.code != ExitConflict {
		t.Errorf("create an existing project: exit %d; want %d", r.code, ExitConflict)
	}
	f.admin("projects", "set", "lab", "--shares", "3").ok(t)
	if r := f.admin("projects", "set", "nope", "--shares", "3"); r.code != ExitNotFound {
		t.Errorf("set a project that does not exist: exit %d; want %d", r.code, ExitNotFound)
	}
	var ps api.Projects
	decodeJSON(t, f.admin("projects", "-o", "json").ok(t), &ps)
	want := []model.Project{{Name: "default", Shares: 1}, {Name: "lab", Parent: "uni", Shares: 3}, {Name: "uni", Shares: 10}}
	if diff := cmp.Diff(want, ps.Items); diff != "" {
		t.Errorf("projects (-want +got):\n%s", diff)
	}

	// A manager of uni manages lab's members too.
	carol := f.newUser("carol", "uni", "manager")
	if out := f.usine(carol, "projects", "add-member", "lab", "dave").ok(t); out != "dave is member in lab\n" {
		t.Errorf("add-member printed %q", out)
	}
	if r := f.usine(carol, "projects", "add-member", "-", "dave", "--role", "operator"); r.code != ExitDenied {
		t.Errorf("a manager gives a site-wide role: exit %d; want %d", r.code, ExitDenied)
	}
	var ms api.Members
	decodeJSON(t, f.usine(carol, "projects", "members", "lab", "-o", "json").ok(t), &ms)
	if diff := cmp.Diff([]store.Member{{Project: "lab", User: "dave", Role: "member"}}, ms.Items); diff != "" {
		t.Errorf("members of lab (-want +got):\n%s", diff)
	}
	f.usine(carol, "projects", "remove-member", "lab", "dave").ok(t)
	if r := f.usine(carol, "projects", "remove-member", "lab", "dave"); r.code != ExitNotFound {
		t.Errorf("remove a member twice: exit %d; want %d", r.code, ExitNotFound)
	}
	if r := f.admin("projects", "add-member", "lab", "erin", "--role", "boss"); r.code != ExitUsage {
		t.Errorf("an unknown role: exit %d; want %d", r.code, ExitUsage)
	}

	// Tokens: carol makes one, lists it, deletes it; it stops working.
	r := f.usine(carol, "token", "create", "--name", "laptop", "--expires", "30d")
	second := strings.TrimSpace(r.ok(t))
	if !strings.HasPrefix(second, "usine_") || strings.Contains(second, "\n") || !strings.Contains(r.stderr, "shown only once") {
		t.Errorf("token create: stdout %q, stderr %q; want the secret alone, and a warning", r.stdout, r.stderr)
	}
	f.usine(second, "whoami").ok(t)
	var ts api.Tokens
	decodeJSON(t, f.usine(carol, "token", "list", "-o", "json").ok(t), &ts)
	var id string
	for _, tk := range ts.Items {
		if tk.Name == "laptop" {
			id = tk.ID
			if tk.Expires == 0 {
				t.Errorf("token %s does not expire; want in 30 days", tk.ID)
			}
		}
	}
	if len(ts.Items) != 2 || id == "" {
		t.Fatalf("carol's tokens: %+v", ts.Items)
	}
	if r := f.usine(carol, "token", "list", "--user", "admin"); r.code != ExitDenied {
		t.Errorf("list another's tokens: exit %d; want %d", r.code, ExitDenied)
	}
	if out := f.usine(carol, "token", "delete", id).ok(t); out != "token "+id+" deleted\n" {
		t.Errorf("token delete printed %q", out)
	}
	if r := f.usine(second, "whoami"); r.code != ExitDenied {
		t.Errorf("a deleted token: exit %d; want %d", r.code, ExitDenied)
	}
	if r := f.usine(carol, "token", "create", "--expires", "soon"); r.code != ExitUsage {
		t.Errorf("a bad --expires: exit %d; want %d", r.code, ExitUsage)
	}
	who := f.usine(carol, "whoami").ok(t)
	if !strings.HasPrefix(who, "carol\n") || !strings.Contains(who, "manager  uni") {
		t.Errorf("whoami:\n%s", who)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := runCLI(t, "completion", shell).ok(t); !strings.Contains(out, "usine") || len(out) < 1000 {
			t.Errorf("completion %s printed %d bytes", shell, len(out))
		}
	}
	id := f.submit(f.AdminToken, "-J", "train", "--hold", "--", "true")[0]
	complete := func(args ...string) string {
		t.Helper()
		return runCLI(t, slices.Concat([]string{"__complete", args[0], "--server", f.URL, "--token", f.AdminToken}, args[1:])...).ok(t)
	}
	out := complete("cancel", "")
	if !strings.Contains(out, id+"\ttrain pending (admin)\n") {
		t.Errorf("job IDs do not complete:\n%s", out)
	}
	out = complete("drain", "node")
	for _, n := range []string{"node1\th100 idle", "node4\th100 idle"} {
		if !strings.Contains(out, n) {
			t.Errorf("node names do not complete (%q):\n%s", n, out)
		}
	}
	out = complete("submit", "-p", "")
	if !strings.Contains(out, "default\n") {
		t.Errorf("projects do not complete:\n%s", out)
	}
}

// What the agents registered shows: whether each node holds jobs to their
// CPUs and memory, why not, and how it reads power.
func TestNodesShowJobLimitsAndPower(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	cl := f.Client(f.AdminToken)
	const why = "controllers cpu and memory are not delegated to our cgroup /x; under systemd, set Delegate=yes on the agent's unit"
	for _, r := range []struct {
		node   string
		limits *store.NodeLimits
		power  string
	}{
		{"node1", &store.NodeLimits{Enforced: true}, "nvidia-smi"},
		{"node2", &store.NodeLimits{Reason: why}, "emulated"},
		{"node3", &store.NodeLimits{Reason: why}, ""},
	} {
		reg := api.Registration{Node: model.Node{Name: r.node, Accelerators: 8, Model: "H100", CPUs: 16, MemoryMiB: 65536}, Limits: r.limits, Power: r.power}
		if err := cl.Do(context.Background(), "POST", api.Prefix+"/agents/"+r.node+"/register", reg, nil); err != nil {
			t.Fatal(err)
		}
	}
	res := f.admin("nodes")
	var limits []string
	for _, line := range strings.Split(strings.TrimSpace(res.ok(t)), "\n")[1:] {
		fields := strings.Fields(line)
		limits = append(limits, fields[0]+":"+fields[6])
	}
	if diff := cmp.Diff([]string{"node1:cgroup", "node2:none", "node3:none", "node4:-"}, limits); diff != "" {
		t.Errorf("LIMITS column (-want +got):\n%s", diff)
	}
	if want := "no CPU and memory limits on node[2-3]: " + why + "\n"; res.stderr != want {
		t.Errorf("stderr %q; want %q", res.stderr, want)
	}
	wide := f.admin("nodes", "-o", "wide", "--no-headers").ok(t)
	var power []string
	for _, line := range strings.Split(strings.TrimSpace(wide), "\n") {
		fields := strings.Fields(line)
		power = append(power, fields[0]+":"+fields[len(fields)-1])
	}
	if diff := cmp.Diff([]string{"node1:nvidia-smi", "node2:emulated", "node3:-", "node4:-"}, power); diff != "" {
		t.Errorf("POWER column of -o wide (-want +got):\n%s", diff)
	}
	var nodes api.Nodes
	decodeJSON(t, f.admin("nodes", "node2", "-o", "json").ok(t), &nodes)
	if len(nodes.Items) != 1 || nodes.Items[0].Limits == nil || nodes.Items[0].Limits.Enforced || nodes.Items[0].Limits.Reason != why || nodes.Items[0].Power != "emulated" {
		t.Errorf("node2 as JSON: %+v; want limits not enforced, with the reason, and power emulated", nodes.Items)
	}
}
