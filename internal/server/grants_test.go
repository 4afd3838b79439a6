package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// grantFixtures gives the matrix's factory a programme, a call, a proposal
// and a grant per project (own, sub, other), projects below sub and other
// to split into, and a month of use per project. Fixture IDs are kept in
// m.base under "prop:", "grant:" keys.
func grantFixtures(m *matrix) {
	m.t.Helper()
	ctx := context.Background()
	st := m.st
	now := time.Now().Unix()
	for _, pr := range []model.Project{{Name: "subsub", Parent: "sub", Shares: 1}, {Name: "otherkid", Parent: "other", Shares: 1}} {
		must(m.t, st.PutProject(ctx, pr))
	}
	must(m.t, st.PutProgramme(ctx, store.Programme{Name: "prog", Public: true}))
	c, err := st.PutCall(ctx, store.Call{Name: "matrix call", Programme: "prog", Offers: []store.CallOffer{{Model: "H100"}},
		Total: 1 << 40, Opens: now - 3600, Closes: now + 86400})
	must(m.t, err)
	m.base["call"] = c.ID
	var recs []usage.Record
	for _, pr := range []string{"own", "sub", "other"} {
		p, err := st.SubmitProposal(ctx, store.Proposal{Call: c.ID, Project: pr, Title: "t", Model: "H100", Amount: 3600, From: 1, Until: 2}, now)
		must(m.t, err)
		m.base["prop:"+pr] = p.ID
		g := store.GrantInfo{Grant: model.Grant{ID: "g-" + pr, Project: pr, Model: "H100", Amount: 100 * 3600, From: now - 10, Until: now + 86400}, Programme: "prog"}
		_, err = st.OpenGrant(ctx, g, "root", "", now)
		must(m.t, err)
		m.base["grant:"+pr] = g.ID
		user := "mem"
		if pr == "other" {
			user = "stranger"
		}
		recs = append(recs, usage.Record{Job: "x", User: user, Project: pr, Site: "local", Model: "H100", Start: now - 100, End: now, Accelerators: 1})
	}
	must(m.t, st.RecordUsage(ctx, recs))
	_, err = st.ExpireGrants(ctx, now, 10*86400) // expiring notices for every grant
	must(m.t, err)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// freshGrant opens a grant of project with a period of its own.
func (m *matrix) freshGrant(project string) string {
	m.t.Helper()
	now := time.Now().Unix()
	m.seq++
	g := store.GrantInfo{Grant: model.Grant{ID: m.fresh("g"), Project: project, Model: "H100", Amount: 100 * 3600,
		From: now - 10 - int64(m.seq)*100_000, Until: now + 86400 + int64(m.seq)*100}, Programme: "prog"}
	g.Model = "H100-" + g.ID // a class of its own: no overlap with any other grant
	if _, err := m.st.OpenGrant(context.Background(), g, "root", "", now); err != nil {
		m.t.Fatal(err)
	}
	return g.ID
}

// freshProposal files a proposal for project, returned when returned.
func (m *matrix) freshProposal(project string, returned bool) store.Proposal {
	m.t.Helper()
	ctx := context.Background()
	m.seq++
	p, err := m.st.SubmitProposal(ctx, store.Proposal{Call: m.base["call"], Project: project, Title: "t", Model: "H100",
		Amount: 3600, From: int64(m.seq) * 10, Until: int64(m.seq)*10 + 5}, time.Now().Unix())
	must(m.t, err)
	if returned {
		p, err = m.st.DecideProposal(ctx, p.ID, store.Decision{State: store.ProposalReturned, Comment: "again", Actor: "root"}, time.Now().Unix())
		must(m.t, err)
	}
	return p
}

// grantMatrixRows are the matrix's rows of the grants API (see
// matrixRows).
func grantMatrixRows() []matrixRow {
	seers := []string{asMember, asManager, asOfficer, asOperator, asAdmin}
	siteSeers := []string{asOfficer, asOperator, asAdmin}
	officers := []string{asOfficer, asAdmin}
	managers := []string{asManager, asAdmin}
	p := api.Prefix
	once := func(m *matrix) {
		if m.base["call"] == "" {
			grantFixtures(m)
		}
	}
	call := func(f func(m *matrix, role, target string) outcome) func(m *matrix, role, target string) outcome {
		return func(m *matrix, role, target string) outcome { once(m); return f(m, role, target) }
	}
	contains := func(s string) func([]byte) bool { return func(b []byte) bool { return strings.Contains(string(b), s) } }
	return []matrixRow{
		{"GET " + p + "/programmes", siteWide, withToken, nil, call(func(m *matrix, role, _ string) outcome { return m.do(role, "GET", p+"/programmes", nil) })},
		{"PUT " + p + "/programmes/{name}", siteWide, []string{asAdmin}, nil, call(func(m *matrix, role, _ string) outcome {
			name := m.fresh("prog")
			return m.do(role, "PUT", p+"/programmes/"+name, store.Programme{Name: name})
		})},
		{"GET " + p + "/calls", siteWide, withToken, nil, call(func(m *matrix, role, _ string) outcome { return m.do(role, "GET", p+"/calls", nil) })},
		{"POST " + p + "/calls", siteWide, officers, nil, call(func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/calls", store.Call{Name: "c", Programme: "prog", Offers: []store.CallOffer{{Model: "H100"}}, Total: 3600, Opens: 1, Closes: 2})
		})},
		{"GET " + p + "/calls/{id}", siteWide, withToken, nil, call(func(m *matrix, role, _ string) outcome { return m.do(role, "GET", p+"/calls/"+m.base["call"], nil) })},
		{"PUT " + p + "/calls/{id}", siteWide, officers, nil, call(func(m *matrix, role, _ string) outcome {
			c, _ := m.st.Call(context.Background(), m.base["call"])
			return m.do(role, "PUT", p+"/calls/"+c.ID, c)
		})},
		{"GET " + p + "/proposals", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/proposals", nil).sees(contains(`"id":"` + m.base["prop:"+target] + `"`))
		})},
		{"POST " + p + "/proposals", inProject, managers, []string{asAdmin}, call(func(m *matrix, role, target string) outcome {
			m.seq++
			return m.do(role, "POST", p+"/proposals", store.Proposal{Call: m.base["call"], Project: target, Title: "t", Model: "H100",
				Amount: 60, From: int64(m.seq) * 10, Until: int64(m.seq)*10 + 5})
		})},
		{"GET " + p + "/proposals/{id}", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/proposals/"+m.base["prop:"+target], nil)
		})},
		{"PUT " + p + "/proposals/{id}", inProject, managers, []string{asAdmin}, call(func(m *matrix, role, target string) outcome {
			x := m.freshProposal(target, true)
			return m.do(role, "PUT", p+"/proposals/"+x.ID, x)
		})},
		{"POST " + p + "/proposals/{id}/decide", inProject, officers, officers, call(func(m *matrix, role, target string) outcome {
			x := m.freshProposal(target, false)
			return m.do(role, "POST", p+"/proposals/"+x.ID+"/decide", store.Decision{State: store.ProposalRejected, Comment: "no"})
		})},
		{"GET " + p + "/grants", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/grants", nil).sees(contains(`"id":"g-` + target + `"`))
		})},
		{"POST " + p + "/grants", inProject, officers, officers, call(func(m *matrix, role, target string) outcome {
			now := time.Now().Unix()
			id := m.fresh("award")
			return m.do(role, "POST", p+"/grants", GrantRequest{GrantInfo: store.GrantInfo{Grant: model.Grant{ID: id, Project: target,
				Model: "H100-" + id, Amount: 3600, From: now, Until: now + 3600}, Programme: "prog"}})
		})},
		{"GET " + p + "/grants/{id}", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/grants/"+m.base["grant:"+target], nil)
		})},
		{"POST " + p + "/grants/{id}/split", inProject, []string{asManager, asOfficer, asAdmin}, officers, call(func(m *matrix, role, target string) outcome {
			g := m.freshGrant(target)
			a, _ := m.st.Grant(context.Background(), g)
			child := map[string]string{"own": "sub", "sub": "subsub", "other": "otherkid"}[target]
			return m.do(role, "POST", p+"/grants/"+g+"/split", GrantRequest{GrantInfo: store.GrantInfo{Grant: model.Grant{ID: m.fresh("split"),
				Project: child, Model: a.Model, Amount: 60, From: a.From, Until: a.Until}}})
		})},
		{"POST " + p + "/grants/{id}/topup", inProject, officers, officers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/grants/"+m.base["grant:"+target]+"/topup", AmountRequest{Amount: 60})
		})},
		{"POST " + p + "/grants/{id}/transfer", inProject, []string{asManager, asOfficer, asAdmin}, officers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/grants/"+m.base["grant:"+target]+"/transfer", TransferRequest{To: m.freshGrantLike(target), Amount: 1})
		})},
		{"POST " + p + "/grants/{id}/adjust", inProject, officers, officers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "POST", p+"/grants/"+m.base["grant:"+target]+"/adjust", AmountRequest{Amount: 1, Note: "matrix"})
		})},
		{"GET " + p + "/grants/{id}/entries", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/grants/"+m.base["grant:"+target]+"/entries", nil)
		})},
		{"POST " + p + "/grants/expire", siteWide, []string{asOfficer, asOperator, asAdmin}, nil, call(func(m *matrix, role, _ string) outcome {
			return m.do(role, "POST", p+"/grants/expire", ExpireRequest{})
		})},
		{"GET " + p + "/notices", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/notices", nil).sees(contains(`"grant":"g-` + target + `"`))
		})},
		{"GET " + p + "/usage", inProject, seers, siteSeers, call(func(m *matrix, role, target string) outcome {
			return m.do(role, "GET", p+"/usage?by=project", nil).sees(contains(`"project":"` + target + `"`))
		})},
		{"GET " + p + "/accounting", siteWide, withToken, nil, call(func(m *matrix, role, _ string) outcome { return m.do(role, "GET", p+"/accounting", nil) })},
		{"PUT " + p + "/accounting", siteWide, []string{asOperator, asAdmin}, nil, call(func(m *matrix, role, _ string) outcome {
			return m.do(role, "PUT", p+"/accounting", store.Accounting{Utilisation: 0.6})
		})},
	}
}

// freshGrantLike opens a second grant of project of the class of its
// fixture grant, with a period of its own, for transfers.
func (m *matrix) freshGrantLike(project string) string {
	m.t.Helper()
	now := time.Now().Unix()
	m.seq++
	g := store.GrantInfo{Grant: model.Grant{ID: m.fresh("to"), Project: project, Model: "H100", Amount: 60,
		From: now + int64(m.seq)*100_000, Until: now + int64(m.seq)*100_000 + 50_000}, Programme: "prog"}
	if _, err := m.st.OpenGrant(context.Background(), g, "root", "", now); err != nil {
		m.t.Fatal(err)
	}
	return g.ID
}

// TestProgrammeOfficers: an officer listed in one programme acts in it
// and nowhere else; bad input is refused with a clear error.
func TestProgrammeOfficers(t *testing.T) {
	t.Parallel()
	m := newMatrix(t)
	grantFixtures(m)
	ctx := context.Background()
	must(t, m.st.PutProgramme(ctx, store.Programme{Name: "national", Officers: []string{"nora"}}))
	_, nora, err := m.srv.IssueToken(ctx, "nora", "test", 0)
	must(t, err)
	m.tokens["nora"] = nora
	_, err = m.st.PutCall(ctx, store.Call{ID: "closed", Name: "closed", Programme: "prog", Offers: []store.CallOffer{{Model: "H100"}}, Total: 3600, Opens: 1, Closes: 2})
	must(t, err)
	p := api.Prefix
	now := time.Now().Unix()
	award := func(prog, id string, amount, from, until int64) GrantRequest {
		return GrantRequest{GrantInfo: store.GrantInfo{Grant: model.Grant{ID: id, Project: "own", Model: "H100", Amount: amount, From: from, Until: until}, Programme: prog}}
	}
	for _, tc := range []struct {
		name   string
		who    string
		method string
		path   string
		body   any
		want   int
		says   string
	}{
		{"an officer awards in their programme", "nora", "POST", p + "/grants", award("national", "n1", 3600, now, now+3600), 201, ""},
		{"an officer outside their programme is refused", "nora", "POST", p + "/grants", award("prog", "n2", 3600, now, now+3600), 403, "officer of programme prog"},
		{"an officer may not top up another programme's grant", "nora", "POST", p + "/grants/g-own/topup", AmountRequest{Amount: 60}, 403, "nora may not"},
		{"an inverted period", asAdmin, "POST", p + "/grants", award("national", "n3", 3600, now+10, now), 400, "not after"},
		{"negative hours", asAdmin, "POST", p + "/grants", award("national", "n4", -3600, now, now+10), 400, "positive"},
		{"an overlapping period", asAdmin, "POST", p + "/grants", award("national", "n5", 3600, now, now+60), 400, "overlaps"},
		{"a sub-grant larger than its parent", asManager, "POST", p + "/grants/g-own/split",
			GrantRequest{GrantInfo: store.GrantInfo{Grant: model.Grant{ID: "big", Project: "sub", Model: "H100", Amount: 1 << 40, From: now - 10, Until: now + 86400}}}, 409, "available"},
		{"a proposal to a closed call", asManager, "POST", p + "/proposals", store.Proposal{Call: "closed", Project: "own", Title: "t", Model: "H100", Amount: 60, From: 1, Until: 2}, 400, "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := m.st.LedgerEntries(ctx, "", 0, 0)
			o := m.do(tc.who, tc.method, tc.path, tc.body)
			if o.status != tc.want || !strings.Contains(o.body, tc.says) {
				t.Fatalf("HTTP %d %s; want %d saying %q", o.status, o.body, tc.want, tc.says)
			}
			if after, _ := m.st.LedgerEntries(ctx, "", 0, 0); tc.want >= 400 && len(after) != len(before) {
				t.Errorf("a refused request wrote %d ledger entries", len(after)-len(before))
			}
		})
	}
}
