package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runKey names one rank of one run of a job: what is launched at most once.
type runKey struct {
	Job   string
	Epoch int64
	Rank  int
}

func (k runKey) String() string { return fmt.Sprintf("%s.%d.%d", k.Job, k.Epoch, k.Rank) }

// record is what the agent keeps of a run on disk, written before the
// process starts: its existence is the promise never to launch it again.
// The process itself (its supervisor, its exit status) is
// internal/launch's to find again, under the same state directory.
type record struct {
	Job      string `json:"job"`
	Epoch    int64  `json:"epoch"`
	Rank     int    `json:"rank"`
	Devices  []int  `json:"devices,omitempty"`
	Deadline int64  `json:"deadline"`
	Stdout   string `json:"stdout,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	Start    int64  `json:"start,omitempty"` // Unix milliseconds
	// StopSignal is the signal the job asked to be stopped with ("" =
	// TERM), kept for runs adopted after a restart.
	StopSignal string `json:"stop_signal,omitempty"`
	// StepSignal is a batch job's signal for its steps' tasks (Slurm's
	// --signal without B:): sent to them first when the run is stopped.
	StepSignal string `json:"step_signal,omitempty"`

	Ended    bool   `json:"ended,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Killed   bool   `json:"killed,omitempty"`
	Error    string `json:"error,omitempty"`
	End      int64  `json:"end,omitempty"` // Unix milliseconds
	// EnergyJ is the run's accelerator energy, joules, when it was
	// metered (power.go); kept so that a report sent after an agent
	// restart still carries it.
	EnergyJ float64 `json:"energy_j,omitempty"`
	// Reported is set once the server acknowledged the end.
	Reported bool `json:"reported,omitempty"`
	// Signals are the sequence numbers of the signal orders carried out.
	Signals []int64 `json:"signals,omitempty"`
}

func (r *record) key() runKey { return runKey{r.Job, r.Epoch, r.Rank} }

// stateDir keeps one JSON file per run under dir/runs.
type stateDir struct{ dir string }

func openState(dir string) (*stateDir, error) {
	if dir == "" {
		return nil, errors.New("no state directory: give the agent one (--state DIR); it remembers what it launched there")
	}
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	return &stateDir{dir: dir}, nil
}

func (s *stateDir) path(k runKey) string {
	return filepath.Join(s.dir, "runs", safeName(k.Job)+"."+strconv.FormatInt(k.Epoch, 10)+"."+strconv.Itoa(k.Rank)+".json")
}

// logDir is where runs whose job names no output file write it.
func (s *stateDir) logDir() string { return filepath.Join(s.dir, "logs") }

// logFile is the output file in logDir of run k, for what kind of output,
// made ready to be written.
func (s *stateDir) logFile(kind string, k runKey) string {
	_ = os.MkdirAll(s.logDir(), 0o700) // else launch refuses the output file, and says why
	return filepath.Join(s.logDir(), kind+"-"+safeName(k.Job)+"."+strconv.FormatInt(k.Epoch, 10)+"."+strconv.Itoa(k.Rank)+".out")
}

// safeName keeps a job ID usable as a file name whatever it holds.
func safeName(id string) string {
	var b strings.Builder
	for _, c := range id {
		if c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// save writes a record durably: a temporary file, fsync, rename.
func (s *stateDir) save(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run record %s: %w", r.key(), err)
	}
	p := s.path(r.key())
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save run record: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save run record %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save run record: %w", err)
	}
	return nil
}

func (s *stateDir) remove(k runKey) error {
	if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget run %s: %w", k, err)
	}
	return nil
}

// load reads every record; unreadable files are returned as errors and
// skipped, so that one bad file does not stop the node.
func (s *stateDir) load() ([]*record, []error) {
	dir := filepath.Join(s.dir, "runs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read state directory %s: %w", dir, err)}
	}
	var out []*record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("read run record: %w", err))
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			errs = append(errs, fmt.Errorf("run record %s is corrupt (%v); remove it if no such run lives", filepath.Join(dir, name), err))
			continue
		}
		out = append(out, &r)
	}
	return out, errs
}

func millis(t time.Time) int64 { return t.UnixMilli() }
