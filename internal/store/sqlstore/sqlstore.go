// Package sqlstore implements store.Store over database/sql, on two real
// engines: SQLite (modernc.org/sqlite, pure Go, the embedded default) and
// PostgreSQL (jackc/pgx, production). One implementation serves both; a
// small dialect covers their differences (placeholders, key and byte
// types, row locks).
//
// Writes that arrive together (submits, audit records, events) are group
// committed: a committer goroutine takes everything queued, writes it in one
// transaction and answers each caller once the commit is durable.
//
// Job IDs and revisions come from a counters table updated inside each
// writing transaction. In PostgreSQL that row lock serialises the writers
// of jobs, so revisions are handed out in commit order: a reader following
// ChangedJobs(rev) can never see revision R+1 committed while R is still in
// flight, which is what the scheduler loop relies on.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/usine-project/usine/internal/store"
)

// dialect is what differs between the engines.
type dialect struct {
	postgres  bool
	autoID    string // an auto-increment primary key column type
	blob      string
	forUpdate string // row lock suffix of a SELECT in a transaction
}

var (
	sqlite   = dialect{autoID: "INTEGER PRIMARY KEY", blob: "BLOB"}
	postgres = dialect{postgres: true, autoID: "BIGSERIAL PRIMARY KEY", blob: "BYTEA", forUpdate: " FOR UPDATE"}
)

// Store is a store.Store on SQLite or PostgreSQL.
type Store struct {
	d    dialect
	w, r *sql.DB // writer and readers; the same pool on PostgreSQL
	// group commit
	queue   chan *write
	stopped chan struct{}
	mu      sync.RWMutex
	closed  bool
}

var _ store.Store = (*Store)(nil)

// Open opens (and creates or upgrades) the store at url: sqlite:PATH, a
// bare PATH, or postgres://….
func Open(ctx context.Context, url string) (*Store, error) {
	return open(ctx, url, len(migrations)-1)
}

func open(ctx context.Context, u string, version int) (*Store, error) {
	s := &Store{queue: make(chan *write, 4096), stopped: make(chan struct{})}
	var err error
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		s.d = postgres
		if s.w, err = sql.Open("pgx", u); err != nil {
			return nil, err
		}
		s.w.SetMaxOpenConns(32)
		s.w.SetMaxIdleConns(32)
		s.r = s.w
	default:
		path := strings.TrimPrefix(u, "sqlite:")
		if path == "" {
			return nil, fmt.Errorf("store URL %q names no file; use sqlite:/path/to/usine.db", u)
		}
		s.d = sqlite
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
		if s.w, err = sql.Open("sqlite", dsn+"&_txlock=immediate"); err != nil {
			return nil, err
		}
		s.w.SetMaxOpenConns(1) // one writer: never SQLITE_BUSY between our own writes
		if s.r, err = sql.Open("sqlite", dsn); err != nil {
			s.w.Close()
			return nil, err
		}
		s.r.SetMaxOpenConns(8)
	}
	if err := s.w.PingContext(ctx); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := s.migrate(ctx, version); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.commitLoop()
	return s, nil
}

func (s *Store) closeDBs() {
	s.w.Close()
	if s.r != s.w {
		s.r.Close()
	}
}

// Close drains queued writes, then closes the databases.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.stopped
	if s.r != s.w {
		if err := s.r.Close(); err != nil {
			return err
		}
	}
	return s.w.Close()
}

// q rewrites ? placeholders as $1, $2, … for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.d.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// tx runs fn in a write transaction.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// next takes n values of a counter and returns the first.
func (s *Store) next(ctx context.Context, tx *sql.Tx, counter string, n int) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, s.q(`UPDATE counters SET value = value + ? WHERE name = ? RETURNING value`), n, counter).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("take %d from counter %s: %w", n, counter, err)
	}
	return last - int64(n) + 1, nil
}

// --- group commit ---

// write is one caller's share of a group commit.
type write struct {
	jobs   []store.Job
	audit  []store.AuditEntry
	events []store.Event
	done   chan error
}

// enqueue hands w to the committer and waits for its commit.
func (s *Store) enqueue(ctx context.Context, w *write) error {
	w.done = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errors.New("store is closed")
	}
	s.queue <- w
	s.mu.RUnlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The write may still commit; the caller was told nothing.
		return ctx.Err()
	}
}

// maxGroup bounds the rows of one group commit.
const maxGroup = 5000

func (s *Store) commitLoop() {
	defer close(s.stopped)
	for w := range s.queue {
		group := []*write{w}
		rows := len(w.jobs) + len(w.audit) + len(w.events)
	drain:
		for rows < maxGroup {
			select {
			case w2, ok := <-s.queue:
				if !ok {
					break drain
				}
				group = append(group, w2)
				rows += len(w2.jobs) + len(w2.audit) + len(w2.events)
			default:
				break drain
			}
		}
		err := s.tx(context.Background(), func(tx *sql.Tx) error { return s.commitGroup(tx, group) })
		for _, w := range group {
			w.done <- err
		}
	}
}

func (s *Store) commitGroup(tx *sql.Tx, group []*write) error {
	ctx := context.Background()
	var jobs []*store.Job
	var audit []store.AuditEntry
	var events []store.Event
	for _, w := range group {
		for i := range w.jobs {
			jobs = append(jobs, &w.jobs[i])
		}
		audit = append(audit, w.audit...)
		events = append(events, w.events...)
	}
	if len(jobs) > 0 {
		id, err := s.next(ctx, tx, "job", len(jobs))
		if err != nil {
			return err
		}
		rev, err := s.next(ctx, tx, "rev", len(jobs))
		if err != nil {
			return err
		}
		arrays := map[*write]string{}
		for _, w := range group {
			for i := range w.jobs {
				j := &w.jobs[i]
				j.ID, j.Rev = strconv.FormatInt(id, 10), rev
				id++
				rev++
				if j.ArrayID == "new" {
					if arrays[w] == "" {
						arrays[w] = j.ID
					}
					j.ArrayID = arrays[w]
				}
			}
		}
		if err := s.insertJobs(ctx, tx, jobs); err != nil {
			return err
		}
	}
	if err := insertRows(ctx, s, tx, `INSERT INTO audit (time, actor, action, target, remote, status) VALUES `, 6, audit,
		func(e store.AuditEntry) []any {
			return []any{e.Time, e.Actor, e.Action, e.Target, e.Remote, e.Status}
		}); err != nil {
		return err
	}
	return insertRows(ctx, s, tx, `INSERT INTO events (job, time, kind, detail) VALUES `, 4, events,
		func(e store.Event) []any {
			id, _ := strconv.ParseInt(e.Job, 10, 64)
			return []any{id, e.Time, e.Kind, e.Detail}
		})
}

// insertRows writes rows with multi-row INSERTs of up to 200 rows each.
func insertRows[T any](ctx context.Context, s *Store, tx *sql.Tx, prefix string, cols int, rows []T, args func(T) []any) error {
	for len(rows) > 0 {
		n := min(len(rows), 200)
		var b strings.Builder
		b.WriteString(prefix)
		vals := make([]any, 0, n*cols)
		tuple := "(" + strings.Repeat("?,", cols-1) + "?)"
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tuple)
			vals = append(vals, args(rows[i])...)
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), vals...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

func (s *Store) insertJobs(ctx context.Context, tx *sql.Tx, jobs []*store.Job) error {
	var err error
	rows := make([][]any, len(jobs))
	for i, j := range jobs {
		if rows[i], err = jobRow(j); err != nil {
			return err
		}
	}
	return insertRows(ctx, s, tx, `INSERT INTO jobs (id, rev, state, project, user_name, partition_name, array_id, name, reason, priority, est_start, data) VALUES `,
		12, rows, func(r []any) []any { return r })
}

// jobRow is a job's column values, id first, data last.
func jobRow(j *store.Job) ([]any, error) {
	id, err := strconv.ParseInt(j.ID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("job ID %q is not a number", j.ID)
	}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	return []any{id, j.Rev, string(j.State), j.Project, j.User, j.Partition, j.ArrayID, j.Name, j.Reason, j.Priority, j.EstStart, string(data)}, nil
}
