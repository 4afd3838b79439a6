package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// jobCols are read with every job: the wait columns overlay the data, since
// SetWaiting writes only them.
const jobCols = `data, reason, priority, est_start`

func scanJob(sc interface{ Scan(...any) error }) (store.Job, error) {
	var (
		j      store.Job
		data   string
		reason string
		prio   int64
		est    int64
	)
	if err := sc.Scan(&data, &reason, &prio, &est); err != nil {
		return j, err
	}
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return j, fmt.Errorf("decode job: %w", err)
	}
	j.Reason, j.Priority, j.EstStart = reason, prio, est
	return j, nil
}

func (s *Store) queryJobs(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]store.Job, error) {
	rows, err := db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// SubmitJobs implements store.Store.
func (s *Store) SubmitJobs(ctx context.Context, jobs []store.Job, audit ...store.AuditEntry) ([]store.Job, error) {
	w := &write{jobs: make([]store.Job, len(jobs)), audit: audit}
	for i, j := range jobs {
		j.State, j.Reason, j.Priority, j.EstStart = model.JobPending, "", 0, 0
		j.Alloc, j.Start, j.End, j.Epoch = nil, 0, 0, 0
		w.jobs[i] = j
	}
	if err := s.enqueue(ctx, w); err != nil {
		return nil, fmt.Errorf("submit %d jobs: %w", len(jobs), err)
	}
	return w.jobs, nil
}

func jobID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0
}

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	n, ok := jobID(id)
	if !ok {
		return store.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	j, err := scanJob(s.r.QueryRowContext(ctx, s.q(`SELECT `+jobCols+` FROM jobs WHERE id = ?`), n))
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	return j, err
}

// Jobs implements store.Store.
func (s *Store) Jobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	var where []string
	var args []any
	in := func(col string, vals []any) {
		if len(vals) > 0 {
			where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")+")")
			args = append(args, vals...)
		}
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	if f.IDs != nil {
		var ids []any
		for _, id := range f.IDs {
			if n, ok := jobID(id); ok {
				ids = append(ids, n)
			}
		}
		if len(ids) == 0 {
			return nil, nil
		}
		in("id", ids)
	}
	var states, projects []any
	for _, st := range f.States {
		states = append(states, string(st))
	}
	for _, p := range f.Projects {
		projects = append(projects, p)
	}
	in("state", states)
	in("project", projects)
	eq("user_name", f.User)
	eq("partition_name", f.Partition)
	eq("array_id", f.ArrayID)
	eq("name", f.Name)
	if f.After != "" {
		n, err := strconv.ParseInt(f.After, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("page cursor %q is not a job ID", f.After)
		}
		where = append(where, "id > ?")
		args = append(args, n)
	}
	query := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	return s.queryJobs(ctx, s.r, query, args...)
}

// ChangedJobs implements store.Store.
func (s *Store) ChangedJobs(ctx context.Context, rev int64, limit int) ([]store.Job, error) {
	return s.queryJobs(ctx, s.r, `SELECT `+jobCols+` FROM jobs WHERE rev > ? ORDER BY rev LIMIT ?`, rev, limit)
}

// Rev implements store.Store.
func (s *Store) Rev(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'rev'`).Scan(&v)
	return v, err
}

// lockJob reads a job for update inside tx.
func (s *Store) lockJob(ctx context.Context, tx *sql.Tx, id string) (store.Job, error) {
	n, ok := jobID(id)
	if !ok {
		return store.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	j, err := scanJob(tx.QueryRowContext(ctx, s.q(`SELECT `+jobCols+` FROM jobs WHERE id = ?`+s.d.forUpdate), n))
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	return j, err
}

// writeJobs rewrites jobs in tx, each with the next revision.
func (s *Store) writeJobs(ctx context.Context, tx *sql.Tx, jobs []store.Job) error {
	rev, err := s.next(ctx, tx, "rev", len(jobs))
	if err != nil {
		return err
	}
	for i := range jobs {
		j := &jobs[i]
		j.Rev = rev + int64(i)
		r, err := jobRow(j)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE jobs SET rev = ?, state = ?, project = ?, user_name = ?, partition_name = ?, array_id = ?, name = ?, reason = ?, priority = ?, est_start = ?, data = ? WHERE id = ?`),
			append(r[1:], r[0])...)
		if err != nil {
			return fmt.Errorf("write job %s: %w", j.ID, err)
		}
	}
	return nil
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, id string, fn func(*store.Job) error) (store.Job, error) {
	var out store.Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := s.lockJob(ctx, tx, id)
		if err != nil {
			return err
		}
		j.ID = id
		if err := fn(&j); err != nil {
			return err
		}
		j.ID = id
		js := []store.Job{j}
		if err := s.writeJobs(ctx, tx, js); err != nil {
			return err
		}
		out = js[0]
		return nil
	})
	return out, err
}

// Apply implements store.Store.
func (s *Store) Apply(ctx context.Context, lease store.Lease, d store.Decisions) ([]store.Job, error) {
	var out []store.Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var holder string
		var term int64
		err := tx.QueryRowContext(ctx, `SELECT holder, term FROM leases WHERE name = 'scheduler'`+s.d.forUpdate).Scan(&holder, &term)
		if err != nil {
			return fmt.Errorf("read lease: %w", err)
		}
		if holder != lease.Holder || term != lease.Term {
			return fmt.Errorf("lease term %d of %s, now term %d of %s: %w", lease.Term, lease.Holder, term, holder, store.ErrNotLeader)
		}
		out = out[:0]
		for _, r := range d.Requeues {
			j, err := s.lockJob(ctx, tx, r.ID)
			if err != nil {
				return err
			}
			if j.State != model.JobRunning || j.Epoch != r.Epoch {
				return fmt.Errorf("requeue job %s (epoch %d): it is %s, epoch %d: %w", r.ID, r.Epoch, j.State, j.Epoch, store.ErrConflict)
			}
			j.State, j.Reason, j.Requeues = model.JobPending, r.Reason, j.Requeues+1
			j.Alloc, j.Start, j.EstStart = nil, 0, 0
			out = append(out, j)
		}
		for _, st := range d.Starts {
			j, err := s.lockJob(ctx, tx, st.ID)
			if err != nil {
				return err
			}
			if j.State != model.JobPending || j.Rev != st.Rev || j.Held {
				return fmt.Errorf("start job %s seen at revision %d: now %s at revision %d: %w", st.ID, st.Rev, j.State, j.Rev, store.ErrConflict)
			}
			j.State, j.Start, j.Alloc, j.Epoch = model.JobRunning, st.Start, st.Alloc, j.Epoch+1
			j.Reason, j.EstStart = "", 0
			out = append(out, j)
		}
		if len(out) == 0 {
			return nil
		}
		return s.writeJobs(ctx, tx, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetWaiting implements store.Store.
func (s *Store) SetWaiting(ctx context.Context, ws []store.WaitInfo) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`UPDATE jobs SET reason = ?, priority = ?, est_start = ? WHERE id = ? AND state = 'pending'`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, w := range ws {
			n, ok := jobID(w.ID)
			if !ok {
				continue
			}
			if _, err := stmt.ExecContext(ctx, w.Reason, w.Priority, w.EstStart, n); err != nil {
				return fmt.Errorf("record wait of job %s: %w", w.ID, err)
			}
		}
		return nil
	})
}

// AddEvents implements store.Store.
func (s *Store) AddEvents(ctx context.Context, ev []store.Event) error {
	if len(ev) == 0 {
		return nil
	}
	return s.enqueue(ctx, &write{events: ev})
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, job string, after int64, limit int) ([]store.Event, error) {
	n, ok := jobID(job)
	if !ok {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT id, time, kind, detail FROM events WHERE job = ? AND id > ? ORDER BY id LIMIT ?`), n, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e := store.Event{Job: job}
		if err := rows.Scan(&e.ID, &e.Time, &e.Kind, &e.Detail); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
