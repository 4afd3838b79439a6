package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func TestASingleNodeJobRunsAndItsOutputIsServed(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job(`echo "hello from $USINE_NODE"; echo "devices $CUDA_VISIBLE_DEVICES"; echo "job $USINE_JOB_ID slurm $SLURM_JOB_ID"; echo "args $#: $1|$2"` + "\n")
	spec.Accelerators = 2
	spec.Task.Args = []string{"first arg", "--second"}
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "completed", ended)
	if j.State != model.JobCompleted || j.ExitCode != 0 {
		t.Fatalf("job ended %s (%s), exit %d; want completed, 0", j.State, j.Reason, j.ExitCode)
	}
	want := "hello from node1\ndevices 0,1\njob " + id + " slurm " + id + "\nargs 2: first arg|--second\n"
	if got := waitFile(t, filepath.Join(spec.Task.WorkDir, "usine-"+id+".out")); got != want {
		t.Errorf("output file %q; want %q", got, want)
	}
	got, err := f.logOf(id, "")
	if err != nil || got != want {
		t.Errorf("usine logs: %q, %v; want %q", got, err, want)
	}
	if k := f.eventKinds(id, "started", "ended"); k["started"] != 1 || k["ended"] != 1 {
		t.Errorf("events %v; want one started, one ended", k)
	}
}

func TestAGangsRanksSeeTheirRendezvous(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 2)
	spec := f.job(`echo "$NODE_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $CUDA_VISIBLE_DEVICES" > rank-$NODE_RANK` + "\n")
	spec.Nodes, spec.AcceleratorsPerNode = 2, 8
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "ended", ended)
	if j.State != model.JobCompleted {
		t.Fatalf("gang ended %s (%s); want completed", j.State, j.Reason)
	}
	master := f.agentAddress(j.Alloc[0].Node)
	var port string
	for rank := range 2 {
		fields := strings.Fields(waitFile(t, filepath.Join(spec.Task.WorkDir, "rank-"+string(rune('0'+rank)))))
		if len(fields) != 5 {
			t.Fatalf("rank %d wrote %q", rank, fields)
		}
		got := []string{fields[0], fields[1], fields[2], fields[4]}
		want := []string{string(rune('0' + rank)), "2", master, "0,1,2,3,4,5,6,7"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rank %d: NODE_RANK WORLD_SIZE MASTER_ADDR CUDA_VISIBLE_DEVICES (-want +got):\n%s", rank, diff)
		}
		if port != "" && fields[3] != port {
			t.Errorf("ranks disagree on MASTER_PORT: %s and %s", port, fields[3])
		}
		port = fields[3]
	}
	if len(j.Ranks) != 2 {
		t.Errorf("the job records %d rank ends; want 2", len(j.Ranks))
	}
}

func (f *factory) agentAddress(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[name].address
}

func TestAnArrayRunsEveryElement(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job(`echo "$USINE_ARRAY_INDEX $SLURM_ARRAY_TASK_ID" > element-$USINE_ARRAY_INDEX` + "\n")
	spec.Accelerators, spec.Array = 1, "0-9"
	jobs := f.submit(spec)
	if len(jobs) != 10 {
		t.Fatalf("an array of 10 made %d jobs", len(jobs))
	}
	for i, j := range jobs {
		got := f.waitJob(j.ID, "ended", ended)
		if got.State != model.JobCompleted {
			t.Errorf("element %d: %s (%s)", i, got.State, got.Reason)
		}
		idx := got.ArrayIndex
		want := strings.Repeat(string(rune('0'+idx))+" ", 2)
		if out := waitFile(t, filepath.Join(spec.Task.WorkDir, "element-"+string(rune('0'+idx)))); out != strings.TrimSpace(want)+"\n" {
			t.Errorf("element %d wrote %q", idx, out)
		}
	}
}

func TestExitCodesAndFailingRanks(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 2)
	for _, tc := range []struct {
		name       string
		script     string
		nodes      int
		wantState  model.JobState
		wantExit   int
		wantSignal string
	}{
		{"a script that exits 3", "exit 3\n", 1, model.JobFailed, 3, ""},
		{"a script that kills itself", "kill -USR2 $$\nsleep 5\n", 1, model.JobFailed, -1, "USR2"},
		{"a command that does not exist", "no-such-command-anywhere\n", 1, model.JobFailed, 127, ""},
		// Rank 1 fails once rank 0 has its trap set (the ranks share the
		// working directory): a TERM before the trap would end it silently.
		{"one rank of a gang fails, the other is stopped",
			"if [ $NODE_RANK = 1 ]; then while [ ! -e ready ]; do sleep 0.02; done; exit 5; fi\ntrap 'echo stopped > stopped; exit 0' TERM\necho > ready\nwhile true; do sleep 0.05; done\n", 2, model.JobFailed, 5, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := f.job(tc.script)
			spec.Accelerators = 1
			if tc.nodes > 1 {
				spec.Accelerators, spec.Nodes, spec.AcceleratorsPerNode = 0, tc.nodes, 1
			}
			id := f.submit(spec)[0].ID
			j := f.waitJob(id, "ended", ended)
			if j.State != tc.wantState || j.ExitCode != tc.wantExit || j.Signal != tc.wantSignal {
				t.Errorf("job %s (%s) exit %d signal %q; want %s exit %d signal %q", j.State, j.Reason, j.ExitCode, j.Signal, tc.wantState, tc.wantExit, tc.wantSignal)
			}
			if tc.nodes > 1 {
				if got := waitFile(t, filepath.Join(spec.Task.WorkDir, "stopped")); got != "stopped\n" {
					t.Errorf("rank 0 wrote %q when stopped", got)
				}
			}
		})
	}
}

func TestTheTimeLimitStopsAJob(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job("trap 'echo term > term; exit 0' TERM\nwhile true; do sleep 0.05; done\n")
	spec.Accelerators, spec.Limit = 1, 1
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "ended", ended)
	if j.State != model.JobTimeout || j.Reason != "TimeLimit" {
		t.Errorf("job %s (%s); want timeout (TimeLimit)", j.State, j.Reason)
	}
	if got := waitFile(t, filepath.Join(spec.Task.WorkDir, "term")); got != "term\n" {
		t.Errorf("the job was not given SIGTERM at its limit: %q", got)
	}
	if j.End-j.Start > 3 {
		t.Errorf("a 1 s job ran %d s", j.End-j.Start)
	}
}

func TestCancelStopsARunningJob(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job("trap 'echo cancelled > cancelled; exit 0' TERM\necho up > up\nwhile true; do sleep 0.05; done\n")
	spec.Accelerators = 1
	id := f.submit(spec)[0].ID
	waitFile(t, filepath.Join(spec.Task.WorkDir, "up"))
	if _, err := f.admin.JobAction(context.Background(), id, "cancel", nil); err != nil {
		t.Fatal(err)
	}
	if got := waitFile(t, filepath.Join(spec.Task.WorkDir, "cancelled")); got != "cancelled\n" {
		t.Errorf("the cancelled job wrote %q", got)
	}
	if j := f.waitJob(id, "ended", ended); j.State != model.JobCancelled {
		t.Errorf("job %s; want cancelled", j.State)
	}
}

func TestCancelWithASignalDeliversItOnce(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job("trap 'echo usr1 >> got' USR1\necho up > up\nwhile [ ! -e stop ]; do sleep 0.02; done\n")
	spec.Accelerators = 1
	id := f.submit(spec)[0].ID
	waitFile(t, filepath.Join(spec.Task.WorkDir, "up"))
	if _, err := f.admin.JobAction(context.Background(), id, "cancel", api.CancelRequest{Signal: "USR1"}); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(spec.Task.WorkDir, "got"))
	if err := os.WriteFile(filepath.Join(spec.Task.WorkDir, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if j := f.waitJob(id, "ended", ended); j.State != model.JobCompleted {
		t.Errorf("signalled job ended %s (%s); want completed: a signal is not a cancel", j.State, j.Reason)
	}
	if b, _ := os.ReadFile(filepath.Join(spec.Task.WorkDir, "got")); string(b) != "usr1\n" {
		t.Errorf("the job got %q; want USR1 once", b)
	}
}

func TestPreemptionSendsTheJobsSignal(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	low := f.job("trap 'echo checkpoint > checkpoint-$USINE_JOB_EPOCH; exit 0' USR1\necho up > up-$USINE_JOB_EPOCH\nwhile true; do sleep 0.05; done\n")
	low.Accelerators, low.QoS, low.Preemptible = 8, "low", true
	low.Task.Signal = "USR1"
	lowID := f.submit(low)[0].ID
	waitFile(t, filepath.Join(low.Task.WorkDir, "up-1"))
	high := f.job("echo ran > ran\n")
	high.Accelerators, high.QoS = 8, "high"
	highID := f.submit(high)[0].ID
	if got := waitFile(t, filepath.Join(low.Task.WorkDir, "checkpoint-1")); got != "checkpoint\n" {
		t.Errorf("the preempted job wrote %q", got)
	}
	if j := f.waitJob(highID, "ended", ended); j.State != model.JobCompleted {
		t.Errorf("the high-QoS job ended %s (%s)", j.State, j.Reason)
	}
	// The low job went back to the queue, and runs again once there is room.
	j := f.waitJob(lowID, "running again", func(j store.Job) bool { return j.State == model.JobRunning && j.Epoch == 2 })
	if j.Requeues != 1 {
		t.Errorf("the preempted job was requeued %d times; want 1", j.Requeues)
	}
	waitFile(t, filepath.Join(low.Task.WorkDir, "up-2"))
	if k := f.eventKinds(lowID, "preempted", "started", "started"); k["preempted"] != 1 || k["started"] != 2 {
		t.Errorf("events of the preempted job %v; want one preempted, two started", k)
	}
}

func TestALostNodesJobIsRequeuedElsewhere(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 2)
	spec := f.job("echo $USINE_NODE $USINE_JOB_EPOCH >> runs\nwhile true; do sleep 0.05; done\n")
	spec.Accelerators = 8
	spec.Task.Requeue = true
	id := f.submit(spec)[0].ID
	j := f.waitJob(id, "running", is(model.JobRunning))
	lost := j.Alloc[0].Node
	waitFile(t, filepath.Join(spec.Task.WorkDir, "runs"))
	f.stopAgent(lost, true) // the node dies with what it ran

	n := f.waitNode(lost, func(n api.NodeView) bool { return n.State == model.NodeDown })
	if !strings.HasPrefix(n.Reason, "NodeFail") {
		t.Errorf("the lost node's reason is %q", n.Reason)
	}
	j = f.waitJob(id, "running elsewhere", func(j store.Job) bool { return j.State == model.JobRunning && j.Epoch == 2 })
	if j.Alloc[0].Node == lost {
		t.Fatalf("requeued onto the lost node %s", lost)
	}
	// The node comes back: it is up again, and what its agent reports of
	// the old run changes nothing.
	f.startAgent(lost)
	f.waitNode(lost, func(n api.NodeView) bool { return n.State == model.NodeUp })
	if got, _ := f.admin.Job(context.Background(), id); got.State != model.JobRunning || got.Epoch != 2 {
		t.Errorf("after the node came back the job is %s epoch %d; want running epoch 2", got.State, got.Epoch)
	}
	runs := strings.Split(strings.TrimSpace(waitLines(t, filepath.Join(spec.Task.WorkDir, "runs"), 2)), "\n")
	if len(runs) != 2 || !slices.Contains(runs, lost+" 1") {
		t.Errorf("runs %q; want the first on %s (epoch 1) and one more elsewhere", runs, lost)
	}
	if k := f.eventKinds(id, "requeued", "started", "started"); k["requeued"] != 1 || k["started"] != 2 {
		t.Errorf("events %v; want one requeued, two started", k)
	}
}

func TestJobsOutliveAServerRestartAndAreAccountedOnce(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 2)
	spec := f.job("echo $$ >> pids\nwhile [ ! -e go ]; do sleep 0.02; done\necho done\n")
	spec.Nodes, spec.AcceleratorsPerNode = 2, 4
	id := f.submit(spec)[0].ID
	f.waitJob(id, "running", is(model.JobRunning))
	pids := filepath.Join(spec.Task.WorkDir, "pids")
	waitLines(t, pids, 2)

	f.stopServer()
	f.startServer()
	// Agents reconnect and report; meanwhile the gang keeps running.
	for _, name := range []string{"node1", "node2"} {
		f.waitNode(name, func(n api.NodeView) bool { return n.State == model.NodeUp && len(n.Jobs) == 1 })
	}
	if err := os.WriteFile(filepath.Join(spec.Task.WorkDir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := f.waitJob(id, "ended", ended)
	if j.State != model.JobCompleted || j.Epoch != 1 {
		t.Errorf("job %s (%s) epoch %d; want completed in its first epoch", j.State, j.Reason, j.Epoch)
	}
	if b, _ := os.ReadFile(pids); strings.Count(string(b), "\n") != 2 {
		t.Errorf("pids %q: the gang's two ranks were launched again", b)
	}
	if k := f.eventKinds(id, "started", "ended"); k["started"] != 1 || k["ended"] != 1 {
		t.Errorf("events %v; want one started, one ended", k)
	}
}

func TestLogsFollowAJobUntilItEnds(t *testing.T) {
	t.Parallel()
	f := newFactory(t, 1)
	spec := f.job("echo first\nwhile [ ! -e gate ]; do sleep 0.02; done\necho second\n")
	id := f.submit(spec)[0].ID
	f.waitJob(id, "running", is(model.JobRunning))
	out := filepath.Join(spec.Task.WorkDir, "usine-"+id+".out")
	waitFile(t, out)
	req, _ := http.NewRequest("GET", f.url+api.Prefix+"/jobs/"+id+"/log?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+f.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); line != "first\n" {
		t.Fatalf("usine logs -f began with %q, %v", line, err)
	}
	// The job has not printed its second line yet: the stream waits.
	if err := os.WriteFile(filepath.Join(spec.Task.WorkDir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if string(rest) != "second\n" || err != nil {
		t.Errorf("usine logs -f went on with %q, %v; want the second line, then an end", rest, err)
	}
	if _, err := f.logOf(id, "rank=3"); err == nil || !strings.Contains(err.Error(), "rank") {
		t.Errorf("a rank the job does not have: %v", err)
	}
}
