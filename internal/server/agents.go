package server

// The server's side of the agent protocol (internal/api/agent.go):
// registration, the orders stream, reports, the logs proxy and the monitor
// that marks silent nodes down.
//
// Every replica keeps an agentHub: an index of the running jobs by node,
// fed by the scheduler loop's watch (every replica's loop follows the
// store's change feed) and by the jobs this replica's own report handlers
// end, so an agent may hold its orders stream on any replica. Orders are
// level-triggered: each line is the whole set of runs wanted on the node,
// sent at connection, whenever a change touches the node, and as a
// keep-alive. Only the leader's monitor marks nodes down.

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Reasons the server writes on nodes, so that it can tell its own marks
// from an operator's.
const (
	lostReason   = "NodeFail: " // the monitor marked the node down
	healthReason = "health: "   // the agent's health checks drained it
)

// Defaults of the agent protocol's timings.
const (
	defaultNodeTimeout    = 30 * time.Second
	defaultAgentHeartbeat = 5 * time.Second
	signalTTL             = time.Minute // how long a signal order is repeated
	tombstoneTTL          = time.Minute
	addrTTL               = 30 * time.Second
)

// errStale aborts an UpdateJob whose report or decision no longer applies.
var errStale = errors.New("stale")

// agentHub is one replica's view of the agents and what they must run.
type agentHub struct {
	s         *Server
	timeout   time.Duration // a node silent this long is down
	heartbeat time.Duration // how often agents report
	keepAlive time.Duration // how often an idle orders stream repeats itself
	loaded    chan struct{} // closed once the running jobs are loaded

	connected prometheus.Gauge
	reports   prometheus.Counter
	lost      prometheus.Counter

	mu     sync.Mutex
	rev    int64                            // latest revision in the index
	jobs   map[string]*store.Job            // running jobs with an allocation
	byNode map[string]map[string]struct{}   // node → IDs of its running jobs
	gone   map[string]tombstone             // jobs seen leaving, against stale news
	subs   map[string]map[chan struct{}]int // node → open orders streams
	addrs  map[string]nodeAddr              // node → address cache
	beats  map[string]struct{}              // heartbeats not yet written
	heard  map[string]time.Time             // last word from each node's agent here
	// secret keys step and log keys (derive), read once.
	secretMu sync.Mutex
	secret   []byte
}

type tombstone struct {
	rev int64
	at  time.Time
}

type nodeAddr struct {
	address, agentURL string
	at                time.Time
}

func newAgentHub(s *Server) *agentHub {
	h := &agentHub{
		s:         s,
		timeout:   s.cfg.NodeTimeout,
		heartbeat: s.cfg.AgentHeartbeat,
		loaded:    make(chan struct{}),
		jobs:      map[string]*store.Job{},
		byNode:    map[string]map[string]struct{}{},
		gone:      map[string]tombstone{},
		subs:      map[string]map[chan struct{}]int{},
		addrs:     map[string]nodeAddr{},
		beats:     map[string]struct{}{},
		heard:     map[string]time.Time{},
	}
	if h.timeout <= 0 {
		h.timeout = defaultNodeTimeout
	}
	if h.heartbeat <= 0 {
		h.heartbeat = defaultAgentHeartbeat
	}
	h.keepAlive = min(15*time.Second, max(3*h.heartbeat, 100*time.Millisecond))
	h.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usine_agents_connected", Help: "Agents holding an orders stream on this replica.",
	})
	h.reports = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usine_agent_reports_total", Help: "Agent reports (heartbeats) received.",
	})
	h.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usine_nodes_lost_total", Help: "Nodes marked down because their agent fell silent.",
	})
	s.reg.MustRegister(h.connected, h.reports, h.lost)
	s.loop.Watch(h.onJob)
	s.loop.OnLoad(h.load)
	return h
}

// run writes heartbeats and watches for silent nodes until ctx ends.
func (h *agentHub) run(ctx context.Context) {
	flush := time.NewTicker(min(2*time.Second, max(h.timeout/8, 50*time.Millisecond)))
	defer flush.Stop()
	check := time.NewTicker(max(h.timeout/4, 50*time.Millisecond))
	defer check.Stop()
	var leaderSince time.Time
	for {
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			h.flush(wctx)
			cancel()
			return
		case <-flush.C:
			h.flush(ctx)
		case <-check.C:
			if !h.s.loop.IsLeader() {
				leaderSince = time.Time{}
				continue
			}
			if leaderSince.IsZero() {
				// Agents get a full timeout to reach a new leader (or a
				// restarted server) before any of them is declared lost.
				leaderSince = time.Now()
			}
			if err := h.monitor(ctx, leaderSince); err != nil && ctx.Err() == nil {
				h.s.log.Error("agents: look for silent nodes", "err", err)
			}
			h.prune()
		}
	}
}

// load takes the running jobs as the loop loaded them at revision rev
// into the index: the loop's watchers then hear every change after rev.
// Orders streams wait for it: an empty first answer would make every agent
// kill what it runs. Jobs the index holds from before that ran no longer
// at rev (it heard of their end from this replica, or never) leave it;
// what this replica applied after rev stays.
func (h *agentHub) load(rev int64, running []store.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := make(map[string]bool, len(running))
	for _, j := range running {
		now[j.ID] = true
	}
	for id, old := range h.jobs {
		if !now[id] && old.Rev <= rev {
			h.gone[id] = tombstone{rev: rev, at: time.Now()}
			delete(h.jobs, id)
			h.unindex(old)
			h.notifyAlloc(old.Alloc)
		}
	}
	for _, j := range running {
		h.applyLocked(j)
	}
	h.rev = max(h.rev, rev)
	select {
	case <-h.loaded:
	default:
		close(h.loaded)
	}
}

// onJob hears every job change the loop sees. It must not block, and it
// runs under the loop's lock: nothing here may call the loop.
func (h *agentHub) onJob(j store.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyLocked(j)
}

// apply takes a job this replica changed itself into the index at once,
// without waiting for the loop to follow the feed.
func (h *agentHub) apply(j store.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyLocked(j)
}

func (h *agentHub) applyLocked(j store.Job) {
	h.rev = max(h.rev, j.Rev)
	old := h.jobs[j.ID]
	if old != nil && old.Rev >= j.Rev {
		return
	}
	if t, ok := h.gone[j.ID]; ok && t.rev >= j.Rev {
		return
	}
	run := j.State == model.JobRunning && len(j.Alloc) > 0
	if !run {
		h.gone[j.ID] = tombstone{rev: j.Rev, at: time.Now()}
		if old == nil {
			return
		}
		delete(h.jobs, j.ID)
		h.unindex(old)
		h.notifyAlloc(old.Alloc)
		return
	}
	delete(h.gone, j.ID)
	cp := j
	h.jobs[j.ID] = &cp
	if old != nil && old.Epoch == j.Epoch && slices.Equal(old.Alloc, j.Alloc) {
		if len(old.Signals) != len(j.Signals) {
			h.notifyAlloc(j.Alloc) // a new signal to carry out
		}
		return // a change agents need not hear of
	}
	if old != nil {
		h.unindex(old)
		h.notifyAlloc(old.Alloc)
	}
	for _, a := range j.Alloc {
		m := h.byNode[a.Node]
		if m == nil {
			m = map[string]struct{}{}
			h.byNode[a.Node] = m
		}
		m[j.ID] = struct{}{}
	}
	h.notifyAlloc(j.Alloc)
}

func (h *agentHub) unindex(j *store.Job) {
	for _, a := range j.Alloc {
		if m := h.byNode[a.Node]; m != nil {
			delete(m, j.ID)
			if len(m) == 0 {
				delete(h.byNode, a.Node)
			}
		}
	}
}

func (h *agentHub) notifyAlloc(alloc []store.Alloc) {
	for _, a := range alloc {
		h.notifyLocked(a.Node)
	}
}

func (h *agentHub) notifyLocked(node string) {
	for ch := range h.subs[node] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// prune forgets old tombstones.
func (h *agentHub) prune() {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, t := range h.gone {
		if now.Sub(t.at) > tombstoneTTL {
			delete(h.gone, id)
		}
	}
}

// orders builds what node must run now.
func (h *agentHub) orders(ctx context.Context, node string) api.Orders {
	h.mu.Lock()
	o := api.Orders{Node: node, Runs: []api.Run{}, Rev: h.rev,
		HeartbeatS: max(1, int(h.heartbeat/time.Second)), HeartbeatMS: int(h.heartbeat / time.Millisecond)}
	var jobs []store.Job
	for id := range h.byNode[node] {
		jobs = append(jobs, *h.jobs[id])
	}
	h.mu.Unlock()
	o.LogKey = h.logKey(ctx, node)
	recent := time.Now().Add(-signalTTL).Unix()
	for _, j := range jobs {
		for _, s := range j.Signals {
			if s.Epoch == j.Epoch && s.Time >= recent {
				o.Signals = append(o.Signals, api.SignalOrder{Job: j.ID, Epoch: s.Epoch, Signal: s.Signal, To: s.To, Seq: s.Seq})
			}
		}
	}
	slices.SortFunc(jobs, func(a, b store.Job) int { return strings.Compare(a.ID, b.ID) })
	for _, j := range jobs {
		r := api.Run{Job: j, Epoch: j.Epoch, Rank: -1, Deadline: j.Start + j.Limit,
			Nodes: make([]string, len(j.Alloc)), Addresses: make([]string, len(j.Alloc)),
			AgentURLs: make([]string, len(j.Alloc)), StepKey: h.stepKey(ctx, j.ID, j.Epoch)}
		for i, a := range j.Alloc {
			r.Nodes[i] = a.Node
			addr := h.address(ctx, a.Node)
			r.Addresses[i], r.AgentURLs[i] = addr.address, addr.agentURL
			if a.Node == node && r.Rank < 0 {
				r.Rank, r.Accelerators, r.CPUs, r.MemoryMiB = i, a.Accelerators, a.CPUs, a.MemoryMiB
			}
		}
		o.Runs = append(o.Runs, r)
	}
	return o
}

// stepKey is the secret that lets srun, inside one run of a job, start
// tasks on the job's nodes: an HMAC of the job and epoch.
func (h *agentHub) stepKey(ctx context.Context, job string, epoch int64) string {
	return h.derive(ctx, fmt.Sprintf("%s/%d", job, epoch))
}

// logKey is the key of node's log tickets (api.LogTicket).
func (h *agentHub) logKey(ctx context.Context, node string) string {
	return h.derive(ctx, "logs:"+node)
}

// derive is an HMAC of what under the store's "agents" secret, which every
// replica shares, so that any replica, before or after a restart, derives
// the same key. "" when the store cannot be read: srun and log reads are
// refused until it can.
func (h *agentHub) derive(ctx context.Context, what string) string {
	h.secretMu.Lock()
	if len(h.secret) == 0 {
		secret, err := h.s.store.Secret(ctx, "agents")
		if err != nil {
			h.secretMu.Unlock()
			h.s.log.Error("read the agents' secret: srun and log reads are refused until the store answers", "err", err)
			return ""
		}
		h.secret = secret
	}
	h.secretMu.Unlock()
	m := hmac.New(sha256.New, h.secret)
	io.WriteString(m, what)
	return hex.EncodeToString(m.Sum(nil))
}

// address is how a node's agent is reached, from a short-lived cache.
func (h *agentHub) address(ctx context.Context, node string) nodeAddr {
	h.mu.Lock()
	a, ok := h.addrs[node]
	h.mu.Unlock()
	if ok && time.Since(a.at) < addrTTL {
		return a
	}
	n, err := h.s.store.Node(ctx, node)
	if err != nil {
		return a
	}
	a = nodeAddr{address: n.Address, agentURL: n.AgentURL, at: time.Now()}
	if a.address == "" {
		a.address = node // a declared node without an agent: its name may resolve
	}
	h.mu.Lock()
	h.addrs[node] = a
	h.mu.Unlock()
	return a
}

// beat records that node's agent spoke now.
func (h *agentHub) beat(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beats[node] = struct{}{}
	h.heard[node] = time.Now()
}

// flush writes the heartbeats heard since the last flush, in one write.
func (h *agentHub) flush(ctx context.Context) {
	h.mu.Lock()
	if len(h.beats) == 0 {
		h.mu.Unlock()
		return
	}
	names := make([]string, 0, len(h.beats))
	for n := range h.beats {
		names = append(names, n)
	}
	h.beats = map[string]struct{}{}
	h.mu.Unlock()
	slices.Sort(names)
	if err := h.s.store.Heartbeats(ctx, names, h.s.now().Unix()); err != nil && ctx.Err() == nil {
		h.s.log.Error("agents: record heartbeats", "nodes", len(names), "err", err)
	}
}

// monitor marks down the nodes whose agents have been silent for longer
// than the timeout, and requeues or fails their jobs.
func (h *agentHub) monitor(ctx context.Context, leaderSince time.Time) error {
	nodes, err := h.s.store.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	now := time.Now()
	for _, n := range nodes {
		if n.State == model.NodeDown {
			continue
		}
		h.mu.Lock()
		heard := h.heard[n.Name]
		h.mu.Unlock()
		if n.Heartbeat == 0 && heard.IsZero() {
			continue // declared, never had an agent: nothing to watch
		}
		// The store keeps whole seconds: a stored heartbeat gets the
		// benefit of the doubt.
		last := latest(time.Unix(n.Heartbeat+1, 0), heard, leaderSince)
		if silent := now.Sub(last); silent > h.timeout {
			if err := h.nodeLost(ctx, n.Name, silent); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeLost marks a node down and requeues (Task.Requeue) or fails the jobs
// it ran.
func (h *agentHub) nodeLost(ctx context.Context, name string, silent time.Duration) error {
	reason := fmt.Sprintf("%sno word from its agent for %s", lostReason, silent.Round(time.Second))
	_, err := h.s.store.UpdateNode(ctx, name, func(n *store.Node) error {
		if n.State == model.NodeDown {
			return errStale
		}
		n.State, n.Reason = model.NodeDown, reason
		return nil
	})
	if errors.Is(err, errStale) || isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark node %s down: %w", name, err)
	}
	h.lost.Inc()
	h.s.log.Warn("node lost: marked down", "node", name, "silent", silent.Round(time.Millisecond))
	h.s.loop.NodesChanged()

	h.mu.Lock()
	type victim struct {
		id    string
		epoch int64
	}
	var victims []victim
	for id := range h.byNode[name] {
		victims = append(victims, victim{id, h.jobs[id].Epoch})
	}
	h.mu.Unlock()
	now := h.s.now().Unix()
	var evs []store.Event
	for _, v := range victims {
		var ev store.Event
		j, err := h.s.store.UpdateJob(ctx, v.id, func(j *store.Job) error {
			if j.State != model.JobRunning || j.Epoch != v.epoch || !slices.ContainsFunc(j.Alloc, func(a store.Alloc) bool { return a.Node == name }) {
				return errStale
			}
			if j.Task.Requeue {
				j.State, j.Reason, j.Requeues = model.JobPending, "NodeFail: requeued after losing node "+name, j.Requeues+1
				j.Start, j.End, j.Alloc, j.ExitCode, j.Signal, j.EstStart = 0, 0, nil, 0, "", 0
				ev = store.Event{Job: j.ID, Time: now, Kind: "requeued", Detail: "node " + name + " lost"}
				return nil
			}
			j.State, j.Reason, j.End = model.JobFailed, "NodeFail", now
			ev = store.Event{Job: j.ID, Time: now, Kind: "ended", Detail: "failed: node " + name + " lost"}
			return nil
		})
		if errors.Is(err, errStale) || isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("job %s on lost node %s: %w", v.id, name, err)
		}
		h.apply(j)
		evs = append(evs, ev)
	}
	if len(evs) > 0 {
		if err := h.s.store.AddEvents(ctx, evs); err != nil {
			h.s.log.Error("agents: record node-loss events", "err", err)
		}
	}
	h.s.loop.Wake()
	return nil
}

// subscribe opens an orders stream for node.
func (h *agentHub) subscribe(node string) chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[node] == nil {
		h.subs[node] = map[chan struct{}]int{}
	}
	h.subs[node][ch] = 0
	h.connected.Inc()
	return ch
}

func (h *agentHub) unsubscribe(node string, ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[node], ch)
	if len(h.subs[node]) == 0 {
		delete(h.subs, node)
	}
	h.connected.Dec()
}

// requireAgent lets the agent of the node in the path through: its own
// node's token, or an operator's or admin's.
func requireAgent(r *http.Request) error {
	if p := who(r.Context()); p != nil && p.Node != "" {
		if node := r.PathValue("node"); node != p.Node {
			return forbidden("this token is node %s's agent's; it may not act for node %s", p.Node, node)
		}
		return nil
	}
	return requireGlobal(r, "act as a node agent", store.RoleOperator)
}

// agentRegister upserts the node as its agent discovered it. An operator's
// drain survives; a down mark left by the monitor is lifted.
func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) error {
	if err := requireAgent(r); err != nil {
		return err
	}
	var reg api.Registration
	if err := decode(r, &reg); err != nil {
		return err
	}
	name := r.PathValue("node")
	if err := checkName("node", name, true); err != nil {
		return err
	}
	if reg.Node.Name != "" && reg.Node.Name != name {
		return invalid("node.name", "the body names node %q but the path %q; they must agree", reg.Node.Name, name)
	}
	for _, f := range []struct{ field, v string }{{"address", reg.Address}, {"agent_url", reg.AgentURL}} {
		if err := checkText(f.field, f.v, 1024); err != nil {
			return err
		}
	}
	if reg.AgentURL != "" {
		if u, err := url.Parse(reg.AgentURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("agent_url", "%q is not an http(s) URL", reg.AgentURL)
		}
	}
	if err := checkText("power", reg.Power, 64); err != nil {
		return err
	}
	if reg.Limits != nil {
		if err := checkText("limits.reason", reg.Limits.Reason, 1024); err != nil {
			return err
		}
		if reg.Limits.Enforced && reg.Limits.Reason != "" {
			return invalid("limits.reason", "limits are enforced, so there is no reason why not; send the reason only with enforced false")
		}
	}
	ctx := r.Context()
	n := reg.Node
	n.Name = name
	old, err := s.store.Node(ctx, name)
	exists := err == nil
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("read node %s: %w", name, err)
	}
	if err := s.placeNode(ctx, &n, old, exists); err != nil {
		return err
	}
	n.State, n.Reason = model.NodeUp, ""
	if exists {
		switch {
		case old.State == model.NodeDrain:
			n.State, n.Reason = old.State, old.Reason
		case old.State == model.NodeDown && !strings.HasPrefix(old.Reason, lostReason):
			n.State, n.Reason = old.State, old.Reason // an operator's mark
		}
	}
	if err := n.Validate(); err != nil {
		return err
	}
	var out store.Node
	if exists {
		out, err = s.store.UpdateNode(ctx, name, func(sn *store.Node) error {
			sn.Node, sn.Address, sn.AgentURL, sn.Limits, sn.Power = n, reg.Address, reg.AgentURL, reg.Limits, reg.Power
			return nil
		})
	} else {
		out, err = s.store.PutNode(ctx, store.Node{Node: n, Address: reg.Address, AgentURL: reg.AgentURL, Limits: reg.Limits, Power: reg.Power})
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", name, err)
	}
	h := s.agents
	h.mu.Lock()
	h.addrs[name] = nodeAddr{address: cmp.Or(reg.Address, name), agentURL: reg.AgentURL, at: time.Now()}
	h.mu.Unlock()
	h.beat(name)
	if !exists || old.Node != out.Node {
		s.loop.NodesChanged()
	}
	if exists && old.State == model.NodeDown && out.State == model.NodeUp {
		s.log.Info("node back: its agent registered again", "node", name)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// placeNode fills the node's place in the topology from the agent's
// labels, else from what the store had, else defaults, and makes sure its
// site and partition exist.
func (s *Server) placeNode(ctx context.Context, n *model.Node, old store.Node, exists bool) error {
	if exists {
		n.Site = cmp.Or(n.Site, old.Site)
		n.Partition = cmp.Or(n.Partition, old.Partition)
		n.Block = cmp.Or(n.Block, old.Block)
		n.Group = cmp.Or(n.Group, old.Group)
	}
	sites, err := s.store.Sites(ctx)
	if err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	if n.Site == "" {
		n.Site = "local"
		if len(sites) == 1 {
			n.Site = sites[0].Name
		}
	}
	if n.Partition == "" {
		n.Partition = "cpu"
		if n.Model != "" {
			n.Partition = strings.ToLower(n.Model)
		}
	}
	n.Block = cmp.Or(n.Block, n.Name)
	n.Group = cmp.Or(n.Group, n.Block)
	for _, f := range []struct{ field, v string }{{"node.site", n.Site}, {"node.partition", n.Partition}, {"node.block", n.Block}, {"node.group", n.Group}, {"node.model", n.Model}} {
		if err := checkName(f.field, f.v, false); err != nil {
			return err
		}
	}
	if !slices.ContainsFunc(sites, func(x model.Site) bool { return x.Name == n.Site }) {
		if err := s.store.PutSite(ctx, model.Site{Name: n.Site}); err != nil {
			return fmt.Errorf("create site %s: %w", n.Site, err)
		}
	}
	parts, err := s.store.Partitions(ctx)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	i := slices.IndexFunc(parts, func(p model.Partition) bool { return p.Name == n.Partition })
	if i < 0 {
		if err := s.store.PutPartition(ctx, model.Partition{Name: n.Partition, Site: n.Site, Model: n.Model}); err != nil {
			return fmt.Errorf("create partition %s: %w", n.Partition, err)
		}
		return nil
	}
	p := parts[i]
	if n.Accelerators > 0 && p.Model != n.Model {
		return invalid("node.partition", "node %s has %s accelerators but partition %s holds %q; give the agent --partition for a partition of %s",
			n.Name, n.Model, p.Name, p.Model, n.Model)
	}
	if p.Site != n.Site {
		return invalid("node.site", "node %s says site %s but its partition %s is at %s", n.Name, n.Site, p.Name, p.Site)
	}
	return nil
}

// agentOrders streams the node's orders as JSON lines until the agent
// hangs up or the server stops.
func (s *Server) agentOrders(w http.ResponseWriter, r *http.Request) error {
	if err := requireAgent(r); err != nil {
		return err
	}
	node := r.PathValue("node")
	ctx := r.Context()
	if _, err := s.store.Node(ctx, node); err != nil {
		if isNotFound(err) {
			return fail(http.StatusNotFound, api.CodeNotFound, "node", "node %s is not registered; the agent registers it first (POST %s/agents/%s/register)", node, api.Prefix, node)
		}
		return fmt.Errorf("read node %s: %w", node, err)
	}
	h := s.agents
	select {
	case <-h.loaded:
	case <-ctx.Done():
		return nil
	}
	ch := h.subscribe(node)
	defer h.unsubscribe(node, ch)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(h.keepAlive)
	defer tick.Stop()
	for {
		if err := enc.Encode(h.orders(ctx, node)); err != nil {
			return nil // the agent hung up
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		case <-tick.C:
		}
	}
}

// agentReport takes an agent's heartbeat, the ends of its ranks and its
// health.
func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) error {
	auditOf(r).done = true // heartbeats are not state changes worth an audit record
	if err := requireAgent(r); err != nil {
		return err
	}
	var rep api.Report
	if err := decode(r, &rep); err != nil {
		return err
	}
	node := r.PathValue("node")
	if err := checkText("health", rep.Health, 1024); err != nil {
		return err
	}
	for i, st := range rep.Steps {
		if err := checkName(fmt.Sprintf("steps[%d].step", i), st.Step, true); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("steps[%d].name", i), st.Name, maxNameLen); err != nil {
			return err
		}
	}
	for i, rs := range rep.Ended {
		// JSON has no NaN or infinity; a negative energy is an agent's bug.
		if rs.EnergyJ < 0 {
			return invalid(fmt.Sprintf("ended[%d].energy_j", i), "%g J is negative; an agent that could not measure a run's energy sends none", rs.EnergyJ)
		}
	}
	ctx := r.Context()
	n, err := s.store.Node(ctx, node)
	if isNotFound(err) {
		return fail(http.StatusNotFound, api.CodeNotFound, "node", "node %s is not registered; register it first", node)
	}
	if err != nil {
		return fmt.Errorf("read node %s: %w", node, err)
	}
	h := s.agents
	h.beat(node)
	h.reports.Inc()
	ended := false
	for _, rs := range rep.Ended {
		ok, err := s.endRank(ctx, node, rs)
		if err != nil {
			return err
		}
		ended = ended || ok
	}
	for _, st := range rep.Steps {
		if err := s.endStep(ctx, node, st); err != nil {
			return err
		}
	}
	if ended {
		s.loop.Wake()
	}
	if err := s.nodeHealth(ctx, n, rep.Health); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// nodeHealth drains a node whose agent reports a problem, resumes one
// whose problem is gone, and lifts a down mark the monitor left on a node
// that speaks again.
func (s *Server) nodeHealth(ctx context.Context, n store.Node, health string) error {
	var st model.NodeState
	reason := ""
	switch {
	case health != "" && n.State == model.NodeUp:
		st, reason = model.NodeDrain, healthReason+health
	case health != "" && n.State == model.NodeDrain && strings.HasPrefix(n.Reason, healthReason) && n.Reason != healthReason+health:
		st, reason = model.NodeDrain, healthReason+health
	case health == "" && n.State == model.NodeDrain && strings.HasPrefix(n.Reason, healthReason):
		st = model.NodeUp
	case n.State == model.NodeDown && strings.HasPrefix(n.Reason, lostReason):
		st = model.NodeUp
		if health != "" {
			st, reason = model.NodeDrain, healthReason+health
		}
	default:
		return nil
	}
	_, err := s.store.UpdateNode(ctx, n.Name, func(sn *store.Node) error {
		if sn.State != n.State || sn.Reason != n.Reason {
			return errStale // someone else moved it meanwhile
		}
		sn.State, sn.Reason = st, reason
		return nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set node %s %s: %w", n.Name, st, err)
	}
	s.log.Info("node state from its agent", "node", n.Name, "state", st, "reason", reason)
	s.loop.NodesChanged()
	return nil
}

// endRank records that one rank of a run ended, and ends the job when
// that settles it: at once as failed (or timed out) when the rank failed,
// completed when every rank exited 0. A report for another epoch, another
// node or a job that already ended changes nothing (fencing); ok says
// endStep merges what node says of one srun step into its job: the
// earliest start, the latest end, the worst exit, the nodes. A step of a
// run that is not the job's current one on this node is ignored.
func (s *Server) endStep(ctx context.Context, node string, st api.StepEnd) error {
	_, err := s.store.UpdateJob(ctx, st.Job, func(j *store.Job) error {
		if j.Epoch != st.Epoch || !slices.ContainsFunc(j.Alloc, func(a store.Alloc) bool { return a.Node == node }) {
			return errStale
		}
		k := slices.IndexFunc(j.Steps, func(x store.Step) bool { return x.ID == st.Step && x.Epoch == st.Epoch })
		if k < 0 {
			j.Steps = append(j.Steps, store.Step{ID: st.Step, Epoch: st.Epoch, Name: st.Name, Start: st.Start, End: st.End, ExitCode: st.ExitCode, Signal: st.Signal})
			if n := len(j.Steps); n > store.MaxSteps {
				j.Steps = slices.Delete(j.Steps, 0, n-store.MaxSteps)
			}
			k = len(j.Steps) - 1
		}
		x := &j.Steps[k]
		if slices.Contains(x.Nodes, node) {
			return errStale // a report sent again
		}
		x.Nodes = append(x.Nodes, node)
		x.Tasks += st.Tasks
		x.Start, x.End = min(x.Start, st.Start), max(x.End, st.End)
		if st.ExitCode > x.ExitCode || (st.Signal != "" && x.Signal == "") {
			x.ExitCode, x.Signal = max(st.ExitCode, x.ExitCode), cmp.Or(x.Signal, st.Signal)
		}
		return nil
	})
	if errors.Is(err, errStale) || isNotFound(err) {
		return nil
	}
	return err
}

// whether the job ended.
func (s *Server) endRank(ctx context.Context, node string, rs api.RunState) (bool, error) {
	if rs.Job == "" {
		return false, invalid("ended.job", "an ended run names no job")
	}
	now := s.now().Unix()
	var ev store.Event
	j, err := s.store.UpdateJob(ctx, rs.Job, func(j *store.Job) error {
		if j.State != model.JobRunning || j.Epoch != rs.Epoch || rs.Rank < 0 || rs.Rank >= len(j.Alloc) || j.Alloc[rs.Rank].Node != node {
			return errStale
		}
		if slices.ContainsFunc(j.Ranks, func(e store.RankEnd) bool { return e.Epoch == j.Epoch && e.Rank == rs.Rank }) {
			return errStale
		}
		end := min(max(rs.End, j.Start), now)
		if rs.End == 0 {
			end = now
		}
		j.Ranks = slices.DeleteFunc(j.Ranks, func(e store.RankEnd) bool { return e.Epoch != j.Epoch })
		j.Ranks = append(j.Ranks, store.RankEnd{Epoch: j.Epoch, Rank: rs.Rank, Node: node, ExitCode: rs.ExitCode, Signal: rs.Signal, TimedOut: rs.TimedOut, End: end,
			EnergyJ: rs.EnergyJ}) // the store counts it in the job's usage when every rank has one
		where := fmt.Sprintf("rank %d on %s", rs.Rank, node)
		if len(j.Alloc) == 1 {
			where = "on " + node
		}
		switch {
		case rs.TimedOut:
			j.State, j.Reason = model.JobTimeout, "TimeLimit"
			ev.Detail = fmt.Sprintf("timeout: the time limit of %ds ran out", j.Limit)
		case rs.Error != "":
			j.State, j.Reason = model.JobFailed, "could not start "+where+": "+rs.Error
			ev.Detail = "failed: " + j.Reason
		case rs.Signal != "":
			j.State, j.Reason = model.JobFailed, where+" killed by signal "+rs.Signal
			ev.Detail = "failed: " + j.Reason
		case rs.Killed || rs.ExitCode != 0:
			j.State, j.Reason = model.JobFailed, fmt.Sprintf("%s exited with code %d", where, rs.ExitCode)
			if rs.Killed {
				j.Reason = where + " was stopped by its agent"
			}
			ev.Detail = "failed: " + j.Reason
		default:
			done := 0
			for _, e := range j.Ranks {
				if e.Epoch == j.Epoch {
					done++
				}
			}
			// A batch script (Task.BatchHost) decides alone: the other
			// ranks only hold their nodes for its srun steps.
			if done < len(j.Alloc) && !(j.Task.BatchHost && rs.Rank == 0) {
				return nil // the other ranks still run
			}
			j.State, j.Reason = model.JobCompleted, ""
			ev.Detail = "completed, exit code 0"
		}
		j.End, j.ExitCode, j.Signal = end, rs.ExitCode, rs.Signal
		ev = store.Event{Job: j.ID, Time: end, Kind: "ended", Detail: ev.Detail}
		return nil
	})
	if errors.Is(err, errStale) || isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record the end of job %s rank %d: %w", rs.Job, rs.Rank, err)
	}
	s.agents.apply(j)
	if !j.State.Final() {
		return false, nil
	}
	if err := s.store.AddEvents(ctx, []store.Event{ev}); err != nil {
		s.log.Error("agents: record end event", "job", j.ID, "err", err)
	}
	return true, nil
}

// jobLog serves a rank's output, read from its node's agent: the request
// is passed on with the caller's own token, which the agent checks with
// this server before it answers.
func (s *Server) jobLog(w http.ResponseWriter, r *http.Request) error {
	j, err := s.visibleJob(r)
	if err != nil {
		return err
	}
	// A job's output is its owner's, as its files are on a Slurm cluster:
	// seeing a job is not enough to read what it printed.
	if p := who(r.Context()); !p.canAct(&j) {
		return forbidden("%s may not read the output of job %s of %s: only its owner, the project's managers, operators and admins may", p.User, j.ID, j.User)
	}
	rank, err := queryInt(r, "rank", 0, 1<<20)
	if err != nil {
		return err
	}
	if len(j.Alloc) == 0 {
		return fail(http.StatusConflict, api.CodeConflict, "", "job %s is %s and has not run yet (or was requeued): it has no output yet", j.ID, j.State)
	}
	if rank >= len(j.Alloc) {
		return invalid("rank", "job %s has %d ranks (0 to %d)", j.ID, len(j.Alloc), len(j.Alloc)-1)
	}
	node := j.Alloc[rank].Node
	a := s.agents.address(r.Context(), node)
	if a.agentURL == "" {
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "", "the agent of node %s serves no logs (started without a log listener)", node)
	}
	q := url.Values{"epoch": {strconv.FormatInt(j.Epoch, 10)}, "rank": {strconv.Itoa(rank)}}
	if follow := r.URL.Query().Get("follow"); follow != "" && follow != "0" && follow != "false" {
		q.Set("follow", "1")
	}
	if off := r.URL.Query().Get("offset"); off != "" {
		q.Set("offset", off)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet,
		strings.TrimRight(a.agentURL, "/")+"/logs/"+url.PathEscape(j.ID)+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("log request to node %s: %w", node, err)
	}
	// The agent gets a ticket for this one rank's output, never the
	// caller's token: an agent is trusted with its node, not with users.
	key := s.agents.logKey(r.Context(), node)
	if key == "" {
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "", "the store does not answer: cannot sign a log ticket; try again")
	}
	req.Header.Set("Authorization", api.TicketScheme+api.LogTicket(key, j.ID, j.Epoch, rank, s.now().Add(time.Minute).Unix()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(http.StatusBadGateway, api.CodeUnavailable, "", "cannot reach the agent of node %s at %s: %v", node, a.agentURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("the agent of node %s answered HTTP %d: %s", node, resp.StatusCode, strings.TrimSpace(string(b)))
			e.Code = api.CodeUnavailable
		}
		e.Status = resp.StatusCode
		return &e
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
