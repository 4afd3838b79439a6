package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Statements are written once with ? placeholders; on runs them where they
// belong. modernc's SQLite driver parses and compiles a statement at every
// call, which costs more than running it, so on SQLite statements are
// prepared once and kept: the texts repeat, since batches are cut into
// sizes that repeat (chunks). PostgreSQL's driver (pgx) keeps its own
// cache of prepared statements by text, per connection.
type on struct {
	s  *Store
	db *sql.DB
	tx *sql.Tx // nil: the statement runs on the pool db
}

// in runs statements in a write transaction.
func (s *Store) in(tx *sql.Tx) on { return on{s: s, db: s.w, tx: tx} }

// writer runs statements on the writer, each in a transaction of its own.
func (s *Store) writer() on { return on{s: s, db: s.w} }

// reader runs statements on the readers.
func (s *Store) reader() on { return on{s: s, db: s.r} }

func (o on) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query, args = o.s.q(query), o.s.args(args)
	if st := o.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	if o.tx != nil {
		return o.tx.ExecContext(ctx, query, args...)
	}
	return o.db.ExecContext(ctx, query, args...)
}

func (o on) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query, args = o.s.q(query), o.s.args(args)
	if st := o.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	if o.tx != nil {
		return o.tx.QueryContext(ctx, query, args...)
	}
	return o.db.QueryContext(ctx, query, args...)
}

func (o on) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query, args = o.s.q(query), o.s.args(args)
	if st := o.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	if o.tx != nil {
		return o.tx.QueryRowContext(ctx, query, args...)
	}
	return o.db.QueryRowContext(ctx, query, args...)
}

// prepare prepares query (with ? placeholders) for a loop of calls in
// the transaction o.tx: the cached statement when there is one. Its
// arguments do not go through Store.args.
func (o on) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	query = o.s.q(query)
	if st := o.stmt(ctx, query); st != nil {
		return st, nil
	}
	st, err := o.tx.PrepareContext(ctx, query) // closed with the transaction
	if err != nil {
		return nil, fmt.Errorf("prepare %.40q…: %w", query, err)
	}
	return st, nil
}

// stmts caches prepared statements by pool and text.
type stmts struct {
	mu      sync.Mutex
	byKey   map[stmtKey]*sql.Stmt
	pending map[string]bool // writer statements to prepare after a transaction
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// maxStmts bounds the cache: job listings with their many filters make
// texts that need not all be kept.
const maxStmts = 400

// stmt is the cached prepared statement for query, or nil to run it
// unprepared. A statement first met inside a write transaction cannot be
// prepared on the writer pool there (the transaction holds its only
// connection): it is prepared when the transaction ends (preparePending).
func (o on) stmt(ctx context.Context, query string) *sql.Stmt {
	if o.s.d.postgres {
		return nil
	}
	c := &o.s.stmts
	c.mu.Lock()
	st, ok := c.byKey[stmtKey{o.db, query}]
	full := len(c.byKey)+len(c.pending) >= maxStmts
	if !ok && o.tx != nil && !full {
		c.pending[query] = true
	}
	c.mu.Unlock()
	switch {
	case ok && o.tx != nil:
		return o.tx.StmtContext(ctx, st) // the writer's connection has it prepared
	case ok:
		return st
	case o.tx != nil || full:
		return nil
	}
	st, err := o.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // running it unprepared reports the error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.byKey[stmtKey{o.db, query}]; ok {
		st.Close()
		return prev
	}
	c.byKey[stmtKey{o.db, query}] = st
	return st
}

// preparePending prepares on the writer the statements met inside
// transactions; the caller holds no connection of the writer.
func (s *Store) preparePending(ctx context.Context) {
	c := &s.stmts
	c.mu.Lock()
	var queries []string
	for q := range c.pending {
		queries = append(queries, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.byKey[stmtKey{s.w, q}]; ok {
			st.Close()
		} else {
			c.byKey[stmtKey{s.w, q}] = st
		}
		c.mu.Unlock()
	}
}

// closeStmts closes the cached statements.
func (s *Store) closeStmts() {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.byKey {
		st.Close()
		delete(c.byKey, k)
	}
}

// chunks cuts n rows into batch sizes that repeat — powers of two up to
// most — so that the statements for them are prepared once.
func chunks(n, most int) []int {
	var out []int
	for n > 0 {
		size := most
		for size > n {
			size /= 2
		}
		out = append(out, size)
		n -= size
	}
	return out
}

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// collect runs query and scans every row it gives with scan.
func collect[T any](ctx context.Context, o on, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := o.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
