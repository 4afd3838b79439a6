package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

// upState is what usine up remembers in its data directory, so that a
// plain `usine up` resumes the same factory.
type upState struct {
	Emulate string `json:"emulate,omitempty"`
}

// agentUser is the user of the tokens the agents of usine up act with.
const agentUser = "usine-agent"

func newUpCmd() *cobra.Command {
	var (
		f       serverFlags
		emulate string
		grace   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up [--emulate 4x8xH100] [--data DIR]",
		Short: "Run a whole AI factory on this machine: server, store and node agents",
		Long: `Run a whole usine factory on this machine, in one process: the API server and
scheduler over an embedded SQLite store in --data, and node agents that run
the jobs as real processes.

By default one agent serves this host, with the accelerators it discovers
(NVIDIA through nvidia-smi, AMD through sysfs; none: a CPU-only node).
--emulate NODESxPERNODExMODEL starts that many emulated nodes instead, named node001, node002, …, two to a block
and two blocks to a group, so that gang jobs and topology-aware placement can
be tried on a laptop: jobs run for real, they just see emulated accelerators
(CUDA_VISIBLE_DEVICES and friends are set as on a real node).

It prints the URL, the admin token and commands to try. Ctrl-C stops the
agents, then the server; running jobs keep running, and the next usine up
with the same --data resumes the same factory (same nodes, same admin token,
the jobs where they were).

The scheduler simulator that usine up used to run is usine sim (replay a
trace, compare policies) and usine trace gen (make a workload).`,
		Example: `  usine up --emulate 4x8xH100
  usine up --data /tmp/factory --listen 127.0.0.1:9000`,
		Args: usageArgs(cobra.NoArgs, "up takes no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), &f, cmd.Flags().Changed("emulate"), emulate, grace, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd, "")
	cmd.Flags().StringVar(&emulate, "emulate", "", "emulate NODESxPERNODExMODEL nodes (4x8xH100) instead of serving this host (default: what the last usine up in --data used)")
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between a stopped job's signal and SIGKILL")
	return cmd
}

func runUp(ctx context.Context, f *serverFlags, emulateSet bool, emulate string, grace time.Duration, stdout, stderr io.Writer) error {
	if f.storeURL == "" && f.dataDir == "" {
		return &UsageError{errors.New("up: give --data DIR (or --store)")}
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("up: create data directory %s: %w", f.dataDir, err)
	}
	statePath := filepath.Join(f.dataDir, "up.json")
	var prev upState
	if b, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(b, &prev); err != nil {
			return fmt.Errorf("up: %s is corrupt (%v); remove it and give --emulate again", statePath, err)
		}
	}
	if !emulateSet {
		emulate = prev.Emulate
	}
	var em accel.Spec
	if emulate != "" {
		var err error
		if em, err = accel.ParseSpec(emulate); err != nil {
			return &UsageError{fmt.Errorf("up: --emulate: %w", err)}
		}
		if _, err := accel.Emulate(em.PerNode, em.Model); err != nil {
			return &UsageError{fmt.Errorf("up: --emulate: %w", err)}
		}
	}
	if b, err := json.Marshal(upState{Emulate: emulate}); err == nil {
		_ = os.WriteFile(statePath, b, 0o600)
	}

	// The server lives until the agents have stopped: it gets a context
	// of its own.
	sctx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	s, err := f.start(sctx, stderr)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	stop := func() error {
		stopServer()
		return <-s.done
	}
	admin := s.adminToken
	tokenFile := filepath.Join(f.dataDir, "admin.token")
	if admin == "" {
		if b, err := os.ReadFile(tokenFile); err == nil {
			admin = strings.TrimSpace(string(b))
		}
	}
	log, _ := newLogger(stderr, f.logFormat)
	var nodes []model.Node
	var devs []accel.Device
	var count func(context.Context) (int, error)
	if emulate != "" {
		npb, bpg := 2, 2
		if em.Nodes > 16 {
			npb, bpg = 8, 4
		}
		for i := range em.Nodes {
			nodes = append(nodes, agent.EmulatedNode(em, i, npb, bpg, runtime.NumCPU(), hostMemoryMiB()))
		}
		devs, _ = accel.Emulate(em.PerNode, em.Model) // checked above
	} else {
		h, _ := os.Hostname()
		name, _, _ := strings.Cut(h, ".")
		nodes = append(nodes, hostNode(cmp.Or(name, "localhost"), 0, 0))
		if devs, _, count, err = nodeDevices(ctx, "", ""); err != nil {
			_ = stop()
			return fmt.Errorf("up: %w", err)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = stop()
		return fmt.Errorf("up: listen for the agents' log requests: %w", err)
	}
	logBase := "http://" + l.Addr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2*len(nodes) + 8, IdleConnTimeout: time.Minute}}
	spares, err := launch.NewSpares(nil) // one for every agent here
	if err != nil {
		l.Close()
		_ = stop()
		return fmt.Errorf("up: %w", err)
	}
	defer spares.Close()
	agents := make([]*agent.Agent, 0, len(nodes))
	for _, n := range nodes {
		agentToken, err := upAgentToken(ctx, s.url, admin, filepath.Join(f.dataDir, "agents", n.Name+".token"), n.Name)
		if err != nil {
			l.Close()
			_ = stop()
			return fmt.Errorf("up: %w", err)
		}
		a, err := agent.New(agent.Config{
			Server: s.url, Token: agentToken, Node: n, Devices: devs, Address: "127.0.0.1",
			AgentURL: logBase + "/nodes/" + n.Name, StateDir: filepath.Join(f.dataDir, "agents", n.Name),
			Grace: grace, Accelerators: count, Spares: spares, HTTP: hc, Log: log,
		})
		if err != nil {
			l.Close()
			_ = stop()
			return fmt.Errorf("up: %w", err)
		}
		agents = append(agents, a)
	}
	nodes = nodes[:0]
	for _, a := range agents {
		nodes = append(nodes, a.NodeInfo())
	}
	hs := &http.Server{Handler: agent.Mux(agents), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	actx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}

	upBanner(stdout, s.url, admin, tokenFile, f.dataDir, nodes, emulate != "")

	<-ctx.Done()
	fmt.Fprintln(stdout, "\nusine: stopping the agents, then the server; running jobs keep running and the next usine up picks them up")
	stopAgents()
	wg.Wait()
	hs.Close()
	if err := stop(); err != nil {
		return fmt.Errorf("up: server: %w", err)
	}
	fmt.Fprintln(stdout, "usine: stopped")
	return nil
}

// upAgentToken is the token node's agent acts with: one bound to that
// node alone, made on the first start and kept in file.
func upAgentToken(ctx context.Context, url, admin, file, node string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if admin == "" {
		return "", fmt.Errorf("no agent token in %s and no admin token to make one: give the admin token in admin.token in the data directory", file)
	}
	c := &api.Client{BaseURL: url, Token: admin}
	var tok api.NewToken
	if err := c.Do(ctx, http.MethodPost, api.Prefix+"/tokens", api.TokenRequest{User: agentUser, Name: "usine up agent", Node: node}, &tok); err != nil {
		return "", fmt.Errorf("make the token of node %s's agent: %w", node, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("save the token of node %s's agent: %w", node, err)
	}
	if err := os.WriteFile(file, []byte(tok.Secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the token of node %s's agent: %w", node, err)
	}
	return tok.Secret, nil
}

// upBanner says where the factory is and what to try.
func upBanner(w io.Writer, url, admin, tokenFile, dataDir string, nodes []model.Node, emulated bool) {
	n := nodes[0]
	what := fmt.Sprintf("1 node (%s), CPU only", n.Name)
	if n.Accelerators > 0 {
		what = fmt.Sprintf("%d node(s) × %d %s", len(nodes), n.Accelerators, n.Model)
		if emulated {
			what += " (emulated)"
		}
	}
	fmt.Fprintf(w, "usine is up: %s\n\n", what)
	fmt.Fprintf(w, "  API          %s\n", url)
	if admin != "" {
		fmt.Fprintf(w, "  admin token  %s\n               (kept in %s)\n", admin, tokenFile)
	} else {
		fmt.Fprintf(w, "  admin token  the one made at the first start (not in %s)\n", tokenFile)
	}
	fmt.Fprintf(w, "  data         %s (usine up --data %s resumes this factory)\n\n", dataDir, dataDir)
	fmt.Fprintf(w, "Try, in another terminal:\n  export USINE_SERVER=%s USINE_TOKEN=%s\n", url, cmp.Or(admin, "<admin token>"))
	gpus, per := "", ""
	if n.Accelerators > 0 {
		gpus, per = " --gpus 1", fmt.Sprintf(" --gpus-per-node %d", n.Accelerators)
	}
	fmt.Fprintf(w, "  usine submit%s -- sh -c 'echo hello from $USINE_NODE, accelerators $USINE_ACCELERATOR_INDEXES'\n", gpus)
	if len(nodes) >= 2 {
		fmt.Fprintf(w, "  usine submit -N 2%s -- sh -c 'echo rank $NODE_RANK of $WORLD_SIZE, master $MASTER_ADDR:$MASTER_PORT'\n", per)
	} else {
		fmt.Fprintln(w, "  (gang jobs need several nodes: try usine up --emulate 4x8xH100 with another --data)")
	}
	fmt.Fprintf(w, "  usine submit --array 0-7%s -- sh -c 'echo element $USINE_ARRAY_INDEX; sleep 2'\n", gpus)
	fmt.Fprintln(w, "  usine queue; usine nodes; usine logs -f JOB")
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		// Started with go run: there may be no usine on the PATH yet.
		fmt.Fprintln(w, "  (usine is this program: go install ./cmd/usine puts it on your PATH, or use go run ./cmd/usine)")
	}
	fmt.Fprintln(w, "\nCtrl-C stops the factory; usine up again resumes it.")
}
