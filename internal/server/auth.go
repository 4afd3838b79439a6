package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// tokenPrefix marks usine secrets, so that secret scanners can find leaks.
const tokenPrefix = "usine_"

// newSecret makes a token: its ID, the secret shown once, and the hash kept.
func newSecret() (id, secret string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux (crypto/rand documents it)
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return hex.EncodeToString(b[:6]), secret, hashSecret(secret)
}

// hashSecret is what the store keeps of a secret. Secrets are 256 random
// bits, so one round of SHA-256 is enough: there is nothing to brute-force.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// principal is who makes a request and what they may do.
type principal struct {
	User  string
	Token string // token ID
	Node  string // the node whose agent the token is alone; it holds no role
	roles []store.Member
	// ancestors of every project, for role inheritance: a role in a
	// project holds in all its descendants.
	parents map[string]string
}

// global reports whether the user holds one of roles site-wide.
func (p *principal) global(roles ...store.Role) bool {
	for _, m := range p.roles {
		if m.Project == "" && hasRole(roles, m.Role) {
			return true
		}
	}
	return false
}

// in reports whether the user holds one of roles in project, directly, in
// an ancestor, or site-wide as admin.
func (p *principal) in(project string, roles ...store.Role) bool {
	if p.global(store.RoleAdmin) {
		return true
	}
	for _, m := range p.roles {
		if m.Project == "" {
			if hasRole(roles, m.Role) {
				return true
			}
			continue
		}
		if !hasRole(roles, m.Role) {
			continue
		}
		for q, n := project, 0; q != "" && n < 64; q, n = p.parents[q], n+1 {
			if q == m.Project {
				return true
			}
		}
	}
	return false
}

func hasRole(roles []store.Role, r store.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// Who sees every job: people who run or fund the whole factory.
var seeAll = []store.Role{store.RoleAdmin, store.RoleOperator, store.RoleOfficer}

// canSee reports whether p may read job j.
func (p *principal) canSee(j *store.Job) bool {
	return p.global(seeAll...) || p.in(j.Project, store.RoleMember, store.RoleManager)
}

// canAct reports whether p may cancel, hold, release or requeue job j:
// its owner while a member, the project's managers, operators and admins.
func (p *principal) canAct(j *store.Job) bool {
	if p.global(store.RoleAdmin, store.RoleOperator) || p.in(j.Project, store.RoleManager) {
		return true
	}
	return j.User == p.User && p.in(j.Project, store.RoleMember)
}

// visibleProjects is the project filter for a listing: nil means all.
func (p *principal) visibleProjects(all []model.Project) []string {
	if p.global(seeAll...) {
		return nil
	}
	out := []string{}
	for _, pr := range all {
		if p.in(pr.Name, store.RoleMember, store.RoleManager) {
			out = append(out, pr.Name)
		}
	}
	return out
}

type ctxKey struct{}

func who(ctx context.Context) *principal {
	p, _ := ctx.Value(ctxKey{}).(*principal)
	return p
}

// authenticate finds the request's principal from its bearer token.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return nil, fail(http.StatusUnauthorized, api.CodeUnauthorized, "",
			"no API token; send 'Authorization: Bearer <token>' (usine token create, or the admin token usine up printed)")
	}
	hash := hashSecret(secret)
	if p := s.auth.get(string(hash), s.now()); p != nil {
		return p, nil
	}
	ctx := r.Context()
	t, err := s.store.TokenByHash(ctx, hash)
	if err != nil {
		if isNotFound(err) {
			return nil, fail(http.StatusUnauthorized, api.CodeUnauthorized, "", "unknown API token; it may have been deleted; ask for a new one")
		}
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if t.Expires != 0 && s.now().Unix() >= t.Expires {
		return nil, fail(http.StatusUnauthorized, api.CodeUnauthorized, "", "API token %s expired; create a new one", t.ID)
	}
	var roles []store.Member
	if t.Node == "" { // a node's token holds no role, whoever its user is
		if roles, err = s.store.Members(ctx, "", t.User); err != nil {
			return nil, fmt.Errorf("look up roles of %s: %w", t.User, err)
		}
	}
	parents, err := s.parents(ctx)
	if err != nil {
		return nil, err
	}
	p := &principal{User: t.User, Token: t.ID, Node: t.Node, roles: roles, parents: parents}
	s.auth.put(string(hash), p, s.now())
	return p, nil
}

// authTTL is how long an authenticated principal is reused: a deleted
// token or a changed role takes effect within it.
const authTTL = time.Second

// authCache keeps recent principals by token hash, so that a busy client
// does not cost three store reads per request.
type authCache struct {
	mu sync.Mutex
	m  map[string]cachedPrincipal
}

type cachedPrincipal struct {
	p       *principal
	expires time.Time
}

func (c *authCache) get(key string, now time.Time) *principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && now.Before(e.expires) {
		return e.p
	}
	return nil
}

func (c *authCache) put(key string, p *principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10_000 {
		c.m = map[string]cachedPrincipal{}
	}
	c.m[key] = cachedPrincipal{p, now.Add(authTTL)}
}

// forget drops every cached principal; changes to tokens and roles made
// through this server take effect at once.
func (c *authCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// parents maps every project to its parent.
func (s *Server) parents(ctx context.Context) (map[string]string, error) {
	ps, err := s.store.Projects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Name] = p.Parent
	}
	return m, nil
}

func forbidden(format string, args ...any) *api.Error {
	return fail(http.StatusForbidden, api.CodeForbidden, "", format, args...)
}
