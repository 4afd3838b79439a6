// Package sqlstore implements store.Store over database/sql, on two real
// engines: SQLite (modernc.org/sqlite, pure Go, the embedded default) and
// PostgreSQL (jackc/pgx, production). One implementation serves both; a
// small dialect covers their differences (placeholders, key and byte
// types, row locks, what text PostgreSQL refuses).
//
// Writes that arrive together (submits, audit records, events) are group
// committed: a committer goroutine takes everything queued, writes it in one
// transaction and answers each caller once the commit is durable.
//
// Job IDs and revisions come from a counters table updated inside each
// writing transaction (UPDATE … SET value = value + n … RETURNING value).
// In PostgreSQL that row lock serialises the writers of jobs until they
// commit: a transaction that took revision R holds the lock until R is
// committed, and the next writer can only take R+1 after that. Revisions
// are therefore handed out in commit order, and a reader following
// ChangedJobs(rev) can never see R+1 while R is still in flight and then
// skip R forever — which is what the scheduler loop's view relies on.
// SQLite has one writer at a time, which gives the same order.
//
// Why a pending job waits (reason, priority, estimated start), which every
// scheduling pass rewrites for thousands of jobs without a revision, lives
// in a narrow waits table beside the jobs: rewriting the wide job rows and
// their seven index entries made a pass over 20,000 jobs cost over a second
// on PostgreSQL.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/usine-project/usine/internal/store"
)

// dialect is what differs between the engines.
type dialect struct {
	postgres  bool
	autoID    string // an auto-increment primary key column type
	key       string // a 64-bit integer primary key column type
	blob      string
	forUpdate string // row lock suffix of a SELECT in a transaction
	lockJobs  string // the same for a SELECT of jobs joined with waits
}

// dialects, by engine; values, never changed.
func sqliteDialect() dialect {
	return dialect{autoID: "INTEGER PRIMARY KEY", key: "INTEGER PRIMARY KEY", blob: "BLOB"}
}

func postgresDialect() dialect {
	return dialect{postgres: true, autoID: "BIGSERIAL PRIMARY KEY", key: "BIGINT PRIMARY KEY", blob: "BYTEA",
		forUpdate: " FOR UPDATE", lockJobs: " FOR UPDATE OF jobs"}
}

// Store is a store.Store on SQLite or PostgreSQL.
type Store struct {
	d    dialect
	w, r *sql.DB // writer and readers; the same pool on PostgreSQL

	// group commit
	queue   chan *write
	stopped chan struct{}
	mu      sync.RWMutex // held for reading while sending on queue
	closed  bool

	stmts stmts

	// beforeCommit, when set (by tests, before any write), runs first in
	// every group commit's transaction; an error fails the transaction.
	beforeCommit func(group []*write) error
}

var _ store.Store = (*Store)(nil)

// Open opens the store at url, creating it or upgrading its schema as
// needed: sqlite:PATH or a bare PATH for SQLite (the directory must exist),
// postgres://… or postgresql://… for PostgreSQL (the database must exist).
func Open(ctx context.Context, url string) (*Store, error) {
	return open(ctx, url, len(migrations)-1)
}

// open opens the store with its schema brought to version upTo: tests
// create stores of an older version with it.
func open(ctx context.Context, u string, upTo int) (*Store, error) {
	s := &Store{queue: make(chan *write, 4096), stopped: make(chan struct{})}
	s.stmts.byKey, s.stmts.pending = map[stmtKey]*sql.Stmt{}, map[string]bool{}
	var err error
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		s.d = postgresDialect()
		if s.w, err = sql.Open("pgx", u); err != nil {
			return nil, fmt.Errorf("PostgreSQL URL: %w", err)
		}
		s.w.SetMaxOpenConns(32)
		s.w.SetMaxIdleConns(32)
		s.r = s.w
	case !strings.HasPrefix(u, "sqlite:") && strings.Contains(u, "://"):
		return nil, fmt.Errorf("unknown kind of store %q: use sqlite:/path/to/usine.db or postgres://user@host/db", u[:strings.Index(u, "://")])
	default:
		path := strings.TrimPrefix(u, "sqlite:")
		if path == "" {
			return nil, errors.New("the store URL names no file: use sqlite:/path/to/usine.db")
		}
		if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("directory %s of the SQLite store does not exist: create it, or name another file", filepath.Dir(path))
		}
		s.d = sqliteDialect()
		// synchronous=FULL: a commit is on disk (WAL fsynced) when it
		// returns, so an acknowledged job survives a power cut.
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
		// temp_store: statement journals in memory, not in temporary files.
		if s.w, err = sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=cache_size(-65536)&_pragma=temp_store(2)"); err != nil {
			return nil, err
		}
		// One writer connection: our own writes queue in Go, never on
		// SQLITE_BUSY; immediate transactions take the write lock at
		// BEGIN, so a read-modify-write cannot be upgraded into a deadlock.
		s.w.SetMaxOpenConns(1)
		if s.r, err = sql.Open("sqlite", dsn+"&_pragma=query_only(1)"); err != nil {
			s.w.Close()
			return nil, err
		}
		s.r.SetMaxOpenConns(8)
		s.r.SetMaxIdleConns(8)
	}
	if err := s.w.PingContext(ctx); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := s.migrate(ctx, upTo); err != nil {
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

// Close commits what is queued, then closes the databases. Calls after
// Close fail.
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
	s.closeStmts()
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}

// q rewrites ? placeholders as $1, $2, … for PostgreSQL. No query of this
// package has a ? inside a string literal.
func (s *Store) q(query string) string {
	if !s.d.postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + len(query)/8)
	n := 0
	for i := 0; i < len(query); i++ {
		if c := query[i]; c != '?' {
			b.WriteByte(c)
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// text makes a string storable: PostgreSQL's text refuses NUL bytes and
// invalid UTF-8, which SQLite keeps. Both become U+FFFD, so that an odd
// byte in an audit record (a request path) never fails a whole group
// commit nor is silently dropped.
func (s *Store) text(v string) string {
	if !s.d.postgres || (utf8.ValidString(v) && strings.IndexByte(v, 0) < 0) {
		return v
	}
	return strings.ReplaceAll(strings.ToValidUTF8(v, "\uFFFD"), "\x00", "\uFFFD")
}

// args applies text to every string argument.
func (s *Store) args(args []any) []any {
	if s.d.postgres {
		for i, a := range args {
			if v, ok := a.(string); ok {
				args[i] = s.text(v)
			}
		}
	}
	return args
}

// tx runs fn in a write transaction and commits it.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.preparePending(context.Background())
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// next takes n values of a counter and returns the first.
func (s *Store) next(ctx context.Context, tx *sql.Tx, counter string, n int) (int64, error) {
	var last int64
	err := s.in(tx).queryRow(ctx, `UPDATE counters SET value = value + ? WHERE name = ? RETURNING value`, n, counter).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("take %d from counter %s: %w", n, counter, err)
	}
	return last - int64(n) + 1, nil
}

// nextJobs takes n job IDs and n revisions in one statement (one round
// trip fewer on PostgreSQL) and returns the first of each.
func (s *Store) nextJobs(ctx context.Context, tx *sql.Tx, n int) (id, rev int64, err error) {
	rows, err := s.in(tx).query(ctx, `UPDATE counters SET value = value + CAST(? AS BIGINT) WHERE name IN ('job', 'rev') RETURNING name, value`, n)
	if err != nil {
		return 0, 0, fmt.Errorf("take %d job IDs and revisions: %w", n, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var last int64
		if err := rows.Scan(&name, &last); err != nil {
			return 0, 0, fmt.Errorf("take %d job IDs and revisions: %w", n, err)
		}
		if name == "job" {
			id = last - int64(n) + 1
		} else {
			rev = last - int64(n) + 1
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("take %d job IDs and revisions: %w", n, err)
	}
	if id == 0 || rev == 0 {
		return 0, 0, fmt.Errorf("take %d job IDs and revisions: the counters are missing", n)
	}
	return id, rev, nil
}

// unique reports whether err is a unique-key violation: the name is taken.
func unique(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		// SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
		return lite.Code() == 1555 || lite.Code() == 2067
	}
	return false
}

// --- group commit ---

// write is one caller's share of a group commit.
type write struct {
	jobs   []store.Job // as the caller gave them
	data   []string    // their encodeJob, made by the caller
	audit  []store.AuditEntry
	events []store.Event
	out    []store.Job // the jobs as committed, with IDs and revisions
	done   chan error
}

func (w *write) rows() int { return len(w.jobs) + len(w.audit) + len(w.events) }

// enqueue hands w to the committer and waits for its commit.
func (s *Store) enqueue(ctx context.Context, w *write) error {
	w.done = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errors.New("store is closed")
	}
	select {
	case s.queue <- w:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
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

// commitLoop commits whatever is queued as one transaction, until Close.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	for w := range s.queue {
		group := []*write{w}
		rows := w.rows()
	drain:
		for rows < maxGroup {
			select {
			case w2, ok := <-s.queue:
				if !ok {
					break drain
				}
				group = append(group, w2)
				rows += w2.rows()
			default:
				break drain
			}
		}
		err := s.commit(group)
		if err != nil && len(group) > 1 {
			// Whatever failed, it is not every caller's fault: each
			// write alone gets its own answer.
			for _, w := range group {
				w.done <- s.commit([]*write{w})
			}
			continue
		}
		for _, w := range group {
			w.done <- err
		}
	}
}

// commit writes a group in one transaction.
func (s *Store) commit(group []*write) error {
	ctx := context.Background()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.beforeCommit != nil {
			if err := s.beforeCommit(group); err != nil {
				return err
			}
		}
		var (
			jobs   []*store.Job
			data   []string
			audit  []store.AuditEntry
			events []store.Event
		)
		for _, w := range group {
			w.out = append(w.out[:0], w.jobs...)
			for i := range w.out {
				jobs = append(jobs, &w.out[i])
			}
			data = append(data, w.data...)
			audit = append(audit, w.audit...)
			events = append(events, w.events...)
		}
		if len(jobs) > 0 {
			id, rev, err := s.nextJobs(ctx, tx, len(jobs))
			if err != nil {
				return err
			}
			for _, w := range group {
				array := ""
				for i := range w.out {
					j := &w.out[i]
					j.ID, j.Rev = strconv.FormatInt(id, 10), rev
					id++
					rev++
					if j.ArrayID == "new" {
						if array == "" {
							array = j.ID
						}
						j.ArrayID = array
					}
				}
			}
			if err := s.insertJobs(ctx, tx, jobs, data); err != nil {
				return err
			}
		}
		err := insertRows(ctx, s, tx, `INSERT INTO audit (time, actor, action, target, remote, status) VALUES `, 6, audit,
			func(e store.AuditEntry) []any {
				return []any{e.Time, e.Actor, e.Action, e.Target, e.Remote, e.Status}
			})
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// insertEvents writes events whose job IDs the caller checked.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []store.Event) error {
	err := insertRows(ctx, s, tx, `INSERT INTO events (job, time, kind, detail) VALUES `, 4, events,
		func(e store.Event) []any {
			id, _ := jobID(e.Job)
			return []any{id, e.Time, e.Kind, e.Detail}
		})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}

// insertRows writes rows with multi-row INSERTs of up to 128 rows each.
func insertRows[T any](ctx context.Context, s *Store, tx *sql.Tx, prefix string, cols int, rows []T, args func(T) []any) error {
	tuple := "(" + strings.Repeat("?,", cols-1) + "?)"
	for _, n := range chunks(len(rows), 128) {
		var b strings.Builder
		b.WriteString(prefix)
		vals := make([]any, 0, n*cols)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tuple)
			vals = append(vals, args(rows[i])...)
		}
		if _, err := s.in(tx).exec(ctx, b.String(), vals...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// valuesCTE is "WITH v(cols) AS (VALUES (…), …)" for n rows, each value
// cast to its column's type so that PostgreSQL knows the parameters' types.
func valuesCTE(cols, types []string, n int) string {
	var b strings.Builder
	b.WriteString("WITH v(" + strings.Join(cols, ", ") + ") AS (VALUES ")
	var tuple strings.Builder
	tuple.WriteByte('(')
	for i, t := range types {
		if i > 0 {
			tuple.WriteString(", ")
		}
		tuple.WriteString("CAST(? AS " + t + ")")
	}
	tuple.WriteByte(')')
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple.String())
	}
	b.WriteString(") ")
	return b.String()
}
