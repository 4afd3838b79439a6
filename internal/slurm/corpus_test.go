package slurm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/model"
)

// corpusShapes is what each script in testdata/scripts comes to, in a line
// a reader can check against the script. testdata/scripts/NAME.golden holds
// the whole job, task and warnings.
var corpusShapes = map[string]string{
	"checkpoint_requeue_signal.sbatch":     "gang 2x4 limit=1-00:00:00 exclusive one-block requeue signal=USR1@300 open-mode=append name=resumable warnings=1",
	"jeanzay_array_sweep.sbatch":           "gang 1x1 model=H100 cpus=24 limit=05:00:00 tasks=1 array=20%5 project=xyz@h100 name=hp-sweep warnings=1",
	"juwels_booster_jax.sbatch":            "gang 8x4 cpus=48 limit=02:00:00 tasks=32 project=training2426 partition=booster name=juwels_booster_jax.sbatch warnings=2",
	"leonardo_deepspeed.sbatch":            "gang 2x4 cpus=32 mem=494000M limit=00:30:00 tasks=8 project=IscrC_LLMEU partition=boost_usr_prod qos=normal name=ds-zero3 warnings=0",
	"leonardo_torchrun_16_nodes.sbatch":    "gang 16x4 cpus=32 limit=1-00:00:00 exclusive tasks=16 project=EUHPC_A01_042 partition=boost_usr_prod qos=boost_qos_bprod name=mistral-sft warnings=0",
	"lumi_gpus_per_task_mpi.sbatch":        "gang 2x8 cpus=56 limit=00:45:00 tasks=16 project=project_465005678 partition=standard-g name=gromacs-md warnings=2",
	"lumi_torchrun_multinode.sbatch":       "gang 4x8 cpus=56 mem=480G limit=12:00:00 tasks=4 project=project_465001234 partition=standard-g name=llm-pretrain warnings=0",
	"mail_and_late_directives.sbatch":      "packed 0 cpus=32 mem=124800M limit=03:00:00 tasks=1 name=preprocess warnings=4",
	"marenostrum5_eval_after_train.sbatch": "gang 1x4 cpus=80 limit=02:00:00 deps=afterok:1001,afterok:1002 project=bsc99 qos=acc_bscls name=eval-ckpt warnings=0",
	"nanogpt_cmdline_overrides.sbatch":     "gang 1x8 model=H100 cpus=96 limit=00:10:00 tasks=8 args=2 name=nanogpt warnings=0",
	"nightly_singleton_begin.sbatch":       "packed 0 cpus=1 mem=16G limit=00:20:00 begin=+3600s singleton tasks=1 name=nightly-eval warnings=0",
	"snellius_single_gpu.sbatch":           "packed 1 cpus=16 limit=01:00:00 partition=gpu_h100 name=notebook-export warnings=0",
	"snellius_signal_steps.sbatch":         "gang 2x1 cpus=1 limit=00:01:00 signal=USR1@57 tasks=2 partition=gpu_h100 name=ckpt-steps warnings=0",
	"array_stepped_indices.sbatch":         "packed 1 limit=00:20:00 array=3%0 project=snic-ai partition=gpu_h100 name=ckpt-eval warnings=0",
	"chdir_and_error_file.sbatch":          "packed 0 cpus=4 limit=00:05:00 tasks=2 project=default partition=genoa name=chdir warnings=0",
	"dgx_jax_multiprocess.sbatch":          "gang 2x8 cpus=96 limit=03:00:00 tasks=16 project=snic-ai partition=dgx name=jax-fsdp warnings=0",
	"dgx_nccl_tests.sbatch":                "gang 2x8 limit=00:15:00 exclusive project=snic-ai partition=dgx name=nccl-allreduce warnings=0",
	"export_none_clean_env.sbatch":         "packed 0 cpus=1 limit=00:02:00 tasks=1 project=default partition=genoa name=clean-env warnings=0",
	"genoa_mem_per_cpu_label.sbatch":       "gang 2x0 cpus=32 mem=64G limit=00:10:00 tasks=16 project=default partition=genoa name=hybrid warnings=0",
	"held_then_released.sbatch":            "gang 1x2 limit=00:05:00 held project=project_465005678 partition=small-g name=held warnings=0",
	"hostlist_env_check.sbatch":            "gang 3x2 cpus=8 limit=00:05:00 tasks=6 project=EUHPC_A01_042 partition=boost_usr_prod name=envcheck warnings=0",
	"jeanzay_rerun_eval.sbatch":            "packed 0 cpus=4 limit=00:20:00 tasks=1 project=xyz@h100 partition=genoa name=rerun-eval warnings=1",
	"jeanzay_cpu_prepost.sbatch":           "packed 0 cpus=48 limit=02:00:00 tasks=1 project=xyz@h100 partition=genoa name=tokenize warnings=1",
	"jeanzay_h100_multinode.sbatch":        "gang 2x4 model=H100 cpus=96 limit=10:00:00 tasks=8 project=xyz@h100 name=gpt-h100 warnings=1",
	"jeanzay_qos_dev.sbatch":               "packed 1 model=H100 cpus=24 limit=00:05:00 tasks=1 project=xyz@h100 qos=qos_gpu_h100-dev name=quick-dev warnings=0",
	"juwels_booster_torchrun.sbatch":       "gang 2x4 cpus=48 limit=00:30:00 tasks=2 project=training2426 partition=booster name=juwels_booster_torchrun.sbatch warnings=0",
	"juwels_develbooster_check.sbatch":     "gang 2x4 cpus=4 limit=00:05:00 tasks=8 project=training2426 partition=develbooster name=juwels_develbooster_check.sbatch warnings=0",
	"juwels_pmix_mpi.sbatch":               "gang 2x4 cpus=48 limit=00:15:00 tasks=8 project=training2426 partition=booster name=juwels_pmix_mpi.sbatch warnings=0",
	"leonardo_accelerate_fsdp.sbatch":      "gang 4x4 cpus=32 limit=04:00:00 tasks=4 project=EUHPC_A01_042 partition=boost_usr_prod qos=boost_qos_bprod name=fsdp-llama warnings=0",
	"leonardo_boost_dbg_quick.sbatch":      "gang 1x4 cpus=32 limit=00:10:00 tasks=4 project=IscrC_LLMEU partition=boost_usr_prod qos=boost_qos_dbg name=dbg-check warnings=0",
	"leonardo_megatron_tp_pp.sbatch":       "gang 4x4 cpus=32 limit=08:00:00 exclusive tasks=16 project=EUHPC_A01_042 partition=boost_usr_prod name=megatron-gpt warnings=0",
	"lumi_array_ensemble.sbatch":           "packed 1 cpus=7 limit=00:20:00 tasks=1 array=6%0 project=project_465005678 partition=small-g name=ensemble warnings=0",
	"lumi_select_gpu_cpu_bind.sbatch":      "gang 2x8 cpus=8 limit=00:10:00 tasks=16 project=project_465005678 partition=standard-g name=examplejob warnings=0",
	"lumi_singularity_container.sbatch":    "gang 1x8 cpus=56 limit=00:30:00 tasks=8 project=project_465001234 partition=standard-g name=container-ddp warnings=0",
	"lumi_small_g_single_gcd.sbatch":       "packed 1 cpus=7 mem=60G limit=00:15:00 tasks=1 project=project_465001234 partition=small-g name=gcd-inference warnings=0",
	"missing_partition_rejected.sbatch":    "packed 0 cpus=1 limit=04:00:00 tasks=1 project=IscrC_LLMEU partition=lrd_all_serial name=serial warnings=0",
	"mn5_acc_torchrun_2nodes.sbatch":       "gang 2x4 cpus=80 limit=1-00:00:00 tasks=2 project=bsc99 qos=acc_bscls name=pretrain warnings=0",
	"mn5_deepspeed_launcher.sbatch":        "gang 2x4 cpus=80 limit=02:00:00 tasks=2 project=bsc99 qos=acc_bscls name=ds-launcher warnings=0",
	"mn5_failing_rank.sbatch":              "gang 2x4 cpus=2 limit=00:20:00 tasks=4 project=bsc99 qos=acc_bscls name=crashy warnings=0",
	"mn5_pipeline_chain.sbatch":            "packed 0 cpus=4 limit=00:10:00 tasks=1 project=bsc99 qos=acc_debug name=pipeline warnings=1",
	"mn5_rescue_afternotok.sbatch":         "packed 0 cpus=1 limit=00:05:00 tasks=1 project=bsc99 qos=acc_debug name=rescue warnings=0",
	"module_strict_fail.sbatch":            "gang 1x1 limit=00:05:00 project=IscrC_LLMEU partition=boost_usr_prod name=strict-modules warnings=0",
	"snellius_apptainer.sbatch":            "gang 2x4 cpus=64 limit=00:45:00 tasks=8 partition=gpu_h100 name=apptainer-ddp warnings=0",
	"snellius_genoa_array.sbatch":          "packed 0 cpus=4 mem=7G limit=00:30:00 tasks=1 array=8%0 partition=genoa name=shards warnings=0",
	"snellius_gpu_h100_ddp.sbatch":         "gang 1x4 cpus=64 limit=01:00:00 tasks=4 partition=gpu_h100 name=ddp warnings=0",
	"squeue_self_inspect.sbatch":           "gang 1x1 limit=00:05:00 project=training2426 partition=booster name=inspect warnings=0",
	"srun_forged_key_refused.sbatch":       "gang 2x0 cpus=1 limit=00:02:00 tasks=2 project=default partition=genoa name=forged warnings=0",
	"srun_step_sequence.sbatch":            "gang 2x2 cpus=2 limit=00:10:00 tasks=4 project=bsc99 qos=acc_debug name=steps warnings=0",
}

// corpusErrors are the scripts sbatch refuses, and what it says.
var corpusErrors = map[string]string{
	"bad_node_count_rejected.sbatch": `sbatch: error: Invalid node count specification "two": give n or min-max, as in -N 4 or -N 2-4 (script line 4)`,
}

// describe sums up a parsed script in corpusShapes' words.
func describe(r *Request, warnings []string, j model.Job, tk model.Task) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	if j.Nodes > 0 {
		add("gang %dx%d", j.Nodes, j.AcceleratorsPerNode)
	} else {
		add("packed %d", j.Accelerators)
	}
	if j.Model != "" {
		add("model=%s", j.Model)
	}
	if j.CPUs > 0 {
		add("cpus=%d", j.CPUs)
	}
	if j.MemoryMiB > 0 {
		add("mem=%s", formatMem(j.MemoryMiB))
	}
	if j.Limit > 0 {
		add("limit=%s", FormatClock(j.Limit))
	}
	if j.Begin > 0 {
		add("begin=+%ds", j.Begin-j.Submit)
	}
	for _, flag := range []struct {
		on   bool
		name string
	}{{j.Exclusive, "exclusive"}, {j.OneBlock, "one-block"}, {j.Held, "held"}, {tk.Requeue, "requeue"}, {r.Singleton, "singleton"}} {
		if flag.on {
			add("%s", flag.name)
		}
	}
	if tk.Signal != "" {
		add("signal=%s@%d", tk.Signal, tk.SignalBefore)
	}
	if tk.OpenMode != "" {
		add("open-mode=%s", tk.OpenMode)
	}
	if n := tk.Env["SLURM_NTASKS"]; n != "" {
		add("tasks=%s", n)
	}
	if r.Array != nil {
		add("array=%d%%%d", len(r.Array.Indices), r.Array.Throttle)
	}
	if len(j.Deps) > 0 {
		deps := make([]string, len(j.Deps))
		for i, d := range j.Deps {
			deps[i] = string(d.Type) + ":" + d.JobID
		}
		add("deps=%s", strings.Join(deps, ","))
	}
	if len(tk.Args) > 0 {
		add("args=%d", len(tk.Args))
	}
	for _, kv := range [][2]string{{"project", j.Project}, {"partition", j.Partition}, {"qos", j.QoS}, {"name", j.Name}} {
		if kv[1] != "" {
			add("%s=%s", kv[0], kv[1])
		}
	}
	add("warnings=%d", len(warnings))
	return strings.Join(parts, " ")
}

// TestCorpus parses every script in testdata/scripts as sbatch would, with
// the arguments in NAME.args (one a line; default: the script's name), and
// checks what it comes to.
func TestCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "scripts", "*.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 40 {
		t.Fatalf("found %d scripts in testdata/scripts; want at least 40", len(paths))
	}
	var names []string
	for _, path := range paths {
		name := filepath.Base(path)
		names = append(names, name)
		t.Run(name, func(t *testing.T) {
			script, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{name}
			if raw, err := os.ReadFile(strings.TrimSuffix(path, ".sbatch") + ".args"); err == nil {
				args = strings.Split(strings.TrimSpace(string(raw)), "\n")
			}
			r, warnings, err := ParseBatch(script, args)
			if want, ok := corpusErrors[name]; ok {
				if err == nil || err.Error() != want {
					t.Fatalf("ParseBatch: %v; want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBatch: %v", err)
			}
			r.Now = submitAt
			r.SubmitDir = "/home/ada/project"
			r.SubmitHost = "login01"
			r.SubmitEnv = map[string]string{"HOME": "/home/ada", "PATH": "/usr/bin:/bin", "USER": "ada"}
			job, task, err := r.Job()
			if err != nil {
				t.Fatalf("Job: %v", err)
			}
			if task.Script != string(script) {
				t.Errorf("the task's script is not the file as read")
			}
			want, ok := corpusShapes[name]
			got := describe(r, warnings, job, task)
			switch {
			case !ok:
				t.Errorf("no entry in corpusShapes; add %q: %q after checking it", name, got)
			case got != want:
				t.Errorf("shape:\n got %s\nwant %s\nwarnings:\n%s", got, want, strings.Join(warnings, "\n"))
			}
			task.Script = ""
			out, err := json.MarshalIndent(struct {
				Job       model.Job  `json:"job"`
				Task      model.Task `json:"task"`
				Array     *Array     `json:"array,omitempty"`
				Singleton bool       `json:"singleton,omitempty"`
				Warnings  []string   `json:"warnings"`
			}{job, task, r.Array, r.Singleton, warnings}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("scripts", strings.TrimSuffix(name, ".sbatch")), append(out, '\n'))
		})
	}
	for name := range corpusErrors {
		if !slices.Contains(names, name) {
			t.Errorf("corpusErrors names %s, which is not in testdata/scripts", name)
		}
	}
	for name := range corpusShapes {
		if !slices.Contains(names, name) {
			t.Errorf("corpusShapes names %s, which is not in testdata/scripts", name)
		}
	}
}
