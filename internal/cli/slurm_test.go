package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// runAs runs the binary as if invoked under name.
func runAs(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = Run(context.Background(), append([]string{"/opt/usine/bin/" + name}, args...), &o, &e)
	return o.String(), e.String(), err
}

func TestSlurmNamesAreDispatched(t *testing.T) {
	out, errOut, err := runAs(t, "scontrol", "show", "hostnames", "gpu[001-003],login1")
	if err != nil || errOut != "" {
		t.Fatalf("scontrol show hostnames: %v, %q", err, errOut)
	}
	if want := "gpu001\ngpu002\ngpu003\nlogin1\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	out, _, err = runAs(t, "scontrol", "show", "hostlist", "gpu003,gpu001,gpu002")
	if err != nil || out != "gpu[001-003]\n" {
		t.Errorf("scontrol show hostlist: %q, %v", out, err)
	}
	out, _, err = runAs(t, "sbatch", "--version")
	if err != nil || !strings.HasPrefix(out, "slurm ") {
		t.Errorf("sbatch --version: %q, %v", out, err)
	}
}

func TestSlurmErrorsAreWordedAsSlurms(t *testing.T) {
	t.Setenv("USINE_SERVER", "http://127.0.0.1:1") // never reached: the options are wrong first
	for _, tc := range []struct {
		name, cmd string
		args      []string
		want      string
		job       string // SLURM_JOB_ID: the job the command runs in
	}{
		{"an unknown sbatch option", "sbatch", []string{"--bogus", "x.sh"}, "sbatch: unrecognized option '--bogus'\n", ""},
		{"a script that is not there", "sbatch", []string{filepath.Join(t.TempDir(), "nope.sh")}, "sbatch: error: Unable to open file ", ""},
		{"a malformed time", "sbatch", []string{"-t", "1:xx", "--wrap", "true"}, "sbatch: error: Invalid --time specification", ""},
		{"a hostlist that does not parse", "scontrol", []string{"show", "hostnames", "gpu[3-1]"}, "scontrol: error: Invalid hostlist", ""},
		{"srun in a job that sbatch did not submit", "srun", []string{"hostname"}, "srun: error: job 12 was not submitted by sbatch", "12"},
		{"srun -w outside a job", "srun", []string{"-w", "gpu1", "hostname"}, "srun: error: -w/--nodelist: usine places jobs itself", ""},
		{"scancel without a job", "scancel", nil, "scancel: error: No job identification provided\n", ""},
		{"scancel --batch --full", "scancel", []string{"-b", "-f", "-s", "USR1", "12"}, "scancel: error: --batch and --full exclude each other", ""},
		{"an unknown scontrol command", "scontrol", []string{"frobnicate"}, "scontrol: error: invalid keyword: frobnicate\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("USINE_STEP_KEY", "")
			t.Setenv("SLURM_JOB_ID", tc.job)
			_, errOut, err := runAs(t, tc.cmd, tc.args...)
			if err == nil || !Reported(err) || ExitCode(err) != 1 {
				t.Fatalf("err %v (reported %v, exit %d); want a reported error with exit 1", err, Reported(err), ExitCode(err))
			}
			if !strings.HasPrefix(errOut, tc.want) {
				t.Errorf("stderr %q; want it to start with %q", errOut, tc.want)
			}
		})
	}
}

func TestInstallLinks(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := installLinks(dir, true, false, &out); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	for _, n := range append(append([]string(nil), slurmCommands...), moduleStubs...) {
		if target, err := os.Readlink(filepath.Join(dir, n)); err != nil || target != exe {
			t.Errorf("%s -> %q (%v); want a link to %s", n, target, err, exe)
		}
	}
	if err := installLinks(dir, false, false, &out); err != nil {
		t.Errorf("a second install over the same links: %v", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "sbatch"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := installLinks(other, false, false, &out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("over a real sbatch: %v; want a refusal that names --force", err)
	}
	if err := installLinks(other, false, true, &out); err != nil {
		t.Errorf("with --force: %v", err)
	}
}

func TestModuleStub(t *testing.T) {
	t.Setenv("USINE_MODULES", "")
	_, errOut, err := runAs(t, "module", "load", "cuda/12.4")
	if err != nil || !strings.Contains(errOut, `skipped "module load cuda/12.4"`) {
		t.Errorf("module load: %v, %q; want a warning that it was skipped", err, errOut)
	}
	t.Setenv("USINE_MODULES", "fail")
	_, errOut, err = runAs(t, "ml", "PyTorch")
	if ExitCode(err) != 1 || !strings.Contains(errOut, `ml: error: this node has no environment modules; "ml PyTorch" cannot run`) {
		t.Errorf("ml with USINE_MODULES=fail: exit %d, %q", ExitCode(err), errOut)
	}
}

func TestSubmitEnvDropsTheEnclosingJobsVariables(t *testing.T) {
	got := submitEnv(map[string]string{"PATH": "/bin", "USINE_SERVER": "http://s", "USINE_TOKEN": "t", "USINE_STEP_KEY": "k",
		"USINE_JOB_ID": "4", "CUDA_VISIBLE_DEVICES": "0,1", "MASTER_ADDR": "n1", "MY_VAR": "x"})
	for _, k := range []string{"PATH", "USINE_SERVER", "USINE_TOKEN", "MY_VAR"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s was dropped", k)
		}
	}
	for _, k := range []string{"USINE_STEP_KEY", "USINE_JOB_ID", "CUDA_VISIBLE_DEVICES", "MASTER_ADDR"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s was kept", k)
		}
	}
}

// TestJobInfoNamesAPartitionForEveryJob: a job submitted without -p shows
// "(any)" whether it waits or runs, never a blank that would shift
// squeue's columns for scripts that split them on spaces.
func TestJobInfoNamesAPartitionForEveryJob(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  store.Job
		want string
	}{
		{"pending, no partition", store.Job{Job: model.Job{ID: "1"}, State: model.JobPending}, "(any)"},
		{"running, no partition", store.Job{Job: model.Job{ID: "2"}, State: model.JobRunning, Alloc: []store.Alloc{{Node: "n1"}}}, "(any)"},
		{"pending in a partition", store.Job{Job: model.Job{ID: "3", Partition: "boost"}, State: model.JobPending}, "boost"},
	} {
		if got := jobInfo(&tc.job).Partition; got != tc.want {
			t.Errorf("%s: partition %q; want %q", tc.name, got, tc.want)
		}
	}
}

// TestJobInfoCountsACPUPerNodeAtLeast: a gang that asked for no CPUs
// holds one on each of its nodes, as Slurm counts it in AllocCPUS.
func TestJobInfoCountsACPUPerNodeAtLeast(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  store.Job
		want int
	}{
		{"pending gang of 4", store.Job{Job: model.Job{ID: "1", Nodes: 4}, State: model.JobPending}, 4},
		{"running gang of 2", store.Job{Job: model.Job{ID: "2", Nodes: 2}, State: model.JobRunning, Alloc: []store.Alloc{{Node: "n1"}, {Node: "n2"}}}, 2},
		{"packed job", store.Job{Job: model.Job{ID: "3"}, State: model.JobPending}, 1},
		{"gang of 2 with 16 CPUs each", store.Job{Job: model.Job{ID: "4", Nodes: 2}, State: model.JobRunning,
			Alloc: []store.Alloc{{Node: "n1", CPUs: 16}, {Node: "n2", CPUs: 16}}}, 32},
	} {
		if got := jobInfo(&tc.job).CPUs; got != tc.want {
			t.Errorf("%s: %d CPUs; want %d", tc.name, got, tc.want)
		}
	}
}

// TestShellJoinSurvivesTheShell: the words srun puts in its job's script
// reach the program as they were.
func TestShellJoinSurvivesTheShell(t *testing.T) {
	words := []string{"printf", "%s|", "plain", "two words", "it's", `"double"`, "$HOME", "*", "a\\b", "", "--lr=3e-4", "new\nline"}
	out, err := exec.Command("/bin/sh", "-c", shellJoin(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(words[2:], "|") + "|"; string(out) != want {
		t.Errorf("the shell passed on %q; want %q (from %s)", out, want, shellJoin(words))
	}
}

// TestScancelSaysWhomTheSignalIsFor: scancel -s asks for the steps' tasks,
// --batch for the script, --full for both; the job keeps the request for
// its agents.
func TestScancelSaysWhomTheSignalIsFor(t *testing.T) {
	f := newFactory(t)
	id := f.submit(f.AdminToken, "--gpus", "1", "--", "sleep", "600")[0]
	f.wait(id, running)
	t.Setenv("USINE_SERVER", f.URL)
	t.Setenv("USINE_TOKEN", f.AdminToken)
	for _, args := range [][]string{{"-s", "USR1"}, {"--batch", "-s", "USR2"}, {"-f", "-s", "HUP"}} {
		if _, errOut, err := runAs(t, "scancel", append(args, id)...); err != nil {
			t.Fatalf("scancel %v: %v %s", args, err, errOut)
		}
	}
	var got []string
	for _, s := range f.job(id).Job.Signals {
		got = append(got, s.Signal+">"+s.To)
	}
	if want := []string{"USR1>", "USR2>batch", "HUP>full"}; !slices.Equal(got, want) {
		t.Errorf("the job's signal requests %v; want %v", got, want)
	}
}
