package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Errors of a Proc's methods.
var (
	// ErrEnded is returned by Signal for a job that has ended.
	ErrEnded = errors.New("the job has ended")
	// ErrRunning is returned by Forget for a job that still runs.
	ErrRunning = errors.New("the job still runs")
)

// Proc is one job on this node, started or adopted. Its methods are safe
// for concurrent use.
type Proc struct {
	dir     string
	plan    plan
	poll    time.Duration
	adopted bool
	done    chan struct{}

	mu     sync.Mutex
	state  state // use st()
	result Result
}

// st is the supervisor's record, read again from disk while it names no
// job yet: an agent that died while a supervisor was starting its job
// adopts it before the job runs.
func (p *Proc) st() state {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Job.Pid == 0 {
		if st, err := loadState(p.dir); err == nil {
			p.state = st
		}
	}
	return p.state
}

func newProc(dir string, pl plan, st state, poll time.Duration, adopted bool) *Proc {
	return &Proc{dir: dir, plan: pl, state: st, poll: poll, adopted: adopted, done: make(chan struct{})}
}

// JobID, Epoch and NodeRank name the run.
func (p *Proc) JobID() string { return p.plan.JobID }

// Epoch is the run's fencing epoch.
func (p *Proc) Epoch() int64 { return p.plan.Epoch }

// NodeRank is the node's rank in the job's gang.
func (p *Proc) NodeRank() int { return p.plan.Rank }

// Stdout and Stderr are the job's output files (the same when merged).
func (p *Proc) Stdout() string { return p.plan.Stdout }

// Stderr is the job's error output file.
func (p *Proc) Stderr() string { return p.plan.Stderr }

// Pid is the job's process ID, which is also its process group's; 0 if
// the job never started.
func (p *Proc) Pid() int { return p.st().Job.Pid }

// Started is when the job started; zero if it never did.
func (p *Proc) Started() time.Time {
	if ms := p.st().Start; ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Deadline is when the time limit strikes; zero without one.
func (p *Proc) Deadline() time.Time {
	if ms := p.st().Deadline; ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Cgroup is the job's cgroup directory, "" when it has none.
func (p *Proc) Cgroup() string { return p.st().Cgroup }

// Adopted is true for a Proc that Recover returned.
func (p *Proc) Adopted() bool { return p.adopted }

// Done is closed when the job has ended and its Result is known.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Result is how the job ended, once Done is closed.
func (p *Proc) Result() (Result, bool) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.result, true
	default:
		return Result{}, false
	}
}

// Wait waits for the job's end, or for ctx.
func (p *Proc) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
		r, _ := p.Result()
		return r, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Signal sends sig to the job's whole process group: cancel --signal,
// preemption's warning. It returns ErrEnded once the job has ended.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return ErrEnded
	default:
	}
	// The group's ID is the job leader's, which cannot be reused while its
	// supervisor, its parent, has not reaped it; without a supervisor,
	// while the leader lives.
	st := p.st()
	if st.Job.Pid == 0 && alive(st.Supervisor) {
		return fmt.Errorf("signal job %s: its supervisor is still starting it; try again", p.plan.JobID)
	}
	if pid := st.Job.Pid; pid > 0 && (alive(st.Supervisor) || alive(st.Job)) {
		if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("send SIG%s to job %s (process group %d): %w", SignalName(sig), p.plan.JobID, pid, err)
		}
		return nil
	}
	return ErrEnded
}

// Kill stops the job: SIGTERM to its process group, then SIGKILL if it
// still runs after grace. It returns the job's result once it has ended
// (Killed set), or ctx's error. Kill on an ended job returns its result.
func (p *Proc) Kill(ctx context.Context, grace time.Duration) (Result, error) {
	return p.Stop(ctx, syscall.SIGTERM, grace)
}

// Stop is Kill with the signal the job asked to be stopped with (a
// preempted or cancelled job's --signal, so that it can checkpoint)
// instead of SIGTERM.
func (p *Proc) Stop(ctx context.Context, sig syscall.Signal, grace time.Duration) (Result, error) {
	if r, ok := p.Result(); ok {
		return r, nil
	}
	// Marked first, so that the supervisor's result says who killed it.
	if err := os.WriteFile(filepath.Join(p.dir, killedFile), nil, 0o600); err != nil {
		return Result{}, fmt.Errorf("kill job %s: %w", p.plan.JobID, err)
	}
	if err := p.Signal(sig); err != nil && !errors.Is(err, ErrEnded) {
		return Result{}, fmt.Errorf("kill job %s: %w", p.plan.JobID, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-t.C:
		if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, ErrEnded) {
			return Result{}, fmt.Errorf("kill job %s: %w", p.plan.JobID, err)
		}
	}
	return p.Wait(ctx)
}

// Forget removes the job's directory once the agent no longer needs its
// result (the server has it); Recover will not return it again. It
// returns ErrRunning while the job runs.
func (p *Proc) Forget() error {
	select {
	case <-p.done:
	default:
		return fmt.Errorf("forget job %s: %w", p.plan.JobID, ErrRunning)
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("forget job %s: %w", p.plan.JobID, err)
	}
	return nil
}

// Follow copies the job's standard output from offset to w, then what is
// appended to it, until the job ends or ctx does: see Follow.
func (p *Proc) Follow(ctx context.Context, offset int64, w io.Writer) (int64, error) {
	return Follow(ctx, p.plan.Stdout, offset, w, p.done)
}

// watch waits for the supervisor with waitSupervisor, then takes the
// result it wrote. A supervisor that ended without one (killed by hand,
// crashed) may have left the job running: that is watched to its end,
// and the result says the exit status is unknown.
func (p *Proc) watch(waitSupervisor func()) {
	waitSupervisor()
	var r Result
	if err := readJSON(filepath.Join(p.dir, resultFile), &r); err == nil {
		p.finish(r)
		return
	}
	st := p.st()
	if st.Job.Pid == 0 {
		p.end(Result{ExitCode: -1, Err: interrupted, End: time.Now()})
		return
	}
	for alive(st.Job) {
		time.Sleep(p.poll)
	}
	p.end(Result{ExitCode: -1, Err: "the job's supervisor ended without recording how the job ended; its exit status is unknown",
		Start: p.Started(), End: time.Now(), Killed: exists(filepath.Join(p.dir, killedFile))})
}

// end records a result the supervisor could not, so that the next
// Recover finds it too, and finishes.
func (p *Proc) end(r Result) {
	_ = writeJSON(filepath.Join(p.dir, resultFile), r) // best effort: the job's directory may be gone
	p.finish(r)
}

func (p *Proc) finish(r Result) {
	p.mu.Lock()
	p.result = r
	p.mu.Unlock()
	close(p.done)
}
