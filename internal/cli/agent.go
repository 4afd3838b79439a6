package cli

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/model"
)

// agentFlags are usine agent's flags.
type agentFlags struct {
	server, token, node, emulate, state, address, listen, logFormat string
	site, partition, block, group                                   string
	cpus                                                            int
	memoryMiB                                                       int64
	grace                                                           time.Duration
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --server URL --token T --node NAME --state DIR [--emulate 8xH100]",
		Short: "Run the node agent: register this node, run the jobs the server sends, report",
		Long: `Run usine's node agent. It registers the node with the server (accelerators,
CPUs, memory and its place in the topology), holds a long-lived orders stream
(reconnecting with back-off if the server goes away; jobs keep running), runs
each job rank it is given as its own process group with the accelerators it
assigns, stops what the server no longer wants (the job's signal, then
SIGKILL after --grace), and reports ends, heartbeats and health.

Everything it launched is recorded in --state before it starts, so a
restarted agent finds its runs again and never starts one twice.

The token must belong to an operator (usine token create --user … as admin,
after giving the user the operator role), or be the admin token.`,
		Example: `  usine agent --server http://ctl:8642 --token $TOKEN --node gpu001 --state /var/lib/usine/agent \
      --block b01 --group g01 --partition h100
  usine agent --server http://127.0.0.1:8642 --token $TOKEN --node node001 --emulate 8xH100 --state /tmp/a1`,
		Args: usageArgs(cobra.NoArgs, "agent takes no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), f.logFormat)
			if err != nil {
				return err
			}
			return f.run(cmd.Context(), cmd.OutOrStdout(), log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", os.Getenv("USINE_SERVER"), "server URL (default $USINE_SERVER)")
	fl.StringVar(&f.token, "token", "", "operator API token (default $USINE_TOKEN)")
	fl.StringVar(&f.node, "node", "", "this node's name (default the host name)")
	fl.StringVar(&f.emulate, "emulate", "", "emulate accelerators instead of discovering them: PERNODExMODEL, e.g. 8xH100")
	fl.StringVar(&f.state, "state", "", "state directory: what the agent launched, and logs of jobs that name no file")
	fl.StringVar(&f.address, "address", "", "address other nodes reach this one at (a gang's MASTER_ADDR; default the host name)")
	fl.StringVar(&f.listen, "listen", ":0", "where to serve job logs to the server; \"\" = nowhere (usine logs will not work)")
	fl.StringVar(&f.site, "site", "", "site of the node (default: the server's only site, or local)")
	fl.StringVar(&f.partition, "partition", "", "partition (default: the accelerator model in lower case, or cpu)")
	fl.StringVar(&f.block, "block", "", "block: scale-up domain or leaf switch (default: the node alone)")
	fl.StringVar(&f.group, "group", "", "group: spine (default: its block)")
	fl.IntVar(&f.cpus, "cpus", 0, "CPUs to offer (default all)")
	fl.Int64Var(&f.memoryMiB, "memory", 0, "memory to offer, MiB (default all)")
	fl.DurationVar(&f.grace, "grace", 10*time.Second, "time between a stopped job's signal and SIGKILL")
	fl.StringVar(&f.logFormat, "log-format", "auto", "log format: json, text, or auto")
	return cmd
}

func (f *agentFlags) run(ctx context.Context, stdout io.Writer, log *slog.Logger) error {
	if f.server == "" {
		return &UsageError{fmt.Errorf("agent: no server; give --server URL or set USINE_SERVER")}
	}
	if f.token == "" {
		f.token = os.Getenv("USINE_TOKEN")
	}
	if f.token == "" {
		return &UsageError{fmt.Errorf("agent: no token; give --token or set USINE_TOKEN to an operator's token")}
	}
	if f.state == "" {
		return &UsageError{fmt.Errorf("agent: no state directory; give --state DIR (it must survive agent restarts)")}
	}
	if f.node == "" {
		h, err := os.Hostname()
		if err != nil {
			return &UsageError{fmt.Errorf("agent: no --node and no host name: %w", err)}
		}
		f.node, _, _ = strings.Cut(h, ".")
	}
	n, vendor, count, err := hostNode(f.node, f.emulate, f.cpus, f.memoryMiB)
	if err != nil {
		return err
	}
	n.Site, n.Partition, n.Block, n.Group = f.site, f.partition, f.block, f.group
	cfg := agent.Config{Server: f.server, Token: f.token, Node: n, Vendor: vendor, Address: f.address,
		StateDir: f.state, Grace: f.grace, Accelerators: count, Log: log}
	var hs *http.Server
	var l net.Listener
	if f.listen != "" {
		if l, err = net.Listen("tcp", f.listen); err != nil {
			return fmt.Errorf("agent: listen on %s for log requests: %w (choose another --listen, or \"\" for none)", f.listen, err)
		}
		host := f.address
		if host == "" {
			host, _ = os.Hostname()
		}
		if h, _, err := net.SplitHostPort(f.listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			host = h
		}
		cfg.AgentURL = "http://" + net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	a, err := agent.New(cfg)
	if err != nil {
		if l != nil {
			l.Close()
		}
		return err
	}
	if l != nil {
		hs = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(l) }()
		defer hs.Close()
	}
	fmt.Fprintf(stdout, "usine agent: node %s, %d × %s, serving %s\n", n.Name, n.Accelerators, cmp.Or(n.Model, "no accelerator"), f.server)
	return a.Run(ctx)
}

// hostNode describes this host: emulated accelerators when emulate is
// set, else none (discovery comes with internal/accel), and its CPUs and
// memory unless given. count recounts real accelerators for the health
// check; nil when emulated.
func hostNode(name, emulate string, cpus int, memMiB int64) (model.Node, string, func(context.Context) (int, error), error) {
	n := model.Node{Name: name, State: model.NodeUp, CPUs: cpus, MemoryMiB: memMiB}
	if n.CPUs <= 0 {
		n.CPUs = runtime.NumCPU()
	}
	if n.MemoryMiB <= 0 {
		n.MemoryMiB = hostMemoryMiB()
	}
	if emulate == "" {
		return n, "", nil, nil
	}
	e, err := agent.ParseEmulation(emulate)
	if err != nil {
		return n, "", nil, &UsageError{err}
	}
	if e.Nodes != 1 {
		return n, "", nil, &UsageError{fmt.Errorf("--emulate %q: one agent is one node; give PERNODExMODEL (usine up --emulate takes several nodes)", emulate)}
	}
	n.Accelerators, n.Model = e.PerNode, e.Model
	return n, e.Vendor, nil, nil
}

// hostMemoryMiB reads MemTotal from /proc/meminfo; 0 when unknown.
func hostMemoryMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
