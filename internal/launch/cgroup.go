package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names in the cgroup tree. The agent moves itself into agentLeaf of the
// cgroup it was started in, because cgroup v2 lets a cgroup hand its
// controllers to children only while it holds no process itself (the
// way systemd's delegation documentation asks delegated services to do
// it); jobs get siblings of it.
const (
	agentLeaf    = "usine-agent"
	jobCgroupPre = "usine-job-"
)

// Capabilities says what this host lets the launcher do.
type Capabilities struct {
	// Cgroup is true when jobs get cgroup v2 CPU and memory limits, in
	// children of CgroupDir; CgroupReason says why not when false.
	Cgroup       bool
	CgroupDir    string
	CgroupReason string
}

// String is the line the agent logs at start.
func (c Capabilities) String() string {
	if c.Cgroup {
		return "cgroup v2 limits: available, jobs' cgroups in " + c.CgroupDir
	}
	return "cgroup v2 limits: unavailable: " + c.CgroupReason
}

// cgroupPlan is a job's cgroup: where, and its limits.
type cgroupPlan struct {
	Dir       string `json:"dir"`
	CPUs      int    `json:"cpus,omitempty"`
	MemoryMiB int64  `json:"memory_mib,omitempty"`
}

// selfCgroup reads our cgroup v2 path from /proc/self/cgroup's "0::PATH"
// line.
func selfCgroup(procSelfCgroup []byte) (string, bool) {
	for _, line := range strings.Split(string(procSelfCgroup), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			return p, true
		}
	}
	return "", false
}

// readWords reads a cgroup file of space-separated names.
func readWords(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// probeCgroup finds out whether processes of ours (pid) in cgroup v2
// hierarchy root, with /proc/self/cgroup reading procSelf, may create
// child cgroups with the cpu and memory controllers, and prepares them:
// it returns the directory jobs' cgroups go in, or why there is none.
// It only reads and writes files under root, so tests give it a fake.
func probeCgroup(root string, procSelf []byte, pid int) (string, error) {
	if !exists(filepath.Join(root, "cgroup.controllers")) {
		return "", fmt.Errorf("%s is not a cgroup v2 (unified) hierarchy; boot with systemd.unified_cgroup_hierarchy=1 to have limits", root)
	}
	rel, ok := selfCgroup(procSelf)
	if !ok {
		return "", errors.New("this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")
	}
	dir := filepath.Join(root, rel)
	if filepath.Base(dir) == agentLeaf {
		dir = filepath.Dir(dir) // moved there by an earlier launcher of this process
	}
	have, err := readWords(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return "", fmt.Errorf("read the controllers of our cgroup: %w", err)
	}
	if !slices.Contains(have, "cpu") || !slices.Contains(have, "memory") {
		return "", fmt.Errorf("controllers cpu and memory are not delegated to our cgroup %s (it has: %s); under systemd, set Delegate=yes on the agent's unit", dir, strings.Join(have, " "))
	}
	enabled, err := readWords(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return "", fmt.Errorf("read the controllers our cgroup hands down: %w", err)
	}
	if slices.Contains(enabled, "cpu") && slices.Contains(enabled, "memory") {
		// Already handed down: check that we may create children.
		probe := filepath.Join(dir, "usine-probe-"+strconv.Itoa(pid))
		if err := os.Mkdir(probe, 0o755); err != nil && !os.IsExist(err) {
			return "", fmt.Errorf("our cgroup %s is not writable: %w; under systemd, set Delegate=yes on the agent's unit", dir, err)
		}
		_ = syscall.Rmdir(probe)
		return dir, nil
	}
	leaf := filepath.Join(dir, agentLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("our cgroup %s is not writable: %w; under systemd, set Delegate=yes on the agent's unit", dir, err)
	}
	me := strconv.Itoa(pid)
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(me), 0o644); err != nil {
		return "", fmt.Errorf("move the agent into %s: %w", leaf, err)
	}
	undo := func() {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(me), 0o644)
		_ = syscall.Rmdir(leaf) // fails, rightly, while another process of ours is in it
	}
	procs, err := readWords(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		undo()
		return "", fmt.Errorf("read the processes of our cgroup: %w", err)
	}
	procs = slices.DeleteFunc(procs, func(p string) bool { return p == me })
	if len(procs) > 0 {
		undo()
		return "", fmt.Errorf("our cgroup %s holds other processes (%s) and cgroup v2 cannot then hand controllers down; run the agent in a cgroup of its own (under systemd, a unit with Delegate=yes)", dir, strings.Join(procs[:min(len(procs), 5)], " "))
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory"), 0o644); err != nil {
		undo()
		return "", fmt.Errorf("hand controllers cpu and memory down in %s: %w", dir, err)
	}
	return dir, nil
}

// createJobCgroup makes a job's cgroup with its limits: cpu.max gives it
// CPUs full CPUs per 100 ms period, memory.max MemoryMiB.
func createJobCgroup(p cgroupPlan) error {
	if err := os.Mkdir(p.Dir, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create the job's cgroup: %w", err)
	}
	write := func(file, value string) error {
		if err := os.WriteFile(filepath.Join(p.Dir, file), []byte(value), 0o644); err != nil {
			_ = syscall.Rmdir(p.Dir)
			return fmt.Errorf("set %s of the job's cgroup to %s: %w", file, value, err)
		}
		return nil
	}
	const period = 100_000 // µs
	if p.CPUs > 0 {
		if err := write("cpu.max", fmt.Sprintf("%d %d", p.CPUs*period, period)); err != nil {
			return err
		}
	}
	if p.MemoryMiB > 0 {
		if err := write("memory.max", strconv.FormatInt(p.MemoryMiB<<20, 10)); err != nil {
			return err
		}
	}
	return nil
}

// removeJobCgroup kills what is left in a job's cgroup and removes it,
// waiting up to timeout for the kernel to empty it.
func removeJobCgroup(dir string, timeout time.Duration) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644); err != nil {
		// Before Linux 5.14: kill the processes one by one.
		pids, _ := readWords(filepath.Join(dir, "cgroup.procs"))
		for _, p := range pids {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	end := time.Now().Add(timeout)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(end) {
			return fmt.Errorf("remove the job's cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
