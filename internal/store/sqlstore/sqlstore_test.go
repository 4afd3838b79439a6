package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/pgtest"
	"github.com/usine-project/usine/internal/store/storetest"
)

// opener opens a fresh store per test, and the same one again on reopen.
func opener(fresh func(t *testing.T) string) storetest.Opener {
	var mu sync.Mutex
	urls := map[*testing.T]string{}
	return func(t *testing.T, reopen bool) store.Store {
		mu.Lock()
		if !reopen {
			urls[t] = fresh(t)
		}
		url := urls[t]
		mu.Unlock()
		st, err := Open(context.Background(), url)
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

func sqliteURL(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "usine.db") }

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, opener(func(t *testing.T) string { return sqliteURL(t) }))
}

// The PostgreSQL server and a database of a test's own on it.
var (
	postgresURL   = pgtest.Server
	freshPostgres = pgtest.Fresh
)

func TestPostgres(t *testing.T) {
	base := postgresURL(t)
	t.Parallel()
	storetest.Run(t, opener(func(t *testing.T) string { return freshPostgres(t, base) }))
}

// engines runs test on a fresh SQLite store URL and, when a server is at
// hand, on a fresh PostgreSQL database.
func engines(t *testing.T, test func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, sqliteURL(t))
	})
	if base := os.Getenv("USINE_TEST_POSTGRES"); base != "" {
		t.Run("postgres", func(t *testing.T) {
			t.Parallel()
			test(t, freshPostgres(t, base))
		})
	}
}

func testJob(name string) store.Job {
	return store.Job{Job: model.Job{ID: "new", Project: "p", User: "u", Name: name, Accelerators: 1, Limit: 60}, Task: model.Task{Script: "true"}}
}

// TestUpgradeFromAnOlderSchema creates a store at schema version 1, writes
// to it, then opens it with the current code.
func TestUpgradeFromAnOlderSchema(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		old, err := open(ctx, url, 1)
		if err != nil {
			t.Fatal(err)
		}
		a := testJob("keep")
		a.ArrayID = "new"
		if _, err := old.SubmitJobs(ctx, []store.Job{a, a}); err != nil {
			t.Fatal(err)
		}
		if v, _ := old.Version(ctx); v != 1 {
			t.Fatalf("old store at version %d; want 1", v)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := Open(ctx, url)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		defer st.Close()
		if v, _ := st.Version(ctx); v != len(migrations)-1 {
			t.Errorf("upgraded store at version %d; want %d", v, len(migrations)-1)
		}
		for _, f := range []store.JobFilter{{Name: "keep"}, {ArrayID: "1"}} { // through step 2's indexes
			js, err := st.Jobs(ctx, f)
			if err != nil || len(js) != 2 || js[0].ID != "1" || js[1].ArrayID != "1" {
				t.Errorf("Jobs(%+v) after upgrade: %+v, %v; want jobs 1 and 2 intact", f, js, err)
			}
		}
		if js, err := st.SubmitJobs(ctx, []store.Job{testJob("new")}); err != nil || js[0].ID != "3" {
			t.Errorf("submit after upgrade = %+v, %v; want job 3", js, err)
		}
	})
}

func TestRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.w.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (99)`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err := Open(ctx, url); err == nil || !strings.Contains(err.Error(), "newer") {
			if err == nil {
				st.Close()
			}
			t.Errorf("open a store of schema version 99: %v; want an error that says it is newer", err)
		}
	})
}

func TestOpenSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, url, want string
	}{
		{"an unknown engine", "mysql://u@h/db", `unknown kind of store "mysql"`},
		{"no file", "sqlite:", "names no file"},
		{"a missing directory", "sqlite:" + filepath.Join(dir, "nope", "usine.db"), "does not exist"},
	} {
		st, err := Open(context.Background(), tc.url)
		if err == nil {
			st.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %s (%s): %v; want an error with %q", tc.url, tc.name, err, tc.want)
		}
	}
	// A bare path is a SQLite file.
	st, err := Open(context.Background(), filepath.Join(dir, "bare.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "bare.db")); err != nil {
		t.Errorf("a bare path did not create a SQLite file: %v", err)
	}
}

// TestOneBadWriteFailsOnlyItsCaller makes a group commit fail because of
// one caller's write: the others of the group still commit.
func TestOneBadWriteFailsOnlyItsCaller(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		holding, release := make(chan struct{}), make(chan struct{})
		first := true // the committer's own
		poison := errors.New("poisoned write")
		st.beforeCommit = func(group []*write) error {
			if first { // hold the first commit until the others are queued
				first = false
				close(holding)
				<-release
			}
			for _, w := range group {
				for _, e := range w.audit {
					if e.Actor == "poison" {
						return poison
					}
				}
			}
			return nil
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := st.SubmitJobs(ctx, []store.Job{testJob("first")}); err != nil {
				t.Error(err)
			}
		})
		<-holding
		errs := make([]error, 10)
		for i := range errs {
			actor := "ann"
			if i == 3 {
				actor = "poison"
			}
			wg.Go(func() {
				_, errs[i] = st.SubmitJobs(ctx, []store.Job{testJob("")}, store.AuditEntry{Actor: actor, Action: "POST /api/v1/jobs"})
			})
		}
		for deadline := time.Now().Add(10 * time.Second); len(st.queue) < len(errs); {
			if time.Now().After(deadline) {
				t.Fatal("the writes never queued")
			}
			time.Sleep(time.Millisecond)
		}
		close(release)
		wg.Wait()
		for i, err := range errs {
			if i == 3 && !errors.Is(err, poison) {
				t.Errorf("the poisoned write: %v; want its error", err)
			}
			if i != 3 && err != nil {
				t.Errorf("write %d failed with the poisoned one of its group: %v", i, err)
			}
		}
		js, err := st.Jobs(ctx, store.JobFilter{})
		if err != nil || len(js) != 10 {
			t.Errorf("%d jobs committed (%v); want 10: the first and nine of the group", len(js), err)
		}
		log, _ := st.AuditLog(ctx, 0, 0)
		for _, e := range log {
			if e.Actor == "poison" {
				t.Error("the poisoned audit record was committed")
			}
		}
	})
}

// TestTextPostgresRefuses: a NUL byte or invalid UTF-8, which PostgreSQL's
// text refuses, is stored as U+FFFD there, not lost.
func TestTextPostgresRefuses(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		action := "GET /api/v1/jobs/\x00\xff"
		if err := st.Audit(ctx, store.AuditEntry{Actor: "ann", Action: action, Status: 404}); err != nil {
			t.Fatal(err)
		}
		log, err := st.AuditLog(ctx, 0, 0)
		if err != nil || len(log) != 1 {
			t.Fatalf("audit log = %+v, %v", log, err)
		}
		want := action
		if st.d.postgres {
			want = "GET /api/v1/jobs/\uFFFD\uFFFD"
		}
		if log[0].Action != want {
			t.Errorf("action recorded as %q; want %q", log[0].Action, want)
		}
	})
}

// TestStaleWaitIsIgnored: a waits row written by a pass that raced with
// the job's start (possible on PostgreSQL) does not show on the running
// job, and goes when the job is next written.
func TestStaleWaitIsIgnored(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		js, err := st.SubmitJobs(ctx, []store.Job{testJob("")})
		if err != nil {
			t.Fatal(err)
		}
		running, err := st.UpdateJob(ctx, js[0].ID, func(j *store.Job) error { j.State = model.JobRunning; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.w.ExecContext(ctx, st.q(`INSERT INTO waits (job, wait_reason, wait_priority, wait_est) VALUES (?, 'Priority', 9, 99)`), 1); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.Job(ctx, "1"); got.Reason != "" || got.Priority != 0 || got.EstStart != 0 {
			t.Errorf("running job shows a stale wait: %+v", got)
		}
		if _, err := st.UpdateJob(ctx, "1", func(j *store.Job) error { j.State = model.JobPending; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.Job(ctx, "1"); got.Reason != running.Reason || got.EstStart != 0 {
			t.Errorf("requeued job shows a stale wait: %+v", got)
		}
	})
}
