package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Config is how one agent runs.
type Config struct {
	Server string // the server's URL
	Token  string // an operator's API token
	// Node is the node: name, CPUs, memory, and topology labels (site,
	// partition, block, group; empty ones are left to the server). Its
	// Accelerators and Model are those of Devices.
	Node model.Node
	// Devices are the node's accelerators as internal/accel discovered,
	// declared or emulated them, all of one model: runs are given their
	// indexes, in the visibility variables of their vendor.
	Devices []accel.Device
	// Address is how ranks on other nodes reach this one (MASTER_ADDR);
	// "" = the host name.
	Address string
	// AgentURL is where Handler is served, for the server's log requests;
	// "" when it is not served.
	AgentURL string
	// StateDir keeps the run records, and the logs of jobs that name no
	// output file.
	StateDir string
	// Grace is how long a run stopped by the server, or out of time, has
	// between its signal and SIGKILL (default 10 s).
	Grace time.Duration
	// Heartbeat is how often to report until the server says otherwise
	// (default 5 s).
	Heartbeat time.Duration
	// Supervisor is the command that runs a job's supervisor (see
	// internal/launch); nil = this executable with launch.SupervisorArg,
	// which its main function must hand to launch.Supervise.
	Supervisor []string
	// NoCgroup runs jobs without cgroup v2 limits even where the host
	// delegates cgroups.
	NoCgroup bool
	// Spares keeps a supervisor started ahead of the next launch (nil =
	// none: each launch waits for its supervisor to start). Agents of one
	// process may share one; its owner closes it.
	Spares *launch.Spares
	// Accelerators recounts the node's accelerators for the health check;
	// nil = never (emulated or declared devices).
	Accelerators func(ctx context.Context) (int, error)
	// DiskFull is the fraction of the state directory's file system in
	// use at or above which the node asks to be drained (default 0.98).
	DiskFull float64
	// HealthEvery is how often the health checks run (default 30 s).
	HealthEvery time.Duration
	// Power reads the draw of each of Devices, W, in their order, for the
	// energy of runs (power.go); ok false when it cannot. nil =
	// accel.Power through the host's vendor tools, which also gives
	// emulated devices' synthetic draw and nothing for declared ones.
	Power func(ctx context.Context) (watts []float64, ok bool)
	// PowerEvery is how often the power is read while runs holding
	// accelerators are alive (default 5 s).
	PowerEvery time.Duration
	// StopOnExit stops every run when Run returns (tests). By default runs
	// outlive the agent, which finds them again when it restarts.
	StopOnExit bool
	HTTP       *http.Client // nil = a client of its own
	Log        *slog.Logger
}

// Agent is one node's daemon. Make one with New, then Run it.
type Agent struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger
	state  *stateDir
	launch *launch.Launcher
	vendor launch.Vendor
	kick   chan struct{} // report now
	relink chan struct{} // register again and reopen the orders stream

	mu       sync.Mutex
	runs     map[runKey]*run
	orders   api.Orders // the latest followed
	haveOrd  bool
	maxRev   int64
	maxRevAt time.Time
	every    time.Duration // report interval the server asks for
	health   string
	power    *power // nil: no accelerators
	powerOn  bool   // power readings are worth taking (probePower)
	exits    sync.WaitGroup
	steps    stepKeys      // srun's steps in batch jobs (steps.go)
	stepEnds []api.StepEnd // steps ended here, for the next report
}

// run is one rank the agent launched (or refused to launch).
type run struct {
	rec      record
	proc     *launch.Proc // the running job; nil once ended, or never started
	job      *launch.Proc // the launched job, kept after its end until forgotten
	stopping bool
	done     chan struct{} // closed when it ends
	meter    *meter        // its energy so far; nil when not metered
}

// running says whether the run's job lives.
func (r *run) running() bool { return r.proc != nil }

// New checks cfg and opens the state directory.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" {
		return nil, errors.New("agent: no server URL; give --server URL")
	}
	if u, err := url.Parse(cfg.Server); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("agent: server URL %q: give http://host:port or https://host:port", cfg.Server)
	}
	if cfg.Node.Name == "" {
		return nil, errors.New("agent: no node name; give --node NAME")
	}
	vendor, err := nodeDevices(&cfg.Node, cfg.Devices)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Node.Name, err)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.DiskFull <= 0 {
		cfg.DiskFull = 0.98
	}
	cfg.HealthEvery = cmp.Or(cfg.HealthEvery, 30*time.Second)
	cfg.PowerEvery = cmp.Or(cfg.PowerEvery, 5*time.Second)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Address == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: no --address and no host name: %w", err)
		}
		cfg.Address = h
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}}
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Node.Name, err)
	}
	l, err := launch.New(launch.Config{StateDir: cfg.StateDir, Supervisor: cfg.Supervisor, NoCgroup: cfg.NoCgroup, Spares: cfg.Spares})
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Node.Name, err)
	}
	a := &Agent{
		cfg:    cfg,
		client: &api.Client{BaseURL: cfg.Server, Token: cfg.Token, HTTP: cfg.HTTP},
		log:    cfg.Log.With("node", cfg.Node.Name),
		state:  st,
		launch: l,
		vendor: vendor,
		kick:   make(chan struct{}, 1),
		relink: make(chan struct{}, 1),
		runs:   map[runKey]*run{},
		every:  cfg.Heartbeat,
		power:  newPower(&cfg),
	}
	// Said once, at start: whether the jobs' CPU and memory will be bounded.
	if caps := l.Capabilities(); caps.Cgroup {
		a.log.Info("agent: jobs get cgroup v2 CPU and memory limits", "cgroups", caps.CgroupDir)
	} else {
		a.log.Warn("agent: jobs run without CPU and memory limits", "why", caps.CgroupReason)
	}
	return a, nil
}

// nodeDevices fills the node's accelerator count and model from its
// devices, and says whose visibility variables they take.
func nodeDevices(n *model.Node, devs []accel.Device) (launch.Vendor, error) {
	if len(devs) == 0 {
		if n.Accelerators != 0 {
			return "", fmt.Errorf("the node says %d accelerators but none were discovered, declared or emulated", n.Accelerators)
		}
		n.Model = ""
		return "", nil
	}
	if n.Accelerators != 0 && n.Accelerators != len(devs) {
		return "", fmt.Errorf("the node says %d accelerators but has %d devices", n.Accelerators, len(devs))
	}
	seen := map[int]bool{}
	for _, d := range devs {
		switch {
		case d.Model != devs[0].Model || d.Vendor != devs[0].Vendor:
			return "", fmt.Errorf("accelerators of two models (%s %s and %s %s): a node has one model; declare the ones jobs should get", devs[0].Vendor, devs[0].Model, d.Vendor, d.Model)
		case d.Index < 0 || seen[d.Index]:
			return "", fmt.Errorf("accelerator index %d is negative or given twice", d.Index)
		}
		seen[d.Index] = true
	}
	if n.Model != "" && n.Model != devs[0].Model {
		return "", fmt.Errorf("the node says model %s but its devices are %s", n.Model, devs[0].Model)
	}
	n.Accelerators, n.Model = len(devs), devs[0].Model
	switch devs[0].Vendor {
	case "nvidia":
		return launch.VendorNvidia, nil
	case "amd":
		return launch.VendorAMD, nil
	}
	return launch.VendorOther, nil
}

// Node is the agent's node name.
func (a *Agent) Node() string { return a.cfg.Node.Name }

// Capabilities says what the host lets the agent do with its jobs
// (cgroup limits, and why not).
func (a *Agent) Capabilities() launch.Capabilities { return a.launch.Capabilities() }

// Run runs the agent until ctx ends: it finds the runs a previous agent
// left, registers, follows the orders and reports. Runs outlive it unless
// Config.StopOnExit.
func (a *Agent) Run(ctx context.Context) error {
	a.recover(ctx)
	on := a.probePower(ctx)
	a.mu.Lock()
	a.powerOn = on
	a.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.followLoop(ctx) }()
	go func() { defer wg.Done(); a.reportLoop(ctx) }()
	if on {
		wg.Add(1)
		go func() { defer wg.Done(); a.powerLoop(ctx) }()
	}
	wg.Wait()
	if a.cfg.StopOnExit {
		a.StopAll()
	}
	return nil
}

// recover adopts the runs a previous agent launched: still alive, they are
// watched again; ended while no agent watched, their end (as their
// supervisor recorded it) is reported; never started, they end as lost.
func (a *Agent) recover(ctx context.Context) {
	recs, errs := a.state.load()
	for _, err := range errs {
		a.log.Error("agent: state directory", "err", err)
	}
	procs, err := a.launch.Recover(ctx)
	if err != nil {
		a.log.Error("agent: recover jobs", "err", err)
	}
	byKey := make(map[runKey]*launch.Proc, len(procs))
	for _, p := range procs {
		byKey[runKey{p.JobID(), p.Epoch(), p.NodeRank()}] = p
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rec := range recs {
		k := rec.key()
		r := &run{rec: *rec, job: byKey[k], done: make(chan struct{})}
		delete(byKey, k)
		a.runs[k] = r
		switch {
		case rec.Ended:
			close(r.done)
		case r.job == nil:
			a.endLocked(r, exitStatus{ExitCode: -1, Err: "lost: the agent stopped before the job started", End: time.Now()})
		default:
			if _, ended := r.job.Result(); !ended {
				a.log.Info("agent: found a run still going", "run", k)
			}
			r.proc = r.job
			a.watchLocked(r)
		}
	}
	// Jobs whose record is gone (removed by hand, or corrupt): the ended
	// ones are forgotten; those still running are reported, so that the
	// server decides whether they go on.
	for k, p := range byKey {
		if _, ended := p.Result(); ended {
			if err := p.Forget(); err != nil {
				a.log.Warn("agent: forget a job without a record", "run", k, "err", err)
			}
			continue
		}
		a.log.Warn("agent: found a running job it has no record of; reporting it", "run", k)
		r := &run{rec: record{Job: k.Job, Epoch: k.Epoch, Rank: k.Rank, Start: millis(p.Started()), Stdout: p.Stdout(), Stderr: p.Stderr()},
			proc: p, job: p, done: make(chan struct{})}
		a.runs[k] = r
		a.saveLocked(r)
		a.watchLocked(r)
	}
}

// followLoop registers and holds the orders stream, reconnecting with
// exponential back-off (and jitter, so that a thousand agents do not all
// knock at once after a server restart).
func (a *Agent) followLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		t0 := time.Now()
		err := a.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(t0) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		a.log.Warn("agent: lost the server; retrying", "err", err, "in", backoff)
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// follow registers, then reads orders until the stream breaks.
func (a *Agent) follow(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.cfg.Server, "/")+api.Prefix+"/agents/"+url.PathEscape(a.cfg.Node.Name)+"/orders", nil)
	if err != nil {
		return fmt.Errorf("orders request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("open the orders stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("open the orders stream: HTTP %d: %s", resp.StatusCode, e.Message)
	}
	// A stream that goes quiet for much longer than the server's
	// keep-alive is dead even if TCP has not noticed.
	watchdog := time.AfterFunc(time.Minute, cancel)
	defer watchdog.Stop()
	go func() {
		select {
		case <-a.relink: // a report found the node unknown: register again
			cancel()
		case <-ctx.Done():
		}
	}()
	dec := json.NewDecoder(resp.Body)
	for {
		var o api.Orders
		if err := dec.Decode(&o); err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		hb := time.Duration(o.HeartbeatMS) * time.Millisecond
		if hb <= 0 {
			hb = time.Duration(max(o.HeartbeatS, 1)) * time.Second
		}
		watchdog.Reset(max(20*hb, 10*time.Second) + 30*time.Second)
		a.apply(o, hb)
	}
}

// register tells the server what the node is and what it runs.
func (a *Agent) register(ctx context.Context) error {
	a.mu.Lock()
	reg := api.Registration{Node: a.cfg.Node, Address: a.cfg.Address, AgentURL: a.cfg.AgentURL, Running: a.runningLocked()}
	if a.power != nil {
		reg.Power = a.power.source
	}
	a.mu.Unlock()
	caps := a.launch.Capabilities()
	reg.Limits = &store.NodeLimits{Enforced: caps.Cgroup, Reason: caps.CgroupReason}
	var out json.RawMessage
	if err := a.client.Do(ctx, http.MethodPost, api.Prefix+"/agents/"+url.PathEscape(a.cfg.Node.Name)+"/register", reg, &out); err != nil {
		return fmt.Errorf("register node %s: %w", a.cfg.Node.Name, err)
	}
	return nil
}

// apply follows one Orders line.
func (a *Agent) apply(o api.Orders, hb time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if hb != a.every {
		a.every = hb
		a.kickLocked()
	}
	// Orders older than ones already followed come from a replica whose
	// view lags: they could stop a run a newer view started. Ignore them
	// for a while (a store rebuilt from scratch starts its revisions over).
	if o.Rev < a.maxRev && time.Since(a.maxRevAt) < 10*time.Second {
		a.log.Debug("agent: orders older than the last followed; ignored", "rev", o.Rev, "last", a.maxRev)
		return
	}
	if o.Rev >= a.maxRev {
		a.maxRev, a.maxRevAt = o.Rev, time.Now()
	}
	a.orders, a.haveOrd = o, true
	a.reconcileLocked()
}

// reconcileLocked makes the node run what the orders say: stop what they
// no longer name, launch what they name and was never launched here, and
// carry out signal orders once.
func (a *Agent) reconcileLocked() {
	if !a.haveOrd {
		return
	}
	want := make(map[runKey]bool, len(a.orders.Runs))
	for _, r := range a.orders.Runs {
		want[runKey{r.Job.ID, r.Epoch, r.Rank}] = true
	}
	for k, r := range a.runs {
		if r.running() && !r.stopping && !want[k] {
			a.stopLocked(r, "the server no longer wants it")
		}
	}
	for _, o := range a.orders.Runs {
		k := runKey{o.Job.ID, o.Epoch, o.Rank}
		if _, seen := a.runs[k]; seen {
			continue // launched once already: never again
		}
		if o.Rank < 0 {
			continue // not this node's (a server bug); nothing to run
		}
		devs, ok := a.freeDevicesLocked(o.Accelerators)
		if !ok {
			continue // a stopping run still holds them; retried when it ends
		}
		a.launchLocked(o, devs)
	}
	for _, s := range a.orders.Signals {
		for k, r := range a.runs {
			if k.Job != s.Job || k.Epoch != s.Epoch || !r.running() || slices.Contains(r.rec.Signals, s.Seq) {
				continue
			}
			if err := a.signalRunLocked(k, r, s.Signal, s.To); err != nil {
				a.log.Warn("agent: signal order", "run", k, "signal", s.Signal, "err", err)
			} else {
				a.log.Info("agent: signalled", "run", k, "signal", s.Signal)
			}
			r.rec.Signals = append(r.rec.Signals, s.Seq)
			a.saveLocked(r)
		}
	}
}

// signal sends a signal order ("USR1", "TERM", "10", …) to a run.
func signal(p *launch.Proc, name string) error {
	sig, err := launch.ParseSignal(name)
	if err != nil {
		return err
	}
	if err := p.Signal(sig); err != nil && !errors.Is(err, launch.ErrEnded) {
		return err
	}
	return nil
}

// freeDevicesLocked picks n device indexes no live run holds, in the
// order the node lists its devices.
func (a *Agent) freeDevicesLocked(n int) ([]int, bool) {
	if n == 0 {
		return nil, true
	}
	used := map[int]bool{}
	for _, r := range a.runs {
		if r.running() {
			for _, d := range r.rec.Devices {
				used[d] = true
			}
		}
	}
	var out []int
	for _, d := range a.cfg.Devices {
		if len(out) == n {
			break
		}
		if !used[d.Index] {
			out = append(out, d.Index)
		}
	}
	return out, len(out) == n
}

// launchLocked records, then starts, one rank. The record is written
// first: if the agent dies in between, the rank is reported lost rather
// than launched a second time.
func (a *Agent) launchLocked(o api.Run, devs []int) {
	now := time.Now()
	r := &run{rec: record{Job: o.Job.ID, Epoch: o.Epoch, Rank: o.Rank, Devices: devs, Deadline: o.Deadline, Start: millis(now)},
		done: make(chan struct{})}
	k := r.rec.key()
	a.runs[k] = r
	if o.Deadline > 0 && now.Unix() >= o.Deadline {
		a.endLocked(r, exitStatus{ExitCode: -1, TimedOut: true, End: now, Err: ""})
		return
	}
	spec := a.spec(o, devs, now)
	a.batchSpec(o, &spec) // sbatch's jobs: the script on rank 0 only (steps.go)
	r.rec.StopSignal = spec.Task.Signal
	if stepSignalled(&o.Job.Task) {
		r.rec.StepSignal = o.Job.Task.Signal
	}
	if err := a.state.save(&r.rec); err != nil {
		// Without the record the promise cannot be kept: do not launch.
		a.log.Error("agent: cannot record the run; not launching it", "run", k, "err", err)
		a.endLocked(r, exitStatus{ExitCode: -1, Err: err.Error(), End: now})
		return
	}
	p, err := a.launch.Start(context.Background(), spec)
	if err != nil {
		a.log.Warn("agent: launch failed", "run", k, "err", err)
		a.endLocked(r, exitStatus{ExitCode: -1, Err: err.Error(), End: time.Now()})
		return
	}
	r.proc, r.job = p, p
	r.rec.Stdout, r.rec.Stderr = p.Stdout(), p.Stderr()
	a.saveLocked(r)
	a.meterLocked(r, now)
	a.log.Info("agent: launched", "run", k, "devices", devs)
	a.watchLocked(r)
}

// exitStatus is how a run ended, as reported.
type exitStatus struct {
	ExitCode int    // -1 when a signal ended it, or it never started
	Signal   string // the signal that ended it: "TERM", "KILL", …
	TimedOut bool   // the time limit stopped it
	Killed   bool   // the agent stopped it because the server asked
	Err      string // it could not start, or was lost: why
	End      time.Time
}

// watchLocked waits for the run's end in a goroutine of its own.
func (a *Agent) watchLocked(r *run) {
	p := r.proc
	a.exits.Add(1)
	go func() {
		defer a.exits.Done()
		<-p.Done()
		res, _ := p.Result()
		st := exitStatus{ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut, Killed: res.Killed, Err: res.Err, End: res.End}
		a.mu.Lock()
		defer a.mu.Unlock()
		if r.stopping && !st.TimedOut {
			st.Killed = true
		}
		a.endLocked(r, st)
		a.reconcileLocked() // devices freed: launch what waited for them
	}()
}

// endLocked records how a run ended and asks for a report now.
func (a *Agent) endLocked(r *run, st exitStatus) {
	r.proc = nil
	rec := &r.rec
	rec.Ended, rec.ExitCode, rec.Signal, rec.TimedOut, rec.Killed, rec.Error = true, st.ExitCode, st.Signal, st.TimedOut, st.Killed, st.Err
	rec.End = millis(st.End)
	rec.EnergyJ = a.energyLocked(r, st.End)
	a.saveLocked(r)
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	a.log.Info("agent: run ended", "run", rec.key(), "exit", st.ExitCode, "signal", st.Signal, "timed_out", st.TimedOut, "killed", st.Killed, "err", st.Err)
	a.kickLocked()
}

func (a *Agent) saveLocked(r *run) {
	if err := a.state.save(&r.rec); err != nil {
		a.log.Error("agent: save run record", "run", r.rec.key(), "err", err)
	}
}

// stopLocked stops a run with its job's signal, then SIGKILL after the
// grace period. A batch job whose steps take its signal has them warned
// first, and its script stopped a grace period later.
func (a *Agent) stopLocked(r *run, why string) {
	r.stopping = true
	sig, err := launch.ParseSignal(cmp.Or(r.rec.StopSignal, "TERM"))
	if err != nil {
		sig = syscall.SIGTERM // the server checked it; an old record's
	}
	k := r.rec.key()
	a.log.Info("agent: stopping a run", "run", k, "why", why, "signal", launch.SignalName(sig))
	p, grace, done := r.proc, a.cfg.Grace, r.done
	warned := false
	if stepSig, err := launch.ParseSignal(r.rec.StepSignal); r.rec.StepSignal != "" && err == nil && stepSig != syscall.SIGTERM {
		warned = a.steps.signal(k.Job, k.Epoch, stepSig) > 0
	}
	go func() {
		// The warned steps' grace to checkpoint, or until they are done.
		for deadline := time.Now().Add(grace); warned && a.steps.running(k.Job, k.Epoch) > 0 && time.Now().Before(deadline); {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		if _, err := p.Stop(context.Background(), sig, grace); err != nil {
			a.log.Warn("agent: stop a run", "run", k, "err", err)
		}
	}()
}

// signalRunLocked carries out a signal order: to a batch job's steps'
// tasks on this node, as Slurm's scancel does, or with to (scancel
// --batch, --full) to its script, which runs on rank 0, alone or as well;
// to any other job's processes.
func (a *Agent) signalRunLocked(k runKey, r *run, name, to string) error {
	batch := slices.ContainsFunc(a.orders.Runs, func(o api.Run) bool {
		return o.Job.ID == k.Job && o.Epoch == k.Epoch && o.Job.Task.BatchHost
	})
	if !batch {
		return signal(r.proc, name)
	}
	sig, err := launch.ParseSignal(name)
	if err != nil {
		return err
	}
	if to != store.SignalBatch {
		a.steps.signal(k.Job, k.Epoch, sig)
	}
	if to != "" && k.Rank == 0 {
		return signal(r.proc, name)
	}
	return nil
}

// StopAll stops every live run (its signal, then SIGKILL after the grace
// period) and waits for them to end. Their ends are reported by the next
// Run, if any.
func (a *Agent) StopAll() {
	a.mu.Lock()
	for _, r := range a.runs {
		if r.running() && !r.stopping {
			a.stopLocked(r, "the agent stops")
		}
	}
	a.mu.Unlock()
	a.exits.Wait()
}

func (a *Agent) kickLocked() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) runningLocked() []api.RunState {
	var out []api.RunState
	for _, r := range a.runs {
		if r.running() {
			out = append(out, api.RunState{Job: r.rec.Job, Epoch: r.rec.Epoch, Rank: r.rec.Rank, Start: r.rec.Start / 1000})
		}
	}
	slices.SortFunc(out, func(x, y api.RunState) int {
		return strings.Compare(runKey{x.Job, x.Epoch, x.Rank}.String(), runKey{y.Job, y.Epoch, y.Rank}.String())
	})
	return out
}

// reportLoop sends a heartbeat every interval, and at once when a run
// ends. Ends are sent until the server acknowledges them.
func (a *Agent) reportLoop(ctx context.Context) {
	nextHealth := time.Time{}
	for {
		a.mu.Lock()
		every := a.every
		a.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.kick:
			t.Stop()
		case <-t.C:
		}
		if time.Now().After(nextHealth) {
			h := a.checkHealth(ctx)
			a.mu.Lock()
			if h != a.health {
				if h != "" {
					a.log.Warn("agent: unhealthy; asking to drain the node", "why", h)
				} else if a.health != "" {
					a.log.Info("agent: healthy again", "was", a.health)
				}
			}
			a.health = h
			a.mu.Unlock()
			nextHealth = time.Now().Add(a.cfg.HealthEvery)
		}
		if err := a.report(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("agent: report", "err", err)
			var e *api.Error
			if errors.As(err, &e) && e.Status == http.StatusNotFound {
				select { // the server forgot the node: register again
				case a.relink <- struct{}{}:
				default:
				}
			}
		}
		a.forget()
	}
}

// report sends one report and marks the ends it carried as acknowledged.
func (a *Agent) report(ctx context.Context) error {
	a.mu.Lock()
	rep := api.Report{Running: a.runningLocked(), Health: a.health, Watts: a.wattsLocked(), Steps: slices.Clone(a.stepEnds)}
	var sent []*run
	for _, r := range a.runs {
		if r.rec.Ended && !r.rec.Reported {
			rec := r.rec
			rep.Ended = append(rep.Ended, api.RunState{Job: rec.Job, Epoch: rec.Epoch, Rank: rec.Rank, Ended: true,
				ExitCode: rec.ExitCode, Signal: rec.Signal, TimedOut: rec.TimedOut, Killed: rec.Killed,
				Start: rec.Start / 1000, End: rec.End / 1000, Error: rec.Error, EnergyJ: rec.EnergyJ})
			sent = append(sent, r)
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.client.Do(ctx, http.MethodPost, api.Prefix+"/agents/"+url.PathEscape(a.cfg.Node.Name)+"/report", rep, nil); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range sent {
		r.rec.Reported = true
		a.saveLocked(r)
	}
	a.stepEnds = a.stepEnds[len(rep.Steps):] // those that came meanwhile stay
	return nil
}

// keepEnded is how long the record of a reported run is kept, so that
// orders from a lagging view cannot launch it again.
const keepEnded = time.Hour

// forget drops the records of runs reported long ago that the orders no
// longer name.
func (a *Agent) forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	cutoff := millis(time.Now().Add(-keepEnded))
	for k, r := range a.runs {
		if !r.rec.Reported || r.rec.End > cutoff {
			continue
		}
		if slices.ContainsFunc(a.orders.Runs, func(o api.Run) bool { return o.Job.ID == k.Job && o.Epoch == k.Epoch }) {
			continue
		}
		if r.job != nil {
			if err := r.job.Forget(); err != nil {
				a.log.Warn("agent: forget a run", "err", err)
				continue
			}
		}
		if err := a.state.remove(k); err != nil {
			a.log.Warn("agent: forget a run", "err", err)
			continue
		}
		if out := r.rec.Stdout; filepath.Dir(out) == a.state.logDir() { // the agent's own: a streamed output, a holder's
			if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("agent: remove a forgotten run's output", "file", out, "err", err)
			}
		}
		delete(a.runs, k)
	}
}

// NodeInfo is the node as the agent registers it.
func (a *Agent) NodeInfo() model.Node { return a.cfg.Node }
