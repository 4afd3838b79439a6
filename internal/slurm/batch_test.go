package slurm

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usine-project/usine/internal/model"
)

// script builds a batch script from #SBATCH arguments, one directive each.
func script(directives ...string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	for _, d := range directives {
		b.WriteString("#SBATCH " + d + "\n")
	}
	b.WriteString("srun hostname\n")
	return []byte(b.String())
}

var ignoreScript = cmpopts.IgnoreFields(Request{}, "Script")

func TestParseBatchOptionForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want Request
	}{
		{"--opt=value", []string{"--time=10"}, Request{Limit: 600}},
		{"--opt value", []string{"--time", "10"}, Request{Limit: 600}},
		{"-Xvalue", []string{"-t10"}, Request{Limit: 600}},
		{"-X value", []string{"-t", "10"}, Request{Limit: 600}},
		{"an unambiguous prefix of a long option", []string{"--job=train", "--part", "gpu"}, Request{Name: "train", Partition: "gpu"}},
		{"an exact name wins over longer ones it prefixes", []string{"--mem=4G"}, Request{MemMiB: 4096}},
		{"bundled flags", []string{"-Hvv"}, Request{Hold: true, Verbose: 2}},
		{"bundled flags ending with a value", []string{"-HJtrain"}, Request{Hold: true, Name: "train"}},
		{"the last of an option wins", []string{"-J", "a", "-J", "b"}, Request{Name: "b"}},
		{"-- ends the options", []string{"-J", "x", "--", "-t", "5"}, Request{Name: "x", ScriptPath: "-t", ScriptArgs: []string{"5"}}},
		{"the script path and its arguments", []string{"-N", "2", "train.sh", "--lr", "0.1"}, Request{NodesMin: 2, NodesMax: 2, Name: "train.sh", ScriptPath: "train.sh", ScriptArgs: []string{"--lr", "0.1"}}},
		{"the name defaults to the script's base name", []string{"jobs/train.sbatch"}, Request{Name: "train.sbatch", ScriptPath: "jobs/train.sbatch", ScriptArgs: []string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := ParseBatch(script(), tc.args)
			if err != nil {
				t.Fatalf("ParseBatch(%q): %v", tc.args, err)
			}
			if tc.want.Name == "" {
				tc.want.Name = "sbatch"
			}
			if diff := cmp.Diff(&tc.want, got, ignoreScript, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseBatch(%q) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestParseBatchOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  string // one option, used both as a directive and on the command line
		want Request
	}{
		{"job name", "-J train", Request{Name: "train"}},
		{"account", "-A proj42", Request{Account: "proj42"}},
		{"partition", "-p gpu", Request{Partition: "gpu"}},
		{"qos", "-q high", Request{QoS: "high"}},
		{"nodes", "-N 4", Request{NodesMin: 4, NodesMax: 4}},
		{"ntasks", "-n 16", Request{Ntasks: 16}},
		{"ntasks per node", "--ntasks-per-node=4", Request{NtasksPerNode: 4}},
		{"cpus per task", "-c 8", Request{CPUsPerTask: 8}},
		{"cpus per gpu", "--cpus-per-gpu=16", Request{CPUsPerGPU: 16}},
		{"mincpus", "--mincpus=32", Request{MinCPUs: 32}},
		{"memory in MiB by default", "--mem=4000", Request{MemMiB: 4000}},
		{"memory in GiB", "--mem=32G", Request{MemMiB: 32 * 1024}},
		{"memory in TiB, lower case, with a B", "--mem=1tb", Request{MemMiB: 1024 * 1024}},
		{"memory in KiB rounds up", "--mem=1500K", Request{MemMiB: 2}},
		{"memory per cpu", "--mem-per-cpu=2G", Request{MemPerCPUMiB: 2048}},
		{"memory per gpu", "--mem-per-gpu=80G -G 2", Request{MemPerGPUMiB: 80 * 1024, GPUs: GPUs{Count: 2}}},
		{"gpus", "-G 8", Request{GPUs: GPUs{Count: 8}}},
		{"typed gpus", "--gpus=h100:8", Request{GPUs: GPUs{Type: "h100", Count: 8}, Model: "H100"}},
		{"gpus per node", "--gpus-per-node=4", Request{GPUsPerNode: GPUs{Count: 4}}},
		{"gpus per task", "--gpus-per-task=1", Request{GPUsPerTask: GPUs{Count: 1}}},
		{"gres count", "--gres=gpu:4", Request{GresGPUs: GPUs{Count: 4}}},
		{"gres type and count", "--gres=gpu:a100:4", Request{GresGPUs: GPUs{Type: "a100", Count: 4}, Model: "A100"}},
		{"gres without a count is one", "--gres=gpu", Request{GresGPUs: GPUs{Count: 1}}},
		{"gres type without a count", "--gres=gpu:mi250x", Request{GresGPUs: GPUs{Type: "mi250x", Count: 1}, Model: "MI250X"}},
		{"time D-H:M:S", "-t 1-02:03:04", Request{Limit: 93784}},
		{"time H:M:S", "--time=02:00:00", Request{Limit: 7200}},
		{"output", "-o logs/%x-%j.out", Request{Output: "logs/%x-%j.out"}},
		{"error", "-e logs/%x-%j.err", Request{Error: "logs/%x-%j.err"}},
		{"chdir", "-D /scratch/run", Request{WorkDir: "/scratch/run"}},
		{"workdir, the old name", "--workdir=/scratch/run", Request{WorkDir: "/scratch/run"}},
		{"export none", "--export=NONE", Request{Export: Export{None: true}}},
		{"export all with a value", "--export=ALL,OMP_NUM_THREADS=8", Request{Export: Export{Set: []EnvVar{{"OMP_NUM_THREADS", "8"}}}}},
		{"export a list only", "--export=HOME,CFG=a.yaml", Request{Export: Export{None: true, Names: []string{"HOME"}, Set: []EnvVar{{"CFG", "a.yaml"}}}}},
		{"array range", "-a 0-3", Request{Array: &Array{Spec: "0-3", Indices: []int{0, 1, 2, 3}}}},
		{"array list, step and throttle", "--array=1,3,10-16:3%2", Request{Array: &Array{Spec: "1,3,10-16:3%2", Indices: []int{1, 3, 10, 13, 16}, Throttle: 2}}},
		{"dependency afterok on two jobs", "-d afterok:101:102", Request{Deps: []model.Dependency{{Type: model.AfterOK, JobID: "101"}, {Type: model.AfterOK, JobID: "102"}}}},
		{"dependency of several types", "--dependency=after:7,afterany:8,afternotok:9_2", Request{Deps: []model.Dependency{{Type: model.AfterStart, JobID: "7"}, {Type: model.AfterAny, JobID: "8"}, {Type: model.AfterNotOK, JobID: "9_2"}}}},
		{"dependency singleton", "--dependency=singleton", Request{Singleton: true}},
		{"exclusive", "--exclusive", Request{Exclusive: true}},
		{"constraint with a model", "-C h100", Request{Constraint: "h100", Model: "H100"}},
		{"switches", "--switches=1", Request{Switches: 1}},
		{"signal with a default time", "--signal=USR1", Request{Signal: "USR1", SignalBefore: 60}},
		{"signal to the batch shell, by number", "--signal=B:10@300", Request{Signal: "USR1", SignalBefore: 300, SignalBatchOnly: true}},
		{"signal with SIG", "--signal=SIGTERM@120", Request{Signal: "TERM", SignalBefore: 120}},
		{"requeue", "--requeue", Request{Requeue: true}},
		{"no requeue", "--no-requeue", Request{}},
		{"hold", "-H", Request{Hold: true}},
		{"begin", "--begin=now+1hour", Request{Begin: "now+1hour"}},
		{"parsable", "--parsable", Request{Parsable: true}},
		{"wait", "-W", Request{Wait: true}},
		{"test only", "--test-only", Request{TestOnly: true}},
		{"quiet", "-Q", Request{Quiet: true}},
		{"help", "-h", Request{Help: true}},
		{"usage", "--usage", Request{Usage: true}},
		{"version", "-V", Request{Version: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.want.Name == "" {
				tc.want.Name = "sbatch"
			}
			fromScript, _, err := ParseBatch(script(tc.opt), nil)
			if err != nil {
				t.Fatalf("as a directive: %v", err)
			}
			if diff := cmp.Diff(&tc.want, fromScript, ignoreScript, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("#SBATCH %s (-want +got):\n%s", tc.opt, diff)
			}
			fromArgs, _, err := ParseBatch(script(), splitDirectiveT(t, tc.opt))
			if err != nil {
				t.Fatalf("on the command line: %v", err)
			}
			if diff := cmp.Diff(&tc.want, fromArgs, ignoreScript, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sbatch %s (-want +got):\n%s", tc.opt, diff)
			}
		})
	}
}

func splitDirectiveT(t *testing.T, s string) []string {
	t.Helper()
	w, err := splitDirective(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestParseBatchDirectives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       string
		args         []string
		want         Request
		wantWarnings []string
	}{
		{
			name:   "directives stop at the first command",
			script: "#!/bin/bash\n#SBATCH -J first\n\n# a comment\nmodule load pytorch\n#SBATCH -N 8\n",
			want:   Request{Name: "first"},
			wantWarnings: []string{
				"sbatch: warning: #SBATCH directives after the first command (line 5) are ignored, as Slurm ignores them (script line 6)",
			},
		},
		{
			name:   "the command line replaces the script",
			script: "#!/bin/bash\n#SBATCH -J script -t 10\n#SBATCH --mem-per-cpu=2G\n",
			args:   []string{"-J", "cmdline", "--mem=64G"},
			want:   Request{Name: "cmdline", Limit: 600, MemMiB: 64 * 1024},
		},
		{
			name:   "several options on one line, quotes and a trailing comment",
			script: "#!/bin/sh\n#SBATCH --job-name=\"my job\" -o 'out %j.log' # keep it short\n",
			want:   Request{Name: "my job", Output: "out %j.log"},
		},
		{
			name:   "escaped quotes inside double quotes",
			script: "#!/bin/sh\n#SBATCH --comment=\"say \\\"hi\\\"\"\n",
			want:   Request{Name: "sbatch"},
			wantWarnings: []string{
				`sbatch: warning: --comment=say "hi" is ignored: usine keeps no job comment (script line 2)`,
			},
		},
		{
			name:   "commented-out directives and indented ones are comments",
			script: "#!/bin/bash\n##SBATCH -N 100\n# SBATCH -N 100\n  #SBATCH -N 100\n#SBATCH -N 1\n",
			want:   Request{Name: "sbatch", NodesMin: 1, NodesMax: 1},
			wantWarnings: []string{
				"sbatch: warning: an indented #SBATCH is a plain comment, as in Slurm; start the line with #SBATCH to use it (script line 4)",
			},
		},
		{
			name:   "#SBATCHX is not a directive",
			script: "#!/bin/bash\n#SBATCHX -N 100\n",
			want:   Request{Name: "sbatch"},
		},
		{
			name:   "words that are not options are ignored with a warning",
			script: "#!/bin/bash\n#SBATCH -N 2 extra words\n",
			want:   Request{Name: "sbatch", NodesMin: 2, NodesMax: 2},
			wantWarnings: []string{
				`sbatch: warning: "extra words" in an #SBATCH directive is not an option; it is ignored (script line 2)`,
			},
		},
		{
			name:   "variables are not expanded in directives",
			script: "#!/bin/bash\n#SBATCH -o $HOME/out.log\n",
			want:   Request{Name: "sbatch", Output: "$HOME/out.log"},
			wantWarnings: []string{
				`sbatch: warning: --output: #SBATCH lines are not expanded by a shell; "$HOME/out.log" is kept as written (script line 2)`,
			},
		},
		{
			name:   "options that mean nothing here warn once each",
			script: "#!/bin/bash\n#SBATCH --mail-type=END,FAIL\n#SBATCH --mail-user=a@b.eu\n#SBATCH --hint=nomultithread\n",
			want:   Request{Name: "sbatch"},
			wantWarnings: []string{
				"sbatch: warning: --mail-type=END,FAIL is ignored: usine sends no e-mail (script line 2)",
				"sbatch: warning: --mail-user=a@b.eu is ignored: usine sends no e-mail (script line 3)",
				"sbatch: warning: --hint=nomultithread is ignored: the node agent binds CPUs per job (script line 4)",
			},
		},
		{
			name:   "a warned option on the command line says no line",
			args:   []string{"--gpu-bind=closest"},
			script: "#!/bin/sh\ntrue\n",
			want:   Request{Name: "sbatch"},
			wantWarnings: []string{
				"sbatch: warning: --gpu-bind=closest is ignored: the node agent gives each job its own accelerators",
			},
		},
		{
			name:   "--nodes min-max takes the minimum",
			script: "#!/bin/sh\n#SBATCH -N 2-4\n",
			want:   Request{Name: "sbatch", NodesMin: 2, NodesMax: 4},
			wantWarnings: []string{
				"sbatch: warning: --nodes=2-4: usine allocates exactly 2 nodes, the minimum (script line 2)",
			},
		},
		{
			name:   "fewer tasks than nodes lowers the node count, as Slurm does",
			script: "#!/bin/sh\n#SBATCH -N 4 -n 2\n",
			want:   Request{Name: "sbatch", NodesMin: 2, NodesMax: 2, Ntasks: 2},
			wantWarnings: []string{
				"sbatch: warning: can't run 2 processes on 4 nodes, setting nnodes to 2",
			},
		},
		{
			name:   "several partitions: the first",
			script: "#!/bin/sh\n#SBATCH -p gpu,gpu-big\n",
			want:   Request{Name: "sbatch", Partition: "gpu"},
			wantWarnings: []string{
				"sbatch: warning: --partition=gpu,gpu-big: usine submits to one partition, gpu (script line 2)",
			},
		},
		{
			name:   "unlimited time",
			script: "#!/bin/sh\n#SBATCH -t UNLIMITED\n",
			want:   Request{Name: "sbatch", Limit: Unlimited},
			wantWarnings: []string{
				"sbatch: warning: --time=UNLIMITED asks for no time limit: usine applies the partition's limit (script line 2)",
			},
		},
		{
			name:   "mem=0 without exclusive",
			script: "#!/bin/sh\n#SBATCH --mem=0\n",
			want:   Request{Name: "sbatch", MemWholeNode: true},
			wantWarnings: []string{
				"sbatch: warning: --mem=0 asks for all of each node's memory, which usine does not count; add --exclusive to have whole nodes",
			},
		},
		{
			name:   "constraint with a memory variant and another feature",
			script: "#!/bin/sh\n#SBATCH -C v100-32g&ib\n",
			want:   Request{Name: "sbatch", Constraint: "v100-32g&ib", Model: "V100"},
			wantWarnings: []string{
				`sbatch: warning: --constraint=v100-32g&ib: usine reads "v100-32g" as the model V100, without the memory variant`,
				`sbatch: warning: --constraint=v100-32g&ib: usine ignores the node feature "ib"; it knows nodes only by accelerator model`,
			},
		},
		{
			name:   "constraint alternatives leave the model open",
			script: "#!/bin/sh\n#SBATCH -C [a100|h100]\n",
			want:   Request{Name: "sbatch", Constraint: "[a100|h100]"},
			wantWarnings: []string{
				"sbatch: warning: --constraint=[a100|h100]: usine cannot choose between accelerator models; the job may run on any",
			},
		},
		{
			name:   "gres other than gpu",
			script: "#!/bin/sh\n#SBATCH --gres=gpu:4,nvme:1\n",
			want:   Request{Name: "sbatch", GresGPUs: GPUs{Count: 4}},
			wantWarnings: []string{
				`sbatch: warning: --gres=gpu:4,nvme:1: usine ignores the generic resource "nvme" and counts only gpu (script line 2)`,
			},
		},
		{
			name:   "switches with a wait",
			script: "#!/bin/sh\n#SBATCH --switches=1@2:00:00\n",
			want:   Request{Name: "sbatch", Switches: 1, SwitchesWait: 7200},
			wantWarnings: []string{
				"sbatch: warning: --switches=1@2:00:00: usine waits for one block as long as it takes; @2:00:00 is ignored (script line 2)",
			},
		},
		{
			name: "wrap writes a script",
			args: []string{"--wrap", "python train.py"},
			want: Request{Name: "wrap", Wrap: "python train.py"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sc []byte
			if tc.script != "" {
				sc = []byte(tc.script)
			}
			got, warnings, err := ParseBatch(sc, tc.args)
			if err != nil {
				t.Fatalf("ParseBatch: %v", err)
			}
			if diff := cmp.Diff(&tc.want, got, ignoreScript, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWarnings, warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBatchHelpNeedsNoScript(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h", "--usage", "-V"} {
		r, _, err := ParseBatch(nil, []string{arg})
		if err != nil || !(r.Help || r.Usage || r.Version) {
			t.Errorf("ParseBatch(nil, %s) = %+v, %v; want the flag set and no script needed", arg, r, err)
		}
	}
}

func TestArrayBoundsAndStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec                string
		lo, hi, count, step int
	}{
		{"0-15", 0, 15, 16, 1},
		{"1-9:2", 1, 9, 5, 2},
		{"1,3,4", 1, 4, 3, 1},
		{"7", 7, 7, 1, 1},
	} {
		a, err := ParseArray(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi, count := a.Bounds()
		if lo != tc.lo || hi != tc.hi || count != tc.count || a.Step() != tc.step {
			t.Errorf("array %s: bounds %d %d %d step %d; want %d %d %d step %d", tc.spec, lo, hi, count, a.Step(), tc.lo, tc.hi, tc.count, tc.step)
		}
	}
}

func TestParseBatchWrapScript(t *testing.T) {
	t.Parallel()
	r, _, err := ParseBatch(nil, []string{"-N1", "--wrap=echo hi"})
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\n# written by usine's sbatch for --wrap\necho hi\n"
	if string(r.Script) != want {
		t.Errorf("script = %q; want %q", r.Script, want)
	}
}

func TestParseBatchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string // "" = a plain script
		args   []string
		want   string
	}{
		{"unknown long option", "", []string{"--foo"}, "sbatch: unrecognized option '--foo'"},
		{"unknown long option in the script", "#!/bin/sh\n#SBATCH --foo=1\n", nil, "sbatch: unrecognized option '--foo' (script line 2)"},
		{"unknown short option", "", []string{"-y"}, "sbatch: invalid option -- 'y'"},
		{"unknown short option bundled", "", []string{"-Hy"}, "sbatch: invalid option -- 'y'"},
		{"ambiguous prefix", "", []string{"--mem-per=1G"}, "sbatch: option '--mem-per' is ambiguous; possibilities: '--mem-per-cpu' '--mem-per-gpu'"},
		{"long option without its argument", "", []string{"--time"}, "sbatch: option '--time' requires an argument"},
		{"short option without its argument", "", []string{"-t"}, "sbatch: option requires an argument -- 't'"},
		{"flag with an argument", "", []string{"--hold=yes"}, "sbatch: option '--hold' doesn't allow an argument"},
		{"bad time", "#!/bin/sh\n#SBATCH --time=1:xx\n", nil, `sbatch: error: Invalid --time specification "1:xx": use minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds, or UNLIMITED (script line 2)`},
		{"bad open mode", "", []string{"--open-mode=overwrite"}, `sbatch: error: Invalid --open-mode argument: "overwrite"; give append or truncate`},
		{"bad node count", "", []string{"-N", "two"}, `sbatch: error: Invalid node count specification "two": give n or min-max, as in -N 4 or -N 2-4`},
		{"reversed node range", "", []string{"-N", "4-2"}, `sbatch: error: Invalid node count specification "4-2": give min-max with min <= max, as in -N 2-4`},
		{"zero tasks", "", []string{"-n", "0"}, `sbatch: error: Invalid numeric value "0" for --ntasks: give a number from 1 to 16777216`},
		{"letters for cpus", "", []string{"-c", "many"}, `sbatch: error: Invalid numeric value "many" for --cpus-per-task: give a whole number`},
		{"bad memory", "", []string{"--mem=32X"}, `sbatch: error: invalid memory constraint "32X" for --mem: give a size such as 4000, 500M, 32G or 1T`},
		{"two memory options in the script", "#!/bin/sh\n#SBATCH --mem=1G\n#SBATCH --mem-per-cpu=1G\n", nil, "sbatch: error: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive; give one (script line 3)"},
		{"bad gpus", "", []string{"--gpus=h100:x"}, `sbatch: error: Invalid --gpus specification "h100:x": give [type:]count, as in 4 or h100:4`},
		{"two gpu types", "", []string{"--gpus=h100:4,a100:4"}, `sbatch: error: Invalid --gpus specification "h100:4,a100:4": usine jobs use one accelerator model; give one [type:]count`},
		{"bad gres", "", []string{"--gres=gpu:h100:4:x"}, `sbatch: error: Invalid --gres specification "gpu:h100:4:x": give name[:type][:count] items, as in gpu:h100:4`},
		{"bad array", "", []string{"--array=5-1"}, `sbatch: error: Invalid --array specification "5-1": range 5-1 is reversed; write 1-5`},
		{"array step without a range", "", []string{"--array=5:2"}, `sbatch: error: Invalid --array specification "5:2": "5:2": a step follows a range and is at least 1, as in 1-9:2`},
		{"array throttle zero", "", []string{"--array=1-5%0"}, `sbatch: error: Invalid --array specification "1-5%0": after % give how many tasks may run at once, at least 1`},
		{"array too large", "", []string{"--array=0-200000"}, `sbatch: error: Invalid --array specification "0-200000": more than 100000 tasks; split the array`},
		{"array index too large", "", []string{"--array=5000000"}, `sbatch: error: Invalid --array specification "5000000": "5000000" is not an index from 0 to 4000000`},
		{"dependency with '?'", "", []string{"-d", "afterok:1?afterok:2"}, `sbatch: error: Invalid --dependency specification "afterok:1?afterok:2": usine does not support '?' (any of); join dependencies with ',' (all of)`},
		{"dependency of an unknown type", "", []string{"-d", "before:1"}, `sbatch: error: Invalid --dependency specification "before:1": "before" is not a dependency type; use after, afterany, afterok, afternotok or singleton`},
		{"dependency without ids", "", []string{"-d", "afterok"}, `sbatch: error: Invalid --dependency specification "afterok": afterok needs job ids, as in afterok:1234`},
		{"dependency with a delay", "", []string{"-d", "after:12+5"}, `sbatch: error: Invalid --dependency specification "after:12+5": usine does not support delays such as "12+5"; drop the +minutes`},
		{"aftercorr", "", []string{"-d", "aftercorr:12"}, `sbatch: error: Invalid --dependency specification "aftercorr:12": usine does not support aftercorr; make each array task depend on its job with afterok`},
		{"bad export", "", []string{"--export=ALL,1X=2"}, `sbatch: error: Invalid --export specification "ALL,1X=2": "1X" is not a variable name; give ALL, NONE or NAME[=value] items`},
		{"bad signal", "", []string{"--signal=FOO@10"}, `sbatch: error: Invalid --signal specification "FOO@10": "FOO" is not a signal; give a name such as USR1 or a number`},
		{"signal time too large", "", []string{"--signal=USR1@70000"}, `sbatch: error: Invalid --signal specification "USR1@70000": @secs is a number of seconds from 0 to 65535`},
		{"bad switches", "", []string{"--switches=0"}, `sbatch: error: Invalid --switches specification "0": give a count of at least 1, optionally @time, as in 1@2:00:00`},
		{"bad begin", "", []string{"--begin=someday"}, `sbatch: error: Invalid time specification "someday" for --begin: begin time "someday": use HH:MM[:SS] [AM|PM], YYYY-MM-DD[THH:MM[:SS]], MMDD[YY], MM/DD[/YY][-HH:MM[:SS]], now[+count[seconds|minutes|hours|days|weeks]], today, tomorrow, midnight, noon, elevenses, fika or teatime`},
		{"bad exclusive", "", []string{"--exclusive=always"}, `sbatch: error: Invalid --exclusive specification "always": give --exclusive, or =user, =mcs or =topo`},
		{"empty job name", "", []string{"-J", ""}, "sbatch: error: --job-name is empty; give a value"},
		{"refused option", "#!/bin/sh\n#SBATCH -w gpu[001-004]\n", nil, "sbatch: error: --nodelist is not supported by usine: usine places jobs itself; ask for a partition or an accelerator model (script line 2)"},
		{"refused reservation", "", []string{"--reservation=hackathon"}, "sbatch: error: --reservation is not supported by usine: usine has no advance reservations; ask an operator for a partition or QoS"},
		{"heterogeneous job", "#!/bin/sh\n#SBATCH -N 1\n#SBATCH hetjob\n#SBATCH -N 2\n", nil, "sbatch: error: heterogeneous jobs (#SBATCH hetjob) are not supported by usine; submit the components as separate jobs (script line 3)"},
		{"no shebang", "srun hostname\n", nil, "sbatch: error: This does not look like a batch script.  The first line must start with #! followed by the path to an interpreter, as in #!/bin/bash (script line 1)"},
		{"empty script", "   \n", nil, "sbatch: error: Batch script is empty!"},
		{"DOS line breaks", "#!/bin/sh\n#SBATCH -N 1\r\nhostname\r\n", nil, `sbatch: error: Batch script contains DOS line breaks (\r\n) instead of Unix ones (\n); convert it with dos2unix (script line 2)`},
		{"a NUL byte", "#!/bin/sh\nhost\x00name\n", nil, "sbatch: error: The batch script contains a NUL character; is it a binary file? (script line 2)"},
		{"unterminated quote", "#!/bin/sh\n#SBATCH -J \"oops\n", nil, `sbatch: error: unterminated " quote in #SBATCH directive; close it (script line 2)`},
		{"wrap and a script", "", []string{"--wrap=true", "job.sh"}, "sbatch: error: --wrap and a script file are mutually exclusive; give one"},
		{"wrap as a directive", "#!/bin/sh\n#SBATCH --wrap=hostname\n", nil, "sbatch: error: --wrap cannot be a directive: it replaces the script; give it on the command line (script line 2)"},
		{"gpus that do not spread evenly", "", []string{"-N", "3", "--gpus=8"}, "sbatch: error: --gpus=8 cannot be spread evenly over 3 nodes; usine gives each node of a job the same count: give --gpus-per-node"},
		{"conflicting gpu counts", "", []string{"-N", "2", "--gpus-per-node=4", "--gres=gpu:8"}, "sbatch: error: conflicting GPU requests: --gpus-per-node=4 means 4 accelerators per node but --gres=gpu:8 means 8; give one"},
		{"conflicting models", "", []string{"--gres=gpu:h100:4", "-C", "a100"}, "sbatch: error: conflicting accelerator models: --gres asks for H100 but another option for A100; give one model"},
		{"tasks that do not fit", "", []string{"-N", "2", "--ntasks-per-node=4", "-n", "9"}, "sbatch: error: --ntasks=9 does not fit on 2 nodes with --ntasks-per-node=4; raise --nodes or --ntasks-per-node"},
		{"memory per gpu without gpus", "", []string{"--mem-per-gpu=10G"}, "sbatch: error: --mem-per-gpu is given but no GPUs are; give --gpus, --gpus-per-node or --gres=gpu:N"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := script()
			if tc.script != "" {
				sc = []byte(tc.script)
			}
			if tc.name == "wrap and a script" {
				sc = nil
			}
			_, _, err := ParseBatch(sc, tc.args)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseBatch = %v; want an *Error", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestEnvOptions(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"SBATCH_PARTITION": "gpu", "SBATCH_TIMELIMIT": "1:00:00", "SBATCH_EXCLUSIVE": "1",
		"SBATCH_REQUEUE": "", "SBATCH_GPUS_PER_NODE": "4", "HOME": "/home/a",
	}
	got := EnvOptions(env)
	want := []string{"--exclusive", "--gpus-per-node=4", "--partition=gpu", "--requeue", "--time=1:00:00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EnvOptions (-want +got):\n%s", diff)
	}
	// They rank above the script and below later command-line options.
	r, _, err := ParseBatch(script("-p cpu", "-t 5", "-J scripted"), append(got, "--time=30"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Partition != "gpu" || r.Limit != 1800 || r.Name != "scripted" || !r.Requeue || !r.Exclusive {
		t.Errorf("request = %+v; want partition gpu from the environment, time 30 minutes from the command line, name from the script", r)
	}
}

// TestEveryOption runs each option of the table once on the command line:
// supported ones are accepted, warned ones give exactly one warning naming
// them, refused ones fail naming them.
func TestEveryOption(t *testing.T) {
	t.Parallel()
	samples := map[string][]string{
		"account": {"--account=p"}, "array": {"--array=1-3"}, "begin": {"--begin=now"}, "chdir": {"--chdir=/tmp"},
		"constraint": {"--constraint=h100"}, "cpus-per-gpu": {"--cpus-per-gpu=4"}, "cpus-per-task": {"--cpus-per-task=2"},
		"dependency": {"--dependency=afterok:1"}, "error": {"--error=e.out"}, "exclusive": {"--exclusive"},
		"export": {"--export=ALL"}, "gpus": {"--gpus=2"}, "gpus-per-node": {"--gpus-per-node=2"},
		"gpus-per-task": {"--gpus-per-task=1"}, "gres": {"--gres=gpu:2"}, "job-name": {"--job-name=x"}, "open-mode": {"--open-mode=append"},
		"mem": {"--mem=1G"}, "mem-per-cpu": {"--mem-per-cpu=1G"}, "mem-per-gpu": {"--mem-per-gpu=1G", "-G", "1"},
		"mincpus": {"--mincpus=2"}, "nodes": {"--nodes=2"}, "ntasks": {"--ntasks=2"}, "ntasks-per-node": {"--ntasks-per-node=2"},
		"output": {"--output=o"}, "partition": {"--partition=p"}, "qos": {"--qos=q"}, "signal": {"--signal=USR1"},
		"switches": {"--switches=1"}, "time": {"--time=10"}, "workdir": {"--workdir=/tmp"}, "wrap": {"--wrap=true"},
	}
	for _, o := range options() {
		t.Run(o.long, func(t *testing.T) {
			t.Parallel()
			args := []string{"--" + o.long}
			switch {
			case o.support == Supported && o.arg != noArg:
				var ok bool
				if args, ok = samples[o.long]; !ok {
					t.Fatalf("no sample value for --%s; add one", o.long)
				}
			case o.arg == requiredArg:
				args[0] += "=x"
			}
			sc := script()
			if o.long == "wrap" {
				sc = nil
			}
			_, warnings, err := ParseBatch(sc, args)
			switch o.support {
			case Supported:
				if err != nil || len(warnings) != 0 {
					t.Errorf("ParseBatch(%q) = %v, warnings %q; want it accepted quietly", args, err, warnings)
				}
			case Warned:
				if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "--"+o.long) {
					t.Errorf("ParseBatch(%q) = %v, warnings %q; want one warning naming --%s", args, err, warnings, o.long)
				}
			case Refused:
				if err == nil || !strings.Contains(err.Error(), "--"+o.long+" is not supported by usine: "+o.note) {
					t.Errorf("ParseBatch(%q) = %v; want it refused with its reason", args, err)
				}
			}
		})
	}
}
