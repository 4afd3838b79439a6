// Package storetest is the conformance suite every store.Store engine must
// pass. The SQLite and PostgreSQL engines both run it (internal/store/sqlstore).
package storetest

import (
	"context"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Opener opens the store under test: a fresh, empty one for each test, or,
// with reopen, the test's store again after it was closed (to check what
// survived). The opener closes what it opened when the test ends; a second
// Close must be harmless. It must be safe to call from parallel tests.
type Opener func(t *testing.T, reopen bool) store.Store

// Run runs the suite; every subtest opens a store of its own.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Opener)
	}{
		{"submit assigns IDs, array IDs and revisions", testSubmit},
		{"a submit commits its audit record with the jobs", testSubmitAudit},
		{"jobs filter and page", testFilters},
		{"update job reads, changes and writes back", testUpdateJob},
		{"change feed followed during writes misses nothing", testChangeFeed},
		{"apply is optimistic and atomic", testApply},
		{"set waiting records reasons without a revision", testSetWaiting},
		{"lease: one holder, takeover after expiry, give up", testLease},
		{"lease: racing replicas elect one leader", testLeaseRace},
		{"lease: a deposed leader is fenced off", testFencing},
		{"sites, partitions and projects upsert by name", testObjects},
		{"nodes", testNodes},
		{"members", testMembers},
		{"tokens", testTokens},
		{"audit log and events page", testLogs},
		{"secrets are made once and shared", testSecret},
		{"acknowledged jobs from 50 submitters survive a reopen", testDurable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, open)
		})
	}
}

// job is a small valid job spec of project p.
func job(p string) store.Job {
	return store.Job{
		Job:  model.Job{ID: "new", Project: p, User: "u", Accelerators: 1, Limit: 60},
		Task: model.Task{Script: "#!/bin/sh\ntrue\n"},
	}
}

func submit(t *testing.T, st store.Store, jobs ...store.Job) []store.Job {
	t.Helper()
	out, err := st.SubmitJobs(context.Background(), jobs)
	if err != nil {
		t.Fatalf("submit %d jobs: %v", len(jobs), err)
	}
	if len(out) != len(jobs) {
		t.Fatalf("submit %d jobs returned %d", len(jobs), len(out))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(jobs []store.Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}
