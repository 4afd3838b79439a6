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

// encodeJob is the data column of j: the job as JSON, less what columns
// hold (ID, revision, array ID, wait reason, priority, estimate), so that
// the data of a submitted job can be encoded before the committer gives it
// an ID.
func encodeJob(j store.Job) (string, error) {
	j.ID, j.Rev, j.ArrayID, j.Reason, j.Priority, j.EstStart = "", 0, "", "", 0, 0
	data, err := json.Marshal(j)
	return string(data), err
}

// jobCols are read with every job, from jobs LEFT JOIN waits (jobFrom).
const (
	jobCols = `jobs.id, jobs.rev, jobs.array_id, jobs.state, jobs.data, jobs.reason, jobs.priority, jobs.est_start,
		waits.wait_reason, waits.wait_priority, waits.wait_est`
	jobFrom = ` FROM jobs LEFT JOIN waits ON waits.job = jobs.id`
)

func scanJob(sc scanner) (store.Job, error) {
	var (
		j           store.Job
		id          int64
		state, data string
		wReason     sql.NullString
		wPrio, wEst sql.NullInt64
	)
	err := sc.Scan(&id, &j.Rev, &j.ArrayID, &state, &data, &j.Reason, &j.Priority, &j.EstStart, &wReason, &wPrio, &wEst)
	if err != nil {
		return j, err
	}
	cols := j
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return j, fmt.Errorf("decode job %d: %w", id, err)
	}
	j.ID, j.Rev, j.ArrayID, j.State = strconv.FormatInt(id, 10), cols.Rev, cols.ArrayID, model.JobState(state)
	j.Reason, j.Priority, j.EstStart = cols.Reason, cols.Priority, cols.EstStart
	// A waits row counts while the job is pending: one written by a
	// pass that raced with the job's start is stale.
	if wReason.Valid && j.State == model.JobPending {
		j.Reason, j.Priority, j.EstStart = wReason.String, wPrio.Int64, wEst.Int64
	}
	return j, nil
}

// jobColumns and their types, as jobRow gives them.
var (
	jobColumns = []string{"id", "rev", "state", "project", "user_name", "partition_name", "array_id", "name", "reason", "priority", "est_start", "data"}
	jobTypes   = []string{"BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT"}
)

// jobRow is a job's column values in the order of jobColumns; data is
// encodeJob's.
func jobRow(j *store.Job, data string) ([]any, error) {
	id, ok := jobID(j.ID)
	if !ok {
		return nil, fmt.Errorf("job ID %q is not a number", j.ID)
	}
	return []any{id, j.Rev, string(j.State), j.Project, j.User, j.Partition, j.ArrayID, j.Name, j.Reason, j.Priority, j.EstStart, data}, nil
}

// insertJobs inserts new jobs; data holds their encodeJob.
func (s *Store) insertJobs(ctx context.Context, tx *sql.Tx, jobs []*store.Job, data []string) error {
	rows := make([][]any, len(jobs))
	for i, j := range jobs {
		var err error
		if rows[i], err = jobRow(j, data[i]); err != nil {
			return err
		}
	}
	return insertRows(ctx, s, tx, `INSERT INTO jobs (`+strings.Join(jobColumns, ", ")+`) VALUES `,
		len(jobColumns), rows, func(r []any) []any { return r })
}

// writeJobs rewrites jobs in tx, each with the next revision, in order.
// Their reasons, priorities and estimates go back to the jobs' own
// columns and their waits rows are dropped: the caller read them merged.
func (s *Store) writeJobs(ctx context.Context, tx *sql.Tx, jobs []store.Job) error {
	rev, err := s.next(ctx, tx, "rev", len(jobs))
	if err != nil {
		return err
	}
	rows := make([][]any, len(jobs))
	ids := make([]any, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		j.Rev = rev + int64(i)
		data, err := encodeJob(*j)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", j.ID, err)
		}
		if rows[i], err = jobRow(j, data); err != nil {
			return err
		}
		ids[i] = rows[i][0]
	}
	var set []string
	for _, c := range jobColumns[1:] {
		set = append(set, c+" = ?")
	}
	if !s.d.postgres {
		// SQLite: a prepared statement a job is cheaper than one
		// statement over a VALUES list, which it materialises.
		update, err := s.in(tx).prepare(ctx, `UPDATE jobs SET `+strings.Join(set, ", ")+` WHERE id = ?`)
		if err != nil {
			return err
		}
		unwait, err := s.in(tx).prepare(ctx, `DELETE FROM waits WHERE job = ?`)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if _, err := update.ExecContext(ctx, append(r[1:], r[0])...); err != nil {
				return fmt.Errorf("write job %d: %w", r[0], err)
			}
			if _, err := unwait.ExecContext(ctx, r[0]); err != nil {
				return fmt.Errorf("write job %d: %w", r[0], err)
			}
		}
		return nil
	}
	set = set[:0]
	for _, c := range jobColumns[1:] {
		set = append(set, c+" = v."+c)
	}
	for _, n := range chunks(len(rows), 64) {
		var vals []any
		for _, r := range rows[:n] {
			vals = append(vals, r...)
		}
		query := valuesCTE(jobColumns, jobTypes, n) + `UPDATE jobs SET ` + strings.Join(set, ", ") + ` FROM v WHERE jobs.id = v.id`
		if _, err := s.in(tx).exec(ctx, query, vals...); err != nil {
			return fmt.Errorf("write %d jobs: %w", n, err)
		}
		if _, err := s.in(tx).exec(ctx, `DELETE FROM waits WHERE job IN (`+placeholders(n)+`)`, ids[:n]...); err != nil {
			return fmt.Errorf("write %d jobs: %w", n, err)
		}
		rows, ids = rows[n:], ids[n:]
	}
	return nil
}

func queryJobs(ctx context.Context, o on, query string, args ...any) ([]store.Job, error) {
	return collect(ctx, o, scanJob, query, args...)
}

// jobID is the number of a job ID; false when id names no job.
func jobID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == id
}

// limit is a LIMIT clause: none for n <= 0.
func limit(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// placeholders is "?, ?, …", n of them.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// SubmitJobs implements store.Store.
func (s *Store) SubmitJobs(ctx context.Context, jobs []store.Job, audit ...store.AuditEntry) ([]store.Job, error) {
	w := &write{jobs: make([]store.Job, len(jobs)), data: make([]string, len(jobs)), audit: audit}
	for i, j := range jobs {
		j.State, j.Reason, j.Priority, j.EstStart = model.JobPending, "", 0, 0
		j.Alloc, j.Start, j.End, j.Epoch = nil, 0, 0, 0
		w.jobs[i] = j
		var err error
		if w.data[i], err = encodeJob(j); err != nil {
			return nil, fmt.Errorf("submit: encode job %d of %d: %w", i+1, len(jobs), err)
		}
	}
	if err := s.enqueue(ctx, w); err != nil {
		return nil, fmt.Errorf("submit %d jobs: %w", len(jobs), err)
	}
	return w.out, nil
}

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	n, ok := jobID(id)
	if !ok {
		return store.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNotFound)
	}
	j, err := scanJob(s.reader().queryRow(ctx, `SELECT `+jobCols+jobFrom+` WHERE id = ?`, n))
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return j, fmt.Errorf("read job %s: %w", id, err)
	}
	return j, nil
}

// Jobs implements store.Store.
func (s *Store) Jobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	var where []string
	var args []any
	in := func(col string, vals []any) {
		if len(vals) > 0 {
			where = append(where, col+" IN ("+placeholders(len(vals))+")")
			args = append(args, vals...)
		}
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	if len(f.IDs) > 0 {
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
	query := `SELECT ` + jobCols + jobFrom
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	js, err := queryJobs(ctx, s.reader(), query+" ORDER BY id"+limit(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// ChangedJobs implements store.Store.
func (s *Store) ChangedJobs(ctx context.Context, rev int64, n int) ([]store.Job, error) {
	js, err := queryJobs(ctx, s.reader(), `SELECT `+jobCols+jobFrom+` WHERE rev > ? ORDER BY rev`+limit(n), rev)
	if err != nil {
		return nil, fmt.Errorf("list jobs changed after revision %d: %w", rev, err)
	}
	return js, nil
}

// Rev implements store.Store.
func (s *Store) Rev(ctx context.Context) (int64, error) {
	var v int64
	if err := s.reader().queryRow(ctx, `SELECT value FROM counters WHERE name = 'rev'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the store revision: %w", err)
	}
	return v, nil
}

// lockJobs reads jobs for update inside tx, by ID; IDs that name no job
// are missing from the map.
func (s *Store) lockJobs(ctx context.Context, tx *sql.Tx, ids []string) (map[string]store.Job, error) {
	out := make(map[string]store.Job, len(ids))
	var nums []any
	for _, id := range ids {
		if v, ok := jobID(id); ok {
			nums = append(nums, v)
		}
	}
	for _, n := range chunks(len(nums), 256) {
		// ORDER BY id: concurrent lockers take the rows in one order.
		js, err := queryJobs(ctx, s.in(tx), `SELECT `+jobCols+jobFrom+` WHERE id IN (`+placeholders(n)+`) ORDER BY id`+s.d.lockJobs, nums[:n]...)
		if err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		nums = nums[n:]
		for _, j := range js {
			out[j.ID] = j
		}
	}
	return out, nil
}

// UpdateJob implements store.Store.
func (s *Store) UpdateJob(ctx context.Context, id string, fn func(*store.Job) error) (store.Job, error) {
	var out store.Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		got, err := s.lockJobs(ctx, tx, []string{id})
		if err != nil {
			return err
		}
		j, ok := got[id]
		if !ok {
			return fmt.Errorf("job %q: %w", id, store.ErrNotFound)
		}
		before := j
		if err := fn(&j); err != nil {
			return err
		}
		j.ID = id
		js := []store.Job{j}
		// Grants: a run that ends is charged in this transaction.
		if err := s.jobGrants(ctx, tx, map[string]store.Job{id: before}, js, 0); err != nil {
			return err
		}
		if err := s.writeJobs(ctx, tx, js); err != nil {
			return err
		}
		out = js[0]
		return nil
	})
	return out, err
}

// Apply implements store.Store. Requeues are written before starts, so a
// pass may preempt a job and start another on its accelerators. A job
// named twice in one Decisions is a conflict.
func (s *Store) Apply(ctx context.Context, lease store.Lease, d store.Decisions) ([]store.Job, error) {
	var out []store.Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var holder string
		var term int64
		err := s.in(tx).queryRow(ctx, `SELECT holder, term FROM leases WHERE name = 'scheduler'`+s.d.forUpdate).Scan(&holder, &term)
		if err != nil {
			return fmt.Errorf("read lease: %w", err)
		}
		if holder != lease.Holder || term != lease.Term {
			return fmt.Errorf("lease term %d of %q, now term %d of %q: %w", lease.Term, lease.Holder, term, holder, store.ErrNotLeader)
		}
		var ids []string
		named := map[string]bool{}
		for _, id := range append(requeueIDs(d.Requeues), startIDs(d.Starts)...) {
			if named[id] {
				return fmt.Errorf("job %s is named twice in one pass's decisions: %w", id, store.ErrConflict)
			}
			named[id] = true
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			return nil
		}
		jobs, err := s.lockJobs(ctx, tx, ids)
		if err != nil {
			return err
		}
		out = make([]store.Job, 0, len(ids))
		for _, r := range d.Requeues {
			j, ok := jobs[r.ID]
			if !ok {
				return fmt.Errorf("requeue job %q: %w", r.ID, store.ErrNotFound)
			}
			if j.State != model.JobRunning || j.Epoch != r.Epoch {
				return fmt.Errorf("requeue job %s (epoch %d): it is %s, epoch %d: %w", r.ID, r.Epoch, j.State, j.Epoch, store.ErrConflict)
			}
			j.State, j.Reason, j.Requeues = model.JobPending, r.Reason, j.Requeues+1
			j.Alloc, j.Start, j.EstStart = nil, 0, 0
			out = append(out, j)
		}
		for _, st := range d.Starts {
			j, ok := jobs[st.ID]
			if !ok {
				return fmt.Errorf("start job %q: %w", st.ID, store.ErrNotFound)
			}
			if j.State != model.JobPending || j.Rev != st.Rev || j.Held {
				return fmt.Errorf("start job %s seen pending at revision %d: it is %s at revision %d (held %v): %w",
					st.ID, st.Rev, j.State, j.Rev, j.Held, store.ErrConflict)
			}
			j.State, j.Start, j.Alloc, j.Epoch = model.JobRunning, st.Start, st.Alloc, j.Epoch+1
			j.Reason, j.EstStart = "", 0
			out = append(out, j)
		}
		for _, e := range d.Events {
			if !named[e.Job] {
				return fmt.Errorf("event %q of job %s, which the pass decided nothing for: %w", e.Kind, e.Job, store.ErrConflict)
			}
		}
		// Grants: preempted runs are charged and starts held in this
		// transaction; a start no grant covers refuses the whole apply.
		if err := s.jobGrants(ctx, tx, jobs, out, d.Time); err != nil {
			return err
		}
		if err := s.writeJobs(ctx, tx, out); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, d.Events)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func requeueIDs(rs []store.Requeue) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func startIDs(ss []store.StartJob) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// SetWaiting implements store.Store, in one transaction. The values go to
// the waits table; rows whose values are unchanged are not rewritten.
func (s *Store) SetWaiting(ctx context.Context, ws []store.WaitInfo) error {
	// The last word on each job: PostgreSQL refuses to upsert one row
	// twice in a statement.
	last := make(map[int64]int, len(ws))
	var ids []int64
	for i, w := range ws {
		n, ok := jobID(w.ID)
		if !ok {
			continue
		}
		if _, seen := last[n]; !seen {
			ids = append(ids, n)
		}
		last[n] = i
	}
	if len(ids) == 0 {
		return nil
	}
	const upsert = ` ON CONFLICT (job) DO UPDATE SET
		wait_reason = excluded.wait_reason, wait_priority = excluded.wait_priority, wait_est = excluded.wait_est
		WHERE waits.wait_reason <> excluded.wait_reason OR waits.wait_priority <> excluded.wait_priority OR waits.wait_est <> excluded.wait_est`
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if !s.d.postgres {
			st, err := s.in(tx).prepare(ctx, `INSERT INTO waits (job, wait_reason, wait_priority, wait_est)
				SELECT id, ?, ?, ? FROM jobs WHERE id = ? AND state = 'pending'`+upsert)
			if err != nil {
				return err
			}
			for _, id := range ids {
				w := ws[last[id]]
				if _, err := st.ExecContext(ctx, w.Reason, w.Priority, w.EstStart, id); err != nil {
					return fmt.Errorf("record why job %d waits: %w", id, err)
				}
			}
			return nil
		}
		// PostgreSQL: one statement over arrays for up to 10,000 jobs,
		// not a round trip each.
		for _, n := range chunks(len(ids), 8192) {
			reasons, prios, ests := make([]string, n), make([]int64, n), make([]int64, n)
			for i, id := range ids[:n] {
				w := ws[last[id]]
				reasons[i], prios[i], ests[i] = s.text(w.Reason), w.Priority, w.EstStart
			}
			_, err := s.in(tx).exec(ctx, `INSERT INTO waits (job, wait_reason, wait_priority, wait_est)
				SELECT v.job, v.reason, v.priority, v.est
				FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::bigint[]) AS v(job, reason, priority, est), jobs
				WHERE jobs.id = v.job AND jobs.state = 'pending'`+upsert, ids[:n], reasons, prios, ests)
			if err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record why %d jobs wait: %w", len(last), err)
	}
	return nil
}

// AddEvents implements store.Store; events of one call commit together.
func (s *Store) AddEvents(ctx context.Context, ev []store.Event) error {
	if len(ev) == 0 {
		return nil
	}
	for _, e := range ev {
		if _, ok := jobID(e.Job); !ok {
			return fmt.Errorf("event %q of job %q: %w", e.Kind, e.Job, store.ErrNotFound)
		}
	}
	if err := s.enqueue(ctx, &write{events: ev}); err != nil {
		return fmt.Errorf("record %d events: %w", len(ev), err)
	}
	return nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, job string, after int64, n int) ([]store.Event, error) {
	id, ok := jobID(job)
	if !ok {
		return nil, nil
	}
	rows, err := s.reader().query(ctx, `SELECT id, time, kind, detail FROM events WHERE job = ? AND id > ? ORDER BY id`+limit(n), id, after)
	if err != nil {
		return nil, fmt.Errorf("list events of job %s: %w", job, err)
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
