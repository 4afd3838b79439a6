package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// isolate points the config and data directories at empty temporary ones
// and clears USINE_SERVER and USINE_TOKEN, for the rest of the test. Tests
// that call it change the environment, so they cannot run in parallel.
func isolate(t *testing.T) (configFile string) {
	t.Helper()
	cfg, data := t.TempDir(), t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("USINE_SERVER", "")
	t.Setenv("USINE_TOKEN", "")
	return filepath.Join(cfg, "usine", "config.json")
}

func TestConnectionFlagsBeatEnvironmentBeatConfigFile(t *testing.T) {
	file := isolate(t)
	f := newFactory(t)
	bob := f.newUser("bob", "default", "member")
	whoami := func(args ...string) result {
		t.Helper()
		return runCLI(t, append([]string{"whoami", "-o", "json"}, args...)...)
	}
	user := func(r result) string {
		t.Helper()
		var w struct {
			User  string `json:"user"`
			Roles any    `json:"roles"`
		}
		decodeJSON(t, r.ok(t), &w)
		return w.User
	}

	if r := whoami(); r.code != ExitDenied || !strings.Contains(r.stderr, "no API token: run usine login") || !strings.Contains(r.stderr, "USINE_TOKEN") {
		t.Errorf("nothing configured: exit %d, %q; want %d and how to log in", r.code, r.stderr, ExitDenied)
	}
	if r := runCLI(t, "login", "--server", f.URL, "--token", "usine_wrong"); r.code != ExitDenied {
		t.Errorf("login with a bad token: exit %d; want %d", r.code, ExitDenied)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a failed login wrote %s (%v)", file, err)
	}
	if out := runCLI(t, "login", "--server", f.URL+"/", "--token", f.AdminToken).ok(t); !strings.Contains(out, "as admin") {
		t.Errorf("login printed %q", out)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %v; want 0600", fi.Mode().Perm())
	}
	saved, err := loadConfig(file, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(clientConfig{Server: f.URL, Token: f.AdminToken}, saved); diff != "" {
		t.Errorf("saved config (-want +got):\n%s", diff)
	}

	if got := user(whoami()); got != "admin" {
		t.Errorf("from the config file: user %s; want admin", got)
	}
	t.Setenv("USINE_TOKEN", bob)
	if got := user(whoami()); got != "bob" {
		t.Errorf("USINE_TOKEN over the file: user %s; want bob", got)
	}
	if got := user(whoami("--token", f.AdminToken)); got != "admin" {
		t.Errorf("--token over USINE_TOKEN: user %s; want admin", got)
	}
	t.Setenv("USINE_SERVER", deadServer(t))
	if r := whoami(); r.code != ExitUnreachable {
		t.Errorf("USINE_SERVER over the file: exit %d; want %d (that server is down)", r.code, ExitUnreachable)
	}
	if got := user(whoami("--server", f.URL)); got != "bob" {
		t.Errorf("--server over USINE_SERVER: user %s; want bob", got)
	}

	// The file's token goes only to the file's server.
	t.Setenv("USINE_TOKEN", "")
	t.Setenv("USINE_SERVER", strings.Replace(f.URL, "127.0.0.1", "localhost", 1))
	if r := whoami(); r.code != ExitDenied || !strings.Contains(r.stderr, "no API token") {
		t.Errorf("another server than the file's: exit %d, %q; want %d", r.code, r.stderr, ExitDenied)
	}
	t.Setenv("USINE_SERVER", "ftp://example.org")
	if r := whoami(); r.code != ExitUsage || !strings.Contains(r.stderr, "from USINE_SERVER") {
		t.Errorf("a server that is no http URL: exit %d, %q; want %d", r.code, r.stderr, ExitUsage)
	}
	t.Setenv("USINE_SERVER", "")
	if err := os.WriteFile(file, []byte("{server"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := whoami(); r.code != ExitError || !strings.Contains(r.stderr, file) {
		t.Errorf("a broken config file: exit %d, %q; want %d and its path", r.code, r.stderr, ExitError)
	}
}

func TestLoginReadsTheTokenFromStandardInput(t *testing.T) {
	file := isolate(t)
	f := newFactory(t)
	var out strings.Builder
	err := runLogin(context.Background(), &conn{server: f.URL}, strings.NewReader(f.AdminToken+"\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := loadConfig(file, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Token != f.AdminToken {
		t.Errorf("saved token %q; want the one piped in", saved.Token)
	}
	if err := runLogin(context.Background(), &conn{server: f.URL}, strings.NewReader(""), &out); ExitCode(err) != ExitUsage {
		t.Errorf("login with nothing on standard input: %v; want a usage error", err)
	}
}

func TestTheDefaultServerUsesTheAdminTokenOfUsineUp(t *testing.T) {
	isolate(t)
	dir := filepath.Join(os.Getenv("XDG_DATA_HOME"), "usine")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("usine_up\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := (&conn{}).resolve(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e.server != defaultServer || e.token != "usine_up" {
		t.Errorf("nothing configured: server %s, token %q; want %s and usine up's admin token", e.server, e.token, defaultServer)
	}
	e, err = (&conn{server: "http://elsewhere:8642"}).resolve(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e.token != "" {
		t.Errorf("usine up's admin token was sent to %s", e.server)
	}
}
