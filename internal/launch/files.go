package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Files of a job's directory.
const (
	planFile       = "plan.json"       // what the supervisor runs: written by Start
	supervisorFile = "supervisor.json" // the supervisor's process: written by Start before the supervisor may start the job
	stateFile      = "state.json"      // the job's process: written by the supervisor
	resultFile     = "result.json"     // how the job ended: written by the supervisor, or by whoever saw it end unsupervised
	killedFile     = "killed"          // Kill was called: the result says so
	scriptFile     = "script"          // the job's script
	logFile        = "supervisor.log"  // what the supervisor had to say
)

// plan is everything the supervisor needs, resolved by Start.
type plan struct {
	JobID          string      `json:"job_id"`
	Epoch          int64       `json:"epoch"`
	Rank           int         `json:"rank"`
	Argv           []string    `json:"argv"`
	Dir            string      `json:"dir"`
	Env            []string    `json:"env"`
	Stdout         string      `json:"stdout"`
	Stderr         string      `json:"stderr"`
	Truncate       bool        `json:"truncate,omitempty"` // start the output files afresh
	LimitMs        int64       `json:"limit_ms,omitempty"`
	GraceMs        int64       `json:"grace_ms"`
	Signal         int         `json:"signal,omitempty"` // sent SignalBeforeMs ahead of the limit
	SignalBeforeMs int64       `json:"signal_before_ms,omitempty"`
	Cgroup         *cgroupPlan `json:"cgroup,omitempty"`
}

// procID names a process for good: its ID and its start time in clock
// ticks since boot (0 = unknown), since IDs are reused.
type procID struct {
	Pid  int    `json:"pid"`
	Tick uint64 `json:"tick,omitempty"`
}

// state is what the supervisor records: itself first, then the job.
type state struct {
	Supervisor procID `json:"supervisor"`
	Job        procID `json:"job,omitzero"`       // the job's process, leader of its group
	Start      int64  `json:"start_ms,omitempty"` // Unix milliseconds
	Deadline   int64  `json:"deadline_ms,omitempty"`
	Cgroup     string `json:"cgroup,omitempty"` // the job's cgroup, when it has one
}

// Result is how a job ended.
type Result struct {
	ExitCode int    `json:"exit_code"`        // -1 when a signal ended it, or when unknown
	Signal   string `json:"signal,omitempty"` // the signal that ended it: "TERM", "KILL", …
	TimedOut bool   `json:"timed_out,omitempty"`
	Killed   bool   `json:"killed,omitempty"` // Kill was called on it
	// Err says why the end is not known exactly, or why it never started.
	Err   string    `json:"error,omitempty"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end"`
}

func (r Result) String() string {
	var s string
	switch {
	case r.Err != "":
		s = r.Err
	case r.Signal != "":
		s = "killed by SIG" + r.Signal
	default:
		s = "exit code " + strconv.Itoa(r.ExitCode)
	}
	if r.TimedOut {
		s += ", time limit reached"
	}
	if r.Killed {
		s += ", killed by the agent"
	}
	return s
}

// writeJSON writes v to path durably: a temporary file, fsync, rename,
// so that a reader sees the old file or the whole new one.
func writeJSON(path string, v any) error { return writeJSONSync(path, v, true) }

// writeLive writes what matters only while the job's processes live
// (its plan, its supervisor's and its own process IDs): atomically, as
// writeJSON, but without the fsyncs that a launch would otherwise wait
// for. Processes do not outlive the operating system, and after a crash
// of it a torn file only makes Recover report that job lost, which it
// is; the agent's own record of the launch is fsynced before it starts.
func writeLive(path string, v any) error { return writeJSONSync(path, v, false) }

func writeJSONSync(path string, v any, sync bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(b)
	var serr error
	if sync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readJSON reads path into v; fs.ErrNotExist when there is no such file.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return nil
}

// loadState reads a job's supervisorFile and, when there is one yet, its
// stateFile; fs.ErrNotExist when there is no supervisorFile.
func loadState(dir string) (state, error) {
	var sup procID
	if err := readJSON(filepath.Join(dir, supervisorFile), &sup); err != nil {
		return state{}, err
	}
	var st state
	if err := readJSON(filepath.Join(dir, stateFile), &st); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return state{}, err
	}
	st.Supervisor = sup
	return st, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// procStat reads a process's start time (field 22 of /proc/PID/stat) and
// whether it is a zombie (ended, not yet reaped).
func procStat(pid int) (tick uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) may hold spaces and parentheses: count
	// from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	tick, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: start time %q", pid, f[19])
	}
	return tick, f[0] == "Z", nil
}

// identify names the running process pid; Tick 0 where /proc is absent.
func identify(pid int) procID {
	id := procID{Pid: pid}
	id.Tick, _, _ = procStat(pid)
	return id
}

// alive reports whether the process still runs and is the one named, not
// another that got its ID.
func alive(id procID) bool {
	if id.Pid <= 0 {
		return false
	}
	tick, zombie, err := procStat(id.Pid)
	if err == nil {
		return !zombie && (id.Tick == 0 || tick == id.Tick)
	}
	if errors.Is(err, fs.ErrNotExist) && exists("/proc/self/stat") {
		return false
	}
	// No /proc: only the kernel's word on the ID.
	err = syscall.Kill(id.Pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
