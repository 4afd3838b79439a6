package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/server/servertest"
	"github.com/usine-project/usine/internal/store"
)

// factory is a real usine server for the client commands' tests: a SQLite
// store in t.TempDir with the built-in laptop cluster (4 nodes × 8 H100),
// the HTTP API on a loopback port and the scheduler loop running. There
// are no node agents, so jobs start but only end when cancelled.
type factory struct {
	*servertest.Env
	t *testing.T
}

func newFactory(t *testing.T) *factory {
	t.Helper()
	return &factory{Env: servertest.Start(t, servertest.Options{Cluster: "laptop"}), t: t}
}

// result is what one command line did.
type result struct {
	stdout, stderr string
	code           int
}

// usine runs the command line against the factory as the owner of token;
// --server and --token go before any "--".
func (f *factory) usine(token string, args ...string) result {
	f.t.Helper()
	conn := []string{"--server", f.URL, "--token", token}
	at := slices.Index(args, "--")
	if at < 0 {
		at = len(args)
	}
	return runCLI(f.t, slices.Concat(args[:at], conn, args[at:])...)
}

// admin runs the command line as the factory's admin.
func (f *factory) admin(args ...string) result {
	f.t.Helper()
	return f.usine(f.AdminToken, args...)
}

// ok fails the test unless r exited 0, and returns its standard output.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// runCLI runs a command line as main does: the error goes to stderr.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append([]string{"usine"}, args...), &out, &errb)
	if err != nil {
		errb.WriteString("usine: " + err.Error() + "\n")
	}
	return result{out.String(), errb.String(), ExitCode(err)}
}

// submit submits as the owner of token and returns the job IDs.
func (f *factory) submit(token string, args ...string) []string {
	f.t.Helper()
	out := f.usine(token, append([]string{"submit", "--parsable"}, args...)...).ok(f.t)
	return strings.Fields(out)
}

// job reads a job as usine show -o json prints it.
func (f *factory) job(id string) jobDetail {
	f.t.Helper()
	var d jobDetail
	decodeJSON(f.t, f.admin("show", id, "-o", "json").ok(f.t), &d)
	return d
}

// wait waits until the job is in state.
func (f *factory) wait(id string, cond func(store.Job) bool) store.Job {
	f.t.Helper()
	return f.WaitJob(f.t, id, 30*time.Second, cond)
}

func running(j store.Job) bool { return j.State == "running" }

// newUser makes user a member of project through the CLI, as an admin
// would, and returns a token of theirs.
func (f *factory) newUser(user, project, role string) string {
	f.t.Helper()
	f.admin("projects", "add-member", project, user, "--role", role).ok(f.t)
	return strings.TrimSpace(f.admin("token", "create", "--user", user, "--name", "test").ok(f.t))
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
}
