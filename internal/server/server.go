// Package server is usine's control plane: the HTTP JSON API under /api/v1,
// authentication and authorisation, the audit log, limits against abuse,
// Prometheus metrics, and the scheduler loop that turns the store's state
// into sched.Plan snapshots and commits the decisions.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/store"
)

// Config is how a server runs.
type Config struct {
	// Name identifies this replica in the leader election; "" = host:pid:random.
	Name string
	// Policy is the scheduling policy (sched.Default() when zero).
	Policy sched.Config
	QoS    []sched.QoS
	// DefaultLimit is the time limit of a job that gives none, seconds.
	DefaultLimit int64
	// RateLimit is requests per second per token (burst: twice as many);
	// 0 = no limit.
	RateLimit float64
	// BackfillInterval is how often the full pass with estimates runs.
	BackfillInterval time.Duration
	// LeaseTTL is how long leadership lasts without renewal.
	LeaseTTL time.Duration
	// NodeTimeout is how long a node's agent may stay silent before the
	// node is marked down and its jobs requeued or failed (default 30 s);
	// AgentHeartbeat is how often agents report (default 5 s).
	NodeTimeout    time.Duration
	AgentHeartbeat time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Server serves the API over a store. Construct with New, then Run.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	metrics *metrics
	limiter *limiter
	auth    authCache
	loop    *Loop
	agents  *agentHub
	grants  grantCache // the scheduler's grant feed (grants.go)
	mux     *http.ServeMux
	ready   chan struct{}
	once    sync.Once
}

// DefaultQoS are the classes a fresh factory has.
func DefaultQoS() []sched.QoS {
	return []sched.QoS{
		{Name: "normal"},
		{Name: "high", Priority: 100, MayPreempt: true},
		{Name: "low", Priority: -100, Preemptible: true},
	}
}

// New makes a server over st.
func New(st store.Store, cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = sched.Default()
	}
	if cfg.QoS == nil {
		cfg.QoS = DefaultQoS()
	}
	if cfg.DefaultLimit <= 0 {
		cfg.DefaultLimit = 3600
	}
	if cfg.BackfillInterval <= 0 {
		cfg.BackfillInterval = 10 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 6 * time.Second
	}
	s := &Server{
		cfg:   cfg,
		store: st,
		log:   cfg.Log,
		now:   cfg.Now,
		reg:   prometheus.NewRegistry(),
		ready: make(chan struct{}),
	}
	s.metrics = newMetrics(s.reg)
	s.limiter = newLimiter(cfg.RateLimit, cfg.Now)
	s.loop = newLoop(s)
	s.agents = newAgentHub(s)
	s.reg.MustRegister(newLoopCollector(s.loop))
	s.mux = s.routes()
	return s
}

// Handler is the whole HTTP surface: API, health, metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Loop is the server's scheduler loop.
func (s *Server) Loop() *Loop { return s.loop }

// Run runs the scheduler loop until ctx ends. It does not serve HTTP:
// Serve does.
func (s *Server) Run(ctx context.Context) error {
	s.once.Do(func() { close(s.ready) })
	done := make(chan struct{})
	go func() { s.agents.run(ctx); close(done) }()
	defer func() { <-done }()
	return s.loop.Run(ctx)
}

// Serve serves HTTP on l until ctx ends, with TLS when certFile is set.
func (s *Server) Serve(ctx context.Context, l net.Listener, certFile, keyFile string) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l = tls.NewListener(l, hs.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// handler is an API handler: it returns an error to answer with, or nil
// once it has written its answer.
type handler func(w http.ResponseWriter, r *http.Request) error

// access says who may call a route at all; finer checks are the handler's.
type access int

const (
	public access = iota // no token needed
	authed               // any valid token
	quiet                // any valid token, and not audited (agents' heartbeats)
)

// route is one API endpoint.
type route struct {
	method, path string
	access       access
	h            handler
}

// apiRoutes lists every endpoint; the OpenAPI document is checked against it.
func (s *Server) apiRoutes() []route {
	p := api.Prefix
	return append([]route{
		{"GET", p + "/openapi.json", public, s.openapi},
		{"GET", p + "/whoami", authed, s.whoami},
		{"POST", p + "/jobs", authed, s.submit},
		{"GET", p + "/jobs", authed, s.listJobs},
		{"POST", p + "/jobs/estimate", authed, s.estimate},
		{"GET", p + "/jobs/{id}", authed, s.getJob},
		{"GET", p + "/jobs/{id}/events", authed, s.jobEvents},
		{"POST", p + "/jobs/{id}/cancel", authed, s.jobAction(actCancel)},
		{"POST", p + "/jobs/{id}/hold", authed, s.jobAction(actHold)},
		{"POST", p + "/jobs/{id}/release", authed, s.jobAction(actRelease)},
		{"POST", p + "/jobs/{id}/requeue", authed, s.jobAction(actRequeue)},
		{"GET", p + "/sites", authed, s.listSites},
		{"PUT", p + "/sites/{name}", authed, s.putSite},
		{"GET", p + "/partitions", authed, s.listPartitions},
		{"PUT", p + "/partitions/{name}", authed, s.putPartition},
		{"GET", p + "/nodes", authed, s.listNodes},
		{"GET", p + "/nodes/{name}", authed, s.getNode},
		{"PUT", p + "/nodes/{name}", authed, s.putNode},
		{"POST", p + "/nodes/{name}/drain", authed, s.drainNode},
		{"POST", p + "/nodes/{name}/resume", authed, s.resumeNode},
		{"GET", p + "/projects", authed, s.listProjects},
		{"PUT", p + "/projects/{name}", authed, s.putProject},
		{"GET", p + "/projects/{name}/members", authed, s.listMembers},
		{"PUT", p + "/projects/{name}/members/{user}", authed, s.putMember},
		{"DELETE", p + "/projects/{name}/members/{user}", authed, s.deleteMember},
		{"POST", p + "/tokens", authed, s.createToken},
		{"GET", p + "/tokens", authed, s.listTokens},
		{"DELETE", p + "/tokens/{id}", authed, s.deleteToken},
		{"GET", p + "/audit", authed, s.auditLog},
		{"GET", p + "/scheduler", authed, s.schedulerState},
		{"GET", p + "/jobs/{id}/log", authed, s.jobLog},
		{"POST", p + "/agents/{node}/register", authed, s.agentRegister},
		{"GET", p + "/agents/{node}/orders", authed, s.agentOrders},
		{"POST", p + "/agents/{node}/report", quiet, s.agentReport},
	}, s.grantRoutes()...) // calls, proposals, grants, usage (grants.go)
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc(api.Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, fail(http.StatusNotFound, api.CodeNotFound, "",
			"no route %s %s; see %s/openapi.json", r.Method, r.URL.Path, api.Prefix))
	})
	return mux
}

// wrap adds what every API route does: metrics, authentication, rate
// limits, error bodies and the audit record of state changes.
func (s *Server) wrap(rt route) http.Handler {
	pattern := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r.Body = http.MaxBytesReader(sw, r.Body, maxBody+1)
		rec := &auditRecord{entry: store.AuditEntry{Time: s.now().Unix(), Action: r.Method + " " + r.URL.Path,
			Target: r.PathValue("id") + r.PathValue("name"), Remote: r.RemoteAddr}}
		r = r.WithContext(context.WithValue(r.Context(), auditKey{}, rec))
		err := func() error {
			if rt.access == public {
				return rt.h(sw, r)
			}
			p, err := s.authenticate(r)
			if err != nil {
				return err
			}
			rec.entry.Actor = p.User
			if !s.limiter.allow(p.Token) {
				sw.Header().Set("Retry-After", "1")
				return fail(http.StatusTooManyRequests, api.CodeRateLimited, "",
					"more than %g requests per second with token %s; slow down and retry", s.cfg.RateLimit, p.Token)
			}
			return rt.h(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
		}()
		if err != nil {
			s.writeError(sw, r, err)
		}
		if r.Method != http.MethodGet && !rec.done {
			rec.entry.Status = sw.status
			if err := s.store.Audit(context.WithoutCancel(r.Context()), rec.entry); err != nil {
				s.log.Error("audit log write failed", "action", rec.entry.Action, "err", err)
			}
		}
		s.metrics.observe(pattern, sw.status, time.Since(start))
	})
}

// auditRecord is the audit entry of one request. A handler that commits
// it together with its own writes sets done.
type auditRecord struct {
	entry store.AuditEntry
	done  bool
}

type auditKey struct{}

func auditOf(r *http.Request) *auditRecord {
	if rec, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
		return rec
	}
	return &auditRecord{}
}

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.ready:
	default:
		writeJSON(w, http.StatusServiceUnavailable, fail(http.StatusServiceUnavailable, api.CodeUnavailable, "", "starting"))
		return
	}
	if _, err := s.store.Rev(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, fail(http.StatusServiceUnavailable, api.CodeUnavailable, "", "store: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": s.loop.IsLeader()})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	p := who(r.Context())
	writeJSON(w, http.StatusOK, api.Whoami{User: p.User, Roles: p.roles})
	return nil
}
