package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the command line and returns its output and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append([]string{"usine"}, args...), &out, &errb)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), ExitCode(err)
}

const shared = "../../../shared/traces"

func TestTraceCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("id,submit_s,project,user,accelerators,nodes,runtime_s,limit_s,state\n"+
		"a,0,p,u,1,,60,,completed\n"+
		"b,5,p,u,1,,abc,,completed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{"convert needs a format", []string{"trace", "convert", "x.trace"}, ExitUsage, "", "--from is required"},
		{"unknown format is named", []string{"trace", "convert", "--from", "nope", "x"}, ExitUsage, "", `unknown format "nope"`},
		{"unknown flag", []string{"trace", "convert", "--frm", "csv", "x"}, ExitUsage, "", "unknown flag"},
		{"convert philly writes csv v1", []string{"trace", "convert", "--from", "philly-gavel", shared + "/philly/gavel_vc_traces/seed=0/23dbec.trace"},
			ExitOK, "id,submit_s,project,user,accelerators,nodes,runtime_s,limit_s,state", "converted"},
		{"a bad line names file, line and field", []string{"trace", "check", bad}, ExitError, "", "bad.csv:3"},
		{"gen is deterministic per seed", []string{"trace", "gen", "--jobs", "50", "--seed", "7", "--cluster", "laptop"}, ExitOK, "single-", ""},
		{"gen refuses zero jobs", []string{"trace", "gen", "--jobs", "0"}, ExitUsage, "", "jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errs, code := run(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %.300s\nstderr: %s", code, tc.wantCode, out, errs)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%.500s", tc.wantOut, out)
			}
			if !strings.Contains(errs, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errs)
			}
		})
	}
}

func TestTraceGenSameSeedSameFile(t *testing.T) {
	t.Parallel()
	a, _, code := run(t, "trace", "gen", "--jobs", "200", "--seed", "3", "--cluster", "laptop")
	b, _, _ := run(t, "trace", "gen", "--jobs", "200", "--seed", "3", "--cluster", "laptop")
	c, _, _ := run(t, "trace", "gen", "--jobs", "200", "--seed", "4", "--cluster", "laptop")
	if code != ExitOK || a != b {
		t.Fatalf("same seed gave different files (exit %d)", code)
	}
	if a == c {
		t.Fatal("different seeds gave the same file")
	}
}
