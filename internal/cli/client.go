package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
)

// defaultServer is where a client looks for the server when nothing says
// otherwise: what usine up and usine server listen on by default.
const defaultServer = "http://127.0.0.1:8642"

// clientCommands are the commands that talk to a server through the API.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{
		newLoginCmd(), newWhoamiCmd(),
		newSubmitCmd(), newQueueCmd(), newShowCmd(),
		newJobActionCmd("cancel"), newJobActionCmd("hold"), newJobActionCmd("release"), newJobActionCmd("requeue"),
		newNodesCmd(), newDrainCmd(), newResumeCmd(), newPartitionsCmd(),
		newProjectsCmd(), newTokenCmd(),
		newGrantsCmd(), newCallsCmd(), newProposalsCmd(), newUsageCmd(), // grants.go, usage.go
	}
}

// conn is how a client command reaches the server: --server and --token,
// else USINE_SERVER and USINE_TOKEN, else the config file that usine login
// writes.
type conn struct {
	server, token string
}

// register adds --server and --token to cmd, and to its subcommands when
// persistent.
func (c *conn) register(cmd *cobra.Command, persistent bool) {
	fl := cmd.Flags()
	if persistent {
		fl = cmd.PersistentFlags()
	}
	fl.StringVar(&c.server, "server", "", "server URL (default $USINE_SERVER, else the config file usine login writes, else "+defaultServer+")")
	fl.StringVar(&c.token, "token", "", "API token (default $USINE_TOKEN, else the config file usine login writes)")
}

// clientConfig is the config file: where the server is and the token.
type clientConfig struct {
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
}

// configPath is $XDG_CONFIG_HOME/usine/config.json, by default
// ~/.config/usine/config.json.
func configPath() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "usine", "config.json"), nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the config file: no home directory (%w); set XDG_CONFIG_HOME", err)
	}
	return filepath.Join(h, ".config", "usine", "config.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string, warn io.Writer) (clientConfig, error) {
	var c clientConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read config file: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config file %s is not valid JSON (%v); fix it or run usine login again", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && c.Token != "" {
		fmt.Fprintf(warn, "usine: warning: %s holds a token and others may read it; chmod 600 %s\n", path, path)
	}
	return c, nil
}

// saveConfig writes the config file, readable by its owner only.
func saveConfig(path string, c clientConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config file: %w", err)
	}
	return nil
}

// endpoint is a resolved server and token, and where each came from, so
// that errors can say what to fix.
type endpoint struct {
	server, serverFrom string
	token, tokenFrom   string
}

// resolve finds the server and token: flags, then the environment, then
// the config file. A token from the config file is only sent to the
// server it was saved for. Talking to the default server with no token
// configured, it uses the admin token that usine up keeps in its default
// data directory, so that a factory on a laptop needs no setup.
func (c *conn) resolve(warn io.Writer) (endpoint, error) {
	var e endpoint
	var file clientConfig
	var path string
	// The file is read only when flags and the environment leave a gap.
	if (c.server == "" && os.Getenv("USINE_SERVER") == "") || (c.token == "" && os.Getenv("USINE_TOKEN") == "") {
		var err error
		if path, err = configPath(); err == nil {
			if file, err = loadConfig(path, warn); err != nil {
				return e, err
			}
		}
	}
	switch {
	case c.server != "":
		e.server, e.serverFrom = c.server, "--server"
	case os.Getenv("USINE_SERVER") != "":
		e.server, e.serverFrom = os.Getenv("USINE_SERVER"), "USINE_SERVER"
	case file.Server != "":
		e.server, e.serverFrom = file.Server, path
	default:
		e.server, e.serverFrom = defaultServer, "the default"
	}
	u, err := url.Parse(e.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return e, &UsageError{fmt.Errorf("server URL %q (from %s) is not an http:// or https:// URL; give one such as %s", e.server, e.serverFrom, defaultServer)}
	}
	e.server = strings.TrimRight(e.server, "/")
	switch {
	case c.token != "":
		e.token, e.tokenFrom = c.token, "--token"
	case os.Getenv("USINE_TOKEN") != "":
		e.token, e.tokenFrom = os.Getenv("USINE_TOKEN"), "USINE_TOKEN"
	case file.Token != "" && (file.Server == "" || sameServer(file.Server, e.server)):
		e.token, e.tokenFrom = file.Token, path
	case e.server == defaultServer:
		if b, err := os.ReadFile(filepath.Join(defaultDataDir(), "admin.token")); err == nil {
			e.token, e.tokenFrom = strings.TrimSpace(string(b)), filepath.Join(defaultDataDir(), "admin.token")
		}
	}
	return e, nil
}

func sameServer(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

// noToken is the error of a command that needs a token and has none.
func noToken(e endpoint) error {
	msg := "no API token: run usine login --server " + e.server + " --token TOKEN, or set USINE_TOKEN (an admin makes tokens with usine token create --user NAME)"
	return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: msg}
}

// client resolves the connection and returns an API client; it fails
// early when there is no token to send.
func (c *conn) client(cmd *cobra.Command) (*api.Client, error) {
	e, err := c.resolve(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	if e.token == "" {
		return nil, noToken(e)
	}
	return newAPIClient(e.server, e.token), nil
}

// newAPIClient is a client with timeouts, so that a server that stops
// answering makes a command fail rather than hang.
func newAPIClient(server, token string) *api.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &api.Client{BaseURL: server, Token: token, HTTP: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func newLoginCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:   "login --server URL --token TOKEN",
		Short: "Check a server URL and API token and save them for the other commands",
		Long: `Check that the token works on the server (it asks /whoami), then save both in
$XDG_CONFIG_HOME/usine/config.json (by default ~/.config/usine/config.json),
readable by you only. Later commands use them unless --server/--token or
USINE_SERVER/USINE_TOKEN say otherwise.

Without --token (and USINE_TOKEN), the token is read from standard input,
so that it stays out of the shell's history.`,
		Example: `  usine login --server https://usine.example.eu --token usine_…
  usine login --server http://127.0.0.1:8642 < ~/.local/share/usine/admin.token`,
		Args: usageArgs(cobra.NoArgs, "give the server and token as --server and --token"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogin(cmd.Context(), &c, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	c.register(cmd, false)
	return cmd
}

func runLogin(ctx context.Context, c *conn, stdin io.Reader, stdout io.Writer) error {
	path, err := configPath()
	if err != nil {
		return err
	}
	file, err := loadConfig(path, io.Discard)
	if err != nil {
		return err
	}
	// The login's own server: what the flag or the environment says,
	// else the one saved before. The token never comes from the file:
	// logging in means giving one.
	server := cmp.Or(c.server, os.Getenv("USINE_SERVER"), file.Server, defaultServer)
	token := cmp.Or(c.token, os.Getenv("USINE_TOKEN"))
	if token == "" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("login: read the token from standard input: %w", err)
		}
		token = strings.TrimSpace(line)
	}
	if token == "" {
		return &UsageError{errors.New("login: no token; give --token TOKEN, set USINE_TOKEN, or pipe the token on standard input")}
	}
	e, err := (&conn{server: server, token: token}).resolve(io.Discard)
	if err != nil {
		return err
	}
	who, err := newAPIClient(e.server, token).Whoami(ctx)
	if err != nil {
		return fmt.Errorf("login to %s: %w", e.server, err)
	}
	if err := saveConfig(path, clientConfig{Server: e.server, Token: token}); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	fmt.Fprintf(stdout, "Logged in to %s as %s; saved in %s\n", e.server, who.User, path)
	return nil
}
