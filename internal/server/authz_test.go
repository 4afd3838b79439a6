package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// The authorisation matrix: every API route × every role × own or other
// project (or own or another user's things), each cell asserted allowed or
// denied against a real server. The rows are keyed by the routes table
// itself, so a new route without a row fails the test.
//
// Who is who in the factory under test:
//
//	org ─┬─ own ── sub     mem: member of own; boss: manager of own
//	     └─ other          stranger: member of other
//
// officer, operator and admin hold their roles site-wide; nobody has a
// token and no role; anonymous sends no token. A role in own holds in sub
// too, so the sub column must always equal the own column.

// Roles of the matrix's columns.
const (
	asAnon     = "anonymous"
	asNobody   = "nobody"
	asMember   = "member"
	asManager  = "manager"
	asOfficer  = "officer"
	asOperator = "operator"
	asAdmin    = "admin"
)

var matrixRoles = []string{asAnon, asNobody, asMember, asManager, asOfficer, asOperator, asAdmin}

// authed is every role with a token.
var withToken = []string{asNobody, asMember, asManager, asOfficer, asOperator, asAdmin}

// scope says what a row's own and other columns mean.
type scope int

const (
	siteWide  scope = iota // one column: the route names no project or user
	inProject              // own, sub (below own) and other projects
	ofUser                 // the caller's own things, another user's
)

// outcome is one request's answer. seen, when set, decides a listing row:
// the listing answered, but did it show the target's item?
type outcome struct {
	status int
	body   string
	seen   *bool
}

func (o outcome) allowed() bool {
	if o.seen != nil {
		return o.status/100 == 2 && *o.seen
	}
	return o.status/100 == 2
}

type matrixRow struct {
	route      string // "METHOD path" as in apiRoutes
	scope      scope
	own, other []string // roles allowed; siteWide rows use own only
	// call makes the request as role on target ("own", "sub", "other" for
	// projects; "own", "other" for users), with fresh fixtures where the
	// request changes them.
	call func(m *matrix, role, target string) outcome
}

func TestAuthorisationMatrix(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	rows := matrixRows()
	byRoute := map[string]matrixRow{}
	for _, r := range rows {
		if _, dup := byRoute[r.route]; dup {
			t.Errorf("two matrix rows for %s", r.route)
		}
		byRoute[r.route] = r
	}
	var routes []string
	for _, rt := range m.srv.apiRoutes() {
		routes = append(routes, rt.method+" "+rt.path)
		if _, ok := byRoute[rt.method+" "+rt.path]; !ok {
			t.Errorf("route %s has no row in the authorisation matrix: add one to matrixRows", rt.method+" "+rt.path)
		}
	}
	for _, r := range rows {
		if !slices.Contains(routes, r.route) {
			t.Errorf("matrix row %s names no route; remove it", r.route)
		}
	}

	cells := 0
	for _, r := range rows {
		targets := map[scope][]string{siteWide: {"-"}, inProject: {"own", "sub", "other"}, ofUser: {"own", "other"}}[r.scope]
		for _, target := range targets {
			want := r.own
			if target == "other" {
				want = r.other
			}
			for _, role := range matrixRoles {
				cells++
				o := r.call(m, role, target)
				wantAllow := slices.Contains(want, role)
				cell := fmt.Sprintf("%s as %s on %s", r.route, role, target)
				if o.allowed() != wantAllow {
					t.Errorf("%s: allowed=%v, want %v (HTTP %d: %s)", cell, o.allowed(), wantAllow, o.status, o.body)
					continue
				}
				if wantAllow {
					continue
				}
				// A denial must look like one: 401 without a token, else 403
				// or 404 (what the caller may not see does not exist), or a
				// listing that leaves the target out.
				switch {
				case role == asAnon && o.status != http.StatusUnauthorized:
					t.Errorf("%s: HTTP %d without a token; want 401 (%s)", cell, o.status, o.body)
				case role != asAnon && o.seen == nil && o.status != http.StatusForbidden && o.status != http.StatusNotFound:
					t.Errorf("%s: denied with HTTP %d; want 403 or 404 (%s)", cell, o.status, o.body)
				}
			}
		}
	}
	t.Logf("%d routes, %d cells", len(rows), cells)
}

// matrixRows is the matrix. Keep it in the routes table's order.
func matrixRows() []matrixRow {
	everyone := append([]string{asAnon}, withToken...)
	seers := []string{asMember, asManager, asOfficer, asOperator, asAdmin} // see a project's jobs
	siteSeers := []string{asOfficer, asOperator, asAdmin}                  // see every project's
	actors := []string{asMember, asManager, asOperator, asAdmin}           // act on a project's jobs
	submitters := []string{asMember, asManager, asAdmin}
	ops := []string{asOperator, asAdmin}
	admins := []string{asAdmin}
	p := api.Prefix
	return append([]matrixRow{
		{"GET " + p + "/openapi.json", siteWide, everyone, nil, getPath(p + "/openapi.json")},
		{"GET " + p + "/whoami", siteWide, withToken, nil, getPath(p + "/whoami")},
		{"POST " + p + "/jobs", inProject, submitters, admins, func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/jobs", m.spec(target))
		}},
		{"GET " + p + "/jobs", inProject, seers, siteSeers, func(m *matrix, role, target string) outcome {
			o := m.do(role, "GET", p+"/jobs?id="+m.base[target], nil)
			return o.sees(func(b []byte) bool { return strings.Contains(string(b), `"id":"`+m.base[target]+`"`) })
		}},
		{"POST " + p + "/jobs/estimate", inProject, submitters, admins, func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/jobs/estimate", m.spec(target))
		}},
		{"GET " + p + "/jobs/{id}", inProject, seers, siteSeers, func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/jobs/"+m.base[target], nil)
		}},
		{"GET " + p + "/jobs/{id}/events", inProject, seers, siteSeers, func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/jobs/"+m.base[target]+"/events", nil)
		}},
		{"POST " + p + "/jobs/{id}/cancel", inProject, actors, ops, actOnJob("cancel", nil)},
		{"POST " + p + "/jobs/{id}/hold", inProject, actors, ops, actOnJob("hold", nil)},
		{"POST " + p + "/jobs/{id}/release", inProject, actors, ops, actOnJob("release", func(j *store.Job) { j.Held = true })},
		{"POST " + p + "/jobs/{id}/requeue", inProject, actors, ops, actOnJob("requeue", func(j *store.Job) {
			j.State, j.End, j.Reason = model.JobCancelled, time.Now().Unix(), "cancelled by the matrix"
		})},
		{"GET " + p + "/sites", siteWide, withToken, nil, getPath(p + "/sites")},
		{"PUT " + p + "/sites/{name}", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			name := m.fresh("site")
			return m.do(role, "PUT", p+"/sites/"+name, model.Site{Name: name, Country: "FR"})
		}},
		{"GET " + p + "/partitions", siteWide, withToken, nil, getPath(p + "/partitions")},
		{"PUT " + p + "/partitions/{name}", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			// The laptop's partition again, as it is: a partition without
			// nodes would trip the scheduler (see the report of this test's
			// commit), which is not what this row is about.
			return m.do(role, "PUT", p+"/partitions/h100", m.part)
		}},
		{"GET " + p + "/nodes", siteWide, withToken, nil, getPath(p + "/nodes")},
		{"GET " + p + "/nodes/{name}", siteWide, withToken, nil, getPath(p + "/nodes/spare")},
		{"PUT " + p + "/nodes/{name}", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			n := spareNode(m.fresh("node"))
			n.State = model.NodeDrain // keep the scheduler off it
			n.Reason = "declared by the matrix"
			return m.do(role, "PUT", p+"/nodes/"+n.Name, n)
		}},
		{"POST " + p + "/nodes/{name}/drain", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/nodes/spare/drain", api.NodeState{Reason: "matrix"})
		}},
		{"POST " + p + "/nodes/{name}/resume", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/nodes/spare/resume", nil)
		}},
		{"GET " + p + "/projects", inProject, seers, siteSeers, func(m *matrix, role, target string) outcome {
			o := m.do(role, "GET", p+"/projects", nil)
			return o.sees(func(b []byte) bool { return strings.Contains(string(b), `"name":"`+target+`"`) })
		}},
		{"PUT " + p + "/projects/{name}", inProject, []string{asManager, asOfficer, asAdmin}, []string{asOfficer, asAdmin}, func(m *matrix, role, target string) outcome {
			name := m.fresh("team")
			return m.do(role, "PUT", p+"/projects/"+name, model.Project{Name: name, Parent: target})
		}},
		{"GET " + p + "/projects/{name}/members", inProject, seers, siteSeers, func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/projects/"+target+"/members", nil)
		}},
		{"PUT " + p + "/projects/{name}/members/{user}", inProject, []string{asManager, asAdmin}, admins, func(m *matrix, role, target string) outcome {
			return m.do(role, "PUT", p+"/projects/"+target+"/members/"+m.fresh("user"), store.Member{Role: store.RoleMember})
		}},
		{"DELETE " + p + "/projects/{name}/members/{user}", inProject, []string{asManager, asAdmin}, admins, func(m *matrix, role, target string) outcome {
			user := m.fresh("user")
			m.addMember(target, user, store.RoleMember)
			return m.do(role, "DELETE", p+"/projects/"+target+"/members/"+user, nil)
		}},
		{"POST " + p + "/tokens", ofUser, withToken, admins, func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/tokens", api.TokenRequest{User: m.userOf(role, target), Name: "matrix"})
		}},
		{"GET " + p + "/tokens", ofUser, withToken, admins, func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/tokens?user="+m.userOf(role, target), nil)
		}},
		{"DELETE " + p + "/tokens/{id}", ofUser, withToken, admins, func(m *matrix, role, target string) outcome {
			tok, _, err := m.srv.IssueToken(context.Background(), cmpOr(m.userOf(role, target), "stranger"), "to delete", 0)
			if err != nil {
				m.t.Fatal(err)
			}
			return m.do(role, "DELETE", p+"/tokens/"+tok.ID, nil)
		}},
		{"GET " + p + "/audit", siteWide, admins, nil, getPath(p + "/audit")},
		{"GET " + p + "/scheduler", siteWide, withToken, nil, getPath(p + "/scheduler")},
		{"GET " + p + "/jobs/{id}/log", inProject, actors, ops, func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/jobs/"+m.running[target]+"/log", nil)
		}},
		{"POST " + p + "/agents/{node}/register", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/agents/spare/register", api.Registration{Node: spareNode("spare"), Address: "127.0.0.1"})
		}},
		{"GET " + p + "/agents/{node}/orders", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			return m.do(role, "GET", p+"/agents/spare/orders", nil)
		}},
		{"POST " + p + "/agents/{node}/report", siteWide, ops, nil, func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/agents/spare/report", api.Report{})
		}},
	}, grantMatrixRows()...) // the grants API's rows (grants_test.go)
}

func getPath(path string) func(m *matrix, role, target string) outcome {
	return func(m *matrix, role, _ string) outcome { return m.do(role, "GET", path, nil) }
}

// jobAct posts action on a fresh job of the target project, owned by mem
// in own and sub and by stranger in other, prepared by setup.
func actOnJob(action string, setup func(*store.Job)) func(m *matrix, role, target string) outcome {
	return func(m *matrix, role, target string) outcome {
		id := m.job(target, setup)
		return m.do(role, "POST", api.Prefix+"/jobs/"+id+"/"+action, nil)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// matrix is the factory the matrix runs against.
type matrix struct {
	t       *testing.T
	srv     *Server
	st      store.Store
	url     string
	hc      *http.Client
	tokens  map[string]string // role → secret
	users   map[string]string // role → user name
	base    map[string]string // project → a pending job, for reads
	running map[string]string // project → a running job with logs
	part    model.Partition   // the laptop's partition
	seq     int
}

func newMatrix(t *testing.T) *matrix {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "usine.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Resolve("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Seed(ctx, st, c); err != nil {
		t.Fatal(err)
	}
	srv := New(st, Config{})
	hs := httptest.NewServer(srv.Handler())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		hs.Close()
		<-done
		st.Close()
	})
	m := &matrix{t: t, srv: srv, st: st, url: hs.URL, hc: hs.Client(),
		tokens: map[string]string{}, users: map[string]string{}, base: map[string]string{}, running: map[string]string{}}

	for _, pr := range []model.Project{{Name: "org"}, {Name: "own", Parent: "org"}, {Name: "sub", Parent: "own"}, {Name: "other", Parent: "org"}} {
		pr.Shares = 1
		if err := st.PutProject(ctx, pr); err != nil {
			t.Fatal(err)
		}
	}
	for role, mb := range map[string]store.Member{
		asNobody:   {User: "nobody"},
		asMember:   {User: "mem", Project: "own", Role: store.RoleMember},
		asManager:  {User: "boss", Project: "own", Role: store.RoleManager},
		asOfficer:  {User: "funder", Role: store.RoleOfficer},
		asOperator: {User: "op", Role: store.RoleOperator},
		asAdmin:    {User: "root", Role: store.RoleAdmin},
		"":         {User: "stranger", Project: "other", Role: store.RoleMember},
	} {
		if mb.Role != "" {
			m.addMember(mb.Project, mb.User, mb.Role)
		}
		if role == "" {
			continue
		}
		_, secret, err := srv.IssueToken(ctx, mb.User, "matrix", 0)
		if err != nil {
			t.Fatal(err)
		}
		m.tokens[role], m.users[role] = secret, mb.User
	}

	parts, err := st.Partitions(ctx)
	if err != nil || len(parts) != 1 {
		t.Fatalf("the laptop's partitions: %v, %v", parts, err)
	}
	m.part = parts[0]
	// A node for the node and agent rows, and one whose agent serves logs.
	// The node's agent gets a log ticket, never the caller's token.
	logs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), api.TicketScheme) {
			http.Error(w, "the log proxy sent no ticket", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "hello\n")
	}))
	t.Cleanup(logs.Close)
	for _, n := range []store.Node{{Node: spareNode("spare")}, {Node: spareNode("logs"), AgentURL: logs.URL}} {
		n.State, n.Reason = model.NodeDrain, "kept for the matrix"
		if _, err := st.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, pr := range []string{"own", "sub", "other"} {
		m.base[pr] = m.job(pr, nil)
		m.running[pr] = m.job(pr, func(j *store.Job) {
			j.State, j.Start, j.Epoch = model.JobRunning, time.Now().Unix(), 1
			j.Alloc = []store.Alloc{{Node: "logs", Accelerators: 1}}
		})
	}
	srv.auth.forget()
	return m
}

// spareNode is a node of the laptop's partition, outside its blocks.
func spareNode(name string) model.Node {
	return model.Node{Name: name, Site: "local", Partition: "h100", Block: "matrix", Group: "matrix",
		Model: "H100", Accelerators: 8, CPUs: 16, MemoryMiB: 65536, State: model.NodeUp}
}

func (m *matrix) fresh(prefix string) string {
	m.seq++
	return fmt.Sprintf("%s%d", prefix, m.seq)
}

func (m *matrix) addMember(project, user string, role store.Role) {
	m.t.Helper()
	if err := m.st.PutMember(context.Background(), store.Member{Project: project, User: user, Role: role}); err != nil {
		m.t.Fatal(err)
	}
	m.srv.auth.forget()
}

// userOf is whose things a user-scoped cell touches.
func (m *matrix) userOf(role, target string) string {
	if target == "other" {
		return "stranger"
	}
	return m.users[role]
}

// spec is a job that never starts on its own: it begins in a day.
func (m *matrix) spec(project string) api.JobSpec {
	return api.JobSpec{Project: project, Accelerators: 1, Limit: 600, Begin: time.Now().Add(24 * time.Hour).Unix(),
		Task: model.Task{Script: "#!/bin/sh\ntrue\n"}}
}

// job stores a pending job of project directly, then lets setup change it.
func (m *matrix) job(project string, setup func(*store.Job)) string {
	m.t.Helper()
	ctx := context.Background()
	sp := m.spec(project)
	user := "mem"
	if project == "other" {
		user = "stranger"
	}
	j := store.Job{Job: model.Job{ID: "new", Name: "matrix", Project: project, User: user, Accelerators: sp.Accelerators,
		Limit: sp.Limit, Begin: sp.Begin, Submit: time.Now().Unix()}, Task: sp.Task}
	out, err := m.st.SubmitJobs(ctx, []store.Job{j})
	if err != nil {
		m.t.Fatal(err)
	}
	id := out[0].ID
	if setup != nil {
		if _, err := m.st.UpdateJob(ctx, id, func(j *store.Job) error { setup(j); return nil }); err != nil {
			m.t.Fatal(err)
		}
	}
	return id
}

// do sends one request as role and reads the answer. A stream (the
// agents' orders) is read no further than its status.
func (m *matrix) do(role, method, path string, body any) outcome {
	m.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			m.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.url+path, rd)
	if err != nil {
		m.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := m.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s as %s: %v", method, path, role, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		return outcome{status: resp.StatusCode, body: "(a stream)"}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return outcome{status: resp.StatusCode, body: string(b)}
}

// sees turns a listing's answer into a cell: allowed when it shows the
// target.
func (o outcome) sees(shows func([]byte) bool) outcome {
	seen := o.status == http.StatusOK && shows([]byte(o.body))
	o.seen = &seen
	if len(o.body) > 300 {
		o.body = o.body[:300] + "…"
	}
	return o
}

// TestProjectsCannotBeTakenOver: a manager may arrange the projects below
// the one they manage, and nothing else; above all, not move another
// project below their own, which would give them authority over it.
func TestProjectsCannotBeTakenOver(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	m.addMember("org", "chief", store.RoleManager)
	_, chief, err := m.srv.IssueToken(context.Background(), "chief", "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	m.tokens["chief"] = chief
	p := api.Prefix + "/projects/"
	for _, tc := range []struct {
		name, who string
		put       model.Project
		want      int
	}{
		{"a manager may not move another project below theirs", asManager, model.Project{Name: "other", Parent: "own"}, http.StatusForbidden},
		{"a manager may not move a top-level project below theirs", asManager, model.Project{Name: "org", Parent: "own"}, http.StatusForbidden},
		{"a manager may not lift their own project to the top", asManager, model.Project{Name: "own"}, http.StatusForbidden},
		{"a manager may not change their own project's shares among its siblings", asManager, model.Project{Name: "own", Parent: "org", Shares: 9}, http.StatusForbidden},
		{"a manager may not move a project of theirs below another's", asManager, model.Project{Name: "sub", Parent: "other"}, http.StatusForbidden},
		{"a manager may not take a project over by naming it again", asManager, model.Project{Name: "other", Parent: "sub"}, http.StatusForbidden},
		{"a member may not create projects below theirs", asMember, model.Project{Name: "side", Parent: "own"}, http.StatusForbidden},
		{"a manager may change a project below theirs", asManager, model.Project{Name: "sub", Parent: "own", Shares: 5}, http.StatusOK},
		{"a manager higher up may move projects between theirs", "chief", model.Project{Name: "sub", Parent: "other"}, http.StatusOK},
		{"an officer may move any project", asOfficer, model.Project{Name: "sub", Parent: "own"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := m.srv.parents(context.Background())
			o := m.do(tc.who, "PUT", p+tc.put.Name, tc.put)
			if o.status != tc.want {
				t.Fatalf("PUT %s %+v as %s: HTTP %d (%s); want %d", p+tc.put.Name, tc.put, tc.who, o.status, o.body, tc.want)
			}
			after, _ := m.srv.parents(context.Background())
			if tc.want != http.StatusOK && after[tc.put.Name] != before[tc.put.Name] {
				t.Errorf("a refused PUT moved %s from %q to %q", tc.put.Name, before[tc.put.Name], after[tc.put.Name])
			}
		})
	}
}

// TestRolesAreTakenOnlyByWhoMayGiveThem: replacing someone's role takes
// the old one away, which needs the authority to give it.
func TestRolesAreTakenOnlyByWhoMayGiveThem(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	m.addMember("own", "watcher", store.RoleOfficer) // only an admin gives that
	path := api.Prefix + "/projects/own/members/watcher"
	if o := m.do(asManager, "PUT", path, store.Member{Role: store.RoleMember}); o.status != http.StatusForbidden {
		t.Errorf("a manager replaced an officer's role in their project: HTTP %d (%s); want 403", o.status, o.body)
	}
	if o := m.do(asManager, "DELETE", path, nil); o.status != http.StatusForbidden {
		t.Errorf("a manager removed an officer from their project: HTTP %d (%s); want 403", o.status, o.body)
	}
	if o := m.do(asAdmin, "PUT", path, store.Member{Role: store.RoleMember}); o.status != http.StatusOK {
		t.Errorf("an admin could not change a role: HTTP %d (%s)", o.status, o.body)
	}
	if o := m.do(asManager, "PUT", path, store.Member{Role: store.RoleManager}); o.status != http.StatusOK {
		t.Errorf("a manager could not promote a member of their project: HTTP %d (%s)", o.status, o.body)
	}
}

// TestMembersActOnlyOnTheirOwnJobs: a member sees a colleague's job in
// their project but may not read its output or cancel it; the project's
// manager may.
func TestMembersActOnlyOnTheirOwnJobs(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	m.addMember("own", "mate", store.RoleMember)
	id := m.job("own", func(j *store.Job) { j.User = "mate" })
	if o := m.do(asMember, "GET", api.Prefix+"/jobs/"+id, nil); o.status != http.StatusOK {
		t.Errorf("a member could not see a colleague's job: HTTP %d (%s)", o.status, o.body)
	}
	if o := m.do(asMember, "GET", api.Prefix+"/jobs/"+id+"/log", nil); o.status != http.StatusForbidden {
		t.Errorf("a member read a colleague's job's output: HTTP %d (%s); want 403", o.status, o.body)
	}
	if o := m.do(asMember, "POST", api.Prefix+"/jobs/"+id+"/cancel", nil); o.status != http.StatusForbidden {
		t.Errorf("a member cancelled a colleague's job: HTTP %d (%s); want 403", o.status, o.body)
	}
	if j, _ := m.st.Job(context.Background(), id); j.State != model.JobPending {
		t.Errorf("after a refused cancel the job is %s; want pending", j.State)
	}
	if o := m.do(asManager, "POST", api.Prefix+"/jobs/"+id+"/cancel", nil); o.status != http.StatusOK {
		t.Errorf("the manager could not cancel a job of their project: HTTP %d (%s)", o.status, o.body)
	}
}

// TestDependenciesSeeOnlyVisibleJobs: a dependency on another project's
// job is refused as one on a job that does not exist, so that submitting
// cannot tell a hidden job from a missing one; one on a job of the
// caller's own project is taken.
func TestDependenciesSeeOnlyVisibleJobs(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	withDep := func(id string) api.JobSpec {
		sp := m.spec("own")
		sp.Deps = []model.Dependency{{Type: model.AfterOK, JobID: id}}
		return sp
	}
	hidden := m.do(asMember, "POST", api.Prefix+"/jobs", withDep(m.base["other"]))
	missing := m.do(asMember, "POST", api.Prefix+"/jobs", withDep("999999"))
	if hidden.status != http.StatusBadRequest || !strings.Contains(hidden.body, "which does not exist") {
		t.Errorf("a dependency on another project's job: HTTP %d (%s); want 400, as for a job that does not exist", hidden.status, hidden.body)
	}
	if missing.status != hidden.status || strings.Replace(missing.body, "999999", m.base["other"], 1) != hidden.body {
		t.Errorf("a hidden job and a missing one are told apart:\n hidden:  %d %s\n missing: %d %s", hidden.status, hidden.body, missing.status, missing.body)
	}
	if o := m.do(asMember, "POST", api.Prefix+"/jobs", withDep(m.base["own"])); o.status != http.StatusCreated {
		t.Errorf("a dependency on a job of the member's own project: HTTP %d (%s); want 201", o.status, o.body)
	}
	if o := m.do(asAdmin, "POST", api.Prefix+"/jobs", withDep(m.base["other"])); o.status != http.StatusCreated {
		t.Errorf("an admin's dependency on any job: HTTP %d (%s); want 201", o.status, o.body)
	}
}
