// Package pgtest gives tests the PostgreSQL server that make test starts
// (scripts/with-postgres) and databases of their own on it.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// Server is the URL of the server make test starts. Without one the test
// cannot run: it fails when USINE_REQUIRE_POSTGRES=1 (make test sets it, so
// that a missing server never passes for a green run), else it is skipped.
func Server(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("USINE_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("USINE_REQUIRE_POSTGRES") == "1" {
			tb.Fatal("USINE_REQUIRE_POSTGRES=1 but USINE_TEST_POSTGRES is empty: run the tests through scripts/with-postgres (make test)")
		}
		tb.Skip("no PostgreSQL: set USINE_TEST_POSTGRES, or run the tests through scripts/with-postgres (make test does)")
	}
	return u
}

// Fresh creates a database of the test's own on the server at base,
// dropped when the test ends, and returns its URL.
func Fresh(tb testing.TB, base string) string {
	tb.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "usine_test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
