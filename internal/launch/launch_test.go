package launch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

func TestEnvironmentIsCleanWithTheJobsVariables(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	work := t.TempDir()
	s := launch.Spec{
		JobID: "j42", Epoch: 3, NodeRank: 1, NumNodes: 2,
		Task: model.Task{Command: []string{"env"}, WorkDir: work, Stdout: "out.txt",
			Env: map[string]string{"NCCL_DEBUG": "INFO", "WORLD_SIZE": "16", "PATH": "/opt/x/bin:/usr/bin:/bin"}},
		Devices: []int{2, 3}, Vendor: launch.VendorNvidia,
		Rendezvous: launch.Rendezvous{MasterAddr: "10.0.0.1", MasterPort: 29500, Nodes: []string{"n1", "n2"}, LocalWorldSize: 8},
		// usine's own variables win over the caller's extras.
		Extra: map[string]string{"SLURM_JOB_ID": "42", "USINE_JOB_ID": "spoofed"},
	}
	p := start(t, l, s)
	if r := wait(t, p); r.ExitCode != 0 || r.Signal != "" {
		t.Fatalf("env ended with %s; output:\n%s", r, output(t, p))
	}
	if want := filepath.Join(work, "out.txt"); p.Stdout() != want {
		t.Errorf("output file %s, want %s", p.Stdout(), want)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(output(t, p)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	want := map[string]string{
		"PATH": "/opt/x/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
		"SLURM_JOB_ID": "42", "NCCL_DEBUG": "INFO",
		"USINE_JOB_ID": "j42", "USINE_JOB_EPOCH": "3", "USINE_NODE_RANK": "1", "USINE_NUM_NODES": "2",
		"USINE_ACCELERATORS": "2", "USINE_ACCELERATOR_INDEXES": "2,3", "USINE_NODES": "n1,n2",
		"CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
		"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "16", "NODE_RANK": "1", "RANK": "1",
		"LOCAL_WORLD_SIZE": "8", "JAX_COORDINATOR_ADDRESS": "10.0.0.1:29500", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1",
		"LOCAL_RANK": "0", "NNODES": "2", "GROUP_RANK": "1",
	}
	for _, k := range []string{"HOME", "USER"} {
		if v, ok := os.LookupEnv(k); ok {
			want[k] = v
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job environment (-want +got):\n%s", diff)
	}
}

func TestScripts(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	for i, tc := range []struct {
		name, script string
		wantCode     int
		wantSignal   string
		wantOutput   string // "%w" stands for the working directory
	}{
		{"runs in its working directory with /bin/sh", "pwd; echo \"[$0]\" | grep -q /script && echo sh", 0, "", "%w\nsh\n"},
		{"the #! line picks the interpreter and its argument", "#!/bin/sh -eu\necho ${UNSET:-default}\nfalse\necho not reached", 1, "", "default\n"},
		{"an exit code", "echo bye; exit 3", 3, "", "bye\n"},
		{"an exit code above 128 is not a signal", "exit 137", 137, "", ""},
		{"killed by a signal", "kill -USR1 $$; sleep 5", -1, "USR1", ""},
		{"stderr goes with stdout", "echo out; echo err >&2", 0, "", "out\nerr\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scriptSpec(t, "script-"+strconv.Itoa(i), tc.script)
			p := start(t, l, s)
			r := wait(t, p)
			if r.ExitCode != tc.wantCode || r.Signal != tc.wantSignal || r.TimedOut || r.Killed || r.Err != "" {
				t.Errorf("result %+v, want exit code %d, signal %q", r, tc.wantCode, tc.wantSignal)
			}
			want := strings.ReplaceAll(tc.wantOutput, "%w", s.Task.WorkDir)
			if got := output(t, p); got != want {
				t.Errorf("output %q, want %q", got, want)
			}
			if r.Start.IsZero() || r.End.Before(r.Start) {
				t.Errorf("start %v, end %v", r.Start, r.End)
			}
		})
	}
}

// TestOutputFilesOpenModes: a job's first run starts its output files
// afresh and a requeued run appends, as in Slurm, unless the task says
// which; the ranks of a gang that share a file never cut it. Standard
// error goes to its own file, which others may not read.
func TestOutputFilesOpenModes(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	for i, tc := range []struct {
		name      string
		epoch     int64
		mode      string
		rank, of  int
		truncated bool
	}{
		{"first run", 1, "", 0, 1, true},
		{"requeued run", 2, "", 0, 1, false},
		{"first run, --open-mode=append", 1, model.OpenAppend, 0, 1, false},
		{"requeued run, --open-mode=truncate", 3, model.OpenTruncate, 0, 1, true},
		{"a gang's rank sharing the file", 1, "", 1, 2, false},
		{"a gang's rank sharing the file, --open-mode=truncate", 1, model.OpenTruncate, 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scriptSpec(t, "o"+strconv.Itoa(i), "echo out; echo err >&2")
			s.Epoch, s.NodeRank, s.NumNodes = tc.epoch, tc.rank, tc.of
			s.Task.OpenMode = tc.mode
			s.Task.Stdout, s.Task.Stderr = "o.txt", filepath.Join(s.Task.WorkDir, "e.txt")
			for _, f := range []string{"o.txt", "e.txt"} {
				if err := os.WriteFile(filepath.Join(s.Task.WorkDir, f), []byte("before\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			wait(t, start(t, l, s))
			want := map[string]string{"o.txt": "before\nout\n", "e.txt": "before\nerr\n"}
			if tc.truncated {
				want = map[string]string{"o.txt": "out\n", "e.txt": "err\n"}
			}
			for file, want := range want {
				b, err := os.ReadFile(filepath.Join(s.Task.WorkDir, file))
				if err != nil || string(b) != want {
					t.Errorf("%s: %q (%v), want %q", file, b, err, want)
				}
			}
		})
	}
	s := scriptSpec(t, "p", "echo err >&2")
	s.Task.Stderr = "private.txt"
	wait(t, start(t, l, s))
	fi, err := os.Stat(filepath.Join(s.Task.WorkDir, "private.txt"))
	if err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("private.txt mode %v (%v): want no access for others", fi.Mode(), err)
	}
}

func TestStartRefuses(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	for i, tc := range []struct {
		name    string
		edit    func(*launch.Spec)
		wantMsg string
	}{
		{"a missing working directory", func(s *launch.Spec) { s.Task.WorkDir = "/nonexistent/dir" }, "working directory /nonexistent/dir of job bad does not exist on this node"},
		{"a relative working directory", func(s *launch.Spec) { s.Task.WorkDir = "dir" }, `working directory "dir" is relative`},
		{"an interpreter that is not installed", func(s *launch.Spec) { s.Task.Script = "#!/usr/bin/no-such-python\nprint(1)" }, "asks for /usr/bin/no-such-python on its #! line, which is not installed"},
		{"a command not in the job's PATH", func(s *launch.Spec) { s.Task.Script, s.Task.Command = "", []string{"no-such-tool"} }, `the command "no-such-tool" of job bad is not in the job's PATH (/usr/local/bin:/usr/bin:/bin)`},
		{"an output directory that does not exist", func(s *launch.Spec) { s.Task.Stdout = "/nonexistent/out.txt" }, "output file /nonexistent/out.txt: its directory does not exist"},
		{"nothing to run", func(s *launch.Spec) { s.Task.Script = "" }, "runs nothing"},
		{"a rank outside the gang", func(s *launch.Spec) { s.NodeRank, s.NumNodes = 2, 2 }, "node rank 2 of 2 nodes"},
		{"an unknown signal", func(s *launch.Spec) { s.Task.Signal = "SIGNOPE" }, `unknown signal "SIGNOPE"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scriptSpec(t, "bad", "echo hi")
			s.Epoch = int64(i) // runs of their own, checked at once
			tc.edit(&s)
			p, err := l.Start(context.Background(), s)
			if err == nil {
				wait(t, p)
				t.Fatalf("Start succeeded, want an error saying %q", tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want it to say %q", err, tc.wantMsg)
			}
		})
	}
	// A start that failed leaves nothing to recover.
	procs, err := l.Recover(context.Background())
	if err != nil || len(procs) != 0 {
		t.Errorf("Recover after failed starts = %d jobs, %v; want none", len(procs), err)
	}
}

func TestAJobIsNeverLaunchedTwice(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	s := scriptSpec(t, "once", "echo ran")
	wait(t, start(t, l, s))
	if _, err := l.Start(context.Background(), s); !errors.Is(err, launch.ErrAlreadyLaunched) {
		t.Errorf("second Start: %v, want ErrAlreadyLaunched", err)
	}
	// A new run of the job after a requeue, and another rank of a gang
	// (emulated nodes of one host), are other runs.
	s.Epoch++
	p0 := start(t, l, s)
	wait(t, p0)
	s.NodeRank, s.NumNodes = 1, 2
	p1 := start(t, l, s)
	wait(t, p1)
	if got := output(t, p0); got != "ran\nran\n" {
		t.Errorf("rank 0's output %q: want two runs' lines", got)
	}
	if got := output(t, p1); got != "ran\n" {
		t.Errorf("rank 1's output %q: want one run's line", got)
	}
}

func TestTimeLimitSendsTermThenKill(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	// The script traps TERM and carries on: only KILL ends it.
	s := scriptSpec(t, "limit", "trap 'echo got TERM' TERM; echo started; while :; do sleep 0.05; done")
	s.Limit, s.Grace = time.Second, 200*time.Millisecond
	p := start(t, l, s)
	if d := p.Deadline().Sub(p.Started()); d != time.Second {
		t.Errorf("deadline %s after the start, want 1s", d)
	}
	r := wait(t, p)
	if !r.TimedOut || r.Signal != "KILL" || r.Killed {
		t.Errorf("result %+v, want timed out and killed by KILL, not by the agent", r)
	}
	if got := output(t, p); !strings.Contains(got, "started\n") || !strings.Contains(got, "got TERM\n") {
		t.Errorf("output %q: want the trap to have seen TERM", got)
	}
}

func TestSignalBeforeTheLimitReachesTheScript(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	s := scriptSpec(t, "ckpt", "trap 'echo checkpoint; exit 0' USR1; while :; do sleep 0.05; done")
	s.Limit, s.Grace = 2*time.Second, 200*time.Millisecond
	s.Task.Signal, s.Task.SignalBefore = "SIGUSR1", 1
	p := start(t, l, s)
	r := wait(t, p)
	if r.ExitCode != 0 || r.Signal != "" || r.TimedOut {
		t.Errorf("result %+v: want exit 0 from the trap before the limit", r)
	}
	// The signal went to the whole group: the script's sleep died of it
	// and the shell may have said so.
	if got := output(t, p); !strings.HasSuffix(got, "checkpoint\n") {
		t.Errorf("output %q, want checkpoint", got)
	}
}

func TestSignalReachesTheWholeGroup(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	// A child shell of the script traps USR2 too: both must see it.
	s := scriptSpec(t, "sig", `sh -c 'trap "echo child USR2" USR2; touch child.ready; while :; do sleep 0.05; done' &
trap 'echo parent USR2' USR2; touch parent.ready; while :; do sleep 0.05; done`)
	p := start(t, l, s)
	waitFor(t, "both shells to set their traps", func() bool {
		return fileHas(filepath.Join(s.Task.WorkDir, "child.ready"), "") && fileHas(filepath.Join(s.Task.WorkDir, "parent.ready"), "") &&
			exists(filepath.Join(s.Task.WorkDir, "child.ready")) && exists(filepath.Join(s.Task.WorkDir, "parent.ready"))
	})
	if err := p.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both shells to report USR2", func() bool {
		return fileHas(p.Stdout(), "parent USR2") && fileHas(p.Stdout(), "child USR2")
	})
	r, err := p.Kill(context.Background(), 100*time.Millisecond)
	if err != nil || !r.Killed {
		t.Errorf("Kill = %+v, %v; want killed", r, err)
	}
	if err := p.Signal(syscall.SIGUSR2); !errors.Is(err, launch.ErrEnded) {
		t.Errorf("Signal after the end: %v, want ErrEnded", err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestKillStopsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	// One child ignores TERM: it must not outlive the job.
	s := scriptSpec(t, "kill", `sleep 300 & echo $! > sleeper.pid
sh -c 'trap "" TERM; echo $$ > stubborn.pid; while :; do sleep 0.05; done' &
wait`)
	p := start(t, l, s)
	var pids []int
	for _, f := range []string{"sleeper.pid", "stubborn.pid"} {
		path := filepath.Join(s.Task.WorkDir, f)
		waitFor(t, f, func() bool { return fileHas(path, "\n") })
		b, _ := os.ReadFile(path)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := p.Kill(ctx, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Killed || r.Signal != "TERM" || r.TimedOut {
		t.Errorf("result %+v, want killed by the agent with TERM", r)
	}
	for _, pid := range pids {
		waitFor(t, "child "+strconv.Itoa(pid)+" to end", func() bool { return processGone(pid) })
	}
}

func TestFollowSeesAppendedLines(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	s := scriptSpec(t, "follow", `echo one
while [ ! -e next ]; do sleep 0.02; done; echo two
while [ ! -e end ]; do sleep 0.02; done; echo three`)
	p := start(t, l, s)
	var buf syncBuffer
	type followed struct {
		n   int64
		err error
	}
	res := make(chan followed, 1)
	go func() {
		n, err := p.Follow(context.Background(), 0, &buf)
		res <- followed{n, err}
	}()
	waitFor(t, "the first line", func() bool { return buf.String() == "one\n" })
	touch(t, filepath.Join(s.Task.WorkDir, "next"))
	waitFor(t, "the appended line", func() bool { return buf.String() == "one\ntwo\n" })
	touch(t, filepath.Join(s.Task.WorkDir, "end"))
	select {
	case f := <-res:
		if f.err != nil || f.n != int64(len("one\ntwo\nthree\n")) {
			t.Errorf("Follow = %d, %v; want it to end with the job at offset 14", f.n, f.err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Follow did not end with the job")
	}
	if got := buf.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("followed %q", got)
	}
	// From an offset, of an ended job: what is there, then return.
	var rest syncBuffer
	if n, err := p.Follow(context.Background(), 4, &rest); err != nil || n != 14 || rest.String() != "two\nthree\n" {
		t.Errorf("Follow from 4 = %d, %q, %v", n, rest.String(), err)
	}
}

func TestFollowUntilTheContextEnds(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var buf syncBuffer
	errc := make(chan error, 1)
	go func() {
		_, err := launch.Follow(ctx, path, 0, &buf, nil)
		errc <- err
	}()
	waitFor(t, "the first line", func() bool { return buf.String() == "a\n" })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("b\n")
	f.Close()
	waitFor(t, "the appended line", func() bool { return buf.String() == "a\nb\n" })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel: %v, want context.Canceled", err)
	}
	if _, err := launch.Follow(context.Background(), path+".missing", 0, &buf, nil); err == nil {
		t.Error("Follow of a missing file gave no error")
	}
}

func TestAnUnwiredSupervisorIsExplained(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := launch.New(launch.Config{StateDir: dir, Supervisor: []string{"/bin/sh", "-c", "echo unknown command >&2; exit 1", "sh"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Start(context.Background(), scriptSpec(t, "x", "echo hi"))
	if err == nil || !strings.Contains(err.Error(), "unknown command") || !strings.Contains(err.Error(), "launch.Supervise") {
		t.Errorf("Start with a binary that does not supervise: %v; want what it said and how to fix it", err)
	}
	if procs, err := l.Recover(context.Background()); len(procs) != 0 || err != nil {
		t.Errorf("Recover = %d jobs, %v; want none", len(procs), err)
	}
}

func TestStartGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	// A supervisor that never answers.
	l, err := launch.New(launch.Config{StateDir: t.TempDir(), Supervisor: []string{"/bin/sh", "-c", "exec sleep 30", "sh"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := l.Start(ctx, scriptSpec(t, "hung", "echo hi")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start with a hung supervisor: %v, want the context's deadline", err)
	}
	if procs, err := l.Recover(context.Background()); len(procs) != 0 || err != nil {
		t.Errorf("Recover = %d jobs, %v; want none", len(procs), err)
	}
}

func TestCapabilitiesSayWhy(t *testing.T) {
	t.Parallel()
	l, err := launch.New(launch.Config{StateDir: t.TempDir(), NoCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Capabilities().String(), "cgroup v2 limits: unavailable: turned off in the agent's configuration"; got != want {
		t.Errorf("Capabilities = %q, want %q", got, want)
	}
	// This host: whatever it is, the line says so.
	caps := newLauncher(t, "").Capabilities()
	t.Log(caps)
	if caps.Cgroup == (caps.CgroupReason != "") || !strings.HasPrefix(caps.String(), "cgroup v2 limits: ") {
		t.Errorf("capabilities %+v are not one of available, or unavailable with a reason", caps)
	}
}

func TestStopSendsTheJobsSignalAndAScriptGetsItsArguments(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	s := scriptSpec(t, "stop", `trap 'echo checkpoint; exit 0' USR1
echo "args $#: $1|$2"; touch ready; while :; do sleep 0.05; done`)
	s.Task.Args = []string{"a b", "--c"}
	s.NumNodes, s.NodeRank = 2, 1
	p := start(t, l, s)
	if want := filepath.Join(s.Task.WorkDir, "usine-stop.1.out"); p.Stdout() != want {
		t.Errorf("rank 1's default output file is %s; want %s", p.Stdout(), want)
	}
	waitFor(t, "the script to start", func() bool { return exists(filepath.Join(s.Task.WorkDir, "ready")) })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := p.Stop(ctx, syscall.SIGUSR1, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Killed || r.ExitCode != 0 || r.Signal != "" {
		t.Errorf("result %+v; want killed by the agent, exit code 0 from the job's own USR1 trap", r)
	}
	// (The shell may also say that its sleep died of the signal.)
	if got := output(t, p); !strings.HasPrefix(got, "args 2: a b|--c\n") || !strings.HasSuffix(got, "checkpoint\n") {
		t.Errorf("output %q; want the arguments, then the checkpoint", got)
	}
}
