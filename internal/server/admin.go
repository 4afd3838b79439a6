package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// requireGlobal fails unless the caller holds one of roles site-wide.
func requireGlobal(r *http.Request, what string, roles ...store.Role) error {
	p := who(r.Context())
	if p.global(append(roles, store.RoleAdmin)...) {
		return nil
	}
	return forbidden("%s may not %s: it needs the %s role", p.User, what, roles[0])
}

// decodeNamed reads the body of a named object into v and settles its
// name, at *name, with the {name} path value: the path names it, and a
// body that names it must name it the same.
func decodeNamed(r *http.Request, v any, name *string) error {
	if err := decode(r, v); err != nil {
		return err
	}
	path := r.PathValue("name")
	if err := checkName("name", path, true); err != nil {
		return err
	}
	if *name != "" && *name != path {
		return invalid("name", "the body names %q but the path %q; they must agree", *name, path)
	}
	*name = path
	return nil
}

func (s *Server) listSites(w http.ResponseWriter, r *http.Request) error {
	v, err := s.store.Sites(r.Context())
	writeList(w, v, err)
	return err
}

func (s *Server) putSite(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "declare sites", store.RoleOperator); err != nil {
		return err
	}
	var v model.Site
	if err := decodeNamed(r, &v, &v.Name); err != nil {
		return err
	}
	if err := checkName("country", v.Country, false); err != nil {
		return err
	}
	if err := s.store.PutSite(r.Context(), v); err != nil {
		return fmt.Errorf("put site %s: %w", v.Name, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listPartitions(w http.ResponseWriter, r *http.Request) error {
	v, err := s.store.Partitions(r.Context())
	writeList(w, v, err)
	return err
}

func (s *Server) putPartition(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "declare partitions", store.RoleOperator); err != nil {
		return err
	}
	var v model.Partition
	if err := decodeNamed(r, &v, &v.Name); err != nil {
		return err
	}
	for _, c := range []struct{ f, v string }{{"site", v.Site}, {"model", v.Model}} {
		if err := checkName(c.f, c.v, true); err != nil {
			return err
		}
	}
	if err := s.store.PutPartition(r.Context(), v); err != nil {
		return fmt.Errorf("put partition %s: %w", v.Name, err)
	}
	s.loop.NodesChanged()
	writeJSON(w, http.StatusOK, v)
	return nil
}

// writeList answers {"items": v}, with [] rather than null.
func writeList[T any](w http.ResponseWriter, v []T, err error) {
	if err != nil {
		return
	}
	if v == nil {
		v = []T{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": v})
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	nodes, err := s.store.Nodes(r.Context())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	use := s.loop.NodeUse()
	out := api.Nodes{Items: make([]api.NodeView, len(nodes))}
	for i, n := range nodes {
		u := use[n.Name]
		out.Items[i] = api.NodeView{Node: n, Jobs: u.jobs, Allocated: u.accelerators}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) error {
	n, err := s.store.Node(r.Context(), r.PathValue("name"))
	if isNotFound(err) {
		return fail(http.StatusNotFound, api.CodeNotFound, "name", "node %s not found", r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	u := s.loop.NodeUse()[n.Name]
	writeJSON(w, http.StatusOK, api.NodeView{Node: n, Jobs: u.jobs, Allocated: u.accelerators})
	return nil
}

func (s *Server) putNode(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "declare nodes", store.RoleOperator); err != nil {
		return err
	}
	var v model.Node
	if err := decodeNamed(r, &v, &v.Name); err != nil {
		return err
	}
	if v.State == "" {
		v.State = model.NodeUp
	}
	if err := v.Validate(); err != nil {
		return err
	}
	n, err := s.store.PutNode(r.Context(), store.Node{Node: v})
	if err != nil {
		return fmt.Errorf("put node %s: %w", v.Name, err)
	}
	s.loop.NodesChanged()
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) error {
	var body api.NodeState
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkText("reason", body.Reason, 1024); err != nil {
		return err
	}
	if body.Reason == "" {
		return invalid("reason", "say why the node is drained, e.g. {\"reason\": \"replace GPU 3\"}")
	}
	return s.setNodeState(w, r, model.NodeDrain, body.Reason)
}

func (s *Server) resumeNode(w http.ResponseWriter, r *http.Request) error {
	return s.setNodeState(w, r, model.NodeUp, "")
}

func (s *Server) setNodeState(w http.ResponseWriter, r *http.Request, st model.NodeState, reason string) error {
	if err := requireGlobal(r, "drain or resume nodes", store.RoleOperator); err != nil {
		return err
	}
	name := r.PathValue("name")
	n, err := s.store.UpdateNode(r.Context(), name, func(n *store.Node) error {
		n.State, n.Reason = st, reason
		return nil
	})
	if isNotFound(err) {
		return fail(http.StatusNotFound, api.CodeNotFound, "name", "node %s not found; usine nodes lists them", name)
	}
	if err != nil {
		return fmt.Errorf("set node %s %s: %w", name, st, err)
	}
	s.loop.NodesChanged()
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	all, err := s.store.Projects(r.Context())
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	if vis := who(r.Context()).visibleProjects(all); vis != nil {
		all = slices.DeleteFunc(all, func(p model.Project) bool { return !slices.Contains(vis, p.Name) })
	}
	writeJSON(w, http.StatusOK, api.Projects{Items: nonNil(all)})
	return nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// putProject creates or changes a project: admins and officers anywhere,
// managers below the projects they manage. Changing an existing project
// needs that authority where it is now as well as where it goes: without
// the first, a manager could move someone else's project below their own
// and so take it over.
func (s *Server) putProject(w http.ResponseWriter, r *http.Request) error {
	var v model.Project
	if err := decodeNamed(r, &v, &v.Name); err != nil {
		return err
	}
	if err := checkName("parent", v.Parent, false); err != nil {
		return err
	}
	if v.Shares < 0 {
		return invalid("shares", "shares is %d; give 0 or more", v.Shares)
	}
	if v.Shares == 0 {
		v.Shares = 1
	}
	// The tree as the store has it now, not as the principal cached it: an
	// authority check on a stale tree could let a move through.
	parents, err := s.parents(r.Context())
	if err != nil {
		return err
	}
	p := *who(r.Context())
	p.parents = parents
	// mayPlace reports whether p may create or keep a project below parent.
	mayPlace := func(parent string) bool {
		return p.global(store.RoleAdmin, store.RoleOfficer) || (parent != "" && p.in(parent, store.RoleManager))
	}
	if !mayPlace(v.Parent) {
		return forbidden("%s may not create or change project %s %s: that needs %s", p.User, v.Name, where(v.Parent), needs(v.Parent))
	}
	if cur, exists := parents[v.Name]; exists && cur != v.Parent && !mayPlace(cur) {
		return forbidden("%s may not create or change project %s: it sits %s, and moving it from there needs %s", p.User, v.Name, where(cur), needs(cur))
	}
	if v.Parent != "" {
		if _, ok := parents[v.Parent]; !ok {
			return invalid("parent", "parent project %q does not exist", v.Parent)
		}
		for q, n := v.Parent, 0; q != "" && n < 64; q, n = parents[q], n+1 {
			if q == v.Name {
				return invalid("parent", "project %s cannot be below itself", v.Name)
			}
		}
	}
	defer s.auth.forget()
	if err := s.store.PutProject(r.Context(), v); err != nil {
		return fmt.Errorf("put project %s: %w", v.Name, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// where and needs say, in messages, where a project sits in the tree and
// who may place projects there.
func where(parent string) string {
	if parent == "" {
		return "at the top level"
	}
	return "below " + parent
}

func needs(parent string) string {
	if parent == "" {
		return "an admin or an officer"
	}
	return "an admin, an officer or a manager of " + parent
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p := who(r.Context())
	if _, ok := p.parents[name]; !ok {
		return fail(http.StatusNotFound, api.CodeNotFound, "name", "project %s not found", name)
	}
	if !p.global(seeAll...) && !p.in(name, store.RoleMember, store.RoleManager) {
		return fail(http.StatusNotFound, api.CodeNotFound, "name", "project %s not found", name)
	}
	ms, err := s.store.Members(r.Context(), name, "")
	if err != nil {
		return fmt.Errorf("members of %s: %w", name, err)
	}
	writeJSON(w, http.StatusOK, api.Members{Items: nonNil(ms)})
	return nil
}

// mayGrant reports whether p may give or take role in project: managers
// handle members and managers of their projects; admins everything.
func mayGrant(p *principal, project string, role store.Role) bool {
	if p.global(store.RoleAdmin) {
		return true
	}
	return (role == store.RoleMember || role == store.RoleManager) && project != "" && p.in(project, store.RoleManager)
}

var roles = []store.Role{store.RoleMember, store.RoleManager, store.RoleOfficer, store.RoleOperator, store.RoleAdmin}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request) error {
	var m store.Member
	if err := decode(r, &m); err != nil {
		return err
	}
	project, user := r.PathValue("name"), r.PathValue("user")
	if project == "-" {
		project = "" // site-wide roles live under /projects/-/members
	}
	if err := checkName("user", user, true); err != nil {
		return err
	}
	if !slices.Contains(roles, m.Role) {
		return invalid("role", "role %q does not exist; use one of %v", m.Role, roles)
	}
	if (m.Project != "" && m.Project != project) || (m.User != "" && m.User != user) {
		return invalid("user", "the body and the path name different members")
	}
	m.Project, m.User = project, user
	p := who(r.Context())
	if project != "" {
		if _, ok := p.parents[project]; !ok {
			return fail(http.StatusNotFound, api.CodeNotFound, "name", "project %s not found", project)
		}
	}
	if !mayGrant(p, project, m.Role) {
		return forbidden("%s may not give the %s role in %q", p.User, m.Role, project)
	}
	// Replacing a role takes it away: that needs the same authority as
	// deleting it (a manager may not demote an operator of the project).
	had, err := s.store.Members(r.Context(), "", user)
	if err != nil {
		return fmt.Errorf("roles of %s: %w", user, err)
	}
	if i := slices.IndexFunc(had, func(x store.Member) bool { return x.Project == project }); i >= 0 && !mayGrant(p, project, had[i].Role) {
		return forbidden("%s may not replace the %s role of %s in %q", p.User, had[i].Role, user, project)
	}
	defer s.auth.forget()
	if err := s.store.PutMember(r.Context(), m); err != nil {
		return fmt.Errorf("put member %s of %s: %w", user, project, err)
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) error {
	project, user := r.PathValue("name"), r.PathValue("user")
	if project == "-" {
		project = ""
	}
	ms, err := s.store.Members(r.Context(), project, "")
	if err != nil {
		return fmt.Errorf("members of %s: %w", project, err)
	}
	i := slices.IndexFunc(ms, func(m store.Member) bool { return m.User == user })
	if i < 0 {
		return fail(http.StatusNotFound, api.CodeNotFound, "user", "%s is not a member of %q", user, project)
	}
	p := who(r.Context())
	if !mayGrant(p, project, ms[i].Role) {
		return forbidden("%s may not remove %s from %q", p.User, user, project)
	}
	defer s.auth.forget()
	if err := s.store.DeleteMember(r.Context(), project, user); err != nil {
		return fmt.Errorf("delete member %s of %s: %w", user, project, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	p := who(r.Context())
	if req.User == "" {
		req.User = p.User
	}
	if err := checkName("user", req.User, true); err != nil {
		return err
	}
	if err := checkText("name", req.Name, maxNameLen); err != nil {
		return err
	}
	if req.User != p.User && !p.global(store.RoleAdmin) {
		return forbidden("%s may not create tokens for %s; only admins may", p.User, req.User)
	}
	if req.Expires != 0 && req.Expires <= s.now().Unix() {
		return invalid("expires", "expires %d lies in the past", req.Expires)
	}
	if err := checkName("node", req.Node, false); err != nil {
		return err
	}
	if req.Node != "" && !p.global(store.RoleOperator, store.RoleAdmin) {
		return forbidden("%s may not create a token for node %s's agent; only operators and admins may", p.User, req.Node)
	}
	t, secret, err := s.issue(r.Context(), store.Token{User: req.User, Name: req.Name, Expires: req.Expires, Node: req.Node})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.NewToken{Token: t, Secret: secret})
	return nil
}

// IssueToken makes and stores a new token for user.
func (s *Server) IssueToken(ctx context.Context, user, name string, expires int64) (store.Token, string, error) {
	return s.issue(ctx, store.Token{User: user, Name: name, Expires: expires})
}

// issue gives t an ID, a secret and its creation time, and stores it.
func (s *Server) issue(ctx context.Context, t store.Token) (store.Token, string, error) {
	id, secret, hash := newSecret()
	t.ID, t.Hash, t.Created = id, hash, s.now().Unix()
	if err := s.store.PutToken(ctx, t); err != nil {
		return t, "", fmt.Errorf("store token for %s: %w", t.User, err)
	}
	return t, secret, nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	p := who(r.Context())
	user := r.URL.Query().Get("user")
	if user == "" {
		user = p.User
	}
	if user != p.User && !p.global(store.RoleAdmin) {
		return forbidden("%s may not list the tokens of %s", p.User, user)
	}
	ts, err := s.store.Tokens(r.Context(), user)
	if err != nil {
		return fmt.Errorf("tokens of %s: %w", user, err)
	}
	writeJSON(w, http.StatusOK, api.Tokens{Items: nonNil(ts)})
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	p := who(r.Context())
	id := r.PathValue("id")
	ts, err := s.store.Tokens(r.Context(), p.User)
	if err != nil {
		return fmt.Errorf("tokens of %s: %w", p.User, err)
	}
	own := slices.ContainsFunc(ts, func(t store.Token) bool { return t.ID == id })
	if !own && !p.global(store.RoleAdmin) {
		return fail(http.StatusNotFound, api.CodeNotFound, "id", "token %s not found among yours", id)
	}
	defer s.auth.forget()
	if err := s.store.DeleteToken(r.Context(), id); err != nil {
		if isNotFound(err) {
			return fail(http.StatusNotFound, api.CodeNotFound, "id", "token %s not found", id)
		}
		return fmt.Errorf("delete token %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "read the audit log", store.RoleAdmin); err != nil {
		return err
	}
	after, err := queryInt(r, "after", 0, 1<<62)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultPage, maxPage)
	if err != nil {
		return err
	}
	es, err := s.store.AuditLog(r.Context(), int64(after), limit)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	writeJSON(w, http.StatusOK, api.Audit{Items: nonNil(es)})
	return nil
}

func (s *Server) schedulerState(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.loop.State())
	return nil
}
