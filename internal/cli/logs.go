package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
)

func newLogsCmd() *cobra.Command {
	var (
		c      conn
		follow bool
		rank   int
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] JOB",
		Short: "Print a job's output, read from the node that runs it",
		Long: `Print the output (stdout file) of a job's rank 0, or of --rank N of a gang,
as its node's agent serves it through the server. With -f, keep printing what
the job writes until it ends (or Ctrl-C).

It connects as the other client commands do: --server and --token, else
USINE_SERVER and USINE_TOKEN, else the config file usine login writes.`,
		Example: `  usine logs 42
  usine logs -f 42
  usine logs --rank 1 42`,
		Args: usageArgs(cobra.ExactArgs(1), "give one job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rank < 0 {
				return &UsageError{fmt.Errorf("logs: --rank %d; give 0 or more", rank)}
			}
			e, err := c.resolve(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if e.token == "" {
				return noToken(e)
			}
			return printLogFrom(cmd.Context(), e, args[0], rank, follow, 0, cmd.OutOrStdout())
		},
	}
	c.register(cmd, false)
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing until the job ends")
	fl.IntVar(&rank, "rank", 0, "which rank of a gang")
	return cmd
}

// printLogFrom copies the job's output to out, from byte offset on. It
// has no overall timeout (a followed job may run for days), only one on
// connecting and on the answer's headers.
func printLogFrom(ctx context.Context, e endpoint, job string, rank int, follow bool, offset int64, out io.Writer) error {
	q := url.Values{"rank": {strconv.Itoa(rank)}}
	if follow {
		q.Set("follow", "1")
	}
	if offset > 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	u := e.server + api.Prefix + "/jobs/" + url.PathEscape(job) + "/log?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &UsageError{fmt.Errorf("logs: server URL %q (from %s): %w", e.server, e.serverFrom, err)}
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = time.Minute
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &api.UnreachableError{URL: e.server, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ae := &api.Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Code, ae.Message = api.CodeInternal, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		ae.Status = resp.StatusCode
		return fmt.Errorf("logs of job %s: %w", job, ae)
	}
	if _, err := io.Copy(out, resp.Body); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("logs of job %s: the stream broke: %w", job, err)
	}
	return nil
}
