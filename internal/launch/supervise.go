package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SupervisorArg is the hidden sub-command that runs a job's supervisor:
// the binary, run as "BINARY SupervisorArg JOBDIR" (or "-" for a spare,
// see Spares), must call Supervise with the arguments after it.
const SupervisorArg = "__supervise"

// handshake is what the supervisor tells Start, on file descriptor 3,
// once the job runs or could not start.
type handshake struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// SuperviseIfAsked makes this process a job's supervisor, and exits when
// the job ends, if it was started as one (with SupervisorArg); otherwise
// it returns at once. The usine binary calls it first thing in main, and
// test binaries whose agents launch jobs in their TestMain.
func SuperviseIfAsked() {
	if len(os.Args) > 1 && os.Args[1] == SupervisorArg {
		os.Exit(Supervise(os.Args[2:]))
	}
}

// Supervise runs the job whose directory is args[0] and stays with it to
// its end: it is the main function of the supervisor process, and
// returns the exit status that process should have (0 once the job's
// end is recorded). It takes no context: nothing but the job's end
// should end it, and it outlives the agent that started it.
func Supervise(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s JOBDIR (started by the agent, not by hand)\n", SupervisorArg)
		return 2
	}
	hs, goAhead := os.NewFile(3, "handshake"), os.NewFile(4, "go-ahead")
	logger := log.New(os.Stderr, "usine supervisor: ", log.LstdFlags|log.Lmsgprefix)
	dir := args[0]
	var ahead io.Reader = goAhead
	if dir == spareDir {
		// A spare: the job, and with it where to log, come with the go-ahead.
		var err error
		if dir, err = readGoAhead(goAhead); errors.Is(err, errNoJob) {
			return 0
		} else if err != nil {
			logger.Print(err)
			return 1
		}
		if f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
			logger.SetOutput(f)
		}
		ahead = strings.NewReader("g")
	}
	if err := supervise(dir, ahead, hs, logger); err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

// supervise waits for the agent's go-ahead, which comes once the agent
// has recorded this supervisor where a restarted agent finds it: an
// agent that dies before that leaves no job behind (the go-ahead pipe
// closes and nothing starts). It then starts the job, answers on hs, and
// stays with the job to its end.
func supervise(dir string, goAhead io.Reader, hs io.WriteCloser, logger *log.Logger) error {
	say := func(h handshake) {
		if hs != nil {
			_ = json.NewEncoder(hs).Encode(h)
			_ = hs.Close()
			hs = nil
		}
	}
	defer say(handshake{Error: "the supervisor stopped before starting the job"})
	var pl plan
	if err := readJSON(filepath.Join(dir, planFile), &pl); err != nil {
		say(handshake{Error: "read the job's plan: " + err.Error()})
		return fmt.Errorf("read the job's plan: %w", err)
	}
	if b := make([]byte, 1); goAhead == nil {
		return errors.New("no go-ahead from the agent")
	} else if n, _ := goAhead.Read(b); n != 1 || b[0] != 'g' {
		return errors.New("the agent stopped before it recorded this supervisor; the job was not started")
	}
	// Signals sent to the supervisor go to the job, as if it had been
	// signalled itself (systemd, an operator's kill); they never stop the
	// supervisor, which must record the end. (Not SIGPIPE: that one is
	// the supervisor's own, when it answers an agent that has died.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer func() {
		signal.Stop(sigs)
		close(sigs)
	}()

	cmd, cgroup, err := startJob(&pl, logger)
	if err != nil {
		say(handshake{Error: err.Error()})
		return err
	}
	pid := cmd.Process.Pid
	start := time.Now()
	st := state{Job: identify(pid), Start: start.UnixMilli(), Cgroup: cgroup}
	if pl.LimitMs > 0 {
		st.Deadline = start.Add(time.Duration(pl.LimitMs) * time.Millisecond).UnixMilli()
	}
	if err := writeLive(filepath.Join(dir, stateFile), st); err != nil {
		// The job runs but a restarted agent could not find it: better
		// that it does not run.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if cgroup != "" {
			_ = removeJobCgroup(cgroup, 5*time.Second)
		}
		say(handshake{Error: err.Error()})
		return err
	}
	say(handshake{Pid: pid})

	// Signals go to the job's group until it is reaped: after that its ID
	// may be another process's.
	var mu sync.Mutex
	reaped := false
	group := func(s syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			_ = syscall.Kill(-pid, s)
		}
	}
	go func() {
		for s := range sigs {
			group(s.(syscall.Signal))
		}
	}()
	var timedOut atomic.Bool
	if pl.LimitMs > 0 {
		limit := time.Duration(pl.LimitMs) * time.Millisecond
		before := time.Duration(pl.SignalBeforeMs) * time.Millisecond
		if pl.Signal != 0 && before > 0 && before < limit {
			time.AfterFunc(limit-before, func() { group(syscall.Signal(pl.Signal)) })
		}
		time.AfterFunc(limit, func() {
			timedOut.Store(true)
			group(syscall.SIGTERM)
			time.AfterFunc(time.Duration(pl.GraceMs)*time.Millisecond, func() { group(syscall.SIGKILL) })
		})
	}

	// When the job's leader ends, what it left in its group ends with it.
	var werr error
	if err := waitExited(pid); err == nil {
		group(syscall.SIGKILL)
		mu.Lock()
		reaped = true
		mu.Unlock()
		werr = cmd.Wait()
	} else {
		// Cannot wait without reaping: reap, then kill the group, whose ID
		// is then free to be reused (by a new group leader, rarely so soon).
		if !errors.Is(err, errors.ErrUnsupported) {
			logger.Printf("wait for the job without reaping it: %v", err)
		}
		werr = cmd.Wait()
		group(syscall.SIGKILL)
		mu.Lock()
		reaped = true
		mu.Unlock()
	}
	end := time.Now()
	if cgroup != "" {
		if err := removeJobCgroup(cgroup, 5*time.Second); err != nil {
			logger.Print(err)
		}
	}
	r := Result{ExitCode: -1, Start: start, End: end, TimedOut: timedOut.Load(), Killed: exists(filepath.Join(dir, killedFile))}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Signal = SignalName(ws.Signal())
		} else {
			r.ExitCode = ps.ExitCode()
		}
	} else {
		r.Err = fmt.Sprintf("wait for the job: %v", werr)
	}
	return writeJSON(filepath.Join(dir, resultFile), r)
}

// startJob opens the job's output files and starts it, in its cgroup
// when the plan gives one and it can be made; it returns the cgroup the
// job is in ("" = none).
func startJob(pl *plan, logger *log.Logger) (*exec.Cmd, string, error) {
	stdout, err := openOutput(pl.Stdout, pl.Truncate)
	if err != nil {
		return nil, "", err
	}
	defer stdout.Close()
	stderr := stdout
	if pl.Stderr != pl.Stdout {
		if stderr, err = openOutput(pl.Stderr, pl.Truncate); err != nil {
			return nil, "", err
		}
		defer stderr.Close()
	}
	newCmd := func(cgroupFD int) *exec.Cmd {
		return &exec.Cmd{Path: pl.Argv[0], Args: pl.Argv, Dir: pl.Dir, Env: pl.Env,
			Stdout: stdout, Stderr: stderr, SysProcAttr: jobAttr(cgroupFD)}
	}
	if pl.Cgroup == nil {
		cmd := newCmd(-1)
		if err := cmd.Start(); err != nil {
			return nil, "", fmt.Errorf("start %s: %w", pl.Argv[0], err)
		}
		return cmd, "", nil
	}
	if err := createJobCgroup(*pl.Cgroup); err != nil {
		logger.Printf("the job runs without limits: %v", err)
		cmd := newCmd(-1)
		if err := cmd.Start(); err != nil {
			return nil, "", fmt.Errorf("start %s: %w", pl.Argv[0], err)
		}
		return cmd, "", nil
	}
	cg := pl.Cgroup.Dir
	fd, err := syscall.Open(cg, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err == nil {
		cmd := newCmd(fd)
		err = cmd.Start()
		_ = syscall.Close(fd)
		if err == nil {
			return cmd, cg, nil
		}
	}
	// No clone3 into a cgroup (before Linux 5.7, or a sandbox): start,
	// then move the job, which may have forked in between.
	cmd := newCmd(-1)
	if err := cmd.Start(); err != nil {
		_ = removeJobCgroup(cg, time.Second)
		return nil, "", fmt.Errorf("start %s: %w", pl.Argv[0], err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o644); err != nil {
		logger.Printf("the job runs without limits: move it into %s: %v", cg, err)
		_ = removeJobCgroup(cg, time.Second)
		return cmd, "", nil
	}
	return cmd, cg, nil
}

// openOutput opens a job's output file for appending, created 0640, and
// emptied first when truncate is set.
func openOutput(path string, truncate bool) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o640)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("output file %s: its directory does not exist on this node: create it or change the job's output path", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open output file: %w", err)
	}
	return f, nil
}
