package launch

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
)

// DefaultGrace is how long a job has between SIGTERM and SIGKILL when
// its Spec says nothing.
const DefaultGrace = 30 * time.Second

// BasePath is the PATH of a job's clean environment.
const BasePath = "/usr/local/bin:/usr/bin:/bin"

// Vendor is whose accelerators a job is given; it picks the visibility
// variables the job sees.
type Vendor string

// Vendors.
const (
	VendorNvidia Vendor = "nvidia" // CUDA_VISIBLE_DEVICES
	VendorAMD    Vendor = "amd"    // ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES
	VendorOther  Vendor = "other"  // USINE_ACCELERATOR_INDEXES only
)

// Spec is one job's share of this node: what to run, with which
// accelerators and limits, as which rank of its gang.
type Spec struct {
	JobID    string
	Epoch    int64 // the fencing epoch of this run of the job
	NodeRank int   // this node's rank in the gang, from 0
	NumNodes int   // nodes in the gang; 0 counts as 1
	Task     model.Task

	// Devices are the indexes of the accelerators given on this node, as
	// the vendor numbers them; Vendor is theirs (emulated devices too, so
	// that scripts can check the variables).
	Devices []int
	Vendor  Vendor

	// CPUs and MemoryMiB bound the job through cgroup v2 where the host
	// allows it; 0 = no bound.
	CPUs      int
	MemoryMiB int64
	// Limit is the time limit from the job's start on this node (0 = none);
	// Grace the time between SIGTERM and SIGKILL (0 = DefaultGrace).
	Limit time.Duration
	Grace time.Duration

	Rendezvous Rendezvous
	// Extra are variables the caller adds, such as Slurm's SLURM_* for
	// unmodified batch scripts. usine's own variables win over them and
	// the task's own environment wins over everything.
	Extra map[string]string
}

// Rendezvous is what the ranks of a gang need to find each other,
// exported as the variables torch.distributed (env://), torchrun and
// jax.distributed.initialize read. One process per node: the script;
// the node rank is its RANK.
type Rendezvous struct {
	MasterAddr     string   // rank 0's address; "" = 127.0.0.1
	MasterPort     int      // 0 = derived from the job and epoch, in 20000–39999
	WorldSize      int      // 0 = the number of nodes
	Nodes          []string // the gang's node names, by rank
	LocalWorldSize int      // processes per node; 0 = 1
}

// grace is the Spec's grace period, defaulted.
func (s *Spec) grace() time.Duration { return cmp.Or(s.Grace, DefaultGrace) }

// numNodes is the gang's size, at least 1.
func (s *Spec) numNodes() int { return max(s.NumNodes, 1) }

// key names the job's directory and cgroup: job, epoch and rank, with
// anything unsafe in a file name escaped.
func (s *Spec) key() string {
	return safeName(s.JobID) + "." + strconv.FormatInt(s.Epoch, 10) + "." + strconv.Itoa(s.NodeRank)
}

// check says what is wrong with a Spec, all of it.
func (s *Spec) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.JobID == "" {
		bad("the job has no ID")
	}
	if s.Task.Script == "" && len(s.Task.Command) == 0 {
		bad("job %s runs nothing: give it a script or a command", s.JobID)
	}
	if s.Task.Script == "" && len(s.Task.Args) > 0 {
		bad("job %s has arguments but no script: put them in its command", s.JobID)
	}
	if s.NumNodes < 0 || s.NodeRank < 0 || s.NodeRank >= s.numNodes() {
		bad("node rank %d of %d nodes: give a rank from 0 to the number of nodes - 1", s.NodeRank, s.NumNodes)
	}
	if s.CPUs < 0 || s.MemoryMiB < 0 || s.Limit < 0 || s.Grace < 0 {
		bad("negative limits (CPUs %d, memory %d MiB, time %s, grace %s)", s.CPUs, s.MemoryMiB, s.Limit, s.Grace)
	}
	for _, d := range s.Devices {
		if d < 0 {
			bad("accelerator index %d: give 0 or more", d)
		}
	}
	if s.Task.SignalBefore < 0 {
		bad("signal %d s before the limit: give 0 or more", s.Task.SignalBefore)
	}
	if s.Task.Signal != "" {
		if _, err := ParseSignal(s.Task.Signal); err != nil {
			bad("the job's signal: %v", err)
		}
	}
	if err := model.CheckOpenMode(s.Task.OpenMode); err != nil {
		bad("output %v", err)
	}
	if s.Task.WorkDir != "" && !filepath.IsAbs(s.Task.WorkDir) {
		bad("working directory %q is relative: give an absolute path", s.Task.WorkDir)
	}
	return errors.Join(errs...)
}

// workDir is where the job runs: the task's directory, else home.
func (s *Spec) workDir(home string) (string, error) {
	dir := s.Task.WorkDir
	if dir == "" {
		dir = home
	}
	if dir == "" {
		return "", fmt.Errorf("job %s names no working directory and there is no HOME to run it in: give it one", s.JobID)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("working directory %s of job %s does not exist on this node: create it, or submit from a directory the nodes share", dir, s.JobID)
	}
	return dir, nil
}

// outputs are the job's stdout and stderr files, absolute; stderr ==
// stdout when they go together. By default usine-JOB.out, and
// usine-JOB.RANK.out for the other ranks of a gang, so that ranks sharing
// a working directory do not interleave their lines in one file. The
// caller expands any %-patterns first.
func (s *Spec) outputs(work string) (stdout, stderr string) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(work, p)
	}
	def := "usine-" + safeName(s.JobID) + ".out"
	if s.NodeRank > 0 {
		def = "usine-" + safeName(s.JobID) + "." + strconv.Itoa(s.NodeRank) + ".out"
	}
	stdout = abs(cmp.Or(s.Task.Stdout, def))
	stderr = stdout
	if s.Task.Stderr != "" {
		stderr = abs(s.Task.Stderr)
	}
	return stdout, stderr
}

// truncateOutputs reports whether this run starts its output files
// afresh. As in Slurm, a job's first run does and a later one (a requeue)
// appends after what the earlier runs wrote, unless Task.OpenMode says
// otherwise. The ranks of a gang that each run the task may share a file,
// and none of them may cut what another has already written: they append,
// but for usine's default files (one per rank) and a batch script's (which
// runs on one node).
func (s *Spec) truncateOutputs() bool {
	if s.Task.OpenMode == model.OpenAppend || (s.Task.OpenMode == "" && s.Epoch > 1) {
		return false
	}
	return s.numNodes() == 1 || s.Task.BatchHost || (s.Task.Stdout == "" && s.Task.Stderr == "")
}

// environ is the job's whole environment: a clean base (PATH, HOME, USER
// and LANG from lookup, the agent's environment), the caller's extra
// variables, usine's, the vendor's visibility variables, the rendezvous
// variables, then the task's own.
func (s *Spec) environ(lookup func(string) (string, bool)) map[string]string {
	env := map[string]string{"PATH": BasePath, "LANG": "C.UTF-8"}
	for _, k := range []string{"HOME", "USER"} {
		if v, ok := lookup(k); ok {
			env[k] = v
		}
	}
	maps.Copy(env, s.Extra)
	nodes := s.numNodes()
	ids := make([]string, len(s.Devices))
	for i, d := range s.Devices {
		ids[i] = strconv.Itoa(d)
	}
	list := strings.Join(ids, ",")
	maps.Copy(env, map[string]string{
		"USINE_JOB_ID": s.JobID, "USINE_JOB_EPOCH": strconv.FormatInt(s.Epoch, 10),
		"USINE_NODE_RANK": strconv.Itoa(s.NodeRank), "USINE_NUM_NODES": strconv.Itoa(nodes),
		"USINE_ACCELERATORS": strconv.Itoa(len(s.Devices)), "USINE_ACCELERATOR_INDEXES": list,
	})
	// An empty list hides every device of the vendor: a job given none
	// must not use its neighbours'.
	switch s.Vendor {
	case VendorNvidia:
		env["CUDA_VISIBLE_DEVICES"] = list
		// CUDA numbers devices fastest first unless told otherwise;
		// nvidia-smi and NVML, where the indexes come from, by PCI bus.
		env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
	case VendorAMD:
		env["ROCR_VISIBLE_DEVICES"], env["HIP_VISIBLE_DEVICES"] = list, list
	}
	r := s.Rendezvous
	addr := cmp.Or(r.MasterAddr, "127.0.0.1")
	port := strconv.Itoa(cmp.Or(r.MasterPort, masterPort(s.JobID, s.Epoch)))
	rank := strconv.Itoa(s.NodeRank)
	maps.Copy(env, map[string]string{
		"MASTER_ADDR": addr, "MASTER_PORT": port,
		"WORLD_SIZE": strconv.Itoa(cmp.Or(r.WorldSize, nodes)), "NODE_RANK": rank, "RANK": rank,
		"LOCAL_WORLD_SIZE": strconv.Itoa(cmp.Or(r.LocalWorldSize, 1)), "LOCAL_RANK": "0",
		// torchrun --nnodes=$NNODES --node_rank=$GROUP_RANK spreads further.
		"NNODES": strconv.Itoa(nodes), "GROUP_RANK": rank,
		"JAX_COORDINATOR_ADDRESS": addr + ":" + port, "JAX_NUM_PROCESSES": strconv.Itoa(nodes), "JAX_PROCESS_ID": rank,
	})
	if len(r.Nodes) > 0 {
		env["USINE_NODES"] = strings.Join(r.Nodes, ",")
	}
	maps.Copy(env, s.Task.Env)
	return env
}

// Environ is the whole environment the job gets, as Start would build
// it on this node: for work started on the job's behalf outside Start
// (a Slurm step's tasks), which must see the same variables.
func (s *Spec) Environ() map[string]string { return s.environ(os.LookupEnv) }

// environList is env as exec wants it, sorted.
func environList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// masterPort picks a gang's rendezvous port from its job and epoch, in
// 20000–39999, so that gangs sharing a node rarely collide and every rank
// computes the same one.
func masterPort(job string, epoch int64) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", job, epoch)
	return 20000 + int(h.Sum32()%20000)
}

// argv is what runs: for a script, the interpreter its #! line names
// (with its one optional argument, as the kernel reads it) or /bin/sh,
// then the script's path and its arguments (Task.Args, $1 …); for a
// command, its program resolved in the job's PATH, or in the working
// directory when it holds a slash.
func (s *Spec) argv(scriptPath, work string, env map[string]string) ([]string, error) {
	if s.Task.Script != "" {
		line, _, _ := strings.Cut(s.Task.Script, "\n")
		if !strings.HasPrefix(line, "#!") {
			return append([]string{"/bin/sh", scriptPath}, s.Task.Args...), nil
		}
		line = strings.TrimSpace(strings.TrimSuffix(line[2:], "\r"))
		interp, arg, _ := strings.Cut(strings.ReplaceAll(line, "\t", " "), " ")
		if interp == "" {
			return nil, fmt.Errorf("the script of job %s has a #! line that names no interpreter", s.JobID)
		}
		p := interp
		if !filepath.IsAbs(p) {
			p = filepath.Join(work, p)
		}
		if !executable(p) {
			return nil, fmt.Errorf("the script of job %s asks for %s on its #! line, which is not installed on this node: install it or change the #! line", s.JobID, interp)
		}
		out := []string{p}
		if arg = strings.TrimSpace(arg); arg != "" {
			out = append(out, arg)
		}
		return append(append(out, scriptPath), s.Task.Args...), nil
	}
	prog := s.Task.Command[0]
	var path string
	switch {
	case prog == "":
		return nil, fmt.Errorf("the command of job %s is empty", s.JobID)
	case filepath.IsAbs(prog):
		path = prog
	case strings.Contains(prog, "/"):
		path = filepath.Join(work, prog)
	default:
		for _, dir := range filepath.SplitList(env["PATH"]) {
			if p := filepath.Join(dir, prog); dir != "" && executable(p) {
				path = p
				break
			}
		}
		if path == "" {
			return nil, fmt.Errorf("the command %q of job %s is not in the job's PATH (%s) on this node", prog, s.JobID, env["PATH"])
		}
	}
	if !executable(path) {
		return nil, fmt.Errorf("the command %s of job %s is not an executable file on this node", path, s.JobID)
	}
	return append([]string{path}, s.Task.Command[1:]...), nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// safeName keeps a job ID usable as a file or cgroup name whatever it
// holds, and distinct from others: anything but letters, digits, - and _
// becomes %XX.
func safeName(id string) string {
	var b strings.Builder
	for _, c := range []byte(id) {
		if c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
