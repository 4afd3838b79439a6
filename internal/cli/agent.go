package cli

import (
	"bufio"
	"context"
	"errors"
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

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

// agentFlags are usine agent's flags.
type agentFlags struct {
	server, token, node, emulate, declare, state, address, listen, logFormat string
	site, partition, block, group                                            string
	cpus                                                                     int
	memoryMiB                                                                int64
	grace                                                                    time.Duration
	noCgroup                                                                 bool
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --server URL --token T --node NAME --state DIR [--accelerators 8xH100 | --emulate 8xH100]",
		Short: "Run the node agent: register this node, run the jobs the server sends, report",
		Long: `Run usine's node agent. It registers the node with the server (accelerators,
CPUs, memory and its place in the topology), holds a long-lived orders stream
(reconnecting with back-off if the server goes away; jobs keep running), runs
each job rank it is given as its own process group with the accelerators it
assigns, stops what the server no longer wants (the job's signal, then
SIGKILL after --grace), and reports ends, heartbeats and health.

Accelerators: by default the agent discovers them: NVIDIA GPUs through
nvidia-smi (NVML), AMD GPUs through sysfs (names from rocm-smi when
installed); a host with neither is a CPU-only node. --accelerators 8xH100
declares the node's real devices instead (indexes 0-7, no probing: for hosts
where discovery cannot see them); --emulate 8xH100 makes the node pretend to
have them, for trying usine without accelerators. Either way each job is
given device indexes and sees them in its vendor's visibility variables
(CUDA_VISIBLE_DEVICES, or ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES), in
USINE_ACCELERATORS (how many) and USINE_ACCELERATOR_INDEXES (which, as
0,1,…). Discovered devices are counted again every 30 s: a node that loses
one, or whose --state disk is 98 % full, asks the server to drain it, with
the reason, and is resumed once healthy.

Each job runs under a small supervisor (this binary, re-run) in its own
process group, with a clean environment, and survives the agent: everything
launched is recorded in --state first, so a restarted agent finds its runs
again and never starts one twice. Under systemd, give the unit
KillMode=process, and Delegate=yes for jobs to get cgroup v2 CPU and memory
limits; the agent says at start whether they do, and why not.

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
	fl.StringVar(&f.declare, "accelerators", "", "declare the node's real accelerators instead of discovering them: PERNODExMODEL, e.g. 8xMI300X")
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
	fl.BoolVar(&f.noCgroup, "no-cgroup", false, "run jobs without cgroup v2 CPU and memory limits even where the host allows them")
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
	n := hostNode(f.node, f.cpus, f.memoryMiB)
	devs, src, count, err := nodeDevices(ctx, f.emulate, f.declare)
	if err != nil {
		return err
	}
	n.Site, n.Partition, n.Block, n.Group = f.site, f.partition, f.block, f.group
	spares, err := launch.NewSpares(nil)
	if err != nil {
		return err
	}
	defer spares.Close()
	cfg := agent.Config{Server: f.server, Token: f.token, Node: n, Devices: devs, Address: f.address,
		StateDir: f.state, Grace: f.grace, Accelerators: count, NoCgroup: f.noCgroup, Spares: spares, Log: log}
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
	what := "no accelerator"
	if len(devs) > 0 {
		what = fmt.Sprintf("%d × %s (%s)", len(devs), devs[0].Model, src)
	}
	fmt.Fprintf(stdout, "usine agent: node %s, %s, serving %s; %s\n", n.Name, what, f.server, a.Capabilities())
	return a.Run(ctx)
}

// hostNode describes this host's CPUs and memory, unless given.
func hostNode(name string, cpus int, memMiB int64) model.Node {
	n := model.Node{Name: name, State: model.NodeUp, CPUs: cpus, MemoryMiB: memMiB}
	if n.CPUs <= 0 {
		n.CPUs = runtime.NumCPU()
	}
	if n.MemoryMiB <= 0 {
		n.MemoryMiB = hostMemoryMiB()
	}
	return n
}

// nodeDevices finds the node's accelerators: emulated (--emulate),
// declared (--accelerators), else discovered on the host. count recounts
// discovered devices for the agent's health check; nil for the others,
// which cannot be lost.
func nodeDevices(ctx context.Context, emulate, declare string) ([]accel.Device, accel.Source, func(context.Context) (int, error), error) {
	if emulate != "" && declare != "" {
		return nil, "", nil, &UsageError{errors.New("agent: give --emulate or --accelerators, not both: emulated devices are made up, declared ones are real")}
	}
	if emulate != "" {
		sp, err := accel.ParseSpec(emulate)
		if err != nil {
			return nil, "", nil, &UsageError{fmt.Errorf("--emulate: %w", err)}
		}
		if sp.Nodes != 1 {
			return nil, "", nil, &UsageError{fmt.Errorf("--emulate %q: one agent is one node; give PERNODExMODEL (usine up --emulate takes several nodes)", emulate)}
		}
		devs, err := accel.Emulate(sp.PerNode, sp.Model)
		if err != nil {
			return nil, "", nil, &UsageError{fmt.Errorf("--emulate: %w", err)}
		}
		return devs, accel.SourceEmulated, nil, nil
	}
	cfg := accel.Config{Declare: declare}
	devs, src, err := accel.Discover(ctx, cfg)
	if err != nil {
		if declare != "" {
			return nil, "", nil, &UsageError{fmt.Errorf("--accelerators: %w", err)}
		}
		return nil, "", nil, fmt.Errorf("agent: discover accelerators: %w (declare them with --accelerators to skip discovery)", err)
	}
	var count func(context.Context) (int, error)
	if src == accel.SourceNvidiaSMI || src == accel.SourceSysfs {
		count = func(ctx context.Context) (int, error) {
			d, _, err := accel.Discover(ctx, cfg)
			return len(d), err
		}
	}
	return devs, src, count, nil
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
