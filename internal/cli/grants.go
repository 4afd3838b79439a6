package cli

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
)

// Amounts on the command line are accelerator-hours (3.5 = 12,600
// accelerator-seconds); the API speaks accelerator-seconds.

// hoursToSeconds reads accelerator-hours, refusing what is not a finite
// number of 0 or more.
func hoursToSeconds(flag, v string) (int64, error) {
	h, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(h) || math.IsInf(h, 0) || h < 0 || h > 1e12 {
		return 0, &UsageError{fmt.Errorf("%s %q: give accelerator-hours, a number of 0 or more such as 1200 or 0.5", flag, v)}
	}
	return int64(math.Round(h * 3600)), nil
}

// fmtHours prints accelerator-seconds as accelerator-hours.
func fmtHours(s int64) string { return strconv.FormatFloat(float64(s)/3600, 'f', 1, 64) }

// parseWhen reads a date (YYYY-MM-DD, UTC midnight), a time
// (YYYY-MM-DDTHH:MM:SSZ) or Unix seconds.
func parseWhen(flag, v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, &UsageError{fmt.Errorf("%s %q: give a date such as 2027-01-31, a time such as 2027-01-31T12:00:00Z, or Unix seconds", flag, v)}
}

func fmtDate(unix int64) string {
	if unix == 0 {
		return "-"
	}
	return time.Unix(unix, 0).UTC().Format("2006-01-02")
}

// apiCmd is the shape of every grants command: connect, call, print.
func apiCmd(c *conn, cmd *cobra.Command, run func(ctx context.Context, cl *api.Client) error) error {
	cl, err := c.client(cmd)
	if err != nil {
		return err
	}
	return run(cmd.Context(), cl)
}

func newGrantsCmd() *cobra.Command {
	var (
		c         conn
		out       output
		project   string
		programme string
		valid     bool
	)
	cmd := &cobra.Command{
		Use:     "grants",
		Aliases: []string{"grant"},
		Short:   "List grants and their balances; split, top up, transfer, adjust and expire them",
		Long: `List the grants you may see with their balances, in accelerator-hours:
total credited, charged, held by running jobs, and available. The
subcommands open a grant (an officer of its programme), split one into a
sub-grant for a sub-project (a manager of its project), top up, transfer,
adjust (officers), show a grant's ledger entries and notices.`,
		Example: `  usine grants
  usine grants show prop-1
  usine grants split prop-1 --id prop-1.uni --project uni --hours 20000
  usine grants topup prop-1 5000 --note "second half"
  usine grants notices`,
		Args: usageArgs(cobra.NoArgs, "see usine grants --help for the subcommands"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return apiCmd(&c, cmd, func(ctx context.Context, cl *api.Client) error {
				q := url.Values{}
				if project != "" {
					q.Set("project", project)
				}
				if programme != "" {
					q.Set("programme", programme)
				}
				if valid {
					q.Set("valid", "1")
				}
				var gs server.GrantList
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/grants?"+q.Encode(), nil, &gs); err != nil {
					return fmt.Errorf("grants: %w", err)
				}
				w := cmd.OutOrStdout()
				if out.json() {
					return writeJSON(w, gs)
				}
				t := out.table(w, "GRANT", "PROJECT", "CLASS", "SITE", "FROM", "UNTIL", "TOTAL_H", "CHARGED_H", "HELD_H", "AVAILABLE_H", "USED")
				for _, g := range gs.Items {
					used := "-"
					if g.Total > 0 {
						used = fmt.Sprintf("%.0f%%", 100*float64(g.Charged+g.Held)/float64(g.Total))
					}
					t.row(g.ID, g.Project, dash(g.Model), dash(g.Site), fmtDate(g.From), fmtDate(g.Until),
						fmtHours(g.Total), fmtHours(g.Charged), fmtHours(g.Held), fmtHours(g.Available), used)
				}
				return t.flush()
			})
		},
	}
	c.register(cmd, true)
	out.register(cmd)
	cmd.Flags().StringVar(&project, "project", "", "only this project's grants")
	cmd.Flags().StringVar(&programme, "programme", "", "only this programme's grants")
	cmd.Flags().BoolVar(&valid, "valid", false, "only grants valid now")
	cmd.AddCommand(newGrantShowCmd(&c), newGrantCreateCmd(&c, false), newGrantCreateCmd(&c, true),
		newGrantAmountCmd(&c, "topup"), newGrantAmountCmd(&c, "adjust"), newGrantTransferCmd(&c), newGrantExpireCmd(&c), newNoticesCmd(&c))
	return cmd
}

func newGrantShowCmd(c *conn) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show GRANT",
		Short: "A grant's balance and its ledger entries",
		Args:  usageArgs(cobra.ExactArgs(1), "name one grant"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var g store.GrantAccount
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/grants/"+url.PathEscape(args[0]), nil, &g); err != nil {
					return fmt.Errorf("grant %s: %w", args[0], err)
				}
				var es server.Entries
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/grants/"+url.PathEscape(args[0])+"/entries?limit=5000", nil, &es); err != nil {
					return fmt.Errorf("grant %s: %w", args[0], err)
				}
				w := cmd.OutOrStdout()
				if out.json() {
					return writeJSON(w, struct {
						store.GrantAccount
						Entries []ledger.Entry `json:"entries"`
					}{g, es.Items})
				}
				fmt.Fprintf(w, "grant %s of project %s: %s accelerator-hours of %s at %s, %s to %s, programme %s\n",
					g.ID, g.Project, fmtHours(g.Total), dash(g.Model), dash(g.Site), fmtDate(g.From), fmtDate(g.Until), dash(g.Programme))
				fmt.Fprintf(w, "charged %s h, held %s h by %d running jobs, expired %s h, available %s h\n\n",
					fmtHours(g.Charged), fmtHours(g.Held), g.Holds, fmtHours(g.Expired), fmtHours(g.Available))
				t := out.table(w, "SEQ", "TIME", "KIND", "HOURS", "JOB", "OTHER", "ACTOR", "NOTE")
				for _, e := range es.Items {
					t.row(strconv.FormatInt(e.Seq, 10), time.Unix(e.Time, 0).UTC().Format(time.DateTime), string(e.Kind),
						fmtHours(e.Amount), dash(e.Job), dash(e.Other), dash(e.Actor), dash(e.Note))
				}
				return t.flush()
			})
		},
	}
	out.register(cmd)
	return cmd
}

// grantFlags are the flags that describe a grant or sub-grant.
type grantFlags struct {
	id, project, model, site, programme, hours, from, until, note string
	public                                                        bool
}

func (f *grantFlags) request() (server.GrantRequest, error) {
	var r server.GrantRequest
	var err error
	if r.Amount, err = hoursToSeconds("--hours", f.hours); err != nil {
		return r, err
	}
	if r.From, err = parseWhen("--from", f.from); err != nil {
		return r, err
	}
	if r.Until, err = parseWhen("--until", f.until); err != nil {
		return r, err
	}
	r.ID, r.Project, r.Model, r.Site, r.Programme, r.Public, r.Note = f.id, f.project, f.model, f.site, f.programme, f.public, f.note
	return r, nil
}

func newGrantCreateCmd(c *conn, split bool) *cobra.Command {
	var f grantFlags
	use, short, args := "create", "Open a grant outside any call (an officer of its programme)", cobra.NoArgs
	if split {
		use, short, args = "split PARENT", "Carve a sub-grant for a sub-project out of a grant (its project's managers)", cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(args, "see --help"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				path := api.Prefix + "/grants"
				if split {
					path += "/" + url.PathEscape(args[0]) + "/split"
				}
				var g store.GrantAccount
				if err := cl.Do(ctx, http.MethodPost, path, req, &g); err != nil {
					return fmt.Errorf("%s: %w", use, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "grant %s: %s accelerator-hours for %s\n", g.ID, fmtHours(g.Total), g.Project)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "the new grant's ID (required)")
	fl.StringVar(&f.project, "project", "", "the project it is for (required)")
	fl.StringVar(&f.model, "model", "", "accelerator class; empty: any (a sub-grant: the parent's)")
	fl.StringVar(&f.site, "site", "", "site; empty: any")
	fl.StringVar(&f.hours, "hours", "", "accelerator-hours (required)")
	fl.StringVar(&f.from, "from", "", "start: 2027-01-01 or Unix seconds (required)")
	fl.StringVar(&f.until, "until", "", "end, exclusive (required)")
	fl.StringVar(&f.note, "note", "", "why, for the ledger")
	if !split {
		fl.StringVar(&f.programme, "programme", "", "the funding programme (required)")
		fl.BoolVar(&f.public, "public", false, "public money")
	}
	for _, r := range []string{"id", "project", "hours", "from", "until"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newGrantAmountCmd(c *conn, what string) *cobra.Command {
	var note string
	short := "Add accelerator-hours to a grant (an officer of its programme)"
	if what == "adjust" {
		short = "Correct a grant by accelerator-hours, either way, saying why (an officer)"
	}
	cmd := &cobra.Command{
		Use:   what + " GRANT HOURS",
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(2), "name the grant and the accelerator-hours"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h := strings.TrimPrefix(args[1], "-")
			amount, err := hoursToSeconds("HOURS", h)
			if err != nil {
				return err
			}
			if strings.HasPrefix(args[1], "-") {
				amount = -amount
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var g store.GrantAccount
				if err := cl.Do(ctx, http.MethodPost, api.Prefix+"/grants/"+url.PathEscape(args[0])+"/"+what,
					server.AmountRequest{Amount: amount, Note: note}, &g); err != nil {
					return fmt.Errorf("%s %s: %w", what, args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "grant %s: %s accelerator-hours credited, %s available\n", g.ID, fmtHours(g.Total), fmtHours(g.Available))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why, for the ledger")
	return cmd
}

func newGrantTransferCmd(c *conn) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "transfer FROM TO HOURS",
		Short: "Move accelerator-hours between grants of one class (officers; managers of both projects)",
		Args:  usageArgs(cobra.ExactArgs(3), "name the two grants and the accelerator-hours"),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := hoursToSeconds("HOURS", args[2])
			if err != nil {
				return err
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var gs server.GrantList
				if err := cl.Do(ctx, http.MethodPost, api.Prefix+"/grants/"+url.PathEscape(args[0])+"/transfer",
					server.TransferRequest{To: args[1], Amount: amount, Note: note}, &gs); err != nil {
					return fmt.Errorf("transfer: %w", err)
				}
				for _, g := range gs.Items {
					fmt.Fprintf(cmd.OutOrStdout(), "grant %s: %s accelerator-hours available\n", g.ID, fmtHours(g.Available))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why, for the ledger")
	return cmd
}

func newGrantExpireCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:   "expire",
		Short: "Expire what grants past their end have left, now (the server does it every minute)",
		Args:  usageArgs(cobra.NoArgs, "expire takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var es server.Entries
				if err := cl.Do(ctx, http.MethodPost, api.Prefix+"/grants/expire", server.ExpireRequest{}, &es); err != nil {
					return fmt.Errorf("expire: %w", err)
				}
				for _, e := range es.Items {
					fmt.Fprintf(cmd.OutOrStdout(), "grant %s: %s accelerator-hours expired\n", e.Grant, fmtHours(-e.Amount))
				}
				return nil
			})
		},
	}
}

func newNoticesCmd(c *conn) *cobra.Command {
	var out output
	var grant string
	cmd := &cobra.Command{
		Use:   "notices",
		Short: "Grants that reached 80 % or 100 % use, are about to expire, or expired",
		Args:  usageArgs(cobra.NoArgs, "notices takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var ns server.Notices
				q := url.Values{"limit": {"5000"}}
				if grant != "" {
					q.Set("grant", grant)
				}
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/notices?"+q.Encode(), nil, &ns); err != nil {
					return fmt.Errorf("notices: %w", err)
				}
				w := cmd.OutOrStdout()
				if out.json() {
					return writeJSON(w, ns)
				}
				t := out.table(w, "TIME", "GRANT", "PROJECT", "NOTICE", "USED_H", "TOTAL_H")
				for _, n := range ns.Items {
					t.row(time.Unix(n.Time, 0).UTC().Format(time.DateTime), n.Grant, n.Project, noticeText(n.Kind), fmtHours(n.Used), fmtHours(n.Amount))
				}
				return t.flush()
			})
		},
	}
	out.register(cmd)
	cmd.Flags().StringVar(&grant, "grant", "", "only this grant's notices")
	return cmd
}

func noticeText(k ledger.NoticeKind) string {
	switch k {
	case ledger.NoticeUsed80:
		return "80% used"
	case ledger.NoticeUsed100:
		return "fully used"
	case ledger.NoticeExpiring:
		return "expires soon"
	case ledger.NoticeExpired:
		return "expired"
	}
	return string(k)
}

func newCallsCmd() *cobra.Command {
	var (
		c   conn
		out output
	)
	cmd := &cobra.Command{
		Use:     "calls",
		Aliases: []string{"call"},
		Short:   "List calls for proposals; open one (an officer of its programme)",
		Example: `  usine calls
  usine calls create --name "AI Factories 2027-1" --programme eurohpc --public \
      --offer H100@mn5 --offer MI250X --hours 2000000 --opens 2027-01-01 --closes 2027-03-01`,
		Args: usageArgs(cobra.NoArgs, "see usine calls --help for the subcommands"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return apiCmd(&c, cmd, func(ctx context.Context, cl *api.Client) error {
				var cs server.Calls
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/calls", nil, &cs); err != nil {
					return fmt.Errorf("calls: %w", err)
				}
				w := cmd.OutOrStdout()
				if out.json() {
					return writeJSON(w, cs)
				}
				now := time.Now().Unix()
				t := out.table(w, "CALL", "NAME", "PROGRAMME", "OFFERS", "TOTAL_H", "GRANTED_H", "OPENS", "CLOSES", "STATE")
				for _, x := range cs.Items {
					var offers []string
					for _, o := range x.Offers {
						offers = append(offers, o.Model+"@"+cmpOr(o.Site, "any"))
					}
					state := "closed"
					if x.Open(now) {
						state = "open"
					} else if now < x.Opens {
						state = "upcoming"
					}
					t.row(x.ID, x.Name, x.Programme, strings.Join(offers, ","), fmtHours(x.Total), fmtHours(x.Granted), fmtDate(x.Opens), fmtDate(x.Closes), state)
				}
				return t.flush()
			})
		},
	}
	c.register(cmd, true)
	out.register(cmd)
	cmd.AddCommand(newCallCreateCmd(&c))
	return cmd
}

func newCallCreateCmd(c *conn) *cobra.Command {
	var (
		name, programme, hours, opens, closes string
		offers                                []string
		public                                bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Open a call (an officer of its programme)",
		Args:  usageArgs(cobra.NoArgs, "see --help"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			call := store.Call{Name: name, Programme: programme, Public: public}
			var err error
			if call.Total, err = hoursToSeconds("--hours", hours); err != nil {
				return err
			}
			if call.Opens, err = parseWhen("--opens", opens); err != nil {
				return err
			}
			if call.Closes, err = parseWhen("--closes", closes); err != nil {
				return err
			}
			for _, o := range offers {
				m, s, _ := strings.Cut(o, "@")
				call.Offers = append(call.Offers, store.CallOffer{Model: m, Site: s})
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var out store.Call
				if err := cl.Do(ctx, http.MethodPost, api.Prefix+"/calls", call, &out); err != nil {
					return fmt.Errorf("create call: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), out.ID)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "the call's name (required)")
	fl.StringVar(&programme, "programme", "", "the funding programme (required)")
	fl.BoolVar(&public, "public", false, "public money")
	fl.StringArrayVar(&offers, "offer", nil, "an accelerator class offered, CLASS or CLASS@SITE (repeat)")
	fl.StringVar(&hours, "hours", "", "accelerator-hours the call gives out at most (required)")
	fl.StringVar(&opens, "opens", "", "when it opens (required)")
	fl.StringVar(&closes, "closes", "", "when it closes (required)")
	for _, r := range []string{"name", "programme", "hours", "opens", "closes", "offer"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newProposalsCmd() *cobra.Command {
	var (
		c                    conn
		out                  output
		call, state, project string
	)
	cmd := &cobra.Command{
		Use:     "proposals",
		Aliases: []string{"proposal"},
		Short:   "List proposals; submit one (a project's managers); accept, reject or return one (officers)",
		Example: `  usine proposals --call call-1
  usine proposals submit --call call-1 --project cons --title "open 30B model" --model H100 --site mn5 \
      --hours 600000 --from 2027-04-01 --until 2028-04-01 --plan "30B parameters, 2T tokens"
  usine proposals accept prop-1 --hours 500000 --comment "granted in part"
  usine proposals return prop-2 --comment "say which data you train on"`,
		Args: usageArgs(cobra.NoArgs, "see usine proposals --help for the subcommands"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return apiCmd(&c, cmd, func(ctx context.Context, cl *api.Client) error {
				q := url.Values{}
				for k, v := range map[string]string{"call": call, "state": state, "project": project} {
					if v != "" {
						q.Set(k, v)
					}
				}
				var ps server.Proposals
				if err := cl.Do(ctx, http.MethodGet, api.Prefix+"/proposals?"+q.Encode(), nil, &ps); err != nil {
					return fmt.Errorf("proposals: %w", err)
				}
				w := cmd.OutOrStdout()
				if out.json() {
					return writeJSON(w, ps)
				}
				t := out.table(w, "PROPOSAL", "CALL", "PROJECT", "TITLE", "CLASS", "SITE", "ASKED_H", "GRANTED_H", "STATE", "COMMENT")
				for _, x := range ps.Items {
					t.row(x.ID, x.Call, x.Project, x.Title, x.Model, dash(x.Site), fmtHours(x.Amount), fmtHours(x.Granted), x.State, dash(x.Comment))
				}
				return t.flush()
			})
		},
	}
	c.register(cmd, true)
	out.register(cmd)
	cmd.Flags().StringVar(&call, "call", "", "only this call's proposals")
	cmd.Flags().StringVar(&state, "state", "", "only proposals in this state: submitted, accepted, rejected, returned")
	cmd.Flags().StringVar(&project, "project", "", "only this project's proposals")
	cmd.AddCommand(newProposalSubmitCmd(&c))
	for _, d := range []string{store.ProposalAccepted, store.ProposalRejected, store.ProposalReturned} {
		cmd.AddCommand(newProposalDecideCmd(&c, d))
	}
	return cmd
}

func newProposalSubmitCmd(c *conn) *cobra.Command {
	var (
		p                  store.Proposal
		hours, from, until string
	)
	cmd := &cobra.Command{
		Use:   "submit [PROPOSAL]",
		Short: "Submit a proposal to an open call, or a returned one again (a manager of the project)",
		Args:  usageArgs(cobra.MaximumNArgs(1), "name a returned proposal to submit it again, or none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if p.Amount, err = hoursToSeconds("--hours", hours); err != nil {
				return err
			}
			if p.From, err = parseWhen("--from", from); err != nil {
				return err
			}
			if p.Until, err = parseWhen("--until", until); err != nil {
				return err
			}
			method, path := http.MethodPost, api.Prefix+"/proposals"
			if len(args) == 1 {
				method, path = http.MethodPut, path+"/"+url.PathEscape(args[0])
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var out store.Proposal
				if err := cl.Do(ctx, method, path, p, &out); err != nil {
					return fmt.Errorf("submit proposal: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), out.ID)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.Call, "call", "", "the call (required)")
	fl.StringVar(&p.Project, "project", "", "the project asking (required)")
	fl.StringVar(&p.Title, "title", "", "a title (required)")
	fl.StringVar(&p.Plan, "plan", "", "a short plan: model, data, why (see usine plan for the hours to ask)")
	fl.StringVar(&p.Model, "model", "", "accelerator class (required)")
	fl.StringVar(&p.Site, "site", "", "site; empty: any the call offers")
	fl.StringVar(&hours, "hours", "", "accelerator-hours asked (required)")
	fl.StringVar(&from, "from", "", "start of the period (required)")
	fl.StringVar(&until, "until", "", "end of the period, exclusive (required)")
	for _, r := range []string{"call", "project", "title", "model", "hours", "from", "until"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newProposalDecideCmd(c *conn, state string) *cobra.Command {
	var d store.Decision
	var hours string
	verb := map[string]string{store.ProposalAccepted: "accept", store.ProposalRejected: "reject", store.ProposalReturned: "return"}[state]
	cmd := &cobra.Command{
		Use:   verb + " PROPOSAL",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a proposal (an officer of the call's programme)",
		Args:  usageArgs(cobra.ExactArgs(1), "name one proposal"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.State = state
			if hours != "" {
				var err error
				if d.Amount, err = hoursToSeconds("--hours", hours); err != nil {
					return err
				}
			}
			return apiCmd(c, cmd, func(ctx context.Context, cl *api.Client) error {
				var out store.Proposal
				if err := cl.Do(ctx, http.MethodPost, api.Prefix+"/proposals/"+url.PathEscape(args[0])+"/decide", d, &out); err != nil {
					return fmt.Errorf("%s proposal %s: %w", verb, args[0], err)
				}
				msg := fmt.Sprintf("proposal %s %s", out.ID, out.State)
				if out.Grant != "" {
					msg += fmt.Sprintf(": grant %s of %s accelerator-hours", out.Grant, fmtHours(out.Granted))
				}
				fmt.Fprintln(cmd.OutOrStdout(), msg)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&d.Comment, "comment", "", "a word for the proposers (required to return)")
	if state == store.ProposalAccepted {
		cmd.Flags().StringVar(&hours, "hours", "", "accelerator-hours granted, at most those asked (default: all)")
		cmd.Flags().StringVar(&d.GrantID, "grant", "", "the grant's ID (default: the proposal's)")
	}
	return cmd
}
