package slurm

import "testing"

func TestExpandPattern(t *testing.T) {
	t.Parallel()
	job := PatternVars{JobID: "1234", JobName: "train", User: "ada", Node: "gpu007.leonardo.local", NodeID: 2, TaskID: 17}
	task := job
	task.JobID, task.ArrayJobID, task.ArrayTaskID = "1240", "1234", 6
	step := job
	step.StepID = "0"
	tests := []struct {
		name    string
		pattern string
		vars    PatternVars
		want    string
	}{
		{"job id and name", "logs/%x-%j.out", job, "logs/train-1234.out"},
		{"array job and task", "slurm-%A_%a.out", task, "slurm-1234_6.out"},
		{"%j of an array task is its own id", "%j.log", task, "1240.log"},
		{"outside an array %A is the job and %a Slurm's no-value", "%A_%a", job, "1234_4294967294"},
		{"user, node (short name), node id and task id", "%u/%N-%n-%t", job, "ada/gpu007-2-17"},
		{"zero padding of numbers", "%4a-%8j-%3t", task, "0006-00001240-017"},
		{"padding is ignored for names", "%10x-%5N", job, "train-gpu007"},
		{"padding is capped at 10", "%20j", job, "0000001234"},
		{"%J is job.step in a step", "%J.out", step, "1234.0.out"},
		{"%J is the job id in the batch step", "%J.out", job, "1234.out"},
		{"%s is batch in the batch step", "%s", job, "batch"},
		{"%% is a percent sign", "100%%-%j", job, "100%-1234"},
		{"unknown patterns are kept", "%q-%5y-%j", job, "%q-%5y-1234"},
		{"a trailing % is kept", "out%", job, "out%"},
		{"a trailing %4 is kept", "out%4", job, "out%4"},
		{"a backslash turns expansion off", `job\%j.out`, job, "job%j.out"},
		{"no patterns", "plain.txt", job, "plain.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ExpandPattern(tc.pattern, tc.vars); got != tc.want {
				t.Errorf("ExpandPattern(%q) = %q; want %q", tc.pattern, got, tc.want)
			}
		})
	}
}
