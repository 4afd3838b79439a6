package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/server"
)

func newUsageCmd() *cobra.Command {
	var (
		c                                   conn
		format, by, from, to, project, user string
		rollup, noHeaders                   bool
	)
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "What finished jobs used: accelerator-hours, CPU-hours, wall time, energy and CO2e",
		Long: `Sum what finished jobs used, by any of user, project, consortium (the root of
a project's tree), site, model (accelerator class), programme and month
(UTC; a job's use is split at month boundaries). Admins, operators and
site-wide officers see everything; a programme's officers its use; a
project's managers the project's and its sub-projects'; members their own.

Energy is the accelerators' energy: measured where the node agent reported
it, else the class's rated board power × an assumed utilisation (the
accounting settings', 70 % unless set) × run time; every report says
which. CO2e is that energy × the site's grid intensity (gCO2e/kWh, from
the accounting settings); energy at a site without one is counted apart.`,
		Example: `  usine usage
  usine usage --by project,month --from 2026-01 --to 2026-12
  usine usage --by consortium,site,model -o csv > usage.csv
  usine usage --by project --rollup --project cons -o json`,
		Args: usageArgs(cobra.NoArgs, "usage takes flags only"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "table", "json", "csv":
			default:
				return &UsageError{fmt.Errorf("-o %q: use table, json or csv", format)}
			}
			return apiCmd(&c, cmd, func(ctx context.Context, cl *api.Client) error {
				q := url.Values{"by": {by}}
				for k, v := range map[string]string{"from": from, "to": to, "project": project, "user": user} {
					if v != "" {
						q.Set(k, v)
					}
				}
				if rollup {
					q.Set("rollup", "1")
				}
				var rep server.UsageReport
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/usage?"+q.Encode(), nil, &rep); err != nil {
					return fmt.Errorf("usage: %w", err)
				}
				return writeUsage(cmd, &rep, format, noHeaders)
			})
		},
	}
	c.register(cmd, false)
	fl := cmd.Flags()
	fl.StringVarP(&format, "output", "o", "table", "output format: table, json or csv")
	fl.BoolVar(&noHeaders, "no-headers", false, "leave out the header line of tables and CSV")
	fl.StringVar(&by, "by", "project", "group by these, comma-separated: user, project, consortium, site, model, programme, month")
	fl.StringVar(&from, "from", "", "first month, YYYY-MM")
	fl.StringVar(&to, "to", "", "last month, YYYY-MM")
	fl.StringVar(&project, "project", "", "only this project and its sub-projects")
	fl.StringVar(&user, "user", "", "only this user's jobs")
	fl.BoolVar(&rollup, "rollup", false, "with --by project, count each job in every ancestor project too (rows overlap)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "csv"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// writeUsage prints a report: the rows, and how energy was found on
// standard error for a table (so that a pipe gets the rows alone).
func writeUsage(cmd *cobra.Command, rep *server.UsageReport, format string, noHeaders bool) error {
	w := cmd.OutOrStdout()
	// A row's group travels as labels: put them back in the order of By.
	for i := range rep.Rows {
		r := &rep.Rows[i]
		r.Group = make([]string, len(rep.By))
		for k, key := range rep.By {
			r.Group[k] = r.Labels[key]
		}
	}
	switch format {
	case "json":
		return writeJSON(w, rep)
	case "csv":
		cw := csv.NewWriter(w)
		if !noHeaders {
			_ = cw.Write(usage.Header(rep.By))
		}
		for i := range rep.Rows {
			_ = cw.Write(rep.Rows[i].Cells())
		}
		cw.Flush()
		return cw.Error()
	}
	out := output{format: formatTable, noHeaders: noHeaders}
	t := out.table(w, upper(usage.Header(rep.By))...)
	for i := range rep.Rows {
		t.row(rep.Rows[i].Cells()...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", rep.EnergyNote)
	return nil
}

func upper(h []string) []string {
	out := make([]string, len(h))
	for i, s := range h {
		b := []byte(s)
		for j, c := range b {
			if c >= 'a' && c <= 'z' {
				b[j] = c - 32
			}
		}
		out[i] = string(b)
	}
	return out
}
