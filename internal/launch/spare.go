package launch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
)

// spareDir stands for the job's directory on a spare supervisor's command
// line: it learns the directory from its go-ahead.
const spareDir = "-"

// Spares keeps one supervisor started ahead of need. A supervisor is this
// whole binary started again, and on a loaded node that takes tens of
// milliseconds, all of them between the start decision and the job's first
// instruction; a spare takes them before. Start takes the spare and starts
// the next one in the background. A spare that no launch takes ends with
// this process, or at Close: its go-ahead pipe closes and it starts
// nothing. One Spares may serve every Launcher of a process (usine up's
// emulated nodes), which bounds the idle processes to one.
type Spares struct {
	argv []string

	mu       sync.Mutex
	ready    *spare
	starting bool
	closed   bool
}

// spare is a started supervisor waiting for a job.
type spare struct {
	cmd *exec.Cmd
	hr  *os.File // our end of its handshake pipe
	gw  *os.File // our end of its go-ahead pipe
}

// NewSpares makes a Spares for supervisors run by the command supervisor
// (nil = this executable with SupervisorArg). The first Launcher given it
// starts the first spare, once it has moved this process into its leaf
// cgroup: a child started before would stay behind in the agent's
// cgroup, which could then hand no controllers down to jobs.
func NewSpares(supervisor []string) (*Spares, error) {
	if len(supervisor) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this executable to run supervisors with: %w", err)
		}
		supervisor = []string{exe, SupervisorArg}
	}
	return &Spares{argv: append(slices.Clone(supervisor), spareDir)}, nil
}

// take returns the spare, if one is ready, and starts the next.
func (s *Spares) take() *spare {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	sp := s.ready
	s.ready = nil
	s.mu.Unlock()
	go s.fill()
	return sp
}

// fill starts a spare unless one is ready or starting.
func (s *Spares) fill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed || s.ready != nil || s.starting {
		s.mu.Unlock()
		return
	}
	s.starting = true
	s.mu.Unlock()
	cmd, hr, gw, err := startSupervisor(s.argv, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starting = false
	switch {
	case err != nil:
		return // the next take starts one afresh, and says why it cannot
	case s.closed:
		release(&spare{cmd, hr, gw})
	default:
		s.ready = &spare{cmd, hr, gw}
	}
}

// Close ends the spare supervisor, if any, and starts no more: launches
// then start their own.
func (s *Spares) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ready != nil {
		release(s.ready)
		s.ready = nil
	}
	return nil
}

// release lets a spare go: its go-ahead pipe closes, it ends without
// starting anything, and is reaped.
func release(sp *spare) {
	sp.gw.Close()
	sp.hr.Close()
	go func() { _ = sp.cmd.Wait() }()
}

// readGoAhead reads a spare's go-ahead, "g" and the job's directory on
// one line; errNoJob when the pipe closes first.
func readGoAhead(r *os.File) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 0 || err != nil {
			if len(b) == 0 {
				return "", errNoJob
			}
			return "", errors.New("the go-ahead was cut short")
		}
		if one[0] == '\n' {
			break
		}
		b = append(b, one[0])
	}
	if len(b) < 2 || b[0] != 'g' {
		return "", fmt.Errorf("bad go-ahead %q", b)
	}
	return string(b[1:]), nil
}

// errNoJob: a spare's launcher let it go.
var errNoJob = errors.New("no job for this spare supervisor")
