package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
)

func newLogsCmd() *cobra.Command {
	var (
		server, token string
		follow        bool
		rank          int
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] JOB",
		Short: "Print a job's output, read from the node that runs it",
		Long: `Print the output (stdout file) of a job's rank 0, or of --rank N of a gang,
as its node's agent serves it through the server. With -f, keep printing what
the job writes until it ends (or Ctrl-C).`,
		Example: `  usine logs 42
  usine logs -f 42
  usine logs --rank 1 42`,
		Args: usageArgs(cobra.ExactArgs(1), "give one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rank < 0 {
				return &UsageError{fmt.Errorf("logs: --rank %d; give 0 or more", rank)}
			}
			server, token = logsEndpoint(server, token)
			return printLog(cmd.Context(), server, token, args[0], rank, follow, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&server, "server", "", "server URL (default $USINE_SERVER, else http://127.0.0.1:8642)")
	fl.StringVar(&token, "token", "", "API token (default $USINE_TOKEN, else the admin token usine up keeps)")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing until the job ends")
	fl.IntVar(&rank, "rank", 0, "which rank of a gang")
	return cmd
}

// logsEndpoint fills the server and token from the environment, then
// from what usine up keeps in its default data directory.
func logsEndpoint(server, token string) (string, string) {
	server = cmp.Or(server, os.Getenv("USINE_SERVER"), "http://127.0.0.1:8642")
	token = cmp.Or(token, os.Getenv("USINE_TOKEN"))
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(defaultDataDir(), "admin.token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	return server, token
}

func printLog(ctx context.Context, server, token, job string, rank int, follow bool, out io.Writer) error {
	q := url.Values{"rank": {strconv.Itoa(rank)}}
	if follow {
		q.Set("follow", "1")
	}
	u := strings.TrimRight(server, "/") + api.Prefix + "/jobs/" + url.PathEscape(job) + "/log?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &UsageError{fmt.Errorf("logs: server URL %q: %w", server, err)}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("logs: cannot reach the usine server at %s: %w (is it running? set --server or USINE_SERVER)", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &api.Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return fmt.Errorf("logs of job %s: %w", job, e)
	}
	if _, err := io.Copy(out, resp.Body); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("logs of job %s: the stream broke: %w", job, err)
	}
	return nil
}
