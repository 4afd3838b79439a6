package launch

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
)

func TestVisibilityVariablesByVendor(t *testing.T) {
	t.Parallel()
	vis := []string{"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "USINE_ACCELERATORS", "USINE_ACCELERATOR_INDEXES"}
	for _, tc := range []struct {
		name    string
		vendor  Vendor
		devices []int
		want    map[string]string
	}{
		{"NVIDIA", VendorNvidia, []int{0, 5}, map[string]string{
			"CUDA_VISIBLE_DEVICES": "0,5", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "USINE_ACCELERATORS": "2", "USINE_ACCELERATOR_INDEXES": "0,5"}},
		{"AMD sets ROCm's and HIP's", VendorAMD, []int{3}, map[string]string{
			"ROCR_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "3", "USINE_ACCELERATORS": "1", "USINE_ACCELERATOR_INDEXES": "3"}},
		{"none given on an NVIDIA node hides them all", VendorNvidia, nil, map[string]string{
			"CUDA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "USINE_ACCELERATORS": "0", "USINE_ACCELERATOR_INDEXES": ""}},
		{"another vendor gets usine's list only", VendorOther, []int{1, 2}, map[string]string{
			"USINE_ACCELERATORS": "2", "USINE_ACCELERATOR_INDEXES": "1,2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{JobID: "j", Devices: tc.devices, Vendor: tc.vendor}
			env := s.environ(func(string) (string, bool) { return "", false })
			got := map[string]string{}
			for _, k := range vis {
				if v, ok := env[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("visibility variables (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRendezvousDefaultsForOneNode(t *testing.T) {
	t.Parallel()
	s := Spec{JobID: "solo", Epoch: 2}
	env := s.environ(func(k string) (string, bool) {
		return map[string]string{"HOME": "/home/ada", "TERM": "xterm"}[k], k == "HOME" || k == "TERM"
	})
	port := strconv.Itoa(masterPort("solo", 2))
	want := map[string]string{
		"PATH": BasePath, "LANG": "C.UTF-8", "HOME": "/home/ada",
		"USINE_JOB_ID": "solo", "USINE_JOB_EPOCH": "2", "USINE_NODE_RANK": "0", "USINE_NUM_NODES": "1",
		"USINE_ACCELERATORS": "0", "USINE_ACCELERATOR_INDEXES": "",
		"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "1", "NODE_RANK": "0", "RANK": "0", "LOCAL_WORLD_SIZE": "1",
		"LOCAL_RANK": "0", "NNODES": "1", "GROUP_RANK": "0",
		"JAX_COORDINATOR_ADDRESS": "127.0.0.1:" + port, "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if p := masterPort("solo", 3); p == masterPort("solo", 2) || p < 20000 || p >= 40000 {
		t.Errorf("ports of two epochs: %d and %d; want distinct, in 20000–39999", masterPort("solo", 2), p)
	}
}

func TestArgvOfScriptsAndCommands(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	env := map[string]string{"PATH": BasePath}
	for _, tc := range []struct {
		name string
		task model.Task
		want []string
	}{
		{"a script without #! runs under /bin/sh", model.Task{Script: "echo hi"}, []string{"/bin/sh", "S"}},
		{"#! with an argument", model.Task{Script: "#!/bin/sh -eu\necho"}, []string{"/bin/sh", "-eu", "S"}},
		{"#!/usr/bin/env python3, spaces and CRLF", model.Task{Script: "#! /usr/bin/env  python3 \r\nprint()"}, []string{"/usr/bin/env", "python3", "S"}},
		{"a command found in the job's PATH", model.Task{Command: []string{"env", "-0"}}, []string{"/usr/bin/env", "-0"}},
		{"an absolute command", model.Task{Command: []string{"/bin/sh", "-c", "true"}}, []string{"/bin/sh", "-c", "true"}},
		{"a script's arguments follow its path", model.Task{Script: "echo $1", Args: []string{"a b", "--c"}}, []string{"/bin/sh", "S", "a b", "--c"}},
		{"and follow it after a #! line too", model.Task{Script: "#!/bin/sh -e\necho $1", Args: []string{"x"}}, []string{"/bin/sh", "-e", "S", "x"}},
	} {
		s := Spec{JobID: "j", Task: tc.task}
		got, err := s.argv("S", work, env)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: argv (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestSafeNamesStayDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, id := range []string{"j1", "j/1", "j%2F1", "../etc", "j 1", "J1", "j_1", "j-1", "ünï"} {
		n := safeName(id)
		if strings.ContainsAny(n, "/. ") || seen[n] != "" {
			t.Errorf("safeName(%q) = %q (also %q's)", id, n, seen[n])
		}
		seen[n] = id
	}
}

// fakeCgroups is a cgroup v2 tree in files: root, our cgroup rel with
// controllers, what it hands down, and processes.
func fakeCgroups(t *testing.T, rel, controllers, subtree, procs string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, content := range map[string]string{
		filepath.Join(root, "cgroup.controllers"):    "cpuset cpu io memory pids",
		filepath.Join(dir, "cgroup.controllers"):     controllers,
		filepath.Join(dir, "cgroup.subtree_control"): subtree,
		filepath.Join(dir, "cgroup.procs"):           procs,
	} {
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestProbeCgroup(t *testing.T) {
	t.Parallel()
	const me = 4242
	self := []byte("0::/system.slice/usine-agent.service\n")
	for _, tc := range []struct {
		name     string
		root     func(t *testing.T) string
		procSelf []byte
		wantDir  string // relative to root; "" = unavailable
		wantWhy  string
	}{
		{"a cgroup v1 host", func(t *testing.T) string { return t.TempDir() }, self, "",
			"is not a cgroup v2 (unified) hierarchy"},
		{"no cgroup v2 line for us", func(t *testing.T) string {
			return fakeCgroups(t, "system.slice/usine-agent.service", "cpu memory", "", "4242")
		}, []byte("1:cpu:/x\n"), "", "no 0:: line"},
		{"memory not delegated", func(t *testing.T) string {
			return fakeCgroups(t, "system.slice/usine-agent.service", "cpu pids", "", "4242")
		}, self, "", "controllers cpu and memory are not delegated to our cgroup"},
		{"other processes in our cgroup", func(t *testing.T) string {
			return fakeCgroups(t, "system.slice/usine-agent.service", "cpu memory pids", "", "17\n4242\n")
		}, self, "", "holds other processes (17)"},
		{"a delegated cgroup of our own: we move into a leaf and hand down cpu and memory", func(t *testing.T) string {
			return fakeCgroups(t, "system.slice/usine-agent.service", "cpu memory pids", "", "4242")
		}, self, "system.slice/usine-agent.service", ""},
		{"controllers already handed down", func(t *testing.T) string {
			return fakeCgroups(t, "user.slice/agent", "cpu memory", "cpu memory", "")
		}, []byte("0::/user.slice/agent\n"), "user.slice/agent", ""},
		{"a second launcher of a process already moved into its leaf", func(t *testing.T) string {
			root := fakeCgroups(t, "a.service", "cpu memory", "cpu memory", "")
			if err := os.Mkdir(filepath.Join(root, "a.service", agentLeaf), 0o755); err != nil {
				t.Fatal(err)
			}
			return root
		}, []byte("0::/a.service/usine-agent\n"), "a.service", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			dir, err := probeCgroup(root, tc.procSelf, me)
			if tc.wantDir == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantWhy) {
					t.Errorf("probeCgroup = %q, %v; want unavailable because %q", dir, err, tc.wantWhy)
				}
				return
			}
			if err != nil || dir != filepath.Join(root, tc.wantDir) {
				t.Fatalf("probeCgroup = %q, %v; want %s", dir, err, filepath.Join(root, tc.wantDir))
			}
		})
	}
	// The move and the hand-down, as written to the files.
	root := fakeCgroups(t, "s/a.service", "cpu memory", "", "4242")
	if _, err := probeCgroup(root, []byte("0::/s/a.service\n"), me); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"s/a.service/usine-agent/cgroup.procs": "4242",
		"s/a.service/cgroup.subtree_control":   "+cpu +memory",
	} {
		if b, err := os.ReadFile(filepath.Join(root, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
}

func TestJobCgroupLimits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "usine-job-j.1.0")
	if err := createJobCgroup(cgroupPlan{Dir: dir, CPUs: 3, MemoryMiB: 512}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.max": "300000 100000", "memory.max": "536870912"} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
}

func TestRecoverAnInterruptedLaunch(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	l, err := New(Config{StateDir: state, NoCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	// Start wrote the plan; the agent died before the supervisor wrote
	// anything (and the supervisor died with it).
	dir := filepath.Join(state, "jobs", "j.1.0")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, planFile), plan{JobID: "j", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	// And a directory that is not a job's.
	if err := os.Mkdir(filepath.Join(state, "jobs", "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	procs, err := l.Recover(context.Background())
	if err == nil || !strings.Contains(err.Error(), "remove the directory if no such job runs") {
		t.Errorf("Recover error %v, want one about the junk directory", err)
	}
	if len(procs) != 1 {
		t.Fatalf("Recover = %d jobs, want 1", len(procs))
	}
	r, ok := procs[0].Result()
	if !ok || !strings.Contains(r.Err, "interrupted before the job started") || r.ExitCode != -1 {
		t.Errorf("result %+v, %v; want an interrupted launch", r, ok)
	}
	if !exists(filepath.Join(dir, resultFile)) {
		t.Error("the interrupted launch's result was not recorded")
	}
}

func TestASupervisorWithoutGoAheadStartsNothing(t *testing.T) {
	t.Parallel()
	dir, work := t.TempDir(), t.TempDir()
	out := filepath.Join(work, "out")
	if err := writeJSON(filepath.Join(dir, planFile), plan{JobID: "j", Argv: []string{"/bin/sh", "-c", "echo ran"}, Dir: work, Stdout: out, Stderr: out}); err != nil {
		t.Fatal(err)
	}
	// The agent died before it recorded the supervisor: its end of the
	// go-ahead pipe closed without a word.
	var said strings.Builder
	err := supervise(dir, strings.NewReader(""), nopCloser{&said}, log.New(io.Discard, "", 0))
	if err == nil || !strings.Contains(err.Error(), "the job was not started") {
		t.Errorf("supervise without a go-ahead: %v", err)
	}
	if exists(out) || exists(filepath.Join(dir, stateFile)) {
		t.Error("the job was started, or recorded, without a go-ahead")
	}
	if !strings.Contains(said.String(), `"error"`) {
		t.Errorf("handshake %q, want an error", said.String())
	}
}

func TestAJobOutlivesTheAgentThatDiesBeforeHearingItStarted(t *testing.T) {
	t.Parallel()
	dir, work := t.TempDir(), t.TempDir()
	out := filepath.Join(work, "out")
	if err := writeJSON(filepath.Join(dir, planFile), plan{JobID: "j", Argv: []string{"/bin/sh", "-c", "sleep 0.2; echo survived"},
		Dir: work, Stdout: out, Stderr: out}); err != nil {
		t.Fatal(err)
	}
	// The agent gave the go-ahead, then died: nobody reads the answer.
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	hr.Close()
	if err := supervise(dir, strings.NewReader("g"), hw, log.New(io.Discard, "", 0)); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := readJSON(filepath.Join(dir, resultFile), &r); err != nil || r.ExitCode != 0 || r.Signal != "" {
		t.Errorf("result %+v (%v), want exit code 0", r, err)
	}
	if b, _ := os.ReadFile(out); string(b) != "survived\n" {
		t.Errorf("output %q", b)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestAJobOutlivesItsSupervisor(t *testing.T) {
	t.Parallel()
	l, err := New(Config{StateDir: t.TempDir(), NoCgroup: true, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	p, err := l.Start(context.Background(), Spec{JobID: "orphan", NumNodes: 1,
		Task: model.Task{Script: "while [ ! -e stop ]; do sleep 0.02; done", WorkDir: work}})
	if err != nil {
		t.Fatal(err)
	}
	st := p.st()
	if err := syscall.Kill(st.Supervisor.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The job runs on, unsupervised; the agent still signals it and sees
	// it end, without its exit status.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, ok := p.Result(); ok {
			t.Fatal("the job counted as ended when its supervisor died")
		}
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Errorf("Signal to an unsupervised job: %v", err)
	}
	if err := os.WriteFile(filepath.Join(work, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := p.Wait(ctx)
	if err != nil || r.ExitCode != -1 || !strings.Contains(r.Err, "exit status is unknown") {
		t.Errorf("result %+v, %v; want an end with an unknown status", r, err)
	}
}

func TestParseSignal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, " sigint ": syscall.SIGINT, "9": syscall.SIGKILL, "usr2": syscall.SIGUSR2,
	} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIGFOO", "0", "65", "-1"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) gave no error", in)
		}
	}
	if got := SignalName(syscall.SIGUSR1); got != "USR1" {
		t.Errorf("SignalName(SIGUSR1) = %q", got)
	}
}

func TestSupervisorPutsTheJobInItsCgroup(t *testing.T) {
	t.Parallel()
	// A fake cgroup tree: the kernel will not start a process into a
	// plain directory, so the supervisor falls back to moving the job by
	// writing its pid, which lands in the fake cgroup.procs; the plumbing
	// from Spec to cgroup files is what is checked.
	fake := t.TempDir()
	l, err := New(Config{StateDir: t.TempDir(), NoCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	l.caps = Capabilities{Cgroup: true, CgroupDir: fake}
	p, err := l.Start(context.Background(), Spec{JobID: "cg", Epoch: 4, NumNodes: 1, CPUs: 1, MemoryMiB: 100,
		Task: model.Task{Script: "exit 0", WorkDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r, err := p.Wait(ctx); err != nil || r.ExitCode != 0 {
		t.Fatalf("result %+v, %v", r, err)
	}
	dir := filepath.Join(fake, "usine-job-cg.4.0")
	if p.Cgroup() != dir {
		t.Errorf("job cgroup %q, want %q", p.Cgroup(), dir)
	}
	for file, want := range map[string]string{"cpu.max": "100000 100000", "memory.max": "104857600", "cgroup.procs": strconv.Itoa(p.Pid())} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	// A job without limits gets no cgroup.
	q, err := l.Start(context.Background(), Spec{JobID: "free", NumNodes: 1, Task: model.Task{Script: "exit 0", WorkDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Wait(ctx); err != nil || q.Cgroup() != "" {
		t.Errorf("a job without limits is in cgroup %q (%v)", q.Cgroup(), err)
	}
}
