package slurm

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usine-project/usine/internal/model"
)

// submitAt is when the tests submit: a Tuesday in Paris winter time.
var submitAt = time.Date(2026, 11, 24, 9, 0, 0, 0, time.FixedZone("CET", 3600))

func submitted(t *testing.T, args ...string) (model.Job, model.Task) {
	t.Helper()
	r, _, err := ParseBatch(script(), args)
	if err != nil {
		t.Fatalf("ParseBatch(%q): %v", args, err)
	}
	r.Now = submitAt
	r.SubmitDir = "/home/ada/proj"
	r.SubmitHost = "login1"
	r.SubmitEnv = map[string]string{"HOME": "/home/ada", "PATH": "/usr/bin", "SLURM_JOB_ID": "77", "CFG": "a.yaml"}
	job, task, err := r.Job()
	if err != nil {
		t.Fatalf("Job(%q): %v", args, err)
	}
	return job, task
}

func TestJobShape(t *testing.T) {
	t.Parallel()
	base := model.Job{Name: "sbatch", Submit: submitAt.Unix()}
	with := func(f func(j *model.Job)) model.Job {
		j := base
		f(&j)
		return j
	}
	tests := []struct {
		name string
		args []string
		want model.Job
	}{
		{"nothing asked: a packed CPU job", nil, base},
		{"nodes with gpus per node: a gang", []string{"-N", "2", "--gpus-per-node=4"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode = 2, 4 })},
		{"nodes without gpus: a CPU gang", []string{"-N", "3"}, with(func(j *model.Job) { j.Nodes = 3 })},
		{"gres with a type sets the model", []string{"-N", "4", "--gres=gpu:h100:4"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.Model = 4, 4, "H100" })},
		{"gpus without nodes are packed", []string{"--gpus=8"}, with(func(j *model.Job) { j.Accelerators = 8 })},
		{"gres without nodes is packed", []string{"--gres=gpu:2"}, with(func(j *model.Job) { j.Accelerators = 2 })},
		{"gpus spread evenly over nodes", []string{"-N", "2", "-G", "a100:8"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.Model = 2, 4, "A100" })},
		{"gpus per task times tasks per node", []string{"-N", "2", "--ntasks-per-node=4", "--gpus-per-task=1"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.CPUs = 2, 4, 4 })},
		{"gpus per task times tasks, packed", []string{"-n", "3", "--gpus-per-task=2"}, with(func(j *model.Job) { j.Accelerators, j.CPUs = 6, 3 })},
		{"nodes derived from tasks", []string{"-n", "16", "--ntasks-per-node=8", "--gpus-per-node=8"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.CPUs = 2, 8, 8 })},
		{"agreeing gpu options", []string{"-N", "2", "--gpus-per-node=4", "--gres=gpu:4", "-G", "8"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode = 2, 4 })},
		{"cpus are tasks per node times cpus per task", []string{"-N", "2", "--ntasks-per-node=4", "-c", "8"}, with(func(j *model.Job) { j.Nodes, j.CPUs = 2, 32 })},
		{"uneven tasks count the fullest node", []string{"-N", "3", "-n", "10", "-c", "2"}, with(func(j *model.Job) { j.Nodes, j.CPUs = 3, 8 })},
		{"cpus per gpu", []string{"-N", "1", "--gpus-per-node=4", "--cpus-per-gpu=16"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.CPUs = 1, 4, 64 })},
		{"mincpus", []string{"-c", "2", "--mincpus=48"}, with(func(j *model.Job) { j.CPUs = 48 })},
		{"memory per node", []string{"-N", "2", "--mem=256G"}, with(func(j *model.Job) { j.Nodes, j.MemoryMiB = 2, 256*1024 })},
		{"memory per cpu", []string{"-N", "2", "--ntasks-per-node=4", "-c", "8", "--mem-per-cpu=2G"}, with(func(j *model.Job) { j.Nodes, j.CPUs, j.MemoryMiB = 2, 32, 64*1024 })},
		{"memory per cpu with one default cpu", []string{"--mem-per-cpu=3G"}, with(func(j *model.Job) { j.MemoryMiB = 3 * 1024 })},
		{"memory per gpu, packed", []string{"--gpus=2", "--mem-per-gpu=10G"}, with(func(j *model.Job) { j.Accelerators, j.MemoryMiB = 2, 20*1024 })},
		{"mem=0 leaves memory uncounted", []string{"--mem=0", "--exclusive"}, with(func(j *model.Job) { j.Exclusive = true })},
		{"a model feature sets the model", []string{"-N", "1", "--gpus-per-node=8", "-C", "mi250x"}, with(func(j *model.Job) { j.Nodes, j.AcceleratorsPerNode, j.Model = 1, 8, "MI250X" })},
		{"switches=1 keeps one block", []string{"-N", "16", "--switches=1"}, with(func(j *model.Job) { j.Nodes, j.OneBlock = 16, true })},
		{"time limit", []string{"-t", "2-00:00:00"}, with(func(j *model.Job) { j.Limit = 2 * 86400 })},
		{"unlimited leaves the partition's limit", []string{"-t", "UNLIMITED"}, base},
		{"names, account, partition, qos", []string{"-J", "llm", "-A", "eurohpc-42", "-p", "boost_usr_prod", "-q", "normal"}, with(func(j *model.Job) {
			j.Name, j.Project, j.Partition, j.QoS = "llm", "eurohpc-42", "boost_usr_prod", "normal"
		})},
		{"held", []string{"--hold"}, with(func(j *model.Job) { j.Held = true })},
		{"begin resolves against the submission time", []string{"--begin=now+2hours"}, with(func(j *model.Job) { j.Begin = submitAt.Add(2 * time.Hour).Unix() })},
		{"begin at a time of day", []string{"--begin=16:00"}, with(func(j *model.Job) { j.Begin = submitAt.Add(7 * time.Hour).Unix() })},
		{"dependencies", []string{"-d", "afterok:41:42,afterany:40"}, with(func(j *model.Job) {
			j.Deps = []model.Dependency{{Type: model.AfterOK, JobID: "41"}, {Type: model.AfterOK, JobID: "42"}, {Type: model.AfterAny, JobID: "40"}}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _ := submitted(t, tc.args...)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJobTask(t *testing.T) {
	t.Parallel()
	submitEnv := map[string]string{"SLURM_SUBMIT_DIR": "/home/ada/proj", "SLURM_SUBMIT_HOST": "login1"}
	withEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{"HOME": "/home/ada", "PATH": "/usr/bin", "CFG": "a.yaml"}
		for k, v := range submitEnv {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	base := model.Task{WorkDir: "/home/ada/proj", Env: withEnv(nil), Stdout: "slurm-%j.out"}
	with := func(f func(t *model.Task)) model.Task {
		tk := base
		tk.Env = withEnv(nil)
		f(&tk)
		return tk
	}
	tests := []struct {
		name string
		args []string
		want model.Task
	}{
		{"defaults: the submission directory, everything exported, slurm-%j.out", nil, base},
		{"output and error keep their patterns", []string{"-o", "logs/%x-%j.out", "-e", "logs/%x-%j.err"}, with(func(t *model.Task) { t.Stdout, t.Stderr = "logs/%x-%j.out", "logs/%x-%j.err" })},
		{"arrays default to slurm-%A_%a.out", []string{"--array=0-3"}, with(func(t *model.Task) { t.Stdout = "slurm-%A_%a.out" })},
		{"a relative chdir joins the submission directory", []string{"-D", "runs/a"}, with(func(t *model.Task) { t.WorkDir = "/home/ada/proj/runs/a" })},
		{"an absolute chdir", []string{"-D", "/scratch/ada"}, with(func(t *model.Task) { t.WorkDir = "/scratch/ada" })},
		{"export NONE passes only Slurm's variables", []string{"--export=NONE"}, with(func(t *model.Task) { t.Env = submitEnv })},
		{"export a list", []string{"--export=CFG,LR=0.1,MISSING"}, with(func(t *model.Task) {
			t.Env = map[string]string{"CFG": "a.yaml", "LR": "0.1", "SLURM_SUBMIT_DIR": "/home/ada/proj", "SLURM_SUBMIT_HOST": "login1"}
		})},
		{"export ALL with a value", []string{"--export=ALL,CFG=b.yaml"}, with(func(t *model.Task) { t.Env["CFG"] = "b.yaml" })},
		{"signal and requeue", []string{"--signal=B:USR1@90", "--requeue"}, with(func(t *model.Task) {
			t.Signal, t.SignalBefore, t.SignalBatchOnly, t.Requeue = "USR1", 90, true, true
		})},
		{"a signal for the steps", []string{"--signal=USR1@90"}, with(func(t *model.Task) { t.Signal, t.SignalBefore = "USR1", 90 })},
		{"the script's arguments", []string{"train.sh", "--epochs", "3"}, with(func(t *model.Task) { t.Args = []string{"--epochs", "3"} })},
		{"the options' Slurm variables", []string{"-N", "2", "--ntasks-per-node=4", "-c", "8", "--gpus-per-node=4", "--mem-per-cpu=2G"}, with(func(t *model.Task) {
			for k, v := range map[string]string{"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_CPUS_PER_TASK": "8", "SLURM_GPUS_PER_NODE": "4", "SLURM_MEM_PER_CPU": "2048"} {
				t.Env[k] = v
			}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, got := submitted(t, tc.args...)
			if !strings.HasPrefix(got.Script, "#!/bin/bash\n") {
				t.Errorf("script = %q; want the batch script", got.Script)
			}
			got.Script = ""
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("task (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJobBeginNeedsNow(t *testing.T) {
	t.Parallel()
	r, _, err := ParseBatch(script("--begin=noon"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Job(); err == nil || !strings.Contains(err.Error(), "Request.Now is not set") {
		t.Errorf("Job() without Now = %v; want an error naming Request.Now", err)
	}
}
