package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// serverFlags are what `usine server` and `usine up` share.
type serverFlags struct {
	listen, storeURL, dataDir, clusterName string
	certFile, keyFile, policy, name        string
	logFormat                              string
	rateLimit                              float64
	backfill                               time.Duration
}

func (f *serverFlags) register(cmd *cobra.Command, defaultCluster string) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8642", "address to serve the API on")
	fl.StringVar(&f.dataDir, "data", defaultDataDir(), "data directory: the SQLite store and the admin token live here")
	fl.StringVar(&f.storeURL, "store", "", "store URL: sqlite:PATH or postgres://… (default: sqlite in --data)")
	fl.StringVar(&f.clusterName, "cluster", defaultCluster, "cluster to declare in an empty store: built-in ("+strings.Join(cluster.Examples(), ", ")+") or a JSON file")
	fl.StringVar(&f.certFile, "tls-cert", "", "TLS certificate file (PEM); serve HTTPS with --tls-key")
	fl.StringVar(&f.keyFile, "tls-key", "", "TLS private key file (PEM)")
	fl.StringVar(&f.policy, "policy", "usine", "scheduling policy: fifo, easy or usine")
	fl.StringVar(&f.name, "name", "", "this replica's name in the leader election (default host:pid)")
	fl.StringVar(&f.logFormat, "log-format", "auto", "log format: json, text, or auto (JSON unless stderr is a terminal)")
	fl.Float64Var(&f.rateLimit, "rate-limit", 2000, "API requests per second per token (bursts of twice that); 0 = no limit")
	fl.DurationVar(&f.backfill, "backfill-interval", 10*time.Second, "how often the full scheduling pass with estimates runs")
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "usine")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "usine")
	}
	return "usine-data"
}

func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	}
	return nil, &UsageError{fmt.Errorf("--log-format %q: use json, text or auto", format)}
}

// started is a running server: its URL and, on a fresh factory, the admin
// token it made.
type started struct {
	url, adminToken, tokenFile string
	srv                        *server.Server
	done                       chan error
}

// startServer opens the store, seeds it, and serves until ctx ends.
func (f *serverFlags) start(ctx context.Context, stderr io.Writer) (*started, error) {
	log, err := newLogger(stderr, f.logFormat)
	if err != nil {
		return nil, err
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, &UsageError{fmt.Errorf("give both --tls-cert and --tls-key, or neither")}
	}
	policy, err := sched.PolicyByName(f.policy)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("--policy: %w", err)}
	}
	url := f.storeURL
	if url == "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		url = "sqlite:" + filepath.Join(f.dataDir, "usine.db")
	}
	st, err := sqlstore.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redact(url), err)
	}
	srv := server.New(st, server.Config{Name: f.name, Policy: policy, RateLimit: f.rateLimit, BackfillInterval: f.backfill, Log: log})
	if f.clusterName != "" {
		c, err := cluster.Resolve(f.clusterName)
		if err != nil {
			st.Close()
			return nil, &UsageError{fmt.Errorf("--cluster: %w", err)}
		}
		seeded, err := server.Seed(ctx, st, c)
		if err != nil {
			st.Close()
			return nil, err
		}
		if seeded {
			log.Info("declared the cluster in the empty store", "cluster", c.Name, "nodes", len(c.Nodes), "accelerators", c.TotalAccelerators())
		}
	}
	s := &started{srv: srv, done: make(chan error, 1)}
	if s.adminToken, err = srv.EnsureAdmin(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if s.adminToken != "" && f.dataDir != "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err == nil {
			s.tokenFile = filepath.Join(f.dataDir, "admin.token")
			if err := os.WriteFile(s.tokenFile, []byte(s.adminToken+"\n"), 0o600); err != nil {
				log.Warn("could not save the admin token", "file", s.tokenFile, "err", err)
				s.tokenFile = ""
			}
		}
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w (is another usine running? choose another --listen)", f.listen, err)
	}
	scheme := "http"
	if f.certFile != "" {
		scheme = "https"
	}
	s.url = scheme + "://" + l.Addr().String()
	go func() {
		loopDone := make(chan error, 1)
		go func() { loopDone <- srv.Run(ctx) }()
		err := srv.Serve(ctx, l, f.certFile, f.keyFile)
		<-loopDone
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		s.done <- err
	}()
	log.Info("serving", "url", s.url, "store", redact(url))
	return s, nil
}

// redact hides a password in a store URL.
func redact(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if i := strings.Index(u, "://"); i > 0 && i < at {
			return u[:i+3] + "…" + u[at:]
		}
	}
	return u
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API, store and scheduler loop",
		Long: `Run usine's control plane: the HTTP API under /api/v1, the store (SQLite in
--data by default, PostgreSQL with --store postgres://…) and the scheduler loop.
Several replicas may share one PostgreSQL store: one of them schedules at a time.

On a fresh store it declares --cluster's nodes (if given) and creates an admin
user whose token it writes to <data>/admin.token.`,
		Args: usageArgs(cobra.NoArgs, "server takes no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.start(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "usine server on %s\n", s.url)
			if s.tokenFile != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "admin token written to %s (shown once; keep it safe)\n", s.tokenFile)
			}
			return <-s.done
		},
	}
	f.register(cmd, "")
	return cmd
}
