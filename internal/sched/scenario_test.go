package sched_test

// Golden scenario scripts, in the manner of etcd raft's testdata: each file
// in testdata/*.txt is a list of blocks, a block being one or more command
// lines, a "----" line, and the expected output up to a blank line. Lines
// starting with '#' between blocks are comments. Run
//
//	go test ./internal/sched -run TestScenarios -update
//
// to rewrite the expected outputs in place, then read every changed block
// and check it says what the scenario's comment promises.
//
// Commands (key=value arguments; bare words are flags):
//
//	cluster groups=G blocks=B nodes=N acc=A [cpus=C mem=M]
//	                          a fresh world: partition p, nodes n0000…
//	partition NAME prefix=P model=M groups=G blocks=B nodes=N acc=A
//	                          one more partition, nodes P0000…
//	node NAME block=B group=G acc=A [part=p cpus=C mem=M]
//	                          one more node (explicit shapes)
//	drain|down|up NODE…       node states
//	close|open PARTITION      partition down flag
//	submit ID [nodes= per= acc= cpus= mem= limit= at= qos= project= prio=
//	          part= model= begin= after= afterany= afterok= afternotok=
//	          preemptible oneblock exclusive hold]
//	run ID since=T on=NODE[:ACC],… [the job fields of submit]
//	finish ID [state=completed|failed|cancelled|timeout]
//	advance to=T              running jobs end at their limit up to T
//	project NAME shares=S [parent=P usage=U]
//	qos NAME prio=N [maypreempt preemptible maxacc=N maxlimit=S]
//	grant PROJECT remaining=S [model=M]   (enforces grants from now on)
//	plan [now=T] [policy=fifo|easy|usine] [order=fifo|multifactor]
//	     [backfill=none|easy|conservative] [k=N] [weights=age,fs,qos,size]
//	     [maxage=S] [favorsmall=on|off] [preempt=on|off] [estimates=on|off]
//	apply                     carry out the last plan: starts, preemptions
//	queue                     print running and pending jobs

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of testdata/*.txt")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScript(t, f)
		})
	}
}

// block is one step of a script.
type block struct {
	pre  []string // comment and blank lines before it
	cmds []string
	line int // of the first command
	want []string
}

type script struct {
	blocks  []block
	trailer []string
}

func parseScript(path string, text string) (*script, error) {
	lines := strings.Split(text, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	s := &script{}
	var pre []string
	for k := 0; k < len(lines); {
		l := lines[k]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			k++
			continue
		}
		b := block{pre: pre, line: k + 1}
		pre = nil
		for ; k < len(lines) && lines[k] != "----"; k++ {
			if strings.TrimSpace(lines[k]) == "" {
				return nil, fmt.Errorf("%s:%d: blank line inside commands; end them with ----", path, k+1)
			}
			b.cmds = append(b.cmds, lines[k])
		}
		if k == len(lines) {
			return nil, fmt.Errorf("%s:%d: commands without a ---- line", path, b.line)
		}
		k++ // ----
		for ; k < len(lines) && lines[k] != ""; k++ {
			b.want = append(b.want, lines[k])
		}
		k++ // the blank line that ends the output
		s.blocks = append(s.blocks, b)
	}
	s.trailer = pre
	return s, nil
}

func (s *script) String() string {
	var b strings.Builder
	for k, bl := range s.blocks {
		for _, l := range bl.pre {
			b.WriteString(l + "\n")
		}
		for _, l := range bl.cmds {
			b.WriteString(l + "\n")
		}
		b.WriteString("----\n")
		for _, l := range bl.want {
			b.WriteString(l + "\n")
		}
		if k < len(s.blocks)-1 || len(s.trailer) > 0 {
			b.WriteString("\n")
		}
	}
	for _, l := range s.trailer {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseScript(path, string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.blocks) == 0 || !strings.HasPrefix(strings.TrimSpace(strings.Join(s.blocks[0].pre, "\n")), "#") {
		t.Fatalf("%s must start with a comment saying what must happen", path)
	}
	w := newWorld()
	changed := false
	for k := range s.blocks {
		b := &s.blocks[k]
		var out []string
		for n, c := range b.cmds {
			if strings.HasPrefix(c, "#") {
				continue
			}
			lines, err := w.do(t, c)
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", path, b.line+n, c, err)
			}
			out = append(out, lines...)
		}
		if len(out) == 0 {
			out = []string{"ok"}
		}
		if slices.Equal(out, b.want) {
			continue
		}
		if *update {
			b.want = out
			changed = true
			continue
		}
		t.Errorf("%s:%d: %s\nwant:\n%s\ngot:\n%s", path, b.line, strings.Join(b.cmds, "\n"),
			strings.Join(b.want, "\n"), strings.Join(out, "\n"))
	}
	if changed {
		if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
	}
}

// world is the state a script builds up and plans on.
type world struct {
	cl       *model.Cluster
	topo     *sched.Topology // nil after the cluster's shape changed
	running  map[string]sched.Running
	pending  map[string]model.Job
	finished map[string]model.JobState
	projects []model.Project
	usage    map[string]float64
	qos      []sched.QoS
	grants   []sched.Balance
	now      int64

	last    *sched.Decisions
	lastNow int64
}

func newWorld() *world {
	return &world{
		running:  map[string]sched.Running{},
		pending:  map[string]model.Job{},
		finished: map[string]model.JobState{},
		usage:    map[string]float64{},
	}
}

func (w *world) topology() (*sched.Topology, error) {
	if w.cl == nil {
		return nil, fmt.Errorf("no cluster yet")
	}
	if w.topo == nil {
		t, err := sched.Compile(w.cl)
		if err != nil {
			return nil, err
		}
		w.topo = t
	}
	return w.topo, nil
}

// args are the key=value pairs and flags of one command; every one must be
// consumed, so that a typo fails the script instead of being ignored.
type args struct {
	pos  []string
	kv   map[string]string
	used map[string]bool
	err  error
}

func parseArgs(fields []string) *args {
	a := &args{kv: map[string]string{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else if len(a.kv) == 0 && !isFlag(f) {
			a.pos = append(a.pos, f)
		} else {
			a.kv[f] = ""
		}
	}
	return a
}

var flagWords = []string{"preemptible", "oneblock", "exclusive", "hold", "maypreempt", "favorsmall"}

func isFlag(f string) bool { return slices.Contains(flagWords, f) }

func (a *args) has(k string) bool { a.used[k] = true; _, ok := a.kv[k]; return ok }

func (a *args) str(k, def string) string {
	a.used[k] = true
	if v, ok := a.kv[k]; ok {
		return v
	}
	return def
}

func (a *args) int(k string, def int64) int64 {
	a.used[k] = true
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("%s=%s: %v", k, v, err)
	}
	return n
}

func (a *args) flag(k string) bool { return a.has(k) }

func (a *args) done() error {
	if a.err != nil {
		return a.err
	}
	for k := range a.kv {
		if !a.used[k] {
			return fmt.Errorf("unknown argument %q", k)
		}
	}
	return nil
}

func (w *world) do(t *testing.T, line string) ([]string, error) {
	fields := strings.Fields(line)
	a := parseArgs(fields[1:])
	var out []string
	var err error
	switch fields[0] {
	case "cluster":
		if w.cl == nil && (len(w.projects) > 0 || len(w.qos) > 0 || w.grants != nil || len(w.usage) > 0) {
			return nil, fmt.Errorf("cluster must come first: it starts a new world, dropping what was declared before")
		}
		*w = *newWorld() // a new cluster starts a new story
		w.cl = &model.Cluster{Name: "t", Sites: []model.Site{{Name: "s"}}, Accelerators: map[string]model.Accelerator{}}
		w.addPart(a, "p", "n", "H100")
	case "partition":
		if len(a.pos) != 1 || w.cl == nil {
			return nil, fmt.Errorf("usage: partition NAME prefix=P model=M …, after cluster")
		}
		w.addPart(a, a.pos[0], a.str("prefix", a.pos[0]), a.str("model", "MI300X"))
	case "node":
		if len(a.pos) != 1 || w.cl == nil {
			return nil, fmt.Errorf("usage: node NAME block=B group=G acc=A, after cluster")
		}
		part := a.str("part", "p")
		k := slices.IndexFunc(w.cl.Partitions, func(p model.Partition) bool { return p.Name == part })
		if k < 0 {
			return nil, fmt.Errorf("no partition %s", part)
		}
		w.cl.Nodes = append(w.cl.Nodes, model.Node{Name: a.pos[0], Site: "s", Partition: part,
			Group: a.str("group", "g0"), Block: a.str("block", "b0-0"), Accelerators: int(a.int("acc", 8)),
			Model: w.cl.Partitions[k].Model, CPUs: int(a.int("cpus", 0)), MemoryMiB: a.int("mem", 0), State: model.NodeUp})
		w.topo = nil
	case "drain", "down", "up":
		if w.cl == nil {
			return nil, fmt.Errorf("no cluster yet")
		}
		for _, name := range a.pos {
			k := slices.IndexFunc(w.cl.Nodes, func(n model.Node) bool { return n.Name == name })
			if k < 0 {
				return nil, fmt.Errorf("no node %s", name)
			}
			w.cl.Nodes[k].State = model.NodeState(fields[0])
		}
	case "close", "open":
		for _, name := range a.pos {
			k := slices.IndexFunc(w.cl.Partitions, func(p model.Partition) bool { return p.Name == name })
			if k < 0 {
				return nil, fmt.Errorf("no partition %s", name)
			}
			w.cl.Partitions[k].Down = fields[0] == "close"
		}
	case "submit":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: submit ID …")
		}
		j := jobFrom(a.pos[0], a)
		if err := j.Validate(); err != nil {
			return nil, err
		}
		if w.known(j.ID) {
			return nil, fmt.Errorf("job %s exists", j.ID)
		}
		w.pending[j.ID] = j
	case "run":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: run ID since=T on=NODE[:ACC],…")
		}
		j := jobFrom(a.pos[0], a)
		if err := j.Validate(); err != nil {
			return nil, err
		}
		if w.known(j.ID) {
			return nil, fmt.Errorf("job %s exists", j.ID)
		}
		topo, err := w.topology()
		if err != nil {
			return nil, err
		}
		r := sched.Running{Job: j, Start: a.int("since", 0)}
		for _, s := range strings.Split(a.str("on", ""), ",") {
			sl, err := parseSlot(topo, s, j)
			if err != nil {
				return nil, err
			}
			r.Alloc = append(r.Alloc, sl)
		}
		w.running[j.ID] = r
	case "finish":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: finish ID [state=S]")
		}
		id := a.pos[0]
		st := model.JobState(a.str("state", string(model.JobCompleted)))
		if !st.Final() {
			return nil, fmt.Errorf("state %s is not final", st)
		}
		_, r := w.running[id]
		_, p := w.pending[id]
		if !r && !p {
			return nil, fmt.Errorf("no running or pending job %s", id)
		}
		delete(w.running, id)
		delete(w.pending, id)
		w.finished[id] = st
	case "advance":
		to := a.int("to", -1)
		if to < w.now {
			return nil, fmt.Errorf("advance to=%d: time goes forward from %d", to, w.now)
		}
		var ends []sched.Running
		for _, r := range w.running {
			if r.End() <= to {
				ends = append(ends, r)
			}
		}
		slices.SortFunc(ends, func(x, y sched.Running) int {
			return cmp.Or(cmp.Compare(x.End(), y.End()), cmp.Compare(x.Job.ID, y.Job.ID))
		})
		for _, r := range ends {
			delete(w.running, r.Job.ID)
			w.finished[r.Job.ID] = model.JobTimeout
			out = append(out, fmt.Sprintf("end %s at %d", r.Job.ID, r.End()))
		}
		w.now = to
	case "project":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: project NAME shares=S [parent=P usage=U]")
		}
		w.projects = append(w.projects, model.Project{Name: a.pos[0], Parent: a.str("parent", ""), Shares: a.int("shares", 1)})
		if a.has("usage") {
			w.usage[a.pos[0]] = float64(a.int("usage", 0))
		}
		if err := model.ValidateProjects(w.projects); err != nil {
			return nil, err
		}
	case "qos":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: qos NAME prio=N …")
		}
		w.qos = append(w.qos, sched.QoS{Name: a.pos[0], Priority: int(a.int("prio", 0)),
			MayPreempt: a.flag("maypreempt"), Preemptible: a.flag("preemptible"),
			MaxAcceleratorsPerProject: int(a.int("maxacc", 0)), MaxLimit: a.int("maxlimit", 0)})
	case "grant":
		if len(a.pos) != 1 {
			return nil, fmt.Errorf("usage: grant PROJECT remaining=S [model=M]")
		}
		if w.grants == nil {
			w.grants = []sched.Balance{}
		}
		w.grants = append(w.grants, sched.Balance{Project: a.pos[0], Model: a.str("model", ""), Remaining: a.int("remaining", 0)})
	case "plan":
		out, err = w.plan(t, a)
	case "apply":
		if w.last == nil {
			return nil, fmt.Errorf("apply before any plan")
		}
		for _, p := range w.last.Preempts {
			r, ok := w.running[p.JobID]
			if !ok {
				return nil, fmt.Errorf("plan preempts %s, which does not run", p.JobID)
			}
			delete(w.running, p.JobID)
			w.pending[p.JobID] = r.Job
		}
		for _, s := range w.last.Starts {
			j, ok := w.pending[s.JobID]
			if !ok {
				return nil, fmt.Errorf("plan starts %s, which is not pending", s.JobID)
			}
			delete(w.pending, s.JobID)
			w.running[s.JobID] = sched.Running{Job: j, Start: w.lastNow, Alloc: slices.Clone(s.Alloc)}
		}
		w.last = nil
	case "queue":
		out, err = w.queue()
	default:
		return nil, fmt.Errorf("unknown command %q", fields[0])
	}
	if err != nil {
		return nil, err
	}
	if err := a.done(); err != nil {
		return nil, err
	}
	return out, nil
}

func (w *world) known(id string) bool {
	_, r := w.running[id]
	_, p := w.pending[id]
	_, f := w.finished[id]
	return r || p || f
}

func (w *world) addPart(a *args, name, prefix, mdl string) {
	first := len(w.cl.Nodes)
	addPartition(w.cl, name, prefix, mdl, int(a.int("groups", 1)), int(a.int("blocks", 1)), int(a.int("nodes", 1)), int(a.int("acc", 8)))
	cpus, mem := int(a.int("cpus", 0)), a.int("mem", 0)
	for k := first; k < len(w.cl.Nodes); k++ {
		w.cl.Nodes[k].CPUs, w.cl.Nodes[k].MemoryMiB = cpus, mem
	}
	w.topo = nil
}

// jobFrom reads the job fields of submit and run.
func jobFrom(id string, a *args) model.Job {
	j := model.Job{
		ID: id, Project: a.str("project", "a"), User: "u",
		Nodes: int(a.int("nodes", 0)), CPUs: int(a.int("cpus", 0)), MemoryMiB: a.int("mem", 0),
		Limit: a.int("limit", 3600), Submit: a.int("at", 0), QoS: a.str("qos", ""), Priority: a.int("prio", 0),
		Partition: a.str("part", ""), Model: a.str("model", ""), Begin: a.int("begin", 0),
		Preemptible: a.flag("preemptible"), OneBlock: a.flag("oneblock"), Exclusive: a.flag("exclusive"), Held: a.flag("hold"),
	}
	if j.Nodes > 0 {
		j.AcceleratorsPerNode = int(a.int("per", 8))
	} else {
		j.Accelerators = int(a.int("acc", 1))
	}
	for _, t := range []model.DepType{model.AfterStart, model.AfterAny, model.AfterOK, model.AfterNotOK} {
		if v := a.str(string(t), ""); v != "" {
			for _, d := range strings.Split(v, ",") {
				j.Deps = append(j.Deps, model.Dependency{Type: t, JobID: d})
			}
		}
	}
	return j
}

func (w *world) snapshot() (*sched.Snapshot, error) {
	topo, err := w.topology()
	if err != nil {
		return nil, err
	}
	s := &sched.Snapshot{
		Topology:   topo,
		Nodes:      slices.Clone(w.cl.Nodes),
		Partitions: slices.Clone(w.cl.Partitions),
		Finished:   maps.Clone(w.finished),
		Projects:   slices.Clone(w.projects),
		Usage:      maps.Clone(w.usage),
		QoS:        slices.Clone(w.qos),
		Grants:     slices.Clone(w.grants),
	}
	for _, id := range slices.Sorted(maps.Keys(w.running)) {
		s.Running = append(s.Running, w.running[id])
	}
	for _, id := range slices.Sorted(maps.Keys(w.pending)) {
		s.Pending = append(s.Pending, w.pending[id])
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s, nil
}

func (w *world) plan(t *testing.T, a *args) ([]string, error) {
	w.now = a.int("now", w.now)
	cfg, err := sched.PolicyByName(a.str("policy", "easy"))
	if err != nil {
		return nil, err
	}
	if a.has("order") {
		cfg.Order = sched.Order(a.str("order", ""))
	}
	if a.has("backfill") {
		cfg.Backfill = sched.BackfillMode(a.str("backfill", ""))
	}
	cfg.Reservations = int(a.int("k", int64(cfg.Reservations)))
	if a.has("weights") {
		var ws [4]int64
		parts := strings.Split(a.str("weights", ""), ",")
		if len(parts) != 4 {
			return nil, fmt.Errorf("weights=age,fs,qos,size")
		}
		for k, p := range parts {
			if ws[k], err = strconv.ParseInt(p, 10, 64); err != nil {
				return nil, err
			}
		}
		cfg.Weights = sched.Weights{Age: ws[0], FairShare: ws[1], QoS: ws[2], Size: ws[3]}
	}
	cfg.MaxAge = a.int("maxage", cfg.MaxAge)
	onOff := func(k string, v *bool) {
		switch a.str(k, "") {
		case "on":
			*v = true
		case "off":
			*v = false
		case "":
		default:
			err = fmt.Errorf("%s=on or off", k)
		}
	}
	onOff("favorsmall", &cfg.FavorSmall)
	onOff("preempt", &cfg.Preemption)
	onOff("estimates", &cfg.Estimates)
	if err != nil {
		return nil, err
	}
	if err := a.done(); err != nil {
		return nil, err
	}
	s, err := w.snapshot()
	if err != nil {
		return nil, err
	}
	s.Config = cfg
	d := sched.Plan(s, w.now)
	checkDecisions(t, s, w.now, d)
	w.last, w.lastNow = d, w.now
	return formatDecisions(s, d), nil
}

func (w *world) queue() ([]string, error) {
	topo, err := w.topology()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(w.running)) {
		r := w.running[id]
		out = append(out, fmt.Sprintf("running %s since=%d end=%d on %s", id, r.Start, r.End(), slots(topo, r.Alloc)))
	}
	for _, id := range slices.Sorted(maps.Keys(w.pending)) {
		out = append(out, "pending "+id)
	}
	if len(out) == 0 {
		out = []string{"empty"}
	}
	return out, nil
}

func slots(t *sched.Topology, ss []sched.Slot) string {
	nodes := t.Nodes()
	var b strings.Builder
	for k, s := range ss {
		if k > 0 {
			b.WriteByte(' ')
		}
		if s.Node < 0 || int(s.Node) >= len(nodes) {
			fmt.Fprintf(&b, "?%d:%d", s.Node, s.Accelerators)
			continue
		}
		fmt.Fprintf(&b, "%s:%d", nodes[s.Node].Name, s.Accelerators)
		if s.CPUs != 0 || s.MemoryMiB != 0 {
			fmt.Fprintf(&b, "/%dcpu/%dM", s.CPUs, s.MemoryMiB)
		}
	}
	return b.String()
}

// formatDecisions prints d, one line per start, preemption and wait, and
// the stats.
func formatDecisions(s *sched.Snapshot, d *sched.Decisions) []string {
	var out []string
	for _, st := range d.Starts {
		l := fmt.Sprintf("start %s on %s", st.JobID, slots(s.Topology, st.Alloc))
		if st.Backfilled {
			l += " backfilled"
		}
		if len(st.Preempts) > 0 {
			l += " preempts " + strings.Join(st.Preempts, ",")
		}
		out = append(out, l)
	}
	for _, p := range d.Preempts {
		out = append(out, fmt.Sprintf("preempt %s for %s", p.JobID, p.For))
	}
	for _, wt := range d.Waiting {
		l := fmt.Sprintf("wait %s %s", wt.JobID, wt.Reason)
		if wt.Priority != 0 || s.Config.Order == sched.OrderMultifactor {
			l += fmt.Sprintf(" prio=%d", wt.Priority)
		}
		if wt.EstStart >= 0 {
			l += fmt.Sprintf(" est=%d", wt.EstStart)
		} else {
			l += " est=-"
		}
		if wt.Reserved {
			l += " reserved on " + slots(s.Topology, wt.Reservation)
		}
		out = append(out, l)
	}
	st := d.Stats
	out = append(out, fmt.Sprintf("stats examined=%d started=%d backfilled=%d preempted=%d reserved=%d",
		st.Examined, st.Started, st.Backfilled, st.Preempted, st.Reserved))
	return out
}
