package sched_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure keeps the scheduler a pure function: its non-test files import
// nothing that does I/O, reads the clock, draws random numbers, starts
// goroutines or logs, and call no time.Now.
func TestPure(t *testing.T) {
	forbidden := map[string]string{
		"net/http":     "network I/O belongs to the server",
		"net":          "network I/O belongs to the server",
		"os":           "files and the environment belong to the caller",
		"os/exec":      "processes belong to the agent",
		"io/fs":        "files belong to the caller",
		"database/sql": "the store is the caller's",
		"log":          "the scheduler returns reasons; it does not log",
		"log/slog":     "the scheduler returns reasons; it does not log",
		"math/rand":    "ties break on stable keys, not chance",
		"math/rand/v2": "ties break on stable keys, not chance",
		"crypto/rand":  "ties break on stable keys, not chance",
		"sync":         "one pass runs on one goroutine",
		"sync/atomic":  "one pass runs on one goroutine",
		"time":         "now is an argument of Plan",
		"unsafe":       "plain Go data in and out",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		timeName := ""
		for _, imp := range file.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if why, bad := forbidden[path]; bad {
				t.Errorf("%s imports %s: %s", fset.Position(imp.Pos()), path, why)
			}
			if path == "time" {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && timeName != "" && x.Name == timeName && (n.Sel.Name == "Now" || n.Sel.Name == "Since") {
					t.Errorf("%s: calls time.%s; take the time as an argument", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.GoStmt:
				t.Errorf("%s: starts a goroutine; a pass is sequential", fset.Position(n.Pos()))
			}
			return true
		})
	}
	if checked < 3 {
		t.Fatalf("checked only %d files: is the test running in internal/sched?", checked)
	}
}
