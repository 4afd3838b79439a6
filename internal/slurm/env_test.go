package slurm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnv(t *testing.T) {
	t.Parallel()
	a := Alloc{
		JobID: "4242", Name: "llm", User: "ada", Account: "eurohpc-42", Partition: "boost", QoS: "normal",
		Cluster: "leonardo", SubmitDir: "/home/ada/proj", SubmitHost: "login1",
		Nodes:        []string{"gpu003", "gpu001", "gpu002", "gpu009"},
		TasksPerNode: []int{4, 4, 4, 4}, CPUsPerTask: 8, CPUsPerNode: 32, GPUsPerNode: 4, GPUs: []int{0, 1, 2, 3},
		Start: 1795510800, End: 1795518000,
	}
	want := map[string]string{
		"SLURM_JOB_ID": "4242", "SLURM_JOBID": "4242", "SLURM_JOB_NAME": "llm", "SLURM_JOB_USER": "ada",
		"SLURM_JOB_ACCOUNT": "eurohpc-42", "SLURM_JOB_PARTITION": "boost", "SLURM_JOB_QOS": "normal",
		"SLURM_CLUSTER_NAME": "leonardo", "SLURM_SUBMIT_DIR": "/home/ada/proj", "SLURM_SUBMIT_HOST": "login1",
		"SLURM_JOB_NODELIST": "gpu[001-003,009]", "SLURM_NODELIST": "gpu[001-003,009]",
		"SLURM_NNODES": "4", "SLURM_JOB_NUM_NODES": "4", "SLURM_NTASKS": "16", "SLURM_NPROCS": "16",
		"SLURM_TASKS_PER_NODE": "4(x4)", "SLURM_NTASKS_PER_NODE": "4",
		"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_GTIDS": "0,1,2,3",
		"SLURMD_NODENAME": "gpu003", "SLURM_CPUS_PER_TASK": "8", "SLURM_CPUS_ON_NODE": "32",
		"SLURM_JOB_CPUS_PER_NODE": "32(x4)", "SLURM_GPUS_ON_NODE": "4", "SLURM_JOB_GPUS": "0,1,2,3",
		"SLURM_JOB_START_TIME": "1795510800", "SLURM_JOB_END_TIME": "1795518000",
	}
	if diff := cmp.Diff(want, Env(a)); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
}

func TestEnvArrayAndDefaults(t *testing.T) {
	t.Parallel()
	a := Alloc{
		JobID: "101", Name: "sweep", Nodes: []string{"n1"},
		ArrayJobID: "100", ArrayTaskID: 3, ArrayTaskMin: 1, ArrayTaskMax: 9, ArrayTaskCount: 5, ArrayTaskStep: 2,
	}
	want := map[string]string{
		"SLURM_JOB_ID": "101", "SLURM_JOBID": "101", "SLURM_JOB_NAME": "sweep",
		"SLURM_JOB_NODELIST": "n1", "SLURM_NODELIST": "n1", "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1",
		"SLURM_NTASKS": "1", "SLURM_NPROCS": "1", "SLURM_TASKS_PER_NODE": "1", "SLURM_NTASKS_PER_NODE": "1",
		"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_GTIDS": "0", "SLURMD_NODENAME": "n1",
		"SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1",
		"SLURM_ARRAY_TASK_MAX": "9", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_STEP": "2",
	}
	if diff := cmp.Diff(want, Env(a)); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
}

func TestTaskEnv(t *testing.T) {
	t.Parallel()
	a := Alloc{JobID: "7", Name: "ddp", Nodes: []string{"gpu1", "gpu2", "gpu3"}, TasksPerNode: []int{2, 2, 1}, StepID: "0", GPUs: []int{1}}
	got := TaskEnv(a, 3, 1, 1)
	want := map[string]string{
		"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURMD_NODENAME": "gpu2", "SLURM_GTIDS": "2,3",
		"SLURM_NTASKS": "5", "SLURM_TASKS_PER_NODE": "2(x2),1", "SLURM_STEP_NUM_TASKS": "5", "SLURM_STEP_NUM_NODES": "3",
		"SLURM_STEP_NODELIST": "gpu[1-3]", "SLURM_STEP_TASKS_PER_NODE": "2(x2),1", "SLURM_STEP_ID": "0", "SLURM_STEPID": "0",
		"SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("TaskEnv[%s] = %q; want %q", k, got[k], v)
		}
	}
	if _, ok := got["SLURM_NTASKS_PER_NODE"]; ok {
		t.Errorf("SLURM_NTASKS_PER_NODE = %q for an uneven layout; want it unset", got["SLURM_NTASKS_PER_NODE"])
	}
	if off := TaskEnv(a, 0, 0, 9); off["SLURMD_NODENAME"] != "" {
		t.Errorf("a node rank outside the job named node %q", off["SLURMD_NODENAME"])
	}
}

func TestFormatCountsAndDistribute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ntasks, nodes int
		want          []int
		text          string
	}{
		{8, 2, []int{4, 4}, "4(x2)"},
		{10, 3, []int{4, 3, 3}, "4,3(x2)"},
		{11, 4, []int{3, 3, 3, 2}, "3(x3),2"},
		{0, 3, []int{1, 1, 1}, "1(x3)"},
		{2, 4, []int{1, 1, 0, 0}, "1(x2),0(x2)"},
	}
	for _, tc := range tests {
		got := Distribute(tc.ntasks, tc.nodes)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Distribute(%d, %d) (-want +got):\n%s", tc.ntasks, tc.nodes, diff)
		}
		if text := FormatCounts(got); text != tc.text {
			t.Errorf("FormatCounts(%v) = %q; want %q", got, text, tc.text)
		}
	}
}

func TestTaskLayoutReadsWhatJobWrote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		nodes    int
		want     []int
		wantCPUs int
	}{
		{"ntasks per node", []string{"-N", "2", "--ntasks-per-node=4", "-c", "8"}, 2, []int{4, 4}, 8},
		{"ntasks spread", []string{"-N", "3", "-n", "10"}, 3, []int{4, 3, 3}, 0},
		{"nothing: one task per node", []string{"-N", "2"}, 2, []int{1, 1}, 0},
		{"packed ntasks on the nodes given", []string{"-n", "8", "--gpus-per-task=1"}, 2, []int{4, 4}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, task := submitted(t, tc.args...)
			got, cpus := TaskLayout(task.Env, tc.nodes)
			if diff := cmp.Diff(tc.want, got); diff != "" || cpus != tc.wantCPUs {
				t.Errorf("TaskLayout = %v, %d; want %v, %d", got, cpus, tc.want, tc.wantCPUs)
			}
		})
	}
}
