package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
)

// Outside a job, srun does as Slurm's does: it asks for an allocation
// with the options it was given, runs the step in it, prints the tasks'
// output as it comes and ends as the step did. usine makes that a batch
// job whose script is the same srun, run inside the allocation.

// srunJobOptions say, outside a job, what allocation to ask for; sbatch
// reads them as srun gives them.
var srunJobOptions = []string{"nodes", "ntasks", "ntasks-per-node", "cpus-per-task", "gpus-per-task", "gres", "gpus",
	"gpus-per-node", "mem", "mem-per-cpu", "mem-per-gpu", "cpus-per-gpu", "time", "job-name", "partition", "account",
	"qos", "constraint", "exclusive", "chdir"}

// srunStepOptions go on to the srun that runs the step in the allocation.
var srunStepOptions = []string{"ntasks", "ntasks-per-node", "cpus-per-task", "gpus-per-task", "label", "kill-on-bad-exit", "export"}

// srunJob runs srun's step in an allocation of its own, argv being the
// command. env is srun's environment.
func srunJob(ctx context.Context, fs *pflag.FlagSet, argv []string, env map[string]string, stdout, stderr io.Writer) error {
	if fs.Changed("nodelist") {
		return slurmFail(stderr, "srun", 1, "-w/--nodelist: usine places jobs itself; ask for a partition (-p) or an accelerator model (-C) instead")
	}
	words := []string{"--parsable"}
	if !fs.Changed("job-name") {
		words = append(words, "--job-name="+filepath.Base(argv[0]))
	}
	inner := []string{srunPath()}
	for _, o := range []struct {
		names []string
		to    *[]string
	}{{srunJobOptions, &words}, {srunStepOptions, &inner}} {
		for _, name := range o.names {
			if f := fs.Lookup(name); f != nil && f.Changed {
				if f.Value.Type() == "bool" {
					*o.to = append(*o.to, "--"+name)
				} else {
					*o.to = append(*o.to, "--"+name+"="+f.Value.String())
				}
			}
		}
	}
	inner = append(append(inner, "--"), argv...)
	words = append(words, "--wrap", "exec "+shellJoin(inner))

	// sbatch submits it; what it says is said as srun's.
	var id, said bytes.Buffer
	subEnv := maps.Clone(env)
	maps.DeleteFunc(subEnv, func(k, _ string) bool { return strings.HasPrefix(k, "SBATCH_") })
	err := sbatch(ctx, words, &id, &said, sbatchEnv{stdin: strings.NewReader(""), getenv: func() map[string]string { return subEnv }, now: time.Now, streamOutput: true})
	msg := strings.ReplaceAll(said.String(), "sbatch: error: Batch job submission failed: ", "srun: error: Unable to allocate resources: ")
	io.WriteString(stderr, strings.ReplaceAll(msg, "sbatch: ", "srun: "))
	if err != nil {
		return &reported{code: max(ExitCode(err), 1)}
	}
	c, err := slurmClient(stderr, "srun")
	if err != nil {
		return err
	}
	return srunFollow(ctx, c, strings.TrimSpace(id.String()), stdout, stderr)
}

// srunPath is how the job's script calls srun: by the path this one was
// run from when it names srun, so that a srun not on PATH works too.
func srunPath() string {
	if p, err := exec.LookPath(os.Args[0]); err == nil && filepath.Base(p) == "srun" {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return "srun"
}

// srunQuietWait is how long a job may wait before srun says it does.
const srunQuietWait = time.Second

// srunFollow prints job id's output from its start to its end, then ends
// as the job did. Interrupted, it cancels the job.
func srunFollow(ctx context.Context, c *api.Client, id string, stdout, stderr io.Writer) error {
	e := endpoint{server: c.BaseURL, serverFrom: "the srun connection", token: c.Token}
	out := &countWriter{w: stdout}
	// As Slurm's srun, it says that the job waits only when it does: when
	// the scheduler has not started it at once.
	queued, since := false, time.Now()
	epoch := int64(0) // the run whose output is being read: a requeued run writes afresh
	delay := 50 * time.Millisecond
	for {
		j, err := c.Job(ctx, id)
		if ctx.Err() != nil {
			return srunCancel(c, id, stderr)
		}
		if err != nil {
			return slurmFail(stderr, "srun", 1, "job %s: %v", id, err)
		}
		switch {
		case j.State == model.JobPending && !queued && time.Since(since) >= srunQuietWait:
			fmt.Fprintf(stderr, "srun: job %s queued and waiting for resources\n", id)
			queued = true
		case queued && j.Start > 0:
			fmt.Fprintf(stderr, "srun: job %s has been allocated resources\n", id)
			queued = false
		}
		if j.Epoch != epoch {
			epoch, out.n = j.Epoch, 0
		}
		if len(j.Alloc) > 0 {
			// Until the job ends, the stream follows it; after, it gives
			// what is left. A run its agent has not launched yet has no
			// output, and a stream that ends before the job does was cut
			// or saw the run end first: look again.
			err := printLogFrom(ctx, e, id, 0, !j.State.Final(), out.n, out)
			if ctx.Err() != nil {
				return srunCancel(c, id, stderr)
			}
			var ae *api.Error
			if err != nil && !(errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusConflict)) {
				if j.State.Final() {
					fmt.Fprintf(stderr, "srun: warning: the end of job %s's output could not be read: %v\n", id, err)
				} else {
					return slurmFail(stderr, "srun", 1, "job %s: %v (it goes on running: usine logs -f %s)", id, err, id)
				}
			}
		}
		if j.State.Final() {
			code := jobStatus(&j)
			if code != 0 && j.State != model.JobCompleted && j.State != model.JobFailed {
				fmt.Fprintf(stderr, "srun: error: job %s ended %s%s\n", id, strings.ToUpper(string(j.State)), endDetail(&j))
			}
			if code != 0 {
				return &reported{code: code}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return srunCancel(c, id, stderr)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// srunCancel cancels the job of an interrupted srun.
func srunCancel(c *api.Client, id string, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.JobAction(ctx, id, "cancel", nil); err != nil {
		return slurmFail(stderr, "srun", 1, "interrupted, but job %s could not be cancelled: %v; scancel %s", id, err, id)
	}
	fmt.Fprintf(stderr, "srun: interrupted: job %s cancelled\n", id)
	return &reported{code: 130}
}

// countWriter counts what it passes on.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// shellJoin quotes words for a POSIX shell, leaving plain ones as they are.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%") == "" {
			q[i] = w
		} else {
			q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
