package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are the schema's steps, applied in order at Open. Never edit
// a step that has shipped: add one. {{id}}, {{key}} and {{blob}} are the
// dialect's auto-increment key, integer key and byte string types; a
// statement that starts with "sqlite: " or "postgres: " runs on that
// engine only.
var migrations = [][]string{
	1: {
		`CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
		`INSERT INTO counters (name, value) VALUES ('job', 0), ('rev', 0)`,
		`CREATE TABLE jobs (
			id BIGINT PRIMARY KEY,
			rev BIGINT NOT NULL,
			state TEXT NOT NULL,
			project TEXT NOT NULL,
			user_name TEXT NOT NULL,
			partition_name TEXT NOT NULL,
			array_id TEXT NOT NULL,
			name TEXT NOT NULL,
			reason TEXT NOT NULL,
			priority BIGINT NOT NULL,
			est_start BIGINT NOT NULL,
			data TEXT NOT NULL)`,
		`CREATE UNIQUE INDEX jobs_rev ON jobs (rev)`,
		`CREATE INDEX jobs_state ON jobs (state, id)`,
		`CREATE INDEX jobs_project ON jobs (project, id)`,
		`CREATE INDEX jobs_user ON jobs (user_name, id)`,
		`CREATE TABLE events (id {{id}}, job BIGINT NOT NULL, time BIGINT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL)`,
		`CREATE INDEX events_job ON events (job, id)`,
		`CREATE TABLE sites (name TEXT PRIMARY KEY, data TEXT NOT NULL)`,
		`CREATE TABLE partitions (name TEXT PRIMARY KEY, data TEXT NOT NULL)`,
		`CREATE TABLE nodes (name TEXT PRIMARY KEY, rev BIGINT NOT NULL, heartbeat BIGINT NOT NULL, data TEXT NOT NULL)`,
		`CREATE TABLE projects (name TEXT PRIMARY KEY, data TEXT NOT NULL)`,
		`CREATE TABLE members (project TEXT NOT NULL, user_name TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (project, user_name))`,
		`CREATE INDEX members_user ON members (user_name)`,
		`CREATE TABLE tokens (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, hash {{blob}} NOT NULL, data TEXT NOT NULL)`,
		`CREATE UNIQUE INDEX tokens_hash ON tokens (hash)`,
		`CREATE TABLE audit (id {{id}}, time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, remote TEXT NOT NULL, status BIGINT NOT NULL)`,
		`CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, term BIGINT NOT NULL, expires BIGINT NOT NULL)`,
		`INSERT INTO leases (name, holder, term, expires) VALUES ('scheduler', '', 0, 0)`,
	},
	2: {
		// Job arrays are listed by their array ID (squeue -j 123, scancel 123).
		`CREATE INDEX jobs_array ON jobs (array_id, id)`,
		`CREATE INDEX jobs_name ON jobs (name, id)`,
	},
	3: {
		// Why pending jobs wait, apart from the jobs: a pass rewrites
		// thousands of these narrow rows, not the jobs' whole rows and
		// their seven index entries each. A row here holds only while
		// its job is pending and unchanged since (see writeJobs).
		`CREATE TABLE waits (job {{key}}, wait_reason TEXT NOT NULL, wait_priority BIGINT NOT NULL, wait_est BIGINT NOT NULL)`,
		// Room on each page for in-place (HOT) updates.
		`postgres: ALTER TABLE waits SET (fillfactor = 50)`,
		// SQLite: make the job ID the table's rowid (INTEGER PRIMARY
		// KEY), so that a job is found with one B-tree search, not two,
		// and inserted into one index fewer.
		`sqlite: CREATE TABLE jobs3 (
			id INTEGER PRIMARY KEY,
			rev BIGINT NOT NULL,
			state TEXT NOT NULL,
			project TEXT NOT NULL,
			user_name TEXT NOT NULL,
			partition_name TEXT NOT NULL,
			array_id TEXT NOT NULL,
			name TEXT NOT NULL,
			reason TEXT NOT NULL,
			priority BIGINT NOT NULL,
			est_start BIGINT NOT NULL,
			data TEXT NOT NULL)`,
		`sqlite: INSERT INTO jobs3 (id, rev, state, project, user_name, partition_name, array_id, name, reason, priority, est_start, data)
			SELECT id, rev, state, project, user_name, partition_name, array_id, name, reason, priority, est_start, data FROM jobs`,
		`sqlite: DROP TABLE jobs`,
		`sqlite: ALTER TABLE jobs3 RENAME TO jobs`,
		`sqlite: CREATE UNIQUE INDEX jobs_rev ON jobs (rev)`,
		`sqlite: CREATE INDEX jobs_state ON jobs (state, id)`,
		`sqlite: CREATE INDEX jobs_project ON jobs (project, id)`,
		`sqlite: CREATE INDEX jobs_user ON jobs (user_name, id)`,
		`sqlite: CREATE INDEX jobs_array ON jobs (array_id, id)`,
		`sqlite: CREATE INDEX jobs_name ON jobs (name, id)`,
	},
	4: grantsSchema, // calls, proposals, grants and their ledger (grants.go)
}

// migrate brings the schema to version upTo (len(migrations)-1 for the
// latest), one transaction per step. A store written by a newer usine is
// left alone: this one would not know what its columns mean.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	for v := 1; v <= upTo; v++ {
		if err := s.step(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// step applies schema version v unless it is there already.
func (s *Store) step(ctx context.Context, v int) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.postgres {
			// Replicas starting together migrate one at a time.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7366128)`); err != nil {
				return fmt.Errorf("lock the schema: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if latest := int64(len(migrations) - 1); have.Int64 > latest {
			return fmt.Errorf("the store has schema version %d, newer than this usine knows (%d): run a newer usine", have.Int64, latest)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if n > 0 {
			return nil
		}
		for _, stmt := range migrations[v] {
			if engine, rest, ok := strings.Cut(stmt, ": "); ok && (engine == "sqlite" || engine == "postgres") {
				if (engine == "postgres") != s.d.postgres {
					continue
				}
				stmt = rest
			}
			stmt = strings.NewReplacer("{{id}}", s.d.autoID, "{{key}}", s.d.key, "{{blob}}", s.d.blob).Replace(stmt)
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("schema step %d: %s: %w", v, strings.Join(strings.Fields(stmt)[:3], " "), err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), v); err != nil {
			return fmt.Errorf("schema step %d: %w", v, err)
		}
		return nil
	})
}

// Version is the schema version of the store.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}
