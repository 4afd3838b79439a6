package launch

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ErrAlreadyLaunched is returned by Start for a job, epoch and rank that
// this node launched before: a run is never started twice.
var ErrAlreadyLaunched = errors.New("already launched on this node")

// Config is how a Launcher works.
type Config struct {
	// StateDir holds a directory per job; it must survive the agent's
	// restarts (not a tmpfs cleaned at boot matters less: jobs do not
	// survive a reboot).
	StateDir string
	// Supervisor is the command that runs a supervisor, the job's
	// directory appended; nil = this executable with SupervisorArg.
	Supervisor []string
	// CgroupRoot is the cgroup v2 mount ("" = /sys/fs/cgroup); NoCgroup
	// turns limits off.
	CgroupRoot string
	NoCgroup   bool
	// Poll is how often jobs that are not our children (adopted, or lost
	// by their supervisor) are checked; 0 = 250 ms.
	Poll time.Duration
	// Spares, when set, keeps a supervisor started ahead of need, so
	// that a launch does not wait for it to start; one may serve every
	// Launcher of a process. nil = each launch starts its own.
	Spares *Spares
}

// Launcher starts jobs and finds them again. Its methods are safe for
// concurrent use.
type Launcher struct {
	jobs       string // StateDir/jobs
	supervisor []string
	poll       time.Duration
	caps       Capabilities
	spares     *Spares
}

// New makes a Launcher, creating its state directory, and finds out
// whether jobs can have cgroup limits here (moving this process into a
// leaf cgroup when they can: see probeCgroup).
func New(cfg Config) (*Launcher, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("the launcher has no state directory: give it one that survives the agent's restarts")
	}
	l := &Launcher{jobs: filepath.Join(cfg.StateDir, "jobs"), supervisor: cfg.Supervisor, poll: cmp.Or(cfg.Poll, 250*time.Millisecond), spares: cfg.Spares}
	if err := os.MkdirAll(l.jobs, 0o700); err != nil {
		return nil, fmt.Errorf("create the launcher's state directory: %w", err)
	}
	if len(l.supervisor) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this executable to run supervisors with: %w", err)
		}
		l.supervisor = []string{exe, SupervisorArg}
	}
	switch {
	case cfg.NoCgroup:
		l.caps.CgroupReason = "turned off in the agent's configuration"
	case !cgroupsSupported:
		l.caps.CgroupReason = "this operating system has no cgroups"
	default:
		root := cmp.Or(cfg.CgroupRoot, "/sys/fs/cgroup")
		procSelf, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			l.caps.CgroupReason = "read /proc/self/cgroup: " + err.Error()
			break
		}
		if dir, err := probeCgroup(root, procSelf, os.Getpid()); err != nil {
			l.caps.CgroupReason = err.Error()
		} else {
			l.caps.Cgroup, l.caps.CgroupDir = true, dir
		}
	}
	go l.spares.fill() // after the probe: see NewSpares
	return l, nil
}

// Capabilities says what this host lets the launcher do; the agent logs
// its String once.
func (l *Launcher) Capabilities() Capabilities { return l.caps }

// Start starts a job and returns once it runs, or says why it cannot:
// a bad spec, a missing working directory, interpreter or output
// directory, ErrAlreadyLaunched. Nothing is left behind when it fails;
// when ctx ends first, the launch is undone.
func (l *Launcher) Start(ctx context.Context, s Spec) (*Proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}
	env := s.environ(os.LookupEnv)
	work, err := s.workDir(env["HOME"])
	if err != nil {
		return nil, err
	}
	stdout, stderr := s.outputs(work)
	dir := filepath.Join(l.jobs, s.key())
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("launch job %s epoch %d rank %d: %w (its state is in %s)", s.JobID, s.Epoch, s.NodeRank, ErrAlreadyLaunched, dir)
	} else if err != nil {
		return nil, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}
	p, err := l.start(ctx, &s, dir, work, env, stdout, stderr)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (l *Launcher) start(ctx context.Context, s *Spec, dir, work string, env map[string]string, stdout, stderr string) (*Proc, error) {
	script := filepath.Join(dir, scriptFile)
	if s.Task.Script != "" {
		if err := os.WriteFile(script, []byte(s.Task.Script), 0o700); err != nil {
			return nil, fmt.Errorf("write the script of job %s: %w", s.JobID, err)
		}
	}
	argv, err := s.argv(script, work, env)
	if err != nil {
		return nil, err
	}
	pl := plan{JobID: s.JobID, Epoch: s.Epoch, Rank: s.NodeRank, Argv: argv, Dir: work, Env: environList(env),
		Stdout: stdout, Stderr: stderr, Truncate: s.truncateOutputs(), LimitMs: s.Limit.Milliseconds(), GraceMs: s.grace().Milliseconds()}
	if s.Task.SignalBefore > 0 {
		sig, _ := ParseSignal(cmp.Or(s.Task.Signal, "TERM")) // checked
		pl.Signal, pl.SignalBeforeMs = int(sig), s.Task.SignalBefore*1000
	}
	if l.caps.Cgroup && (s.CPUs > 0 || s.MemoryMiB > 0) {
		pl.Cgroup = &cgroupPlan{Dir: filepath.Join(l.caps.CgroupDir, jobCgroupPre+s.key()), CPUs: s.CPUs, MemoryMiB: s.MemoryMiB}
	}
	if err := writeLive(filepath.Join(dir, planFile), pl); err != nil {
		return nil, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}

	cmd, hr, spare, err := l.supervise(s, dir, true)
	if err != nil {
		return nil, err
	}
	a, err := awaitHandshake(ctx, cmd, hr, dir)
	if err != nil {
		return nil, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}
	if st, _ := loadState(dir); spare && a.err != nil && st.Job.Pid == 0 {
		// The spare died between its go-ahead and the job's start (killed
		// by hand?): once more, with a supervisor of our own.
		_ = cmd.Wait()
		if cmd, hr, _, err = l.supervise(s, dir, false); err != nil {
			return nil, err
		}
		if a, err = awaitHandshake(ctx, cmd, hr, dir); err != nil {
			return nil, fmt.Errorf("launch job %s: %w", s.JobID, err)
		}
	}
	if h := a.h; a.err != nil || h.Error != "" || h.Pid <= 0 {
		_ = cmd.Wait()
		if h.Error != "" {
			return nil, fmt.Errorf("launch job %s: %s", s.JobID, h.Error)
		}
		return nil, fmt.Errorf("launch job %s: its supervisor (%s) ended without starting it, saying %q: does the binary run %s by calling launch.Supervise?",
			s.JobID, strings.Join(cmd.Args, " "), lastLines(readString(filepath.Join(dir, logFile)), 5), SupervisorArg)
	}
	st, err := loadState(dir)
	if err != nil || st.Job.Pid == 0 {
		// The supervisor wrote it before it answered: this is a bug.
		_ = syscall.Kill(-a.h.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, fmt.Errorf("launch job %s: its supervisor answered without recording the job: %v", s.JobID, err)
	}
	p := newProc(dir, pl, st, l.poll, false)
	go p.watch(func() { _ = cmd.Wait() })
	return p, nil
}

// answer is a supervisor's handshake, or why none came.
type answer struct {
	h   handshake
	err error
}

// awaitHandshake reads the supervisor's answer, and closes hr. When ctx
// ends first, it undoes the launch (the supervisor, then anything it
// started) and returns ctx's error.
func awaitHandshake(ctx context.Context, cmd *exec.Cmd, hr *os.File, dir string) (answer, error) {
	answered := make(chan answer, 1)
	go func() {
		defer hr.Close()
		var a answer
		line, err := bufio.NewReader(hr).ReadBytes('\n')
		if a.err = err; err == nil {
			a.err = json.Unmarshal(line, &a.h)
		}
		answered <- a
	}()
	select {
	case a := <-answered:
		return a, nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if st, err := loadState(dir); err == nil && st.Job.Pid > 0 {
			_ = syscall.Kill(-st.Job.Pid, syscall.SIGKILL)
		}
		return answer{}, ctx.Err()
	}
}

// supervise starts the job's supervisor, or takes a spare one when
// spareOK, records it in dir, and gives it the go-ahead; it returns the
// supervisor, our end of its handshake pipe, and whether it was a spare.
func (l *Launcher) supervise(s *Spec, dir string, spareOK bool) (*exec.Cmd, *os.File, bool, error) {
	if spareOK {
		if sp := l.spares.take(); sp != nil {
			if err := goAhead(sp.cmd, sp.gw, dir, "g"+dir+"\n"); err == nil {
				return sp.cmd, sp.hr, true, nil
			}
			// It died while it waited (killed by hand?): start one afresh.
			sp.hr.Close()
		}
	}
	log, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, false, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}
	defer log.Close()
	cmd, hr, gw, err := startSupervisor(append(slices.Clone(l.supervisor), dir), log)
	if err != nil {
		return nil, nil, false, fmt.Errorf("launch job %s: %w", s.JobID, err)
	}
	if err := goAhead(cmd, gw, dir, "g"); err != nil {
		hr.Close()
		return nil, nil, false, fmt.Errorf("launch job %s: %w: does the binary run %s by calling launch.Supervise? %s",
			s.JobID, err, SupervisorArg, lastLines(readString(filepath.Join(dir, logFile)), 5))
	}
	return cmd, hr, false, nil
}

// startSupervisor starts args with out as its output, in a session of
// its own, so that neither a terminal's Ctrl-C nor the agent's end
// reaches it; it returns our ends of its handshake and go-ahead pipes.
func startSupervisor(args []string, out *os.File) (cmd *exec.Cmd, hr, gw *os.File, err error) {
	hr, hw, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	gr, gw, err := os.Pipe()
	if err != nil {
		hr.Close()
		hw.Close()
		return nil, nil, nil, err
	}
	cmd = &exec.Cmd{Path: args[0], Args: args, ExtraFiles: []*os.File{hw, gr}, SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err = cmd.Start()
	hw.Close()
	gr.Close()
	if err != nil {
		hr.Close()
		gw.Close()
		return nil, nil, nil, fmt.Errorf("start its supervisor %s: %w", args[0], err)
	}
	return cmd, hr, gw, nil
}

// goAhead records the supervisor in dir, then lets it start the job with
// msg, and closes gw. Recorded first: if we die in between, a restarted
// agent finds it, or it finds the go-ahead pipe closed and starts
// nothing. On failure the supervisor is killed and reaped.
func goAhead(cmd *exec.Cmd, gw *os.File, dir, msg string) error {
	defer gw.Close()
	if err := writeLive(filepath.Join(dir, supervisorFile), identify(cmd.Process.Pid)); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	if _, err := gw.Write([]byte(msg)); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("its supervisor (%s) ended at once", strings.Join(cmd.Args, " "))
	}
	return nil
}

// readString is a small file's content; "" when it cannot be read.
func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// lastLines is the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Recover finds every job this node's state directory knows, for an
// agent that starts: those that still run, adopted (Signal, Kill and
// Wait work on them as on jobs Start returned), and those that ended
// while no agent watched, with how they ended. Jobs stay known until
// Forget. A job directory that cannot be read is reported in the error,
// joined, and the others are still returned. Call it when the agent
// starts, before any Start on the same state directory.
func (l *Launcher) Recover(ctx context.Context) ([]*Proc, error) {
	entries, err := os.ReadDir(l.jobs)
	if err != nil {
		return nil, fmt.Errorf("recover jobs: %w", err)
	}
	var procs []*Proc
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return procs, err
		}
		if !e.IsDir() {
			continue
		}
		p, err := l.recover(filepath.Join(l.jobs, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		procs = append(procs, p)
	}
	return procs, errors.Join(errs...)
}

func (l *Launcher) recover(dir string) (*Proc, error) {
	var pl plan
	if err := readJSON(filepath.Join(dir, planFile), &pl); err != nil {
		return nil, fmt.Errorf("recover job in %s: %w; remove the directory if no such job runs", dir, err)
	}
	var r Result
	if err := readJSON(filepath.Join(dir, resultFile), &r); err == nil {
		st, _ := loadState(dir)
		p := newProc(dir, pl, st, l.poll, true)
		p.finish(r)
		return p, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("recover job %s: %w", pl.JobID, err)
	}
	st, err := loadState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// The agent died before it recorded the supervisor, which then
		// found its go-ahead pipe closed and started nothing.
		p := newProc(dir, pl, st, l.poll, true)
		p.end(Result{ExitCode: -1, Err: interrupted, End: time.Now()})
		return p, nil
	} else if err != nil {
		return nil, fmt.Errorf("recover job %s: %w", pl.JobID, err)
	}
	p := newProc(dir, pl, st, l.poll, true)
	go p.watch(func() {
		for alive(st.Supervisor) {
			time.Sleep(l.poll)
		}
	})
	return p, nil
}

// interrupted is the error of a launch that never started its job.
const interrupted = "the launch was interrupted before the job started: the agent stopped"
