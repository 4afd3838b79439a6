package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// execLauncher runs each rank as its own process group with os/exec.
type execLauncher struct{ log *slog.Logger }

// NewLauncher is the launcher agents use by default.
func NewLauncher(log *slog.Logger) Launcher { return &execLauncher{log: log} }

// signals maps the names jobs and orders use to numbers.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT,
	"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "ALRM": syscall.SIGALRM, "URG": syscall.SIGURG,
	"XCPU": syscall.SIGXCPU, "PWR": syscall.SIGPWR, "WINCH": syscall.SIGWINCH, "ABRT": syscall.SIGABRT,
}

// ParseSignal reads "TERM", "SIGTERM", "sigterm" or "15".
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	if i, err := strconv.Atoi(n); err == nil && i > 0 && i < 65 {
		return syscall.Signal(i), nil
	}
	return 0, fmt.Errorf("unknown signal %q; use a name such as TERM, INT, USR1 or KILL", name)
}

// signalName is the short name of s ("TERM"), or its number.
func signalName(s syscall.Signal) string {
	for k, v := range signals {
		if v == s {
			return k
		}
	}
	return strconv.Itoa(int(s))
}

// statusWrapper runs "$@" and writes its exit status to the file $0.
const statusWrapper = `trap : HUP INT QUIT TERM USR1 USR2 ALRM XCPU PWR; "$@"; s=$?; echo $s > "$0.tmp" && mv "$0.tmp" "$0"; exit $s`

// execHandle is what finds a process again: its group and start time
// (process IDs are reused; the start time in /proc tells them apart), and
// the file its wrapper writes the exit status to.
type execHandle struct {
	Pid       int    `json:"pid"`
	StartTick uint64 `json:"start_tick"`
	Status    string `json:"status,omitempty"`
	Deadline  int64  `json:"deadline,omitempty"` // Unix milliseconds
	Grace     int64  `json:"grace_ms,omitempty"`
}

func (l *execLauncher) Start(_ context.Context, s Spec) (Process, error) {
	argv := s.Command
	if s.Script != "" {
		dir := filepath.Join(s.StateDir, "scripts")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("script directory: %w", err)
		}
		path := filepath.Join(dir, s.Key+".sh")
		if err := os.WriteFile(path, []byte(s.Script), 0o700); err != nil {
			return nil, fmt.Errorf("write the job's script: %w", err)
		}
		argv = []string{"/bin/sh", path}
		if strings.HasPrefix(s.Script, "#!") {
			argv = []string{path} // the kernel reads the #! line
		}
		argv = append(argv, s.Args...)
	}
	if len(argv) == 0 {
		return nil, errors.New("the job runs nothing: no script and no command")
	}
	statusPath := filepath.Join(s.StateDir, "status", s.Key)
	if err := os.MkdirAll(filepath.Dir(statusPath), 0o700); err != nil {
		return nil, fmt.Errorf("status directory: %w", err)
	}
	_ = os.Remove(statusPath)
	if fi, err := os.Stat(s.WorkDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("working directory %s does not exist on this node", s.WorkDir)
	}
	stdout, err := openLog(s.Stdout)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr := stdout
	if s.Stderr != s.Stdout {
		if stderr, err = openLog(s.Stderr); err != nil {
			return nil, err
		}
		defer stderr.Close()
	}
	env := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	path := argv[0]
	if !strings.Contains(path, "/") {
		// Look the command up in the job's PATH, not the agent's.
		if p, err := lookPath(path, s.Env["PATH"]); err == nil {
			path = p
		} else {
			return nil, err
		}
	}
	// The job runs under a small shell that outlives the agent and writes
	// the job's exit status where a restarted agent finds it. It catches
	// (does not ignore) the signals the group receives, so that the job
	// gets them with their default actions.
	wrapped := append([]string{"/bin/sh", "-c", statusWrapper, statusPath, path}, argv[1:]...)
	cmd := &exec.Cmd{Path: "/bin/sh", Args: wrapped, Dir: s.WorkDir, Env: env, Stdout: stdout, Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &execProc{pid: cmd.Process.Pid, done: make(chan struct{})}
	p.handle = execHandle{Pid: p.pid, StartTick: startTick(p.pid), Grace: s.Grace.Milliseconds(), Status: statusPath}
	if !s.Deadline.IsZero() {
		p.handle.Deadline = s.Deadline.UnixMilli()
	}
	go func() {
		err := cmd.Wait()
		p.finish(cmd.ProcessState, err)
	}()
	p.limit(s.Deadline, s.Signal, s.SignalBefore, s.Grace)
	return p, nil
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("output directory of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output file: %w", err)
	}
	return f, nil
}

func lookPath(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in the job's PATH %s", file, path)
}

func (l *execLauncher) Recover(_ context.Context, raw json.RawMessage) (Process, error) {
	var h execHandle
	if err := json.Unmarshal(raw, &h); err != nil || h.Pid <= 0 {
		return nil, errors.New("the record holds no process to look for")
	}
	if !alive(h) {
		if st, ok := readStatus(h.Status); ok {
			return &execProc{pid: h.Pid, handle: h, done: closed(), status: st}, nil
		}
		return nil, errors.New("its process had ended; its exit status is unknown")
	}
	p := &execProc{pid: h.Pid, handle: h, done: make(chan struct{}), adopted: true}
	go func() {
		// Not our child any more: poll until it is gone.
		for alive(h) {
			time.Sleep(200 * time.Millisecond)
		}
		st, ok := readStatus(h.Status)
		if !ok {
			st = ExitStatus{ExitCode: -1, Err: "ended while the agent was restarting; its exit status is unknown", End: time.Now()}
		}
		p.mu.Lock()
		p.status = st
		if p.timedOut.Load() {
			p.status.TimedOut, p.status.Err = true, ""
		}
		for _, t := range p.timers {
			t.Stop()
		}
		p.mu.Unlock()
		close(p.done)
	}()
	if h.Deadline > 0 {
		p.limit(time.UnixMilli(h.Deadline), "", 0, time.Duration(h.Grace)*time.Millisecond)
	}
	return p, nil
}

// execProc is one running process group.
type execProc struct {
	pid      int
	handle   execHandle
	adopted  bool
	timedOut atomic.Bool
	done     chan struct{}
	mu       sync.Mutex
	status   ExitStatus
	timers   []*time.Timer
}

func (p *execProc) Handle() json.RawMessage {
	b, _ := json.Marshal(p.handle)
	return b
}

func (p *execProc) Signal(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s to process group %d: %w", name, p.pid, err)
	}
	return nil
}

func (p *execProc) Wait() ExitStatus {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// limit arms the time limit: the job's signal ahead of it, SIGTERM at
// it, SIGKILL a grace period later.
func (p *execProc) limit(deadline time.Time, sig string, before, grace time.Duration) {
	if deadline.IsZero() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if sig != "" && before > 0 {
		p.timers = append(p.timers, time.AfterFunc(time.Until(deadline.Add(-before)), func() { _ = p.Signal(sig) }))
	}
	p.timers = append(p.timers, time.AfterFunc(time.Until(deadline), func() {
		p.timedOut.Store(true)
		_ = p.Signal("TERM")
		p.mu.Lock()
		defer p.mu.Unlock()
		p.timers = append(p.timers, time.AfterFunc(grace, func() { _ = p.Signal("KILL") }))
	}))
}

// finish records how the group's leader ended and kills what it left
// behind in its group: a job's processes end with it.
func (p *execProc) finish(ps *os.ProcessState, err error) {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	st := ExitStatus{ExitCode: -1, End: time.Now()}
	if ps != nil {
		st = fromCode(ps.ExitCode())
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signal = signalName(ws.Signal()) // the wrapper itself: SIGKILL
		}
	} else if err != nil {
		st.Err = err.Error()
	}
	st.TimedOut = p.timedOut.Load()
	p.mu.Lock()
	p.status = st
	for _, t := range p.timers {
		t.Stop()
	}
	p.mu.Unlock()
	close(p.done)
}

// startTick is the process's start time in clock ticks since boot, from
// /proc/PID/stat (field 22); 0 when unknown.
func startTick(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// alive reports whether the handle's process still runs (and is the same
// process, not a new one that got its ID).
func alive(h execHandle) bool {
	if err := syscall.Kill(h.Pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if h.StartTick != 0 && startTick(h.Pid) != h.StartTick {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(h.Pid) + "/stat")
	if err == nil {
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return false // a zombie: ended, not yet reaped
		}
	}
	return true
}

// fromCode reads a shell's exit status: above 128, a signal ended the job.
func fromCode(code int) ExitStatus {
	st := ExitStatus{ExitCode: code, End: time.Now()}
	if code > 128 && code <= 128+64 {
		st.ExitCode, st.Signal = -1, signalName(syscall.Signal(code-128))
	}
	return st
}

// readStatus reads the exit status the wrapper wrote, if it did.
func readStatus(path string) (ExitStatus, bool) {
	if path == "" {
		return ExitStatus{}, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ExitStatus{}, false
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return ExitStatus{}, false
	}
	st := fromCode(code)
	if fi, err := os.Stat(path); err == nil {
		st.End = fi.ModTime()
	}
	return st, true
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
