package agent

// Steps: Slurm's batch semantics for jobs that sbatch submits
// (model.Task.BatchHost). The script runs once, as rank 0, on the job's
// first node; every other node runs a "rank holder", a shell that only
// waits, so that the node stays the job's and the server sees the rank
// alive. srun, inside the script, starts a step's tasks on the job's nodes
// through POST /steps/{job} on each node's agent, authenticated with the
// run's step key (api.Run.StepKey), which only the script's environment
// carries. The agent starts the tasks as children of its own, streams
// their output back in the response, and kills them when srun goes away
// or the job's run on the node ends.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm"
)

// Step environment variables that rank 0's script carries for srun.
const (
	EnvStepKey   = "USINE_STEP_KEY"   // the run's step key
	EnvStepURLs  = "USINE_STEP_URLS"  // every rank's agent URL, comma-separated, in rank order
	EnvStepNodes = "USINE_STEP_NODES" // every rank's node, comma-separated, in rank order
	EnvStepEpoch = "USINE_STEP_EPOCH" // the run's epoch
)

// holderScript keeps a node's rank of a batch job: it waits, ignores the
// signals that are meant for the batch script (--signal, scancel
// --signal), and ends quietly on TERM, when the job ends or the agent
// stops it.
const holderScript = `trap '' HUP INT QUIT USR1 USR2 ALRM PWR WINCH URG XCPU; trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done`

// stepKeys remembers the step key each run was launched with, so that a
// server restart (which may bring new keys) does not lock srun out of a
// running job. The zero value is ready.
type stepKeys struct {
	mu    sync.Mutex
	keys  map[string]string           // "job/epoch" → key
	seq   map[string]int              // "job/epoch" → the next step id this node assigns
	tasks map[string]map[int]struct{} // "job/epoch" → process groups of its step tasks here
}

// started notes a step task's process group; ended forgets it.
func (s *stepKeys) started(job string, epoch int64, pgid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks == nil {
		s.tasks = map[string]map[int]struct{}{}
	}
	k := stepRun(job, epoch)
	if s.tasks[k] == nil {
		s.tasks[k] = map[int]struct{}{}
	}
	s.tasks[k][pgid] = struct{}{}
}

func (s *stepKeys) ended(job string, epoch int64, pgid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := stepRun(job, epoch)
	delete(s.tasks[k], pgid)
	if len(s.tasks[k]) == 0 {
		delete(s.tasks, k)
	}
}

// running counts the step tasks of the job's run on this node.
func (s *stepKeys) running(job string, epoch int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks[stepRun(job, epoch)])
}

// signal sends sig to every step task of the job's run on this node and
// says how many it reached.
func (s *stepKeys) signal(job string, epoch int64, sig syscall.Signal) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for pgid := range s.tasks[stepRun(job, epoch)] {
		if syscall.Kill(-pgid, sig) == nil {
			n++
		}
	}
	return n
}

// stepSignalled says whether a batch job's signal goes to its steps'
// tasks rather than to its script (Slurm's --signal without B:).
func stepSignalled(t *model.Task) bool {
	return t.BatchHost && !t.SignalBatchOnly && t.Signal != ""
}

func stepRun(job string, epoch int64) string { return job + "/" + strconv.FormatInt(epoch, 10) }

func (s *stepKeys) remember(o api.Run) {
	if o.StepKey == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]string{}
	}
	s.keys[stepRun(o.Job.ID, o.Epoch)] = o.StepKey
}

func (s *stepKeys) launchedWith(job string, epoch int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[stepRun(job, epoch)]
}

func (s *stepKeys) next(job string, epoch int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq == nil {
		s.seq = map[string]int{}
	}
	k := stepRun(job, epoch)
	n := s.seq[k]
	s.seq[k] = n + 1
	return n
}

// batchSpec turns a rank of a batch job into what Slurm runs: the script
// with the batch step's environment on rank 0, a rank holder elsewhere.
// Other jobs are left as they are.
func (a *Agent) batchSpec(o api.Run, s *launch.Spec) {
	a.steps.remember(o)
	j := &o.Job
	if !j.Task.BatchHost {
		return
	}
	if stepSignalled(&j.Task) {
		// The steps get the signal (serveStep, signalOrder); the
		// script is stopped with TERM and warned of nothing.
		s.Task.Signal, s.Task.SignalBefore = "", 0
	}
	if o.Rank > 0 {
		s.Task.Script, s.Task.Args = "", nil
		s.Task.Command = []string{"/bin/sh", "-c", holderScript}
		s.Task.Signal, s.Task.SignalBefore = "", 0
		s.Task.Stdout = a.state.logFile("holder", runKey{j.ID, o.Epoch, o.Rank})
		s.Task.Stderr = ""
		return
	}
	// The batch step's environment: the job's, not one task's.
	for k := range s.Extra {
		if strings.HasPrefix(k, "SLURM_STEP") {
			delete(s.Extra, k)
		}
	}
	tasks, cpt := slurm.TaskLayout(j.Task.Env, len(o.Nodes))
	alloc := slurm.Alloc{JobID: j.ID, Name: j.Name, User: j.User, Account: j.Project, Partition: j.Partition, QoS: j.QoS,
		ArrayJobID: j.ArrayID, ArrayTaskID: j.ArrayIndex, Nodes: o.Nodes, TasksPerNode: tasks, CPUsPerTask: cpt,
		CPUsPerNode: o.CPUs, GPUsPerNode: o.Accelerators, GPUs: s.Devices, Start: j.Start, End: o.Deadline,
		SubmitDir: j.Task.WorkDir}
	if j.ArrayID != "" {
		// The array's bounds are in the job's own variables (sbatch
		// records them), which win over these.
		alloc.ArrayTaskMin, alloc.ArrayTaskMax, alloc.ArrayTaskCount = j.ArrayIndex, j.ArrayIndex, 1
	}
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	maps.Copy(s.Extra, slurm.Env(alloc))
	s.Extra[EnvStepKey] = o.StepKey
	s.Extra[EnvStepURLs] = strings.Join(o.AgentURLs, ",")
	s.Extra[EnvStepNodes] = strings.Join(o.Nodes, ",")
	s.Extra[EnvStepEpoch] = strconv.FormatInt(o.Epoch, 10)
}

// visibility is the accelerator variables of a step's task on this node:
// the devices of the job's run here, in the vendor's variables.
func (a *Agent) visibility(devs []int) map[string]string {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = strconv.Itoa(d)
	}
	list := strings.Join(ids, ",")
	env := map[string]string{"USINE_ACCELERATORS": strconv.Itoa(len(devs)), "USINE_ACCELERATOR_INDEXES": list,
		"SLURM_JOB_GPUS": list, "SLURM_STEP_GPUS": list, "SLURM_GPUS_ON_NODE": strconv.Itoa(len(devs))}
	switch a.vendor {
	case launch.VendorNvidia:
		env["CUDA_VISIBLE_DEVICES"] = list
	case launch.VendorAMD:
		env["ROCR_VISIBLE_DEVICES"], env["HIP_VISIBLE_DEVICES"] = list, list
	}
	if len(devs) == 0 {
		delete(env, "SLURM_JOB_GPUS")
		delete(env, "SLURM_STEP_GPUS")
		delete(env, "SLURM_GPUS_ON_NODE")
	}
	return env
}

// StepRequest is the body of POST /steps/{job}: the tasks of one srun step
// that run on this node.
type StepRequest struct {
	Epoch int64 `json:"epoch"`
	// Step is the step's id; with AssignStep the agent picks the next one
	// of the job on this node and says it in the first StepEvent.
	Step       string     `json:"step,omitempty"`
	AssignStep bool       `json:"assign_step,omitempty"`
	Argv       []string   `json:"argv"`
	Dir        string     `json:"dir,omitempty"` // "" = the run's working directory
	Tasks      []StepTask `json:"tasks"`
}

// StepTask is one task: its global rank and its environment, to which the
// agent adds what only the node knows (its accelerators).
type StepTask struct {
	ProcID int               `json:"procid"`
	Env    map[string]string `json:"env"`
}

// StepEvent is one line of the answer to POST /steps/{job}: output of a
// task, its end, or the step id the agent assigned.
type StepEvent struct {
	Step   string `json:"step,omitempty"` // the first line, with AssignStep
	Task   int    `json:"task"`
	Out    []byte `json:"out,omitempty"`
	Err    []byte `json:"err,omitempty"`
	End    bool   `json:"end,omitempty"` // the task ended: Exit, Signal, Error
	Exit   int    `json:"exit,omitempty"`
	Signal string `json:"signal,omitempty"`
	Error  string `json:"error,omitempty"` // it could not start: why
}

// taskDevices are the devices of one task when the job asks for
// accelerators per task (--gpus-per-task=N): the node's N×LOCALID-th on,
// as Slurm binds them. Nil when it does not, or the node has too few:
// the task then sees all the job's devices on the node.
func taskDevices(devs []int, env map[string]string) []int {
	n, err1 := strconv.Atoi(env["SLURM_GPUS_PER_TASK"])
	local, err2 := strconv.Atoi(env["SLURM_LOCALID"])
	if err1 != nil || err2 != nil || n <= 0 || local < 0 || (local+1)*n > len(devs) {
		return nil
	}
	return devs[local*n : (local+1)*n]
}

// nodeVars are the variables whose values only the node's agent knows;
// they replace what srun sends (visibility adds the others).
var nodeVars = []string{"USINE_ACCELERATORS", "USINE_ACCELERATOR_INDEXES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE",
	"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"}

// serveStep starts a step's tasks on this node and streams their output
// and ends back, one StepEvent a line.
func (a *Agent) serveStep(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var req StepRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<20))
	if err := dec.Decode(&req); err != nil {
		logError(w, http.StatusBadRequest, api.CodeBadRequest, "read the step request: %v", err)
		return
	}
	if len(req.Argv) == 0 || len(req.Tasks) == 0 {
		logError(w, http.StatusBadRequest, api.CodeBadRequest, "a step names a command and at least one task")
		return
	}
	a.mu.Lock()
	var rn *run
	for k, x := range a.runs {
		if k.Job == job && k.Epoch == req.Epoch && x.running() && !x.stopping {
			rn = x
			break
		}
	}
	var order *api.Run
	for i := range a.orders.Runs {
		if o := &a.orders.Runs[i]; o.Job.ID == job && o.Epoch == req.Epoch {
			order = o
		}
	}
	var devs []int
	var done chan struct{}
	if rn != nil {
		devs, done = slices.Clone(rn.rec.Devices), rn.done
	}
	var o api.Run
	if order != nil {
		o = *order
	}
	a.mu.Unlock()
	known := []string{a.steps.launchedWith(job, req.Epoch), o.StepKey}
	ok := false
	for _, k := range known {
		if k != "" && subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			ok = true
		}
	}
	switch {
	case rn == nil || order == nil:
		logError(w, http.StatusNotFound, api.CodeNotFound, "job %s (epoch %d) does not run on node %s (ended, or not yet started)", job, req.Epoch, a.cfg.Node.Name)
		return
	case !ok:
		logError(w, http.StatusForbidden, api.CodeForbidden, "wrong step key for job %s: steps are started by srun inside the job", job)
		return
	}
	nodeEnv := a.visibility(devs)
	step := req.Step
	if req.AssignStep {
		step = strconv.Itoa(a.steps.next(job, req.Epoch))
	}
	dir := req.Dir
	if fi, err := os.Stat(dir); dir == "" || err != nil || !fi.IsDir() {
		dir = o.Job.Task.WorkDir
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var wmu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(ev StepEvent) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if req.AssignStep {
		send(StepEvent{Step: step, Task: -1})
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-done: // the job's run here ended: so do its steps
			cancel()
		case <-ctx.Done():
		}
	}()
	// Slurm's --signal: the steps' tasks get the job's signal its
	// SignalBefore seconds ahead of the time limit.
	var warn syscall.Signal
	var warnAt time.Time
	if jt := &o.Job.Task; stepSignalled(jt) && jt.SignalBefore > 0 && o.Deadline > 0 {
		if sig, err := launch.ParseSignal(jt.Signal); err == nil {
			warn, warnAt = sig, time.Unix(o.Deadline-jt.SignalBefore, 0)
		}
	}
	began := time.Now()
	var wg sync.WaitGroup
	var emu sync.Mutex
	worst := api.StepEnd{Job: job, Epoch: req.Epoch, Step: step, Name: filepath.Base(req.Argv[0]), Tasks: len(req.Tasks)}
	for _, t := range req.Tasks {
		env := map[string]string{}
		for k, v := range t.Env {
			env[k] = v
		}
		taskEnv := nodeEnv
		if own := taskDevices(devs, env); own != nil {
			taskEnv = a.visibility(own)
			taskEnv["SLURM_JOB_GPUS"] = nodeEnv["SLURM_JOB_GPUS"] // the job's, on this node
		}
		for _, k := range nodeVars {
			if v, ok := taskEnv[k]; ok {
				env[k] = v
			} else {
				delete(env, k)
			}
		}
		env["SLURMD_NODENAME"], env["USINE_NODE"] = a.cfg.Node.Name, a.cfg.Node.Name
		if step != "" {
			env["SLURM_STEP_ID"], env["SLURM_STEPID"] = step, step
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := a.runTask(ctx, stepTask{job: job, epoch: req.Epoch, procID: t.ProcID, warn: warn, warnAt: warnAt}, req.Argv, dir, env, send)
			emu.Lock()
			if end.Exit > worst.ExitCode || (end.Signal != "" && worst.Signal == "") {
				worst.ExitCode, worst.Signal = max(end.Exit, worst.ExitCode), cmp.Or(worst.Signal, end.Signal)
			}
			emu.Unlock()
			send(end)
		}()
	}
	wg.Wait()
	if step != "" { // sacct's step line, by the next report
		worst.Start, worst.End = began.Unix(), time.Now().Unix()
		a.mu.Lock()
		a.stepEnds = append(a.stepEnds, worst)
		if n := len(a.stepEnds); n > maxStepEnds { // the server has been away long
			a.stepEnds = slices.Delete(a.stepEnds, 0, n-maxStepEnds)
		}
		a.kickLocked()
		a.mu.Unlock()
	}
}

// maxStepEnds is how many step ends an agent keeps for reports.
const maxStepEnds = 1000

// stepTask is which task of which run a process is, and the signal it is
// warned with ahead of the time limit (none when warn is 0).
type stepTask struct {
	job    string
	epoch  int64
	procID int
	warn   syscall.Signal
	warnAt time.Time
}

// runTask runs one task to its end and returns the event that says how it
// ended; its output goes out through send as it comes.
func (a *Agent) runTask(ctx context.Context, st stepTask, argv []string, dir string, env map[string]string, send func(StepEvent)) StepEvent {
	procID := st.procID
	end := StepEvent{Task: procID, End: true, Exit: -1}
	path := argv[0]
	if !strings.Contains(path, "/") {
		p, err := stepLookPath(path, env["PATH"])
		if err != nil {
			end.Error, end.Exit = err.Error(), 127
			return end
		}
		path = p
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	slices.Sort(list)
	cmd := &exec.Cmd{Path: path, Args: argv, Dir: dir, Env: list,
		Stdout: &taskWriter{task: procID, send: send}, Stderr: &taskWriter{task: procID, stderr: true, send: send},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}, WaitDelay: time.Second}
	if err := cmd.Start(); err != nil {
		end.Error, end.Exit = fmt.Sprintf("start %s: %v", argv[0], err), 127
		return end
	}
	pgid := cmd.Process.Pid
	a.steps.started(st.job, st.epoch, pgid)
	defer a.steps.ended(st.job, st.epoch, pgid)
	if d := time.Until(st.warnAt); st.warn != 0 && d > 0 {
		t := time.AfterFunc(d, func() { _ = syscall.Kill(-pgid, st.warn) })
		defer t.Stop()
	}
	waited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(a.cfg.Grace):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		case <-waited:
		}
	}()
	err := cmd.Wait()
	close(waited)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what the task left behind ends with it
	ps := cmd.ProcessState
	switch {
	case ps == nil:
		end.Error = fmt.Sprintf("wait for %s: %v", argv[0], err)
	default:
		end.Exit = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			end.Signal = launch.SignalName(ws.Signal())
		}
	}
	return end
}

// stepLookPath finds a task's command in the task's PATH, not the agent's.
func stepLookPath(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in PATH %s", file, path)
}

// taskWriter sends what a task writes as StepEvents.
type taskWriter struct {
	task   int
	stderr bool
	send   func(StepEvent)
}

func (t *taskWriter) Write(p []byte) (int, error) {
	ev := StepEvent{Task: t.task}
	if t.stderr {
		ev.Err = bytes.Clone(p)
	} else {
		ev.Out = bytes.Clone(p)
	}
	t.send(ev)
	return len(p), nil
}

// PostStep sends a step's request to the agent at agentURL (AgentURL of
// api.Registration) and calls on for each event of the answer until the
// agent ends it. It is srun's side of serveStep.
func PostStep(ctx context.Context, hc *http.Client, agentURL, job, key string, req StepRequest, on func(StepEvent)) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode the step request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(agentURL, "/")+"/steps/"+job, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("step request: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		e.Status = resp.StatusCode
		return &e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var ev StepEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("read the step's output: %w", err)
		}
		on(ev)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the step's output: %w", err)
	}
	return nil
}
