package corpus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/slurm/hostlist"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// wait bounds the whole run: the machine is two shared cores.
const wait = 3 * time.Minute

// pool is a set of nodes shaped like one centre's partition.
type pool struct {
	partition string
	names     string // a host list
	gpus      int
	model     string
	vendor    string
	cpus      int
	memMiB    int64
}

// pools are the factory's nodes: the partitions the corpus's scripts name,
// with their centres' node names and shapes.
var pools = []pool{
	{"standard-g", "nid[005001-005004]", 8, "MI250X", "amd", 56, 491520},   // LUMI-G
	{"small-g", "nid[007001-007002]", 8, "MI250X", "amd", 56, 491520},      // LUMI-G
	{"boost_usr_prod", "lrdn[0001-0016]", 4, "A100", "nvidia", 32, 524288}, // Leonardo Booster
	{"booster", "jwb[0001-0008]", 4, "A100", "nvidia", 48, 524288},         // JUWELS Booster
	{"develbooster", "jwb[0101-0102]", 4, "A100", "nvidia", 48, 524288},    // JUWELS Booster
	{"acc", "as01r1b[01-04]", 4, "H100", "nvidia", 80, 524288},             // MareNostrum 5 ACC
	{"gpu_p6", "jzxh[001-004]", 4, "H100", "nvidia", 96, 524288},           // Jean Zay
	{"gpu_h100", "gcn[1-4]", 4, "H100", "nvidia", 64, 737280},              // Snellius
	{"dgx", "dgx[01-02]", 8, "H100", "nvidia", 112, 2097152},               // a DGX pod
	{"genoa", "tcn[1-2]", 0, "", "", 192, 344064},                          // Snellius CPU
}

// projects are the accounts the scripts charge.
var projects = []string{"project_465001234", "project_465005678", "EUHPC_A01_042", "IscrC_LLMEU", "training2426",
	"bsc99", "xyz@h100", "snic-ai", "default"}

// qos are the sites' quality-of-service names the scripts ask for.
var qos = []string{"acc_bscls", "acc_debug", "boost_qos_bprod", "boost_qos_dbg", "qos_gpu_h100-t3", "qos_gpu_h100-dev"}

// factory is a server and its agents in this process.
type factory struct {
	url, userToken string
	admin          *api.Client
}

func startFactory(t *testing.T, bin string) *factory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "usine.db"))
	if err != nil {
		t.Fatal(err)
	}
	qs := server.DefaultQoS()
	for _, q := range qos {
		qs = append(qs, sched.QoS{Name: q})
	}
	srv := server.New(st, server.Config{NodeTimeout: time.Minute, AgentHeartbeat: time.Second, BackfillInterval: time.Second, QoS: qs, DefaultLimit: 3600})
	adminToken, err := srv.EnsureAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &factory{url: "http://" + l.Addr().String()}
	f.admin = &api.Client{BaseURL: f.url, Token: adminToken}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); _ = srv.Run(ctx) }()
	go func() { defer bg.Done(); _ = srv.Serve(ctx, l, "", "") }()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.PutMember(ctx, store.Member{User: "agents", Role: store.RoleOperator}))
	_, agentToken, err := srv.IssueToken(ctx, "agents", "corpus", 0)
	must(err)
	for _, p := range projects {
		if p != "default" {
			must(st.PutProject(ctx, model.Project{Name: p, Shares: 1}))
		}
		must(st.PutMember(ctx, store.Member{Project: p, User: "ada", Role: store.RoleMember}))
	}
	_, f.userToken, err = srv.IssueToken(ctx, "ada", "corpus", 0)
	must(err)

	al, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	base := "http://" + al.Addr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	var agents []*agent.Agent
	i := 0
	for _, p := range pools {
		names, err := hostlist.Expand(p.names)
		must(err)
		for _, name := range names {
			i++
			var devs []accel.Device
			for d := range p.gpus {
				devs = append(devs, accel.Device{Index: d, Vendor: p.vendor, Model: p.model, Source: accel.SourceEmulated})
			}
			a, err := agent.New(agent.Config{
				Server: f.url, Token: agentToken, Address: "127.0.0.1", AgentURL: base + "/nodes/" + name,
				Node: model.Node{Name: name, Partition: p.partition, CPUs: p.cpus, MemoryMiB: p.memMiB,
					Block: fmt.Sprintf("%s-b%d", p.partition, i/4), Group: p.partition},
				Devices: devs, StateDir: filepath.Join(dir, "agents", name), Grace: 500 * time.Millisecond,
				Heartbeat: time.Second, Supervisor: []string{bin, launch.SupervisorArg}, StopOnExit: true, HTTP: hc,
			})
			must(err)
			agents = append(agents, a)
		}
	}
	hs := &http.Server{Handler: agent.Mux(agents), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(al) }()
	for _, a := range agents {
		bg.Add(1)
		go func() { defer bg.Done(); _ = a.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		hs.Close()
		bg.Wait()
		_ = st.Close()
	})
	deadline := time.Now().Add(wait)
	for {
		nodes, err := f.admin.Nodes(ctx)
		up := 0
		for _, n := range nodes {
			if n.State == model.NodeUp && n.Heartbeat > 0 {
				up++
			}
		}
		if err == nil && up == len(agents) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes up after %s (err %v)", up, len(agents), wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expect is what NAME.expect says of a script.
type expect struct {
	state    model.JobState // every job of the script ends so ("" when it is cancelled)
	exit     int
	rejected *regexp.Regexp // sbatch refuses it with this message
	warns    []*regexp.Regexp
	outs     []*regexp.Regexp // lines of the job's output files
	noOuts   []*regexp.Regexp // lines that must not be there
	shims    int              // shim lines in all
	nodes    int              // nodes of each job
	tasks    int              // tasks of its largest srun step
	jobs     int              // jobs it makes (array tasks, jobs it submits itself)
	args     []string
	after    [2]string // a script and a dependency type
	mkdirs   []string
	hold     bool          // submitted held: released by scontrol release
	pending  regexp.Regexp // waits with this squeue reason, then scancel
	cancel   bool
	env      []string         // NAME=VALUE added to sbatch's environment
	saccts   []*regexp.Regexp // lines sacct -j prints for the jobs (steps arrive with their nodes' reports)
}

func readExpect(t *testing.T, path string) expect {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: every script needs a NAME.expect (see testdata/scripts/README.md)", err)
	}
	e := expect{jobs: 1}
	for n, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		num := func() int {
			v, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("%s:%d: %q: want a number", path, n+1, rest)
			}
			return v
		}
		switch word {
		case "state":
			e.state = model.JobState(strings.ToLower(rest))
		case "exit":
			e.exit = num()
		case "rejected":
			e.rejected = regexp.MustCompile("(?m)" + rest)
		case "warn":
			e.warns = append(e.warns, regexp.MustCompile("(?m)"+rest))
		case "out":
			e.outs = append(e.outs, regexp.MustCompile("(?m)"+rest))
		case "no-out":
			e.noOuts = append(e.noOuts, regexp.MustCompile("(?m)"+rest))
		case "shims":
			e.shims = num()
		case "nodes":
			e.nodes = num()
		case "tasks":
			e.tasks = num()
		case "jobs":
			e.jobs = num()
		case "args":
			e.args = strings.Fields(rest)
		case "after":
			f := strings.Fields(rest)
			e.after = [2]string{f[0], f[1]}
		case "mkdir":
			e.mkdirs = append(e.mkdirs, rest)
		case "hold":
			e.hold = true
		case "pending":
			e.pending, e.cancel = *regexp.MustCompile("(?m)" + rest), true
		case "env":
			e.env = append(e.env, rest)
		case "sacct":
			e.saccts = append(e.saccts, regexp.MustCompile("(?m)"+rest))
		default:
			t.Fatalf("%s:%d: unknown word %q", path, n+1, word)
		}
	}
	return e
}

// script is one corpus script on its way through the factory.
type script struct {
	name, path, dir string
	exp             expect
	ids             []string // its jobs, the array's tasks included
	sbatchOut       string
}

// shims print one line of what a task saw; the test reads them back.
const shim = `#!/bin/sh
echo "USINE-SHIM name=$(basename "$0") job=${SLURM_JOB_ID-} step=${SLURM_STEP_ID-} procid=${SLURM_PROCID-} localid=${SLURM_LOCALID-} nodeid=${SLURM_NODEID-} node=${SLURMD_NODENAME-} nnodes=${SLURM_NNODES-} ntasks=${SLURM_NTASKS-} nodelist=${SLURM_JOB_NODELIST-} gpus_on_node=${SLURM_GPUS_ON_NODE-} cuda=${CUDA_VISIBLE_DEVICES-unset} rocr=${ROCR_VISIBLE_DEVICES-unset} rank=${RANK-} world=${WORLD_SIZE-} array=${SLURM_ARRAY_TASK_ID-} args=$*"
case " $* " in *" --crash-rank=${SLURM_PROCID-x} "*) echo "rank $SLURM_PROCID crashing" >&2; exit 3;; esac
exit 0
`

// containerShim runs what follows the image (the first word ending in
// .sif), as singularity exec and apptainer exec do.
const containerShim = `#!/bin/sh
[ "$1" = exec ] || [ "$1" = run ] || { echo "$(basename "$0"): only exec and run here" >&2; exit 2; }
shift
while [ $# -gt 0 ]; do case "$1" in *.sif) shift; break;; *) shift;; esac; done
exec "$@"
`

const hostnameShim = `#!/bin/sh
case "$1" in -i|--ip-address|-I) echo 127.0.0.1;; *) echo "${SLURMD_NODENAME:-$(cat /proc/sys/kernel/hostname)}";; esac
`

var shimNames = []string{"python", "python3", "torchrun", "deepspeed", "accelerate", "gmx_mpi", "all_reduce_perf", "nvidia-smi", "rocm-smi"}

// TestScriptsRunOnAFactory submits every corpus script through sbatch,
// runs them all at once on the factory, and checks each against its
// NAME.expect and the environment its tasks printed.
func TestScriptsRunOnAFactory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds usine and runs a factory; not in -short")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "usine")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/usine-project/usine/cmd/usine").CombinedOutput(); err != nil {
		t.Fatalf("go build usine: %v\n%s", err, out)
	}
	links, shims := filepath.Join(root, "bin"), filepath.Join(root, "shims")
	if out, err := exec.Command(bin, "slurm", "install-links", "--module-stub", links).CombinedOutput(); err != nil {
		t.Fatalf("install-links: %v\n%s", err, out)
	}
	for _, n := range shimNames {
		writeExec(t, filepath.Join(shims, n), shim)
	}
	writeExec(t, filepath.Join(shims, "singularity"), containerShim)
	writeExec(t, filepath.Join(shims, "apptainer"), containerShim)
	writeExec(t, filepath.Join(shims, "hostname"), hostnameShim)
	// What the centres' environments define: $WORK, $PROJECT, $SCRATCH,
	// each with a Python virtual environment to activate.
	home := filepath.Join(root, "home")
	for _, d := range []string{"work/envs/sft/bin", "project/venvs/jax/bin", "scratch", "project/data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"work/envs/sft/bin/activate", "project/venvs/jax/bin/activate"} {
		if err := os.WriteFile(filepath.Join(home, a), []byte("export VIRTUAL_ENV=\"$(pwd)/venv\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Login shells (#!/bin/bash -l) reset PATH from /etc/profile; the
	// user's profile puts the Slurm commands back, as on a cluster.
	profile := "export PATH=\"" + shims + ":" + links + ":$PATH\"\n"
	if err := os.WriteFile(filepath.Join(home, ".bash_profile"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startFactory(t, bin)
	env := []string{"PATH=" + shims + ":" + links + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "USER=ada", "LANG=C.UTF-8",
		"USINE_SERVER=" + f.url, "USINE_TOKEN=" + f.userToken, "WORK=" + filepath.Join(home, "work"),
		"PROJECT=" + filepath.Join(home, "project"), "SCRATCH=" + filepath.Join(home, "scratch"), "TMPDIR=" + filepath.Join(home, "tmp"),
		"CORPUS_MARK=from-the-submitter"}

	paths, err := filepath.Glob(filepath.Join("..", "testdata", "scripts", "*.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 40 {
		t.Errorf("the corpus has %d scripts; issue 6 asks for at least 40", len(paths))
	}
	scripts := map[string]*script{}
	var order []*script
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".sbatch")
		abs, _ := filepath.Abs(p)
		s := &script{name: name, path: abs, dir: filepath.Join(root, "runs", name), exp: readExpect(t, strings.TrimSuffix(p, ".sbatch")+".expect")}
		if raw, err := os.ReadFile(strings.TrimSuffix(p, ".sbatch") + ".args"); err == nil {
			words := strings.Fields(string(raw))
			s.exp.args = append(s.exp.args, words[:len(words)-1-argsAfterScript(words)]...)
			s.exp.args = append(s.exp.args, "\x00script")
			s.exp.args = append(s.exp.args, words[len(words)-argsAfterScript(words):]...)
		}
		for _, d := range append([]string{"."}, s.exp.mkdirs...) {
			if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		scripts[name] = s
		order = append(order, s)
	}
	// Dependencies first: a script that runs after another is submitted
	// after it.
	slices.SortStableFunc(order, func(a, b *script) int {
		return boolInt(a.exp.after[0] != "") - boolInt(b.exp.after[0] != "")
	})
	start := time.Now()
	for _, s := range order {
		args := []string{"--parsable"}
		if dep := s.exp.after; dep[0] != "" {
			pre := scripts[dep[0]]
			if pre == nil || len(pre.ids) == 0 {
				t.Fatalf("%s: runs after %s, which was not submitted", s.name, dep[0])
			}
			args = append(args, "--dependency="+dep[1]+":"+pre.ids[0])
		}
		placed := false
		for _, a := range s.exp.args {
			if a == "\x00script" {
				args, placed = append(args, s.path), true
			} else {
				args = append(args, a)
			}
		}
		if !placed {
			args = append(args, s.path)
		}
		cmd := exec.Command(filepath.Join(links, "sbatch"), args...)
		cmd.Dir, cmd.Env = s.dir, append(slices.Clone(env), s.exp.env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		s.sbatchOut = stderr.String()
		for _, w := range s.exp.warns {
			if !w.MatchString(s.sbatchOut) {
				t.Errorf("%s: sbatch said %q; want a warning matching %q", s.name, s.sbatchOut, w)
			}
		}
		if s.exp.rejected != nil {
			if err == nil || !s.exp.rejected.MatchString(s.sbatchOut) {
				t.Errorf("%s: sbatch: %v, said %q; want it refused with %q", s.name, err, s.sbatchOut, s.exp.rejected)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: sbatch: %v\n%s", s.name, err, s.sbatchOut)
			continue
		}
		id := strings.TrimSpace(stdout.String())
		if _, err := strconv.Atoi(id); err != nil {
			t.Errorf("%s: sbatch --parsable printed %q, not a job id", s.name, stdout.String())
			continue
		}
		s.ids = []string{id}
	}
	ctx := context.Background()
	// Array tasks are jobs of their own.
	for _, s := range order {
		if len(s.ids) == 0 {
			continue
		}
		elems, err := f.admin.AllJobs(ctx, api.JobQuery{Array: s.ids[0]})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range elems {
			if e.ID != s.ids[0] {
				s.ids = append(s.ids, e.ID)
			}
		}
	}
	slurmCmd := func(s *script, name string, args ...string) string {
		cmd := exec.Command(filepath.Join(links, name), args...)
		cmd.Dir, cmd.Env = s.dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %s %s: %v\n%s", s.name, name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// Held and waiting scripts: squeue says why, then scontrol release or
	// scancel moves them on.
	for _, s := range order {
		if len(s.ids) == 0 || (!s.exp.hold && !s.exp.cancel) {
			continue
		}
		want := regexp.MustCompile(`\(JobHeldUser\)`)
		if s.exp.cancel {
			want = &s.exp.pending
		}
		var out string
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out = slurmCmd(s, "squeue", "-j", s.ids[0], "-h", "-o", "%i %T %R"); want.MatchString(out) {
				break
			}
		}
		if !want.MatchString(out) {
			t.Errorf("%s: squeue said %q; want %q", s.name, out, want)
		}
		if s.exp.hold {
			slurmCmd(s, "scontrol", "release", s.ids[0])
		} else {
			slurmCmd(s, "scancel", s.ids[0])
		}
	}
	// Wait for every job of the user to end: scripts submit jobs too.
	var all []store.Job
	for deadline := time.Now().Add(wait); ; time.Sleep(200 * time.Millisecond) {
		if all, err = f.admin.AllJobs(ctx, api.JobQuery{User: "ada"}); err != nil {
			t.Fatal(err)
		}
		// A job whose dependency failed waits for ever: the checks say so.
		left := slices.DeleteFunc(slices.Clone(all), func(j store.Job) bool {
			return j.State.Final() || j.Reason == string(sched.ReasonDependencyNeverSatisfied)
		})
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, j := range left {
				t.Errorf("job %s (%s) still %s (%s) after %s", j.ID, j.Name, j.State, j.Reason, wait)
			}
			break
		}
	}
	t.Logf("%d scripts, %d jobs, all ended %s after the first sbatch", len(order), len(all), time.Since(start).Round(100*time.Millisecond))
	byID := map[string]store.Job{}
	for _, j := range all {
		byID[j.ID] = j
	}
	for _, s := range order {
		t.Run(s.name, func(t *testing.T) { check(t, s, byID, all, slurmCmd) })
	}
	t.Run("srun outside a job", func(t *testing.T) { checkSrunOutsideAJob(t, filepath.Join(root, "runs", "srun"), links, env) })
}

// checkSrunOutsideAJob runs srun from a login shell, as Slurm users do
// without a batch script: it gets an allocation of its own, prints the
// tasks' output, ends as they did, and cancelled while it waits it says so.
func checkSrunOutsideAJob(t *testing.T, dir, links string, env []string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// srun's standard error goes to a file, which the test reads while
	// srun runs.
	calls := 0
	start := func(args ...string) (cmd *exec.Cmd, stdout *bytes.Buffer, stderr func() string) {
		calls++
		path := filepath.Join(dir, fmt.Sprintf("srun-%d.err", calls))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // srun has its own copy
		cmd, stdout = exec.Command(filepath.Join(links, "srun"), args...), &bytes.Buffer{}
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, stdout, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, stdout, func() string { b, _ := os.ReadFile(path); return string(b) }
	}
	run := func(args ...string) (string, string, int) {
		cmd, stdout, stderr := start(args...)
		_ = cmd.Wait()
		return stdout.String(), stderr(), cmd.ProcessState.ExitCode()
	}

	// A two-node step, labelled: one task a node, each seeing its own
	// node's share of the job.
	out, errOut, code := run("-A", "snic-ai", "-p", "gpu_h100", "-N", "2", "--gpus-per-node", "2", "-t", "5", "-l", "python", "train.py", "--lr", "3e-4")
	if code != 0 {
		t.Errorf("srun -N 2 python: exit %d\n%s%s", code, out, errOut)
	}
	ranks := regexp.MustCompile(`(?m)^([01]): USINE-SHIM name=python job=\d+ step=0 procid=([01]) .*node=(gcn\d) nnodes=2 ntasks=2 .*gpus_on_node=2 cuda=0,1 .*args=train.py --lr 3e-4$`).FindAllStringSubmatch(out, -1)
	if len(ranks) != 2 || ranks[0][1] != ranks[0][2] || ranks[1][1] != ranks[1][2] || ranks[0][3] == ranks[1][3] {
		t.Errorf("srun -N 2 -l python printed:\n%s\nwant one labelled line from each task, on two nodes", out)
	}
	// Words the shell must not split or expand on the way; a failing task's
	// status is srun's.
	out, errOut, code = run("-A", "snic-ai", "-p", "genoa", "-t", "5", "sh", "-c", `echo "it's $SLURM_NTASKS task, 'quoted' * ok"; exit 3`)
	if code != 3 || !strings.Contains(out, "it's 1 task, 'quoted' * ok\n") || !strings.Contains(out, "task 0: Exited with exit code 3") {
		t.Errorf("srun sh -c ...; exit 3: exit %d; want 3 with the task's line and srun's error\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// -w is Slurm's, not usine's.
	if _, errOut, code = run("-A", "snic-ai", "-w", "gcn1", "true"); code != 1 || !strings.Contains(errOut, "srun: error: -w/--nodelist") {
		t.Errorf("srun -w: exit %d, %q; want refused", code, errOut)
	}
	// A step no node can hold waits; srun says so, and ends when its job
	// is cancelled.
	cmd, _, stderr := start("-A", "snic-ai", "-p", "genoa", "-c", "1000", "-J", "too-wide", "true")
	queued := regexp.MustCompile(`srun: job (\d+) queued and waiting for resources`)
	var m []string
	for deadline := time.Now().Add(wait); m == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m = queued.FindStringSubmatch(stderr())
	}
	if m == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("srun -c 1000 said %q; want that its job waits", stderr())
	}
	scancel := exec.Command(filepath.Join(links, "scancel"), m[1])
	scancel.Env = env
	if b, err := scancel.CombinedOutput(); err != nil {
		t.Errorf("scancel %s: %v %s", m[1], err, b)
	}
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr(), "srun: error: job "+m[1]+" ended CANCELLED") {
		t.Errorf("srun whose job was cancelled: exit %d, said %q", code, stderr())
	}
}

// check compares what a script's jobs did with its NAME.expect.
func check(t *testing.T, s *script, byID map[string]store.Job, all []store.Job, slurmCmd func(*script, string, ...string) string) {
	if s.exp.rejected != nil || len(s.ids) == 0 {
		return
	}
	jobs := []store.Job{}
	for _, id := range s.ids {
		jobs = append(jobs, byID[id])
	}
	// Jobs the script submitted itself are those submitted from its
	// directory (their working directory).
	for _, j := range all {
		if !slices.Contains(s.ids, j.ID) && strings.HasPrefix(j.Task.WorkDir, s.dir) {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) != s.exp.jobs {
		t.Errorf("%d jobs; want %d", len(jobs), s.exp.jobs)
	}
	for _, j := range jobs {
		want := s.exp.state
		if s.exp.cancel {
			want = model.JobCancelled
		}
		if j.State != want || (want != model.JobCancelled && j.ExitCode != s.exp.exit) {
			t.Errorf("job %s (%s) ended %s, exit %d (%s); want %s, exit %d", j.ID, j.Name, j.State, j.ExitCode, j.Reason, want, s.exp.exit)
		}
		if s.exp.nodes > 0 && len(j.Alloc) != s.exp.nodes && !s.exp.cancel {
			t.Errorf("job %s ran on %d nodes; want %d", j.ID, len(j.Alloc), s.exp.nodes)
		}
	}
	text := outputs(t, s.dir)
	for _, re := range s.exp.outs {
		if !re.MatchString(text) {
			t.Errorf("no output line matches %q; the job's files hold:\n%s", re, text)
		}
	}
	for _, re := range s.exp.noOuts {
		if re.MatchString(text) {
			t.Errorf("an output line matches %q; the job's files hold:\n%s", re, text)
		}
	}
	lines := shimLines(text)
	if len(lines) != s.exp.shims {
		t.Errorf("%d shim lines; want %d:\n%s", len(lines), s.exp.shims, text)
	}
	checkShims(t, lines, jobs, s.exp.tasks)
	for _, re := range s.exp.saccts {
		var got string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			got = slurmCmd(s, "sacct", "-j", strings.Join(s.ids, ","), "-o", "JobID,JobName,State,ExitCode,NodeList")
			if re.MatchString(got) || time.Now().After(deadline) {
				break
			}
		}
		if !re.MatchString(got) {
			t.Errorf("no sacct line matches %q:\n%s", re, got)
		}
	}
	if t.Failed() {
		t.Logf("sbatch said:\n%s\nsacct says:\n%s", s.sbatchOut, slurmCmd(s, "sacct", "-j", strings.Join(s.ids, ","), "-o", "JobID,JobName,State,ExitCode,NodeList,Reason"))
	}
}

// shimLine is what one task printed: key=value pairs.
type shimLine map[string]string

func shimLines(text string) []shimLine {
	var out []shimLine
	for line := range strings.SplitSeq(text, "\n") {
		i := strings.Index(line, "USINE-SHIM ")
		if i < 0 {
			continue
		}
		rest := line[i+len("USINE-SHIM "):]
		l := shimLine{}
		if head, args, ok := strings.Cut(rest, " args="); ok {
			rest, l["args"] = head, args
		}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = v
		}
		out = append(out, l)
	}
	return out
}

// checkShims checks what every task saw against what the job was given:
// its id, a node of its allocation (the first one outside srun), every
// rank of each step once, node ranks that name one node each, and the
// accelerators of its node.
func checkShims(t *testing.T, lines []shimLine, jobs []store.Job, wantTasks int) {
	t.Helper()
	byJob := map[string]store.Job{}
	for _, j := range jobs {
		byJob[j.ID] = j
	}
	type stepKey struct{ job, step string }
	steps := map[stepKey][]shimLine{}
	for _, l := range lines {
		j, ok := byJob[l["job"]]
		if !ok {
			t.Errorf("a task saw SLURM_JOB_ID=%q, not one of the script's jobs: %v", l["job"], l)
			continue
		}
		var nodes []string
		for _, a := range j.Alloc {
			nodes = append(nodes, a.Node)
		}
		if got := l["nodelist"]; got != hostlist.Compress(nodes) {
			t.Errorf("job %s: SLURM_JOB_NODELIST=%s; want %s", j.ID, got, hostlist.Compress(nodes))
		}
		if l["nnodes"] == "" || !slices.Contains(nodes, l["node"]) {
			t.Errorf("job %s: a task ran on %q, not one of its nodes %v (SLURM_NNODES=%s)", j.ID, l["node"], nodes, l["nnodes"])
		}
		if l["step"] == "" && len(nodes) > 0 && l["node"] != nodes[0] {
			t.Errorf("job %s: the batch script ran on %s; want the first node %s", j.ID, l["node"], nodes[0])
		}
		if j.ArrayID != "" && l["array"] != strconv.Itoa(j.ArrayIndex) {
			t.Errorf("job %s: SLURM_ARRAY_TASK_ID=%q; want %d", j.ID, l["array"], j.ArrayIndex)
		}
		if g, _ := strconv.Atoi(l["gpus_on_node"]); g > 0 && l["cuda"] == "unset" && l["rocr"] == "unset" {
			t.Errorf("job %s: task %s has %d accelerators but no visibility variable", j.ID, l["procid"], g)
		}
		if l["step"] != "" {
			steps[stepKey{l["job"], l["step"] + "/" + l["name"]}] = append(steps[stepKey{l["job"], l["step"] + "/" + l["name"]}], l)
		}
	}
	most := 0
	for k, ls := range steps {
		n, _ := strconv.Atoi(ls[0]["ntasks"])
		most = max(most, n)
		seen := map[int]bool{}
		nodeOf := map[string]string{}
		for _, l := range ls {
			p, err := strconv.Atoi(l["procid"])
			if err != nil || p < 0 || p >= n || seen[p] {
				t.Errorf("job %s step %s: SLURM_PROCID=%q of %d tasks, or twice", k.job, k.step, l["procid"], n)
			}
			seen[p] = true
			if prev, ok := nodeOf[l["nodeid"]]; ok && prev != l["node"] {
				t.Errorf("job %s step %s: SLURM_NODEID=%s on two nodes, %s and %s", k.job, k.step, l["nodeid"], prev, l["node"])
			}
			nodeOf[l["nodeid"]] = l["node"]
			if l["rank"] != l["procid"] || l["world"] != l["ntasks"] {
				t.Errorf("job %s step %s: RANK=%s WORLD_SIZE=%s; want SLURM_PROCID=%s and SLURM_NTASKS=%s", k.job, k.step, l["rank"], l["world"], l["procid"], l["ntasks"])
			}
		}
		if len(seen) != n {
			t.Errorf("job %s step %s: %d of %d tasks printed", k.job, k.step, len(seen), n)
		}
	}
	if wantTasks > 0 && most != wantTasks {
		t.Errorf("the largest srun step has %d tasks; want %d", most, wantTasks)
	}
}

// outputs is every file the script's jobs wrote in its directory.
func outputs(t *testing.T, dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fh, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer fh.Close()
		rel, _ := filepath.Rel(dir, p)
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(&b, "%s: %s\n", rel, sc.Text())
		}
		return nil
	})
	return b.String()
}

// argsAfterScript is how many words of a NAME.args come after the
// script's name (the script's own arguments).
func argsAfterScript(words []string) int {
	for i, w := range words {
		if strings.HasSuffix(w, ".sbatch") {
			return len(words) - 1 - i
		}
	}
	return 0
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
