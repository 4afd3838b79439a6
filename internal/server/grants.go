package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/usine-project/usine/internal/accel"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/store"
)

// The grants API: programmes, calls, proposals, grants and their ledger,
// notices and usage. Who may do what:
//
//   - an admin: everything;
//   - an officer of a programme (listed in it, or site-wide officer): its
//     calls, deciding its proposals, opening, topping up, transferring,
//     adjusting and expiring its grants, every report of it;
//   - a manager of a project (or of an ancestor): proposals for it,
//     splitting its grants into sub-grants for its sub-projects,
//     transfers between grants it manages, its usage;
//   - a member: reads the project's grants, entries and notices, and their
//     own usage.

// GrantRequest opens a grant outside any call (an officer's award).
type GrantRequest struct {
	store.GrantInfo
	Note string `json:"note,omitempty"`
}

// AmountRequest tops up or adjusts a grant.
type AmountRequest struct {
	Amount int64  `json:"amount_s"`
	Note   string `json:"note,omitempty"`
}

// TransferRequest moves hours to another grant.
type TransferRequest struct {
	To     string `json:"to"`
	Amount int64  `json:"amount_s"`
	Note   string `json:"note,omitempty"`
}

// ExpireRequest sweeps grants past their end, and notes those ending
// within SoonS seconds.
type ExpireRequest struct {
	SoonS int64 `json:"soon_s,omitempty"`
}

// Items wrap the lists the grants API answers with.
type (
	Programmes struct {
		Items []store.Programme `json:"items"`
	}
	Calls struct {
		Items []store.Call `json:"items"`
	}
	Proposals struct {
		Items []store.Proposal `json:"items"`
	}
	GrantList struct {
		Items []store.GrantAccount `json:"items"`
	}
	Entries struct {
		Items []ledger.Entry `json:"items"`
	}
	Notices struct {
		Items []store.GrantNotice `json:"items"`
	}
)

// UsageReport is a usage report and the assumptions behind its energy.
type UsageReport struct {
	usage.Report
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func (s *Server) grantRoutes() []route {
	p := api.Prefix
	return []route{
		{"GET", p + "/programmes", authed, s.listProgrammes},
		{"PUT", p + "/programmes/{name}", authed, s.putProgramme},
		{"GET", p + "/calls", authed, s.listCalls},
		{"POST", p + "/calls", authed, s.createCall},
		{"GET", p + "/calls/{id}", authed, s.getCall},
		{"PUT", p + "/calls/{id}", authed, s.putCall},
		{"GET", p + "/proposals", authed, s.listProposals},
		{"POST", p + "/proposals", authed, s.submitProposal},
		{"GET", p + "/proposals/{id}", authed, s.getProposal},
		{"PUT", p + "/proposals/{id}", authed, s.submitProposal},
		{"POST", p + "/proposals/{id}/decide", authed, s.decideProposal},
		{"GET", p + "/grants", authed, s.listGrants},
		{"POST", p + "/grants", authed, s.openGrant},
		{"GET", p + "/grants/{id}", authed, s.getGrant},
		{"POST", p + "/grants/{id}/split", authed, s.splitGrant},
		{"POST", p + "/grants/{id}/topup", authed, s.topupGrant},
		{"POST", p + "/grants/{id}/transfer", authed, s.transferGrant},
		{"POST", p + "/grants/{id}/adjust", authed, s.adjustGrant},
		{"GET", p + "/grants/{id}/entries", authed, s.grantEntries},
		{"POST", p + "/grants/expire", authed, s.expireGrants},
		{"GET", p + "/notices", authed, s.listNotices},
		{"GET", p + "/usage", authed, s.usageReport},
		{"GET", p + "/accounting", authed, s.getAccounting},
		{"PUT", p + "/accounting", authed, s.putAccounting},
	}
}

// grantOperations documents grantRoutes for the OpenAPI document.
var grantOperations = map[string]op{
	"GET /api/v1/programmes":             {summary: "Funding programmes and their officers", out: Programmes{}},
	"PUT /api/v1/programmes/{name}":      {summary: "Create or change a funding programme (admin)", in: store.Programme{}, out: store.Programme{}},
	"GET /api/v1/calls":                  {summary: "Calls for proposals", out: Calls{}},
	"POST /api/v1/calls":                 {summary: "Open a call (an officer of its programme)", in: store.Call{}, out: store.Call{}, status: 201},
	"GET /api/v1/calls/{id}":             {summary: "One call", out: store.Call{}},
	"PUT /api/v1/calls/{id}":             {summary: "Change a call: dates, offers, total (an officer of its programme)", in: store.Call{}, out: store.Call{}},
	"GET /api/v1/proposals":              {summary: "Proposals you may see", out: Proposals{}, query: []string{"call", "state", "project"}},
	"POST /api/v1/proposals":             {summary: "Submit a proposal to an open call (a manager of the project)", in: store.Proposal{}, out: store.Proposal{}, status: 201},
	"GET /api/v1/proposals/{id}":         {summary: "One proposal", out: store.Proposal{}},
	"PUT /api/v1/proposals/{id}":         {summary: "Submit a returned proposal again (a manager of the project)", in: store.Proposal{}, out: store.Proposal{}, status: 201},
	"POST /api/v1/proposals/{id}/decide": {summary: "Accept (possibly with fewer hours), reject or return a proposal (an officer of the call's programme)", in: store.Decision{}, out: store.Proposal{}},
	"GET /api/v1/grants":                 {summary: "Grants you may see, with their balances", out: GrantList{}, query: []string{"project", "programme", "valid"}},
	"POST /api/v1/grants":                {summary: "Open a grant outside any call (an officer of its programme)", in: GrantRequest{}, out: store.GrantAccount{}, status: 201},
	"GET /api/v1/grants/{id}":            {summary: "One grant and its balance", out: store.GrantAccount{}},
	"POST /api/v1/grants/{id}/split":     {summary: "Carve a sub-grant for a sub-project (a manager of the grant's project, or an officer)", in: GrantRequest{}, out: store.GrantAccount{}, status: 201},
	"POST /api/v1/grants/{id}/topup":     {summary: "Add hours to a grant (an officer of its programme)", in: AmountRequest{}, out: store.GrantAccount{}},
	"POST /api/v1/grants/{id}/transfer":  {summary: "Move hours to another grant of the same class (an officer, or a manager of both)", in: TransferRequest{}, out: GrantList{}},
	"POST /api/v1/grants/{id}/adjust":    {summary: "Correct a grant either way, saying why (an officer of its programme)", in: AmountRequest{}, out: store.GrantAccount{}},
	"GET /api/v1/grants/{id}/entries":    {summary: "A grant's ledger entries; the balance is their sum", out: Entries{}, query: []string{"after", "limit"}},
	"POST /api/v1/grants/expire":         {summary: "Expire what grants past their end have left, and record expiry notices (officer)", in: ExpireRequest{}, out: Entries{}},
	"GET /api/v1/notices":                {summary: "Grant notices: 80 % and 100 % used, expiring, expired", out: Notices{}, query: []string{"grant", "after", "limit"}},
	"GET /api/v1/usage":                  {summary: "Use of finished jobs summed by user, project, consortium, site, model, programme, month", out: UsageReport{}, query: []string{"by", "from", "to", "rollup", "project", "user"}},
	"GET /api/v1/accounting":             {summary: "How use is charged and its energy estimated", out: store.Accounting{}},
	"PUT /api/v1/accounting":             {summary: "Set charge factors, rated power, utilisation, grid intensity, whether every job needs a grant (admin, operator)", in: store.Accounting{}, out: store.Accounting{}},
}

// withGrantOps adds the grants API's operations to base.
func withGrantOps(base map[string]op) map[string]op {
	out := maps.Clone(base)
	maps.Copy(out, grantOperations)
	return out
}

// grantErr turns the store's and the ledger's errors into API errors
// that say what was wrong.
func grantErr(err error) error {
	var e *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return err
	case errors.Is(err, store.ErrInvalid):
		return fail(http.StatusBadRequest, api.CodeInvalidField, "", "%v", err)
	case errors.Is(err, ledger.ErrInsufficient):
		return fail(http.StatusConflict, api.CodeConflict, "", "%v", err)
	}
	return err
}

// officerOf reports whether p acts for programme prog.
func officerOf(p *principal, prog string, progs []store.Programme) bool {
	if p.global(store.RoleOfficer, store.RoleAdmin) {
		return true
	}
	for _, x := range progs {
		if x.Name == prog {
			return slices.Contains(x.Officers, p.User)
		}
	}
	return false
}

// myProgrammes are the programmes p is an officer of.
func myProgrammes(p *principal, progs []store.Programme) []string {
	var out []string
	for _, x := range progs {
		if officerOf(p, x.Name, progs) {
			out = append(out, x.Name)
		}
	}
	return out
}

// requireOfficer fails unless p acts for programme prog.
func (s *Server) requireOfficer(r *http.Request, prog, what string) error {
	progs, err := s.store.Programmes(r.Context())
	if err != nil {
		return err
	}
	p := who(r.Context())
	if !slices.ContainsFunc(progs, func(x store.Programme) bool { return x.Name == prog }) {
		return fail(http.StatusNotFound, api.CodeNotFound, "programme", "programme %q does not exist; an admin creates it with PUT /api/v1/programmes/{name}", prog)
	}
	if !officerOf(p, prog, progs) {
		return forbidden("%s may not %s: it needs an officer of programme %s, and %s is not one", p.User, what, prog, p.User)
	}
	return nil
}

func (s *Server) listProgrammes(w http.ResponseWriter, r *http.Request) error {
	v, err := s.store.Programmes(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Programmes{Items: nonNil(v)})
	return nil
}

func (s *Server) putProgramme(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "create funding programmes", store.RoleAdmin); err != nil {
		return err
	}
	var v store.Programme
	if err := decodeNamed(r, &v, &v.Name); err != nil {
		return err
	}
	for i, o := range v.Officers {
		if err := checkName(fmt.Sprintf("officers[%d]", i), o, true); err != nil {
			return err
		}
	}
	if err := s.store.PutProgramme(r.Context(), v); err != nil {
		return grantErr(err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) error {
	v, err := s.store.Calls(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Calls{Items: nonNil(v)})
	return nil
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) error {
	c, err := s.store.Call(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) createCall(w http.ResponseWriter, r *http.Request) error {
	return s.writeCall(w, r, "")
}

func (s *Server) putCall(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.store.Call(r.Context(), id); err != nil {
		return err
	}
	return s.writeCall(w, r, id)
}

func (s *Server) writeCall(w http.ResponseWriter, r *http.Request, id string) error {
	var c store.Call
	if err := decode(r, &c); err != nil {
		return err
	}
	if id != "" {
		if c.ID != "" && c.ID != id {
			return invalid("id", "the body names call %q but the path %q; they must agree", c.ID, id)
		}
		c.ID = id
	} else if c.ID != "" {
		return invalid("id", "a new call gets its ID from the server; leave id empty, or PUT /calls/{id} to change one")
	}
	if err := checkText("name", c.Name, 256); err != nil {
		return err
	}
	if err := s.requireOfficer(r, c.Programme, "open calls of programme "+c.Programme); err != nil {
		return err
	}
	c.Actor = who(r.Context()).User
	out, err := s.store.PutCall(r.Context(), c)
	if err != nil {
		return grantErr(err)
	}
	writeJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[id == ""], out)
	return nil
}

// manages reports whether p manages project (or an ancestor of it).
func manages(p *principal, project string) bool {
	return p.in(project, store.RoleManager)
}

func (s *Server) listProposals(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.ProposalFilter{Call: q.Get("call"), State: q.Get("state")}
	p := who(r.Context())
	progs, err := s.store.Programmes(r.Context())
	if err != nil {
		return err
	}
	all, err := s.store.Proposals(r.Context(), f)
	if err != nil {
		return err
	}
	calls := map[string]string{} // call → programme
	if cs, err := s.store.Calls(r.Context()); err == nil {
		for _, c := range cs {
			calls[c.ID] = c.Programme
		}
	}
	out := []store.Proposal{}
	for _, x := range all {
		if pr := q.Get("project"); pr != "" && x.Project != pr {
			continue
		}
		if p.global(seeAll...) || officerOf(p, calls[x.Call], progs) || p.in(x.Project, store.RoleMember, store.RoleManager) {
			out = append(out, x)
		}
	}
	writeJSON(w, http.StatusOK, Proposals{Items: out})
	return nil
}

func (s *Server) getProposal(w http.ResponseWriter, r *http.Request) error {
	x, err := s.store.Proposal(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.canSeeProposal(r, x); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

func (s *Server) canSeeProposal(r *http.Request, x store.Proposal) error {
	p := who(r.Context())
	if p.global(seeAll...) || p.in(x.Project, store.RoleMember, store.RoleManager) {
		return nil
	}
	c, err := s.store.Call(r.Context(), x.Call)
	if err != nil {
		return err
	}
	progs, err := s.store.Programmes(r.Context())
	if err != nil {
		return err
	}
	if officerOf(p, c.Programme, progs) {
		return nil
	}
	return forbidden("%s may not see proposal %s of project %s", p.User, x.ID, x.Project)
}

func (s *Server) submitProposal(w http.ResponseWriter, r *http.Request) error {
	var x store.Proposal
	if err := decode(r, &x); err != nil {
		return err
	}
	if id := r.PathValue("id"); id != "" {
		if x.ID != "" && x.ID != id {
			return invalid("id", "the body names proposal %q but the path %q; they must agree", x.ID, id)
		}
		x.ID = id
	} else if x.ID != "" {
		return invalid("id", "a new proposal gets its ID from the server; leave id empty, or PUT /proposals/{id} to submit a returned one again")
	}
	if err := checkName("project", x.Project, true); err != nil {
		return err
	}
	if err := checkText("plan", x.Plan, 64<<10); err != nil {
		return err
	}
	if err := checkText("title", x.Title, 512); err != nil {
		return err
	}
	p := who(r.Context())
	if !manages(p, x.Project) {
		return forbidden("%s may not propose for project %s: it needs a manager of the project", p.User, x.Project)
	}
	x.Submitter = p.User
	out, err := s.store.SubmitProposal(r.Context(), x, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) decideProposal(w http.ResponseWriter, r *http.Request) error {
	var d store.Decision
	if err := decode(r, &d); err != nil {
		return err
	}
	if err := checkText("comment", d.Comment, 64<<10); err != nil {
		return err
	}
	x, err := s.store.Proposal(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	c, err := s.store.Call(r.Context(), x.Call)
	if err != nil {
		return err
	}
	if err := s.requireOfficer(r, c.Programme, "decide proposals to call "+c.ID); err != nil {
		return err
	}
	if d.GrantID != "" {
		if err := checkName("grant", d.GrantID, true); err != nil {
			return err
		}
	}
	d.Actor = who(r.Context()).User
	out, err := s.store.DecideProposal(r.Context(), x.ID, d, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// visibleGrant reports whether p may read grant g.
func visibleGrant(p *principal, g *store.GrantAccount, progs []store.Programme) bool {
	return p.global(seeAll...) || officerOf(p, g.Programme, progs) || p.in(g.Project, store.RoleMember, store.RoleManager)
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.GrantFilter{Programme: q.Get("programme")}
	if pr := q.Get("project"); pr != "" {
		f.Projects = []string{pr}
	}
	if q.Get("valid") == "1" {
		f.ValidAt = s.now().Unix()
	}
	all, err := s.store.Grants(r.Context(), f)
	if err != nil {
		return err
	}
	progs, err := s.store.Programmes(r.Context())
	if err != nil {
		return err
	}
	p := who(r.Context())
	out := []store.GrantAccount{}
	for i := range all {
		if visibleGrant(p, &all[i], progs) {
			out = append(out, all[i])
		}
	}
	writeJSON(w, http.StatusOK, GrantList{Items: out})
	return nil
}

// grantFor reads the grant of the path and checks that p may see it.
func (s *Server) grantFor(r *http.Request) (store.GrantAccount, []store.Programme, error) {
	g, err := s.store.Grant(r.Context(), r.PathValue("id"))
	if err != nil {
		return g, nil, err
	}
	progs, err := s.store.Programmes(r.Context())
	if err != nil {
		return g, nil, err
	}
	if p := who(r.Context()); !visibleGrant(p, &g, progs) {
		return g, nil, forbidden("%s may not see grant %s of project %s", p.User, g.ID, g.Project)
	}
	return g, progs, nil
}

func (s *Server) getGrant(w http.ResponseWriter, r *http.Request) error {
	g, _, err := s.grantFor(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func checkGrantInfo(g *store.GrantInfo, note string) error {
	for _, f := range []struct{ name, v string }{{"id", g.ID}, {"project", g.Project}} {
		if err := checkName(f.name, f.v, true); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"model", g.Model}, {"site", g.Site}} {
		if err := checkName(f.name, f.v, false); err != nil {
			return err
		}
	}
	if g.Amount <= 0 {
		return invalid("amount_s", "amount_s is %d; give a positive number of accelerator-seconds (1 accelerator-hour = 3600)", g.Amount)
	}
	if g.Until <= g.From {
		return invalid("until", "until %d is not after from %d; give a period that ends after it starts", g.Until, g.From)
	}
	return checkText("note", note, 4096)
}

func (s *Server) openGrant(w http.ResponseWriter, r *http.Request) error {
	var req GrantRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkGrantInfo(&req.GrantInfo, req.Note); err != nil {
		return err
	}
	if req.Call != "" || req.Proposal != "" {
		return invalid("call", "a grant from a call comes from accepting its proposal (POST /proposals/{id}/decide); leave call and proposal empty")
	}
	if err := s.requireOfficer(r, req.Programme, "award grants of programme "+req.Programme); err != nil {
		return err
	}
	g, err := s.store.OpenGrant(r.Context(), req.GrantInfo, who(r.Context()).User, req.Note, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) splitGrant(w http.ResponseWriter, r *http.Request) error {
	parent, progs, err := s.grantFor(r)
	if err != nil {
		return err
	}
	var req GrantRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkGrantInfo(&req.GrantInfo, req.Note); err != nil {
		return err
	}
	p := who(r.Context())
	if !manages(p, parent.Project) && !officerOf(p, parent.Programme, progs) {
		return forbidden("%s may not split grant %s: it needs a manager of project %s or an officer of programme %s", p.User, parent.ID, parent.Project, parent.Programme)
	}
	g, err := s.store.SplitGrant(r.Context(), parent.ID, req.GrantInfo, p.User, req.Note, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusCreated, g)
	return nil
}

// officerOfGrant reads the path's grant and requires an officer of its
// programme.
func (s *Server) officerOfGrant(r *http.Request, what string) (store.GrantAccount, error) {
	g, progs, err := s.grantFor(r)
	if err != nil {
		return g, err
	}
	if p := who(r.Context()); !officerOf(p, g.Programme, progs) {
		return g, forbidden("%s may not %s grant %s: it needs an officer of programme %q", p.User, what, g.ID, g.Programme)
	}
	return g, nil
}

func (s *Server) topupGrant(w http.ResponseWriter, r *http.Request) error {
	return s.amountOp(w, r, "top up", s.store.TopupGrant)
}

func (s *Server) adjustGrant(w http.ResponseWriter, r *http.Request) error {
	return s.amountOp(w, r, "adjust", s.store.AdjustGrant)
}

func (s *Server) amountOp(w http.ResponseWriter, r *http.Request, what string,
	op func(ctx context.Context, id string, amount int64, actor, note string, now int64) (store.GrantAccount, error)) error {
	var req AmountRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkText("note", req.Note, 4096); err != nil {
		return err
	}
	g, err := s.officerOfGrant(r, what)
	if err != nil {
		return err
	}
	out, err := op(r.Context(), g.ID, req.Amount, who(r.Context()).User, req.Note, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) transferGrant(w http.ResponseWriter, r *http.Request) error {
	var req TransferRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("to", req.To, true); err != nil {
		return err
	}
	if err := checkText("note", req.Note, 4096); err != nil {
		return err
	}
	from, progs, err := s.grantFor(r)
	if err != nil {
		return err
	}
	to, err := s.store.Grant(r.Context(), req.To)
	if err != nil {
		return err
	}
	p := who(r.Context())
	officer := officerOf(p, from.Programme, progs) && officerOf(p, to.Programme, progs)
	if !officer && !(manages(p, from.Project) && manages(p, to.Project) && from.Programme == to.Programme) {
		return forbidden("%s may not transfer from grant %s to %s: it needs an officer of both grants' programmes, or a manager of both projects (%s, %s) within one programme",
			p.User, from.ID, to.ID, from.Project, to.Project)
	}
	out, err := s.store.TransferGrant(r.Context(), from.ID, to.ID, req.Amount, p.User, req.Note, s.now().Unix())
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusOK, GrantList{Items: out})
	return nil
}

func (s *Server) grantEntries(w http.ResponseWriter, r *http.Request) error {
	g, _, err := s.grantFor(r)
	if err != nil {
		return err
	}
	after, err := queryInt(r, "after", 0, 1<<62)
	if err != nil {
		return err
	}
	n, err := queryInt(r, "limit", defaultPage, maxPage)
	if err != nil {
		return err
	}
	es, err := s.store.LedgerEntries(r.Context(), g.ID, int64(after), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Entries{Items: es})
	return nil
}

func (s *Server) expireGrants(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "sweep expired grants", store.RoleOfficer, store.RoleOperator); err != nil {
		return err
	}
	var req ExpireRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.SoonS < 0 {
		return invalid("soon_s", "soon_s is %d; give 0 or more seconds", req.SoonS)
	}
	es, err := s.store.ExpireGrants(r.Context(), s.now().Unix(), cmpOr64(req.SoonS, expiringSoon))
	if err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusOK, Entries{Items: nonNil(es)})
	return nil
}

func cmpOr64(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// expiringSoon is how long before its end a grant's expiring notice comes.
const expiringSoon = 14 * 24 * 3600

// visibleProjectsOf is the projects p may read grants, notices and usage
// of (nil: all), and the programmes p is an officer of.
func (s *Server) visibleScope(r *http.Request) (projects []string, progs []string, err error) {
	p := who(r.Context())
	if p.global(seeAll...) {
		return nil, nil, nil
	}
	all, err := s.store.Projects(r.Context())
	if err != nil {
		return nil, nil, err
	}
	ps, err := s.store.Programmes(r.Context())
	if err != nil {
		return nil, nil, err
	}
	return p.visibleProjects(all), myProgrammes(p, ps), nil
}

func (s *Server) listNotices(w http.ResponseWriter, r *http.Request) error {
	after, err := queryInt(r, "after", 0, 1<<62)
	if err != nil {
		return err
	}
	n, err := queryInt(r, "limit", defaultPage, maxPage)
	if err != nil {
		return err
	}
	f := store.NoticeFilter{Grant: r.URL.Query().Get("grant"), After: int64(after), Limit: n}
	projects, progs, err := s.visibleScope(r)
	if err != nil {
		return err
	}
	if projects != nil && len(progs) == 0 {
		f.Projects = projects
	}
	ns, err := s.store.GrantNotices(r.Context(), f)
	if err != nil {
		return err
	}
	if projects != nil && len(progs) > 0 {
		// An officer of some programmes: their grants' notices and their
		// own projects'.
		gs, err := s.store.Grants(r.Context(), store.GrantFilter{})
		if err != nil {
			return err
		}
		prog := map[string]string{}
		for _, g := range gs {
			prog[g.ID] = g.Programme
		}
		ns = slices.DeleteFunc(ns, func(x store.GrantNotice) bool {
			return !slices.Contains(progs, prog[x.Grant]) && !slices.Contains(projects, x.Project)
		})
	}
	writeJSON(w, http.StatusOK, Notices{Items: ns})
	return nil
}

func (s *Server) getAccounting(w http.ResponseWriter, r *http.Request) error {
	a, err := s.store.Accounting(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) putAccounting(w http.ResponseWriter, r *http.Request) error {
	if err := requireGlobal(r, "set the accounting settings", store.RoleOperator); err != nil {
		return err
	}
	var a store.Accounting
	if err := decode(r, &a); err != nil {
		return err
	}
	if err := s.store.PutAccounting(r.Context(), a); err != nil {
		return grantErr(err)
	}
	s.grants.dirty()
	writeJSON(w, http.StatusOK, a)
	return nil
}

// usageReport sums finished jobs' use. Admins, operators and site-wide
// officers see everything; a programme's officers that programme's use;
// managers their projects' (and sub-projects'); members their own.
func (s *Server) usageReport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := usage.Options{RollUp: q.Get("rollup") == "1"}
	by := q.Get("by")
	if by == "" {
		by = "project"
	}
	for k := range strings.SplitSeq(by, ",") {
		opts.By = append(opts.By, usage.Key(strings.TrimSpace(k)))
	}
	f := store.UsageFilter{From: q.Get("from"), To: q.Get("to"), User: q.Get("user")}
	for _, m := range []struct{ name, v string }{{"from", f.From}, {"to", f.To}} {
		if m.v == "" {
			continue
		}
		if _, err := time.Parse("2006-01", m.v); err != nil {
			return invalid(m.name, "%s %q is not a month; give YYYY-MM, such as 2026-11", m.name, m.v)
		}
	}
	ctx := r.Context()
	parts, err := s.store.UsageParts(ctx, f)
	if err != nil {
		return err
	}
	if pr := q.Get("project"); pr != "" {
		parts = slices.DeleteFunc(parts, func(x usage.Part) bool { return x.Project != pr && !s.below(ctx, x.Project, pr) })
	}
	p := who(ctx)
	if !p.global(seeAll...) {
		progs, err := s.store.Programmes(ctx)
		if err != nil {
			return err
		}
		mine := myProgrammes(p, progs)
		parts = slices.DeleteFunc(parts, func(x usage.Part) bool {
			return !(x.Programme != "" && slices.Contains(mine, x.Programme)) && !manages(p, x.Project) &&
				!(x.User == p.User && p.in(x.Project, store.RoleMember))
		})
	}
	acct, err := s.store.Accounting(ctx)
	if err != nil {
		return err
	}
	if opts.Projects, err = s.store.Projects(ctx); err != nil {
		return err
	}
	opts.RatedWatts, opts.Utilisation, opts.GridIntensity = ratedWatts(acct), acct.Utilisation, acct.GridIntensity
	rep, err := usage.Fold(parts, opts)
	if err != nil {
		return invalid("by", "%v", err)
	}
	writeJSON(w, http.StatusOK, UsageReport{Report: *rep, From: f.From, To: f.To})
	return nil
}

// below reports whether project p lies under project anc.
func (s *Server) below(ctx context.Context, p, anc string) bool {
	parents, err := s.parents(ctx)
	if err != nil {
		return false
	}
	for q, n := parents[p], 0; q != "" && n < 64; q, n = parents[q], n+1 {
		if q == anc {
			return true
		}
	}
	return false
}

// ratedWatts are the settings' rated powers, with those of the boards
// usine knows (accel.Models, from vendors' datasheets) for classes the
// settings leave out.
func ratedWatts(a store.Accounting) map[string]float64 {
	out := map[string]float64{}
	for _, acc := range accel.Models() {
		if acc.Watts > 0 {
			out[acc.Model] = float64(acc.Watts)
		}
	}
	maps.Copy(out, a.RatedWatts)
	return out
}

// --- the scheduler loop's share ---

// grantCache keeps the grant feed for the scheduler's snapshots: refreshed
// when a second old, or at once after anything that changes balances
// (a start, a grant operation), and the expiry sweep once a minute.
type grantCache struct {
	mu        sync.Mutex
	feed      store.GrantFeed
	fetched   time.Time
	stale     bool
	swept     time.Time
	lastError string
}

func (c *grantCache) dirty() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// grantFeed puts the grants into a scheduling snapshot: spendable
// balances (jobs no grant covers wait with GrantExhausted) and each
// granted project's fair-share entitlement (its shares become the
// accelerator-hours granted to it and its sub-projects in the current
// period; a project without grants keeps 1 share, the minimum).
func (s *Server) grantFeed(snap *sched.Snapshot) {
	f := s.currentFeed()
	snap.Grants = f.Balances
	if len(f.Shares) > 0 {
		ps := slices.Clone(snap.Projects)
		for i := range ps {
			ps[i].Shares = max(1, f.Shares[ps[i].Name]/3600)
		}
		snap.Projects = ps
	}
}

// currentFeed is the grants' feed, read again from the store when it is a
// second old or a start or a ledger operation changed it.
func (s *Server) currentFeed() store.GrantFeed {
	c := &s.grants
	now := s.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stale || now.Sub(c.fetched) >= time.Second || c.fetched.IsZero() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if now.Sub(c.swept) >= time.Minute {
			if _, err := s.store.ExpireGrants(ctx, now.Unix(), expiringSoon); err != nil {
				s.log.Warn("expire grants", "err", err)
			}
			c.swept = now
		}
		f, err := s.store.GrantFeed(ctx, now.Unix())
		if err != nil {
			// Keep the last feed: the store refuses overspending anyway.
			s.log.Warn("read grant balances", "err", err)
		} else {
			c.feed, c.fetched, c.stale = f, now, false
		}
	}
	return c.feed
}

// checkCovered refuses, when the accounting settings say so, a submit
// with a job that no grant of its project (or an ancestor) can cover in
// any partition the job may run in, and says how much is left.
func (s *Server) checkCovered(jobs []store.Job, parents map[string]string, parts []model.Partition) error {
	f := s.currentFeed()
	if !f.RefuseUncovered || f.Balances == nil {
		return nil
	}
	for _, j := range jobs {
		cost := int64(j.TotalAccelerators()) * j.Limit
		if cost == 0 {
			continue
		}
		var left int64
		var class string
		for _, p := range parts {
			if (j.Partition != "" && p.Name != j.Partition) || (j.Model != "" && p.Model != j.Model) {
				continue
			}
			if sched.Payer(f.Balances, parents, j.Project, p.Model, p.Site, cost) >= 0 {
				left = -1
				break
			}
			for _, b := range f.Balances {
				if b.Pays(p.Model, p.Site) && inChain(b.Project, j.Project, parents) && b.Remaining > left {
					left, class = b.Remaining, p.Model
				}
			}
		}
		if left >= 0 {
			return fail(http.StatusConflict, api.CodeConflict, "limit_s",
				"project %s cannot cover this job: %d accelerators × %s = %.1f accelerator-hours, and its largest grant that pays for it has %.1f left%s; lower the time limit or the accelerators, or ask the project's manager for a top-up (usine grants)",
				j.Project, j.TotalAccelerators(), time.Duration(j.Limit)*time.Second, float64(cost)/3600, float64(left)/3600, ofClass(class))
		}
	}
	return nil
}

func ofClass(class string) string {
	if class == "" {
		return ""
	}
	return " (" + class + ")"
}

// inChain says whether payer is project or one of its ancestors.
func inChain(payer, project string, parents map[string]string) bool {
	for p, n := project, 0; p != "" && n < 64; p, n = parents[p], n+1 {
		if p == payer {
			return true
		}
	}
	return false
}

// applyGranted is store.Apply for the scheduler loop: starts the store
// refuses for want of a grant (a race with another start, a grant of
// another site) are dropped with their events and the rest applied again;
// the refused jobs are added to d.Waiting with reason GrantExhausted.
func (s *Server) applyGranted(ctx context.Context, lease store.Lease, dec *store.Decisions, d *sched.Decisions) ([]store.Job, error) {
	for {
		out, err := s.store.Apply(ctx, lease, *dec)
		var refusal *store.GrantRefusal
		if !errors.As(err, &refusal) {
			if err == nil && len(dec.Starts) > 0 {
				s.grants.dirty()
			}
			return out, err
		}
		n := len(dec.Starts)
		dec.Starts = slices.DeleteFunc(dec.Starts, func(st store.StartJob) bool { return refusal.Jobs[st.ID] != "" })
		dec.Events = slices.DeleteFunc(dec.Events, func(e store.Event) bool { return refusal.Jobs[e.Job] != "" })
		if len(dec.Starts) == n {
			return nil, err // it named no start of ours: give up
		}
		for id, why := range refusal.Jobs {
			s.log.Info("start refused: no grant covers it", "job", id, "why", why)
			d.Waiting = append(d.Waiting, sched.Wait{JobID: id, Reason: sched.ReasonGrantExhausted, EstStart: -1})
		}
		s.grants.dirty()
		if len(dec.Starts) == 0 && len(dec.Requeues) == 0 {
			return nil, nil
		}
	}
}
