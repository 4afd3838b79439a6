package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// syncBuffer is a bytes.Buffer that a command and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startUp runs usine up until the returned stop is called, and waits for
// its banner; it returns the API URL and token the banner shows.
func startUp(t *testing.T, args ...string) (url, token string, out *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	var errs syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, append([]string{"usine", "up"}, args...), out, &errs) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	re := regexp.MustCompile(`export USINE_SERVER=(\S+) USINE_TOKEN=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], out, stop
		}
		select {
		case err := <-done:
			t.Fatalf("usine up stopped: %v\n%s\n%s", err, out.String(), errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("usine up printed no banner within 30s:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpRunsAFactoryAndResumesIt(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	work := t.TempDir()
	ctx := context.Background()
	url, token, out, stop := startUp(t, "--emulate", "2x4xH100", "--data", data, "--listen", "127.0.0.1:0", "--grace", "500ms", "--log-format", "text")
	for _, want := range []string{"2 node(s) × 4 H100 (emulated)", "usine submit -N 2", "admin.token"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, out.String())
		}
	}
	c := &api.Client{BaseURL: url, Token: token}
	gang := api.JobSpec{Project: "default", Nodes: 2, AcceleratorsPerNode: 4, Limit: 60,
		Task: model.Task{WorkDir: work, Script: "#!/bin/sh\necho rank $NODE_RANK of $WORLD_SIZE on $USINE_NODE\n"}}
	jobs, err := c.Submit(ctx, gang)
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, c, jobs[0].ID, func(j store.Job) bool { return j.State.Final() })
	if done.State != model.JobCompleted {
		t.Fatalf("the gang ended %s (%s)", done.State, done.Reason)
	}
	long := api.JobSpec{Project: "default", Accelerators: 1, Limit: 60,
		Task: model.Task{WorkDir: work, Script: "#!/bin/sh\necho $USINE_JOB_EPOCH >> long\nwhile [ ! -e gate ]; do sleep 0.02; done\n"}}
	if jobs, err = c.Submit(ctx, long); err != nil {
		t.Fatal(err)
	}
	longID := jobs[0].ID
	waitJob(t, c, longID, func(j store.Job) bool { return j.State == model.JobRunning })
	if err := stop(); err != nil {
		t.Fatalf("usine up after Ctrl-C: %v", err)
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("usine up did not say it stopped:\n%s", out.String())
	}

	// The same data directory, no flags: the same factory.
	url2, token2, out2, stop2 := startUp(t, "--data", data, "--listen", "127.0.0.1:0", "--grace", "500ms", "--log-format", "text")
	if token2 != token {
		t.Errorf("the resumed factory shows admin token %q; want the first one", token2)
	}
	if !strings.Contains(out2.String(), "2 node(s) × 4 H100 (emulated)") {
		t.Errorf("the resumed factory is not the emulated one:\n%s", out2.String())
	}
	c = &api.Client{BaseURL: url2, Token: token}
	if j, err := c.Job(ctx, done.ID); err != nil || j.State != model.JobCompleted {
		t.Errorf("the first job after resuming: %v, %v; want completed", j.State, err)
	}
	if err := os.WriteFile(filepath.Join(work, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, longID, func(j store.Job) bool { return j.State.Final() })
	if j.State != model.JobCompleted || j.Epoch != 1 {
		t.Errorf("the job that ran across the restart ended %s (%s) in epoch %d; want completed in epoch 1", j.State, j.Reason, j.Epoch)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "long")); string(b) != "1\n" {
		t.Errorf("the long job started %q; want once, in epoch 1", b)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ emulate, want string }{
		{"4x", "4x8xH100"},
		{"4xFoo9", "not in the built-in table"},
	} {
		if _, errs, code := run(t, "up", "--emulate", tc.emulate, "--data", t.TempDir()); code != ExitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("--emulate %s: exit %d, %s; want %d and %q", tc.emulate, code, errs, ExitUsage, tc.want)
		}
	}
}

func waitJob(t *testing.T, c *api.Client, id string, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within 30s; last %+v, %v", id, j, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSimLoadRescalesArrivals(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.csv")
	out, errs, code := run(t, "trace", "gen", "--cluster", "laptop", "--jobs", "400", "--seed", "2", "--load", "0.3")
	if code != ExitOK {
		t.Fatalf("trace gen: %s", errs)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	queue := func(load string) float64 {
		t.Helper()
		out, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--policy", "easy", "--json", "--load", load)
		if code != ExitOK {
			t.Fatalf("sim --load %s: exit %d: %s", load, code, errs)
		}
		if !strings.Contains(errs, "arrivals rescaled") {
			t.Errorf("sim --load %s does not say it rescaled arrivals: %s", load, errs)
		}
		var res struct {
			Policies []struct {
				AvgQueue float64 `json:"avg_queue_s"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Policies) != 1 {
			t.Fatalf("sim --json: %v\n%s", err, out)
		}
		return res.Policies[0].AvgQueue
	}
	light, heavy := queue("0.2"), queue("1.5")
	if !(heavy > light) {
		t.Errorf("average queueing delay at load 1.5 (%v s) is not above that at load 0.2 (%v s)", heavy, light)
	}
	if _, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--load", "-1"); code != ExitUsage || !strings.Contains(errs, "--load") {
		t.Errorf("a negative load: exit %d, %s", code, errs)
	}
}

// TestTheCommandsUpPrintsWork runs the commands of usine up's banner as a
// user would paste them: the export line, each usine submit, then queue,
// nodes and logs -f; then usine logs with the connection saved by usine
// login, as the other client commands find it. It changes the environment
// and the working directory, so it does not run in parallel.
func TestTheCommandsUpPrintsWork(t *testing.T) {
	isolate(t)
	work := t.TempDir()
	t.Chdir(work) // jobs run where they were submitted from
	_, _, out, _ := startUp(t, "--emulate", "2x4xH100", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--grace", "500ms", "--log-format", "text")
	var submits [][]string
	var rest []string
	for line := range strings.SplitSeq(out.String(), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export "):
			for _, kv := range shellWords(t, strings.TrimPrefix(line, "export ")) {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
		case strings.HasPrefix(line, "usine submit "):
			submits = append(submits, shellWords(t, line))
		case strings.HasPrefix(line, "usine queue"):
			rest = strings.Split(line, "; ")
		}
	}
	if len(submits) != 3 || len(rest) != 3 || os.Getenv("USINE_TOKEN") == "" {
		t.Fatalf("the banner shows %d submit commands, %d others and token %q; want 3, 3 and one:\n%s", len(submits), len(rest), os.Getenv("USINE_TOKEN"), out)
	}
	c := &api.Client{BaseURL: os.Getenv("USINE_SERVER"), Token: os.Getenv("USINE_TOKEN")}
	submitted := regexp.MustCompile(`^Submitted (?:job (\d+)|array job \d+: 8 jobs (\d+)-(\d+))\n$`)
	var ids []string
	for _, words := range submits {
		stdout := runCLI(t, words[1:]...).ok(t)
		m := submitted.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("%s printed %q", strings.Join(words, " "), stdout)
		}
		ids = append(ids, m[1]+m[2])
	}
	var outputs []string
	for _, id := range ids {
		if j := waitJob(t, c, id, func(j store.Job) bool { return j.State.Final() }); j.State != model.JobCompleted {
			t.Fatalf("job %s of the banner ended %s (%s)", id, j.State, j.Reason)
		}
		b, err := os.ReadFile(filepath.Join(work, "usine-"+id+".out"))
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	wants := []*regexp.Regexp{
		regexp.MustCompile(`^hello from node00[12], accelerators 0\n$`),
		regexp.MustCompile(`^rank 0 of 2, master 127\.0\.0\.1:\d+\n$`),
		regexp.MustCompile(`^element 0\n$`),
	}
	for i, re := range wants {
		if !re.MatchString(outputs[i]) {
			t.Errorf("%s wrote %q; want %s", strings.Join(submits[i], " "), outputs[i], re)
		}
	}
	for _, line := range rest {
		line = strings.Replace(line, "JOB", ids[0], 1)
		stdout := runCLI(t, shellWords(t, line)[1:]...).ok(t)
		if strings.HasPrefix(line, "usine logs") && stdout != outputs[0] {
			t.Errorf("%s printed %q; want the job's output %q", line, stdout, outputs[0])
		}
	}

	// usine logs finds the server and token as the other commands do.
	server, token := os.Getenv("USINE_SERVER"), os.Getenv("USINE_TOKEN")
	t.Setenv("USINE_SERVER", "")
	t.Setenv("USINE_TOKEN", "")
	if r := runCLI(t, "logs", "--server", server, "--token", "usine_wrong", ids[0]); r.code != ExitDenied {
		t.Errorf("usine logs with a bad token: exit %d (%s); want %d", r.code, r.stderr, ExitDenied)
	}
	if r := runCLI(t, "logs", "--server", server, ids[0]); r.code != ExitDenied || !strings.Contains(r.stderr, "usine login") {
		t.Errorf("usine logs without a token: exit %d (%s); want %d and how to log in", r.code, r.stderr, ExitDenied)
	}
	runCLI(t, "login", "--server", server, "--token", token).ok(t)
	if got := runCLI(t, "logs", ids[0]).ok(t); got != outputs[0] {
		t.Errorf("usine logs with the saved connection printed %q; want %q", got, outputs[0])
	}
}

// shellWords splits a command line as sh would, for the little the
// banner uses: words, and single-quoted strings. Anything else a shell
// would read differently fails the test.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '\'':
			quoted, in = true, true
		case c == ' ':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case strings.IndexByte("\"\\$`;&|<>()*?[]#~", c) >= 0:
			t.Fatalf("the banner's %q has %q outside quotes, which a shell would interpret", line, c)
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if quoted {
		t.Fatalf("the banner's %q has an unclosed quote", line)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}
