package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm/hostlist"
	"github.com/usine-project/usine/internal/store"
)

func newWhoamiCmd() *cobra.Command {
	var (
		c   conn
		out output
	)
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the API token belongs to, and their roles",
		Args:  usageArgs(cobra.NoArgs, "whoami takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			who, err := cl.Whoami(cmd.Context())
			if err != nil {
				return fmt.Errorf("whoami: %w", err)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				return writeJSON(w, who)
			}
			fmt.Fprintf(w, "%s\n\n", who.User)
			t := out.table(w, "ROLE", "PROJECT")
			for _, m := range who.Roles {
				t.row(string(m.Role), projectLabel(m.Project))
			}
			return t.flush()
		},
	}
	c.register(cmd, false)
	out.register(cmd)
	return cmd
}

// projectLabel names a membership's project; "" is a site-wide role.
func projectLabel(p string) string {
	if p == "" {
		return "(site-wide)"
	}
	return p
}

// nodeState is a node's state as sinfo says it: idle, mixed, allocated,
// draining, drained or down.
func nodeState(n *api.NodeView) string {
	switch n.State {
	case model.NodeUp:
		switch {
		case n.Allocated == 0 && len(n.Jobs) == 0:
			return "idle"
		case n.Accelerators > 0 && n.Allocated >= n.Accelerators:
			return "allocated"
		}
		return "mixed"
	case model.NodeDrain:
		if len(n.Jobs) > 0 {
			return "draining"
		}
		return "drained"
	}
	return string(n.State)
}

func newNodesCmd() *cobra.Command {
	var (
		c                 conn
		out               output
		partition, states string
	)
	cmd := &cobra.Command{
		Use:   "nodes [NODES]",
		Short: "List nodes: state, accelerators in use, jobs",
		Long: `List the nodes, or those NODES names (a host list such as node[1-4]), with
their state: idle, mixed or allocated when up, draining or drained, down.
--state takes those, or the API's up, drain and down.

LIMITS says whether the node's agent holds jobs to the CPUs and memory they
asked for (cgroup: with cgroup v2 limits; none: it cannot, and a note on
standard error says why; -: no agent has said). -o wide adds POWER, how the
agent reads its accelerators' power for measured energy (nvidia-smi, sysfs,
emulated: a synthetic draw; -: it cannot, energy is estimated).`,
		Example: `  usine nodes
  usine nodes --state drained,down -o wide
  usine nodes 'node[1-2]' -o json`,
		ValidArgsFunction: completeNodes(&c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			names, err := nodeArgs("nodes", args)
			if err != nil {
				return err
			}
			want := splitComma(states)
			for _, s := range want {
				if !slices.Contains([]string{"up", "drain", "down", "idle", "mixed", "allocated", "draining", "drained"}, s) {
					return &UsageError{fmt.Errorf("nodes --state %q: use idle, mixed, allocated, draining, drained, down, up or drain", s)}
				}
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			nodes, err := cl.Nodes(cmd.Context())
			if err != nil {
				return fmt.Errorf("nodes: %w", err)
			}
			nodes = slices.DeleteFunc(nodes, func(n api.NodeView) bool {
				return (len(names) > 0 && !slices.Contains(names, n.Name)) ||
					(partition != "" && n.Partition != partition) ||
					(len(want) > 0 && !slices.Contains(want, string(n.State)) && !slices.Contains(want, nodeState(&n)))
			})
			w := cmd.OutOrStdout()
			if out.json() {
				if nodes == nil {
					nodes = []api.NodeView{}
				}
				return writeJSON(w, api.Nodes{Items: nodes})
			}
			header := []string{"NAME", "PARTITION", "STATE", "ACCEL", "USED/TOTAL", "BLOCK", "LIMITS", "JOBS", "REASON"}
			if out.wide() {
				header = append(header, "SITE", "GROUP", "CPUS", "MEM", "HEARTBEAT", "ADDRESS", "POWER")
			}
			t := out.table(w, header...)
			now := time.Now()
			for i := range nodes {
				n := &nodes[i]
				row := []string{n.Name, n.Partition, nodeState(n), dash(n.Model), fmt.Sprintf("%d/%d", n.Allocated, n.Accelerators),
					dash(n.Block), nodeLimits(n.Limits), dash(compactIDs(n.Jobs)), dash(n.Reason)}
				if out.wide() {
					row = append(row, n.Site, dash(n.Group), cpus(n.CPUs), fmtMiB(n.MemoryMiB), fmtTime(n.Heartbeat, now), dash(n.Address), dash(n.Power))
				}
				t.row(row...)
			}
			if err := t.flush(); err != nil {
				return err
			}
			writeNoLimits(cmd.ErrOrStderr(), nodes)
			return nil
		},
	}
	c.register(cmd, false)
	out.register(cmd)
	cmd.Flags().StringVarP(&partition, "partition", "p", "", "only nodes of this partition")
	cmd.Flags().StringVar(&states, "state", "", "only nodes in these states, comma-separated")
	_ = cmd.RegisterFlagCompletionFunc("partition", completePartitions(&c))
	return cmd
}

// nodeLimits is the LIMITS column: whether the node's jobs are held to
// their CPUs and memory.
func nodeLimits(l *store.NodeLimits) string {
	switch {
	case l == nil:
		return "-"
	case l.Enforced:
		return "cgroup"
	}
	return "none"
}

// writeNoLimits says, under the table, why nodes run jobs without limits:
// one line per reason, naming its nodes (a reason is too long for a
// column, and a whole factory often shares one).
func writeNoLimits(w io.Writer, nodes []api.NodeView) {
	byReason := map[string][]string{}
	var reasons []string
	for _, n := range nodes {
		if n.Limits == nil || n.Limits.Enforced {
			continue
		}
		why := cmp.Or(n.Limits.Reason, "its agent gave no reason")
		if byReason[why] == nil {
			reasons = append(reasons, why)
		}
		byReason[why] = append(byReason[why], n.Name)
	}
	for _, why := range reasons {
		fmt.Fprintf(w, "no CPU and memory limits on %s: %s\n", hostlist.Compress(byReason[why]), why)
	}
}

// nodeArgs expands host lists in the arguments.
func nodeArgs(verb string, args []string) ([]string, error) {
	var names []string
	for _, a := range args {
		n, err := hostlist.Expand(a)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("%s: %v", verb, err)}
		}
		names = append(names, n...)
	}
	return names, nil
}

func newDrainCmd() *cobra.Command {
	var (
		c      conn
		reason string
	)
	cmd := &cobra.Command{
		Use:   "drain NODE… --reason TEXT",
		Short: "Drain nodes: running jobs finish, nothing new starts (operators)",
		Long: `Drain nodes: the jobs running there finish, nothing new starts there until
usine resume. NODE may be a host list such as node[1-4]. Operators and
admins only.`,
		Example:           `  usine drain node3 --reason "replace GPU 5"`,
		Args:              usageArgs(cobra.MinimumNArgs(1), "name the nodes to drain"),
		ValidArgsFunction: completeNodes(&c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return &UsageError{errors.New("drain: say why with --reason TEXT; usine nodes shows it to everyone")}
			}
			names, err := nodeArgs("drain", args)
			if err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			return forEach(cmd, names, func(ctx context.Context, name string) (string, error) {
				if _, err := cl.Drain(ctx, name, reason); err != nil {
					return "", err
				}
				return "node " + name + " drained", nil
			})
		},
	}
	c.register(cmd, false)
	cmd.Flags().StringVar(&reason, "reason", "", "why the node is drained (required)")
	return cmd
}

func newResumeCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:               "resume NODE…",
		Short:             "Open drained or down nodes to new work again (operators)",
		Example:           `  usine resume node3 'node[5-6]'`,
		Args:              usageArgs(cobra.MinimumNArgs(1), "name the nodes to resume"),
		ValidArgsFunction: completeNodes(&c),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := nodeArgs("resume", args)
			if err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			return forEach(cmd, names, func(ctx context.Context, name string) (string, error) {
				if _, err := cl.Resume(ctx, name); err != nil {
					return "", err
				}
				return "node " + name + " resumed", nil
			})
		},
	}
	c.register(cmd, false)
	return cmd
}

func newPartitionsCmd() *cobra.Command {
	var (
		c   conn
		out output
	)
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "List partitions: their nodes and accelerators in use",
		Args:  usageArgs(cobra.NoArgs, "partitions takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			parts, err := cl.Partitions(cmd.Context())
			if err != nil {
				return fmt.Errorf("partitions: %w", err)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				if parts == nil {
					parts = []model.Partition{}
				}
				return writeJSON(w, struct {
					Items []model.Partition `json:"items"`
				}{parts})
			}
			nodes, err := cl.Nodes(cmd.Context())
			if err != nil {
				return fmt.Errorf("partitions: %w", err)
			}
			type sum struct{ nodes, up, used, total int }
			sums := map[string]*sum{}
			for _, p := range parts {
				sums[p.Name] = &sum{}
			}
			for _, n := range nodes {
				if s := sums[n.Partition]; s != nil {
					s.nodes++
					s.used += n.Allocated
					s.total += n.Accelerators
					if n.State == model.NodeUp {
						s.up++
					}
				}
			}
			t := out.table(w, "NAME", "SITE", "MODEL", "STATE", "NODES(UP/TOTAL)", "ACCEL(USED/TOTAL)")
			for _, p := range parts {
				s := sums[p.Name]
				state := "up"
				if p.Down {
					state = "down"
				}
				t.row(p.Name, p.Site, p.Model, state, fmt.Sprintf("%d/%d", s.up, s.nodes), fmt.Sprintf("%d/%d", s.used, s.total))
			}
			return t.flush()
		},
	}
	c.register(cmd, false)
	out.register(cmd)
	return cmd
}

func newProjectsCmd() *cobra.Command {
	var (
		c   conn
		out output
	)
	cmd := &cobra.Command{
		Use:     "projects",
		Aliases: []string{"project"},
		Short:   "List projects, create them and manage their members",
		Long: `List the projects you may see. The subcommands create and change projects
(admins, officers, and managers below their projects) and manage members
(managers give and take member and manager roles in their projects; admins
any role). The project "-" stands for site-wide roles (operator, officer,
admin).`,
		Example: `  usine projects
  usine projects create mylab --parent uni --shares 10
  usine projects add-member mylab alice --role member
  usine projects add-member - bob --role operator
  usine projects members mylab`,
		Args: usageArgs(cobra.NoArgs, "see usine projects --help for the subcommands"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			ps, err := cl.Projects(cmd.Context())
			if err != nil {
				return fmt.Errorf("projects: %w", err)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				if ps == nil {
					ps = []model.Project{}
				}
				return writeJSON(w, api.Projects{Items: ps})
			}
			t := out.table(w, "NAME", "PARENT", "SHARES")
			for _, p := range ps {
				t.row(p.Name, dash(p.Parent), strconv.FormatInt(p.Shares, 10))
			}
			return t.flush()
		},
	}
	c.register(cmd, true)
	out.register(cmd)
	cmd.AddCommand(newProjectPutCmd(&c, true), newProjectPutCmd(&c, false), newMembersCmd(&c),
		newAddMemberCmd(&c), newRemoveMemberCmd(&c))
	return cmd
}

// newProjectPutCmd is projects create (refuses an existing project) or
// projects set (changes one).
func newProjectPutCmd(c *conn, create bool) *cobra.Command {
	var (
		parent string
		shares int64
	)
	verb, short := "set", "Change a project's parent or shares"
	if create {
		verb, short = "create", "Create a project"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME [--parent P] [--shares N]",
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1), "name the project"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if shares < 0 {
				return &UsageError{fmt.Errorf("projects %s: --shares %d; give 1 or more", verb, shares)}
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			ps, err := cl.Projects(cmd.Context())
			if err != nil {
				return fmt.Errorf("projects %s: %w", verb, err)
			}
			i := slices.IndexFunc(ps, func(p model.Project) bool { return p.Name == args[0] })
			p := model.Project{Name: args[0], Parent: parent, Shares: shares}
			switch {
			case create && i >= 0:
				return &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf("projects create: project %s exists; change it with usine projects set", args[0])}
			case !create && i < 0:
				return &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("projects set: project %s not found; create it with usine projects create", args[0])}
			case !create:
				p = ps[i]
				if cmd.Flags().Changed("parent") {
					p.Parent = parent
				}
				if cmd.Flags().Changed("shares") {
					p.Shares = shares
				}
			}
			got, err := cl.PutProject(cmd.Context(), p)
			if err != nil {
				return fmt.Errorf("projects %s %s: %w", verb, args[0], err)
			}
			done := "changed"
			if create {
				done = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "project %s %s (parent %s, %d shares)\n", got.Name, done, dash(got.Parent), got.Shares)
			return nil
		},
	}
	if !create {
		cmd.ValidArgsFunction = completeProjects(c)
	}
	cmd.Flags().StringVar(&parent, "parent", "", "the project this one belongs to (a consortium, an institution)")
	cmd.Flags().Int64Var(&shares, "shares", 0, "fair-share weight among its siblings (default 1)")
	_ = cmd.RegisterFlagCompletionFunc("parent", completeProjects(c))
	return cmd
}

func newMembersCmd(c *conn) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:               "members NAME",
		Short:             "List a project's members and their roles (- for site-wide roles)",
		Args:              usageArgs(cobra.ExactArgs(1), "name the project"),
		ValidArgsFunction: completeProjects(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			ms, err := cl.Members(cmd.Context(), siteWide(args[0]))
			if err != nil {
				return fmt.Errorf("projects members: %w", err)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				if ms == nil {
					ms = []store.Member{}
				}
				return writeJSON(w, api.Members{Items: ms})
			}
			t := out.table(w, "USER", "ROLE", "PROJECT")
			for _, m := range ms {
				t.row(m.User, string(m.Role), projectLabel(m.Project))
			}
			return t.flush()
		},
	}
	out.register(cmd)
	return cmd
}

// siteWide reads "-" as the site-wide pseudo-project.
func siteWide(p string) string {
	if p == "-" {
		return ""
	}
	return p
}

var roleNames = []string{string(store.RoleMember), string(store.RoleManager), string(store.RoleOfficer), string(store.RoleOperator), string(store.RoleAdmin)}

func newAddMemberCmd(c *conn) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:               "add-member NAME USER [--role member|manager|officer|operator|admin]",
		Short:             "Give a user a role in a project (- for site-wide roles)",
		Args:              usageArgs(cobra.ExactArgs(2), "give the project and the user"),
		ValidArgsFunction: completeProjects(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(roleNames, role) {
				return &UsageError{fmt.Errorf("projects add-member: --role %q: use one of %s", role, strings.Join(roleNames, ", "))}
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			m, err := cl.PutMember(cmd.Context(), store.Member{Project: siteWide(args[0]), User: args[1], Role: store.Role(role)})
			if err != nil {
				return fmt.Errorf("projects add-member: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is %s in %s\n", m.User, m.Role, projectLabel(m.Project))
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", string(store.RoleMember), "role: "+strings.Join(roleNames, ", "))
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roleNames, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newRemoveMemberCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:               "remove-member NAME USER",
		Short:             "Take a user's role in a project away (- for site-wide roles)",
		Args:              usageArgs(cobra.ExactArgs(2), "give the project and the user"),
		ValidArgsFunction: completeProjects(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			if err := cl.DeleteMember(cmd.Context(), siteWide(args[0]), args[1]); err != nil {
				return fmt.Errorf("projects remove-member: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed from %s\n", args[1], projectLabel(siteWide(args[0])))
			return nil
		},
	}
}

func newTokenCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Create, list and delete API tokens",
		Args:    usageArgs(cobra.NoArgs, "use usine token create, list or delete"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &UsageError{errors.New("token: use usine token create, list or delete")}
		},
	}
	c.register(cmd, true)
	cmd.AddCommand(newTokenCreateCmd(&c), newTokenListCmd(&c), newTokenDeleteCmd(&c))
	return cmd
}

// parseExpiry reads a token's lifetime: 30d, 2w, 12h, 90m, or a Go
// duration.
func parseExpiry(v string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k <= 0 || k > 100*365 {
				break
			}
			return time.Duration(k) * u.unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: give a lifetime such as 30d, 2w, 1y, 12h or 90m", v)
	}
	return d, nil
}

func newTokenCreateCmd(c *conn) *cobra.Command {
	var (
		user, name, expires, node string
		out                       output
	)
	cmd := &cobra.Command{
		Use:   "create [--user U] [--name N] [--expires 30d] [--node NODE]",
		Short: "Create an API token; its secret is printed once",
		Long: `Create an API token for yourself, or (admins) for another user, who then
exists. The secret is printed alone on standard output, once: store it at
once (usine login saves it). Details go to standard error.

With --node (operators and admins), the token is that node's agent's
alone: it registers the node, follows its orders and reports for it, and
can do nothing else — give each node's agent its own (usine agent --token).`,
		Example: `  usine token create --name laptop --expires 90d
  usine token create --user alice --name "alice's first" > alice.token
  usine token create --node gpu017 --name "gpu017 agent" > /etc/usine/agent.token`,
		Args: usageArgs(cobra.NoArgs, "give the user with --user"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			req := api.TokenRequest{User: user, Name: name, Node: node}
			if expires != "" {
				d, err := parseExpiry(expires)
				if err != nil {
					return &UsageError{fmt.Errorf("token create: %w", err)}
				}
				req.Expires = time.Now().Add(d).Unix()
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			t, err := cl.CreateToken(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("token create: %w", err)
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			exp := "never expires"
			if t.Expires > 0 {
				exp = "expires " + fmtFullTime(t.Expires)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "usine: token %s for %s (%s). Store the secret now: it is shown only once.\n", t.ID, t.User, exp)
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "the token's user (default: you; others need admin)")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime: 30d, 2w, 1y, 12h, … (default: never)")
	cmd.Flags().StringVar(&node, "node", "", "bind the token to this node's agent alone (operators and admins)")
	out.register(cmd)
	return cmd
}

func newTokenListCmd(c *conn) *cobra.Command {
	var (
		user string
		out  output
	)
	cmd := &cobra.Command{
		Use:   "list [--user U]",
		Short: "List your API tokens (admins: anyone's)",
		Args:  usageArgs(cobra.NoArgs, "give the user with --user"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			ts, err := cl.Tokens(cmd.Context(), user)
			if err != nil {
				return fmt.Errorf("token list: %w", err)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				if ts == nil {
					ts = []store.Token{}
				}
				return writeJSON(w, api.Tokens{Items: ts})
			}
			now := time.Now()
			t := out.table(w, "ID", "USER", "NAME", "CREATED", "EXPIRES")
			for _, tk := range ts {
				exp := "never"
				if tk.Expires > 0 {
					exp = fmtTime(tk.Expires, now)
				}
				t.row(tk.ID, tk.User, dash(tk.Name), fmtTime(tk.Created, now), exp)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "whose tokens (default: yours; others need admin)")
	out.register(cmd)
	return cmd
}

func newTokenDeleteCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID…",
		Aliases: []string{"revoke"},
		Short:   "Delete API tokens: they stop working at once",
		Args:    usageArgs(cobra.MinimumNArgs(1), "give the IDs of the tokens (usine token list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			return forEach(cmd, args, func(ctx context.Context, id string) (string, error) {
				if err := cl.DeleteToken(ctx, id); err != nil {
					return "", err
				}
				return "token " + id + " deleted", nil
			})
		},
	}
}

// completeNodes completes node names from the server.
func completeNodes(c *conn) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cl, err := c.client(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for i := range nodes {
			n := &nodes[i]
			if strings.HasPrefix(n.Name, toComplete) {
				out = append(out, cobra.CompletionWithDesc(n.Name, n.Partition+" "+nodeState(n)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeProjects completes project names from the server.
func completeProjects(c *conn) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := c.client(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		ps, err := cl.Projects(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, p := range ps {
			if strings.HasPrefix(p.Name, toComplete) {
				out = append(out, p.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completePartitions completes partition names from the server.
func completePartitions(c *conn) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cl, err := c.client(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		parts, err := cl.Partitions(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, p := range parts {
			if strings.HasPrefix(p.Name, toComplete) {
				out = append(out, cobra.CompletionWithDesc(p.Name, p.Model+" at "+p.Site))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
