// Package servertest starts a real usine server for tests: a SQLite store
// in a temporary directory, a built-in cluster declared in it, the HTTP API
// on a loopback port and the scheduler loop running. Tests of the CLI, the
// agents and the Slurm commands use it, so they exercise the real thing.
package servertest

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// Env is a running server.
type Env struct {
	URL        string
	AdminToken string
	Server     *server.Server
	Store      store.Store
	Admin      *api.Client
}

// Options change the server a test gets.
type Options struct {
	Cluster  string        // built-in cluster or file; "" = laptop
	Config   server.Config // Log, Now, Policy, …; zero = defaults
	StoreURL string        // "" = SQLite in a temp dir
}

// Start starts a server that stops when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url := o.StoreURL
	if url == "" {
		url = "sqlite:" + t.TempDir() + "/usine.db"
	}
	st, err := sqlstore.Open(ctx, url)
	if err != nil {
		cancel()
		t.Fatalf("open store: %v", err)
	}
	if o.Cluster == "" {
		o.Cluster = "laptop"
	}
	c, err := cluster.Resolve(o.Cluster)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	if _, err := server.Seed(ctx, st, c); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if o.Config.BackfillInterval == 0 {
		o.Config.BackfillInterval = time.Second
	}
	srv := server.New(st, o.Config)
	secret, err := srv.EnsureAdmin(ctx)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		hs.Close()
		<-done
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &Env{URL: hs.URL, AdminToken: secret, Server: srv, Store: st,
		Admin: &api.Client{BaseURL: hs.URL, Token: secret}}
}

// Client is an API client with token.
func (e *Env) Client(token string) *api.Client { return &api.Client{BaseURL: e.URL, Token: token} }

// User creates a user with roles (project "" = site-wide) and returns a
// client holding a fresh token of theirs.
func (e *Env) User(t testing.TB, name string, roles ...store.Member) *api.Client {
	t.Helper()
	ctx := context.Background()
	for _, m := range roles {
		m.User = name
		if err := e.Store.PutMember(ctx, m); err != nil {
			t.Fatalf("member %v: %v", m, err)
		}
	}
	_, secret, err := e.Server.IssueToken(ctx, name, "test", 0)
	if err != nil {
		t.Fatalf("token for %s: %v", name, err)
	}
	return e.Client(secret)
}

// Project creates a project.
func (e *Env) Project(t testing.TB, name, parent string) {
	t.Helper()
	if err := e.Store.PutProject(context.Background(), model.Project{Name: name, Parent: parent, Shares: 1}); err != nil {
		t.Fatalf("project %s: %v", name, err)
	}
}

// WaitJob polls job id until cond holds, failing the test after timeout.
func (e *Env) WaitJob(t testing.TB, id string, timeout time.Duration, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := e.Store.Job(context.Background(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("job %s: %v", id, err)
		}
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within %v; last seen %+v", id, timeout, j)
		}
		e.Server.Loop().Wake()
		time.Sleep(5 * time.Millisecond)
	}
}
