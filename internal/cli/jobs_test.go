package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func TestSubmitQueueShowCancel(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "train.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n#SBATCH --gpus 8\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := f.admin("submit", "-N", "2", "--gpus-per-node", "8", "-c", "16", "--mem", "64G", "-t", "1-02:00:00", "-D", dir,
		"-e", "A=1", "-e", "B=two=2", "-o", "out.txt", "--signal", "USR1@120", "--requeue", "--qos", "high", script)
	out := r.ok(t)
	m := regexp.MustCompile(`^Submitted job (\S+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("submit printed %q; want Submitted job ID", out)
	}
	if !strings.Contains(r.stderr, "#SBATCH") {
		t.Errorf("no warning that #SBATCH lines are not read: %q", r.stderr)
	}
	gang := m[1]
	packed := f.submit(f.AdminToken, "-J", "eval", "--gpus", "4", "--", "python", "eval.py", "--ckpt", "last")[0]
	f.wait(gang, running)
	f.wait(packed, running)

	// The start's event is written just after the start itself.
	d := f.job(gang)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(eventKinds(d.Events), "started") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		d = f.job(gang)
	}
	j := d.Job
	want := api.JobSpec{Name: "train.sh", Project: "default", Nodes: 2, AcceleratorsPerNode: 8, CPUs: 16, MemoryMiB: 64 << 10,
		Limit: 26 * 3600, QoS: "high", Task: model.Task{Script: "#!/bin/sh\n#SBATCH --gpus 8\necho hi\n", WorkDir: dir,
			Env: map[string]string{"A": "1", "B": "two=2"}, Stdout: "out.txt", Signal: "USR1", SignalBefore: 120, Requeue: true}}
	got := api.JobSpec{Name: j.Name, Project: j.Project, Nodes: j.Nodes, AcceleratorsPerNode: j.AcceleratorsPerNode, CPUs: j.CPUs,
		MemoryMiB: j.MemoryMiB, Limit: j.Limit, QoS: j.QoS, Task: j.Task}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the gang job as stored (-want +got):\n%s", diff)
	}
	if kinds := eventKinds(d.Events); !strings.Contains(kinds, "started") {
		t.Errorf("events %s lack started", kinds)
	}
	if c := f.job(packed).Job.Task.Command; !cmp.Equal(c, []string{"python", "eval.py", "--ckpt", "last"}) {
		t.Errorf("command %q", c)
	}

	q := f.admin("queue").ok(t)
	lines := strings.Split(strings.TrimSpace(q), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "JOBID") || !strings.Contains(lines[0], "NODELIST(REASON)") {
		t.Fatalf("queue: want a header and 2 jobs:\n%s", q)
	}
	gangRow := strings.Fields(lines[1])
	if diff := cmp.Diff([]string{gang, "train.sh", "admin", "default", "running"}, gangRow[:5]); diff != "" {
		t.Errorf("queue row (-want +got):\n%s\n%s", diff, q)
	}
	if gangRow[6] != "2" || gangRow[7] != "16" || !strings.HasPrefix(gangRow[8], "node") {
		t.Errorf("queue row: want 2 nodes, 16 accelerators and a node list: %q", lines[1])
	}
	var list api.Jobs
	decodeJSON(t, f.admin("queue", "-o", "json").ok(t), &list)
	if len(list.Items) != 2 || list.Items[0].ID != gang || list.Items[1].ID != packed {
		t.Errorf("queue -o json: %+v", list.Items)
	}
	wide := f.admin("queue", "-o", "wide", "--no-headers").ok(t)
	if strings.Contains(wide, "JOBID") || !strings.Contains(wide, "1-02:00:00") || !strings.Contains(wide, "64G") {
		t.Errorf("queue -o wide --no-headers: want no header, the limit and memory:\n%s", wide)
	}
	show := f.admin("show", gang).ok(t)
	for _, s := range []string{"State:", "running", "2 node(s) × 8 accelerator(s), 16 CPUs per node, 64G memory per node", "A=1", "EVENT", "started"} {
		if !strings.Contains(show, s) {
			t.Errorf("show lacks %q:\n%s", s, show)
		}
	}

	if out := f.admin("cancel", gang, packed).ok(t); out != fmt.Sprintf("job %s cancelled\njob %s cancelled\n", gang, packed) {
		t.Errorf("cancel printed %q", out)
	}
	if q := f.admin("queue", "--no-headers").ok(t); q != "" {
		t.Errorf("the default queue still lists ended jobs:\n%s", q)
	}
	all := f.admin("queue", "--all").ok(t)
	if !strings.Contains(all, "cancelled") || !strings.Contains(all, gang) {
		t.Errorf("queue --all lacks the cancelled jobs:\n%s", all)
	}
	if got := f.job(gang).Job.State; got != model.JobCancelled {
		t.Errorf("state after cancel: %s", got)
	}
}

func eventKinds(ev []store.Event) string {
	var k []string
	for _, e := range ev {
		k = append(k, e.Kind)
	}
	return strings.Join(k, ",")
}

func TestHoldReleaseRequeue(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	id := f.submit(f.AdminToken, "--hold", "--gpus", "1", "--", "true")[0]
	q := f.admin("queue", "-j", id).ok(t)
	if !strings.Contains(q, "pending") || !strings.Contains(q, "(JobHeldUser)") {
		t.Errorf("a held job's queue line:\n%s", q)
	}
	if r := f.admin("release", id); r.code != ExitOK || r.stdout != "job "+id+" released\n" {
		t.Fatalf("release: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	f.wait(id, running)
	if r := f.admin("hold", id); r.code != ExitConflict || !strings.Contains(r.stderr, "only a pending job can be held") {
		t.Errorf("hold a running job: exit %d; want %d: %s", r.code, ExitConflict, r.stderr)
	}
	f.admin("requeue", id).ok(t)
	j := f.job(id).Job
	if j.Requeues != 1 {
		t.Errorf("requeues %d after requeue; want 1", j.Requeues)
	}
	f.wait(id, running) // it starts again
	f.admin("cancel", id).ok(t)
	if r := f.admin("cancel", id); r.code != ExitConflict || !strings.Contains(r.stderr, "already ended") {
		t.Errorf("cancel an ended job: exit %d; want %d: %s", r.code, ExitConflict, r.stderr)
	}
}

func TestArraysDependenciesAndBegin(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	out := f.admin("submit", "--array", "0-3", "--gpus", "1", "--hold", "--", "true").ok(t)
	m := regexp.MustCompile(`^Submitted array job (\S+): 4 jobs (\S+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("array submit printed %q", out)
	}
	arr := m[1]
	var list api.Jobs
	decodeJSON(t, f.admin("queue", "--array", arr, "-o", "json").ok(t), &list)
	var indices []int
	for _, j := range list.Items {
		indices = append(indices, j.ArrayIndex)
		if j.ArrayID != arr {
			t.Errorf("job %s: array %q; want %s", j.ID, j.ArrayID, arr)
		}
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3}, indices); diff != "" {
		t.Errorf("array indices (-want +got):\n%s", diff)
	}
	var ids []string
	for _, j := range list.Items {
		ids = append(ids, j.ID)
	}
	if m[2] != compactIDs(ids) || ids[0] != arr {
		t.Errorf("submit said jobs %s; the array holds %v", m[2], ids)
	}

	// As in Slurm, an array's ID stands for all its elements, ID_INDEX for one.
	dep := f.submit(f.AdminToken, "-d", "afterok:"+arr+",afterany:"+arr+"_2", "--gpus", "1", "--", "true")[0]
	j := f.wait(dep, func(j store.Job) bool { return j.Reason == "Dependency" })
	var want []model.Dependency
	for _, id := range ids {
		want = append(want, model.Dependency{Type: model.AfterOK, JobID: id})
	}
	want = append(want, model.Dependency{Type: model.AfterAny, JobID: ids[2]})
	if diff := cmp.Diff(want, j.Deps); diff != "" {
		t.Errorf("dependencies (-want +got):\n%s", diff)
	}
	if q := f.admin("queue", "-j", dep).ok(t); !strings.Contains(q, "(Dependency)") {
		t.Errorf("queue of a job waiting on another:\n%s", q)
	}

	later := f.submit(f.AdminToken, "--begin", "now+2hours", "--gpus", "1", "--", "true")[0]
	j = f.wait(later, func(j store.Job) bool { return j.Reason == "BeginTime" })
	if d := j.Begin - time.Now().Unix(); d < 7000 || d > 7300 {
		t.Errorf("begin is %d s from now; want about 7200", d)
	}
	if q := f.admin("queue", "--start", "-j", later).ok(t); !strings.Contains(q, "START") {
		t.Errorf("queue --start has no START column:\n%s", q)
	}

	r := f.admin("release", "--array", arr)
	if r.code != ExitOK || strings.Count(r.stdout, "released") != 4 {
		t.Errorf("release --array: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = f.admin("cancel", "--array", arr)
	if r.code != ExitOK || strings.Count(r.stdout, "cancelled") != 4 {
		t.Errorf("cancel --array: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.wait(dep, func(j store.Job) bool { return j.Reason == "DependencyNeverSatisfied" || j.State.Final() })

	for _, d := range []string{"afterok:999999", "afterok:" + arr + "_7"} {
		if r := f.admin("submit", "-d", d, "--", "true"); r.code != ExitUsage || !strings.Contains(r.stderr, strings.TrimPrefix(d, "afterok:")) {
			t.Errorf("a dependency on no job (%s): exit %d; want %d: %s", d, r.code, ExitUsage, r.stderr)
		}
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	out := f.admin("submit", "--dry-run", "-N", "2", "--gpus-per-node", "8", "--", "true").ok(t)
	if !regexp.MustCompile(`(?m)^The job would start now on node\[\d-\d\]\.$`).MatchString(out) || !strings.Contains(out, "Nothing was submitted") {
		t.Errorf("dry run on an idle cluster:\n%s", out)
	}
	if q := f.admin("queue", "--all", "--no-headers").ok(t); q != "" {
		t.Errorf("a dry run submitted something:\n%s", q)
	}
	// Fill the laptop's 32 accelerators; a new gang must wait.
	ids := f.submit(f.AdminToken, "-N", "4", "--gpus-per-node", "8", "-t", "1:00:00", "--", "true")
	f.wait(ids[0], running)
	out = f.admin("submit", "--dry-run", "-N", "1", "--gpus-per-node", "8", "--", "true").ok(t)
	if strings.Contains(out, "would start now") || !strings.Contains(out, "would") {
		t.Errorf("dry run on a full cluster:\n%s", out)
	}
}

func TestSubmitWaitReturnsTheJobsStatus(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	var wg sync.WaitGroup
	var r result
	wg.Add(1)
	go func() {
		defer wg.Done()
		r = f.admin("submit", "--wait", "--array", "0-1", "--gpus", "1", "--", "sleep", "1000")
	}()
	var ids []string
	deadline := time.Now().Add(30 * time.Second)
	for len(ids) < 2 {
		jobs, err := f.Admin.AllJobs(t.Context(), api.JobQuery{States: []string{"running"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if time.Now().After(deadline) {
			t.Fatal("the array did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.admin(append([]string{"cancel"}, ids...)...).ok(t)
	wg.Wait()
	if r.code != 1 || !strings.Contains(r.stderr, "cancelled") || !strings.HasPrefix(r.stdout, "Submitted array job") {
		t.Errorf("submit --wait of jobs then cancelled: exit %d; want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  store.Job
		want int
	}{
		{"a completed job is 0", store.Job{State: model.JobCompleted}, 0},
		{"a failed job is its exit code", store.Job{State: model.JobFailed, ExitCode: 3}, 3},
		{"a job killed by a signal is 128+N as in a shell", store.Job{State: model.JobTimeout, Signal: "KILL"}, 137},
		{"a cancelled job without exit code is 1", store.Job{State: model.JobCancelled}, 1},
		{"a failed job without exit code is 1", store.Job{State: model.JobFailed}, 1},
	}
	for _, tc := range tests {
		if got := jobStatus(&tc.job); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestBatchSubmit(t *testing.T) {
	t.Parallel()
	f := newFactory(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "jobs.jsonl")
	lines := `{"name":"a","accelerators":1,"task":{"command":["true"]}}

{"name":"b","project":"default","nodes":1,"accelerators_per_node":2,"task":{"script":"#!/bin/sh\ntrue\n"}}
{"name":"c","accelerators":1,"held":true,"task":{"command":["true"]}}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := f.admin("submit", "--batch", file).ok(t)
	if !regexp.MustCompile(`^Submitted 3 jobs: \d+-\d+\n$`).MatchString(out) {
		t.Errorf("batch submit printed %q", out)
	}
	var list api.Jobs
	decodeJSON(t, f.admin("queue", "-o", "json").ok(t), &list)
	var names []string
	for _, j := range list.Items {
		names = append(names, j.Name+"@"+j.Project)
	}
	if diff := cmp.Diff([]string{"a@default", "b@default", "c@default"}, names); diff != "" {
		t.Errorf("batch jobs (-want +got):\n%s", diff)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"name":"a","task":{"command":["true"]}}`+"\n"+`{"nmae":"b"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused := filepath.Join(dir, "refused.jsonl")
	if err := os.WriteFile(refused, []byte(`{"name":"a","task":{"command":["true"]}}`+"\n"+`{"accelerators":-1,"task":{"command":["true"]}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"an unknown field names its line", []string{"submit", "--batch", bad}, ExitUsage, "line 2"},
		{"job flags do not mix with --batch", []string{"submit", "--batch", file, "--gpus", "2"}, ExitUsage, "--gpus does not apply to --batch"},
		{"a missing file", []string{"submit", "--batch", filepath.Join(dir, "none")}, ExitUsage, "no such file"},
		{"a field the server refuses names the job", []string{"submit", "--batch", refused}, ExitUsage, "jobs[1].accelerators"},
	}
	for _, tc := range tests {
		r := f.admin(tc.args...)
		if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
			t.Errorf("%s: exit %d, %q; want %d and %q", tc.name, r.code, r.stderr, tc.wantCode, tc.wantErr)
		}
	}
	before := len(list.Items)
	decodeJSON(t, f.admin("queue", "--all", "-o", "json").ok(t), &list)
	if len(list.Items) != before {
		t.Errorf("failed batches submitted jobs: %d then %d", before, len(list.Items))
	}
}

func TestSubmitFlagsMakeTheSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    api.JobSpec
		wantErr string
	}{
		{"a gang from -N and --gpus-per-node", []string{"-N", "2", "--gpus-per-node", "4", "--", "x"},
			api.JobSpec{Name: "x", Nodes: 2, AcceleratorsPerNode: 4}, ""},
		{"--gpus with -N splits evenly", []string{"-N", "2", "--gpus", "8", "--", "x"},
			api.JobSpec{Name: "x", Nodes: 2, AcceleratorsPerNode: 4}, ""},
		{"--gpus alone packs", []string{"--gpus", "3", "--", "x"}, api.JobSpec{Name: "x", Accelerators: 3}, ""},
		{"--gpus-per-node alone is one node", []string{"--gpus-per-node", "8", "--", "x"},
			api.JobSpec{Name: "x", Nodes: 1, AcceleratorsPerNode: 8}, ""},
		{"memory in K rounds up to MiB", []string{"--mem", "1500K", "--", "x"}, api.JobSpec{Name: "x", MemoryMiB: 2}, ""},
		{"time as minutes", []string{"-t", "90", "--", "x"}, api.JobSpec{Name: "x", Limit: 5400}, ""},
		{"time as D-H:M:S", []string{"-t", "2-00:00:30", "--", "x"}, api.JobSpec{Name: "x", Limit: 2*86400 + 30}, ""},
		{"uneven --gpus over -N", []string{"-N", "3", "--gpus", "8", "--", "x"}, api.JobSpec{}, "does not split evenly"},
		{"a bad time", []string{"-t", "1h", "--", "x"}, api.JobSpec{}, "--time"},
		{"a bad memory size", []string{"--mem", "lots", "--", "x"}, api.JobSpec{}, "--mem"},
		{"a bad dependency", []string{"-d", "afterwards:1", "--", "x"}, api.JobSpec{}, "not a dependency type"},
		{"a bad signal", []string{"--signal", "NOPE@10", "--", "x"}, api.JobSpec{}, "not a signal"},
		{"a script and a command", []string{"a.sh", "--", "x"}, api.JobSpec{}, "not both"},
		{"script arguments", []string{"a.sh", "b"}, api.JobSpec{}, "passes no arguments"},
		{"no such script", []string{"/nonexistent/a.sh"}, api.JobSpec{}, "does not exist"},
		{"nothing to run", nil, api.JobSpec{}, "nothing to run"},
		{"a bad open mode", []string{"--open-mode", "overwrite", "--", "x"}, api.JobSpec{}, "--open-mode"},
		{"-e NAME of an unset variable", []string{"-e", "USINE_TEST_SURELY_UNSET", "--", "x"}, api.JobSpec{}, "not set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var f submitFlags
			cmd := f.command()
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := f.spec(cmd, cmd.Flags().Args(), time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || ExitCode(err) != ExitUsage {
					t.Fatalf("error %v (exit %d); want a usage error with %q", err, ExitCode(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Task = model.Task{}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubmitOpenMode(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{"": "", "--open-mode append": model.OpenAppend, "--open-mode truncate": model.OpenTruncate} {
		var f submitFlags
		cmd := f.command()
		if err := cmd.ParseFlags(append(strings.Fields(args), "--", "x")); err != nil {
			t.Fatal(err)
		}
		got, err := f.spec(cmd, cmd.Flags().Args(), time.Now())
		if err != nil || got.Task.OpenMode != want {
			t.Errorf("submit %s: open mode %q (%v); want %q", args, got.Task.OpenMode, err, want)
		}
	}
}
