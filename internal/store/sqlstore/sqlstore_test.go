package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
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

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, opener(func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "usine.db") }))
}

// postgresURL is the server make test starts; without it the PostgreSQL
// tests cannot run, which fails the run when USINE_REQUIRE_POSTGRES=1.
func postgresURL(t *testing.T) string {
	u := os.Getenv("USINE_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("USINE_REQUIRE_POSTGRES") == "1" {
			t.Fatal("USINE_REQUIRE_POSTGRES=1 but USINE_TEST_POSTGRES is empty: run the tests through scripts/with-postgres (make test)")
		}
		t.Skip("no PostgreSQL: set USINE_TEST_POSTGRES, or run make test, which starts one")
	}
	return u
}

func TestPostgres(t *testing.T) {
	base := postgresURL(t)
	t.Parallel()
	storetest.Run(t, opener(func(t *testing.T) string { return freshPostgres(t, base) }))
}

// TestUpgradeFromAnOlderSchema creates a store at schema version 1, writes
// to it, then opens it with the current code.
func TestUpgradeFromAnOlderSchema(t *testing.T) {
	t.Parallel()
	urls := map[string]string{"sqlite": "sqlite:" + filepath.Join(t.TempDir(), "old.db")}
	if u := os.Getenv("USINE_TEST_POSTGRES"); u != "" {
		urls["postgres"] = freshPostgres(t, u)
	}
	ctx := context.Background()
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			old, err := open(ctx, url, 1)
			if err != nil {
				t.Fatal(err)
			}
			j := store.Job{Job: model.Job{ID: "new", Project: "p", User: "u", Name: "keep", Accelerators: 1, Limit: 60}, Task: model.Task{Script: "true"}}
			if _, err := old.SubmitJobs(ctx, []store.Job{j}); err != nil {
				t.Fatal(err)
			}
			if v, _ := old.Version(ctx); v != 1 {
				t.Fatalf("old store at version %d; want 1", v)
			}
			old.Close()
			st, err := Open(ctx, url)
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			defer st.Close()
			if v, _ := st.Version(ctx); v != len(migrations)-1 {
				t.Errorf("upgraded store at version %d; want %d", v, len(migrations)-1)
			}
			js, err := st.Jobs(ctx, store.JobFilter{Name: "keep"})
			if err != nil || len(js) != 1 || js[0].ID != "1" {
				t.Errorf("after upgrade: %+v, %v; want job 1 intact", js, err)
			}
		})
	}
}
