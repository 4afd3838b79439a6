package slurm

import (
	"fmt"
	"slices"
	"strings"
)

// Support says what usine does with a Slurm option.
type Support string

// Supports.
const (
	Supported Support = "supported" // it means the same as in Slurm
	Warned    Support = "warned"    // accepted, means nothing here; a one-line warning says so
	Refused   Support = "refused"   // recognised and refused, with the reason and what to do instead
)

type argKind uint8

const (
	noArg argKind = iota
	requiredArg
	optionalArg // only as --opt=value
)

// option is one sbatch option: its names, what usine does with it, and for
// supported options how it sets a Request.
type option struct {
	long    string
	short   byte
	arg     argKind
	argName string // shown in the docs
	support Support
	env     string // the SBATCH_ input variable that sets it, if any
	// group names options that replace one another: a command-line option
	// drops the script's options of its group. "" = the long name.
	group string
	note  string // what it does here, or why it is ignored or refused
	set   func(s *setter, v string) error
}

func (o *option) groupName() string {
	if o.group != "" {
		return o.group
	}
	return o.long
}

// setter is what an option's set function works on: the request and a way
// to warn.
type setter struct {
	r    *Request
	warn func(format string, args ...any)
}

// options is sbatch's option table, in the order the docs list it.
func options() []option {
	return []option{
		{long: "account", short: 'A', arg: requiredArg, argName: "account", support: Supported, env: "SBATCH_ACCOUNT",
			note: "the usine project charged for the job", set: setString("account", func(r *Request) *string { return &r.Account })},
		{long: "acctg-freq", arg: requiredArg, argName: "spec", support: Warned, env: "SBATCH_ACCTG_FREQ", note: "usine samples accounting itself"},
		{long: "array", short: 'a', arg: requiredArg, argName: "indexes", support: Supported, env: "SBATCH_ARRAY_INX",
			note: "indices, ranges and steps (1-7:2); one usine job per index; a %N throttle lets N run at once", set: setArray},
		{long: "batch", arg: requiredArg, argName: "features", support: Warned, note: "usine runs the batch script on the job's first node"},
		{long: "bb", arg: requiredArg, argName: "spec", support: Refused, note: "usine has no burst buffers; stage data in the script"},
		{long: "bbf", arg: requiredArg, argName: "file", support: Refused, note: "usine has no burst buffers; stage data in the script"},
		{long: "begin", short: 'b', arg: requiredArg, argName: "time", support: Supported,
			note: "the job does not start before this time (all of Slurm's forms)", set: setBegin},
		{long: "chdir", short: 'D', arg: requiredArg, argName: "directory", support: Supported, group: "chdir",
			note: "the script's working directory, relative to the submission directory", set: setString("chdir", func(r *Request) *string { return &r.WorkDir })},
		{long: "cluster-constraint", arg: requiredArg, argName: "list", support: Warned, note: "a usine federation picks the site from the partition"},
		{long: "clusters", short: 'M', arg: requiredArg, argName: "names", support: Refused, env: "SBATCH_CLUSTERS", note: "a usine federation picks the site from the partition; choose it with --partition"},
		{long: "comment", arg: requiredArg, argName: "text", support: Warned, note: "usine keeps no job comment"},
		{long: "constraint", short: 'C', arg: requiredArg, argName: "features", support: Supported, env: "SBATCH_CONSTRAINT",
			note: "an accelerator model feature (h100, a100, mi250x, v100-32g…) becomes the job's model; other features are ignored with a warning", set: setConstraint},
		{long: "container", arg: requiredArg, argName: "path", support: Refused, env: "SBATCH_CONTAINER", note: "run the container runtime from the script instead"},
		{long: "container-id", arg: requiredArg, argName: "id", support: Refused, note: "run the container runtime from the script instead"},
		{long: "contiguous", arg: noArg, support: Warned, note: "usine places gangs by topology (--switches=1 keeps a job in one block)"},
		{long: "core-spec", short: 'S', arg: requiredArg, argName: "cores", support: Warned, note: "usine does not reserve cores for the system"},
		{long: "cores-per-socket", arg: requiredArg, argName: "cores", support: Warned, note: "usine does not place by socket"},
		{long: "cpu-bind", arg: requiredArg, argName: "type", support: Warned, note: "the node agent binds CPUs per job"},
		{long: "cpu-freq", arg: requiredArg, argName: "freq", support: Warned, env: "SBATCH_CPU_FREQ_REQ", note: "usine does not set CPU frequencies"},
		{long: "cpus-per-gpu", arg: requiredArg, argName: "n", support: Supported, env: "SBATCH_CPUS_PER_GPU",
			note: "CPUs for each accelerator", set: setInt("cpus-per-gpu", func(r *Request) *int { return &r.CPUsPerGPU })},
		{long: "cpus-per-task", short: 'c', arg: requiredArg, argName: "n", support: Supported,
			note: "CPUs for each task; the job's CPUs are tasks × this", set: setInt("cpus-per-task", func(r *Request) *int { return &r.CPUsPerTask })},
		{long: "deadline", arg: requiredArg, argName: "time", support: Warned, note: "usine does not cancel jobs that cannot end by a deadline"},
		{long: "delay-boot", arg: requiredArg, argName: "minutes", support: Warned, note: "usine does not reboot nodes for jobs"},
		{long: "dependency", short: 'd', arg: requiredArg, argName: "list", support: Supported,
			note: "after, afterany, afterok, afternotok (':'-separated ids, ','-separated types) and singleton; '?' (any of), +delays and aftercorr are refused", set: setDependency},
		{long: "distribution", short: 'm', arg: requiredArg, argName: "type", support: Warned, env: "SBATCH_DISTRIBUTION", note: "tasks are laid out in block order"},
		{long: "error", short: 'e', arg: requiredArg, argName: "pattern", support: Supported,
			note: "the file for standard error, %-patterns expanded on the node", set: setString("error", func(r *Request) *string { return &r.Error })},
		{long: "exclude", short: 'x', arg: requiredArg, argName: "nodes", support: Refused, note: "usine places jobs itself and stops placing on unhealthy nodes; ask an operator to drain a bad node"},
		{long: "exclusive", arg: optionalArg, argName: "user|mcs|topo", support: Supported, env: "SBATCH_EXCLUSIVE",
			note: "whole nodes, shared with no other job", set: setExclusive},
		{long: "export", arg: requiredArg, argName: "ALL|NONE|vars", support: Supported, env: "SBATCH_EXPORT",
			note: "which of the submitting environment's variables the job sees (ALL by default); NAME=value sets one", set: setExport},
		{long: "export-file", arg: requiredArg, argName: "file", support: Refused, note: "use --export=NAME=value, or source the file in the script"},
		{long: "extra", arg: requiredArg, argName: "string", support: Warned, note: "usine nodes have no extra attributes"},
		{long: "extra-node-info", short: 'B', arg: requiredArg, argName: "S[:C[:T]]", support: Warned, note: "usine does not place by socket, core or thread"},
		{long: "get-user-env", arg: optionalArg, argName: "timeout", support: Warned, note: "--export=ALL already passes the submitting environment"},
		{long: "gid", arg: requiredArg, argName: "group", support: Refused, note: "only root may submit as another group"},
		{long: "gpu-bind", arg: requiredArg, argName: "type", support: Warned, env: "SBATCH_GPU_BIND", note: "the node agent gives each job its own accelerators"},
		{long: "gpu-freq", arg: requiredArg, argName: "spec", support: Warned, env: "SBATCH_GPU_FREQ", note: "usine does not set accelerator frequencies"},
		{long: "gpus", short: 'G', arg: requiredArg, argName: "[type:]n", support: Supported, env: "SBATCH_GPUS",
			note: "accelerators in total: spread evenly over -N nodes, else packed anywhere", set: setGPUs("gpus", func(r *Request) *GPUs { return &r.GPUs })},
		{long: "gpus-per-node", arg: requiredArg, argName: "[type:]n", support: Supported, env: "SBATCH_GPUS_PER_NODE",
			note: "accelerators on each node", set: setGPUs("gpus-per-node", func(r *Request) *GPUs { return &r.GPUsPerNode })},
		{long: "gpus-per-socket", arg: requiredArg, argName: "[type:]n", support: Warned, note: "usine does not place by socket; use --gpus-per-node"},
		{long: "gpus-per-task", arg: requiredArg, argName: "[type:]n", support: Supported, env: "SBATCH_GPUS_PER_TASK",
			note: "accelerators for each task", set: setGPUs("gpus-per-task", func(r *Request) *GPUs { return &r.GPUsPerTask })},
		{long: "gres", arg: requiredArg, argName: "list", support: Supported, env: "SBATCH_GRES",
			note: "gpu[:type][:n] is accelerators per node; other resources are ignored with a warning", set: setGres},
		{long: "gres-flags", arg: requiredArg, argName: "type", support: Warned, note: "usine does not bind resources to sockets"},
		{long: "help", short: 'h', arg: noArg, support: Supported, note: "prints the help", set: func(s *setter, _ string) error { s.r.Help = true; return nil }},
		{long: "hint", arg: requiredArg, argName: "type", support: Warned, env: "SBATCH_HINT", note: "the node agent binds CPUs per job"},
		{long: "hold", short: 'H', arg: noArg, support: Supported, note: "the job waits, held, until released",
			set: func(s *setter, _ string) error { s.r.Hold = true; return nil }},
		{long: "ignore-pbs", arg: noArg, support: Warned, note: "usine never reads #PBS directives"},
		{long: "input", short: 'i', arg: requiredArg, argName: "file", support: Refused, note: "batch jobs read no standard input in usine; open the file in the script"},
		{long: "job-name", short: 'J', arg: requiredArg, argName: "name", support: Supported, env: "SBATCH_JOB_NAME",
			note: "the job's name (default: the script's file name)", set: setString("job-name", func(r *Request) *string { return &r.Name })},
		{long: "kill-on-invalid-dep", arg: requiredArg, argName: "yes|no", support: Warned, note: "a job whose dependency can never be met waits with reason DependencyNeverSatisfied until cancelled"},
		{long: "licenses", short: 'L', arg: requiredArg, argName: "list", support: Warned, note: "usine has no licences to count"},
		{long: "mail-type", arg: requiredArg, argName: "type", support: Warned, note: "usine sends no e-mail"},
		{long: "mail-user", arg: requiredArg, argName: "address", support: Warned, note: "usine sends no e-mail"},
		{long: "mcs-label", arg: requiredArg, argName: "label", support: Warned, note: "usine has no MCS labels"},
		{long: "mem", arg: requiredArg, argName: "size[KMGT]", support: Supported, env: "SBATCH_MEM_PER_NODE", group: "mem",
			note: "memory per node (MiB unless a unit is given); 0 asks for whole nodes' memory, which usine does not count", set: setMem("mem", func(r *Request) *int64 { return &r.MemMiB })},
		{long: "mem-bind", arg: requiredArg, argName: "type", support: Warned, env: "SBATCH_MEM_BIND", note: "the node agent binds memory per job"},
		{long: "mem-per-cpu", arg: requiredArg, argName: "size[KMGT]", support: Supported, env: "SBATCH_MEM_PER_CPU", group: "mem",
			note: "memory per CPU", set: setMem("mem-per-cpu", func(r *Request) *int64 { return &r.MemPerCPUMiB })},
		{long: "mem-per-gpu", arg: requiredArg, argName: "size[KMGT]", support: Supported, env: "SBATCH_MEM_PER_GPU", group: "mem",
			note: "memory per accelerator", set: setMem("mem-per-gpu", func(r *Request) *int64 { return &r.MemPerGPUMiB })},
		{long: "mincpus", arg: requiredArg, argName: "n", support: Supported,
			note: "at least this many CPUs per node", set: setInt("mincpus", func(r *Request) *int { return &r.MinCPUs })},
		{long: "network", arg: requiredArg, argName: "type", support: Warned, note: "usine does not configure the network per job"},
		{long: "nice", arg: optionalArg, argName: "adjustment", support: Warned, note: "priority comes from fair share and QoS"},
		{long: "no-kill", short: 'k', arg: optionalArg, argName: "off", support: Warned, env: "SBATCH_NO_KILL", note: "a gang loses all its nodes together when one fails"},
		{long: "no-requeue", arg: noArg, support: Supported, env: "SBATCH_NO_REQUEUE", group: "requeue",
			note: "the job fails, rather than requeues, when its node is lost or it is preempted (the default)", set: func(s *setter, _ string) error { s.r.Requeue = false; return nil }},
		{long: "nodefile", short: 'F', arg: requiredArg, argName: "file", support: Refused, note: "usine places jobs itself; ask for a partition or an accelerator model"},
		{long: "nodelist", short: 'w', arg: requiredArg, argName: "nodes", support: Refused, note: "usine places jobs itself; ask for a partition or an accelerator model"},
		{long: "nodes", short: 'N', arg: requiredArg, argName: "n[-max]", support: Supported,
			note: "a gang of n nodes that all start together; with min-max usine allocates the minimum", set: setNodes},
		{long: "ntasks", short: 'n', arg: requiredArg, argName: "n", support: Supported,
			note: "tasks in the job (SLURM_NTASKS, srun's default)", set: setInt("ntasks", func(r *Request) *int { return &r.Ntasks })},
		{long: "ntasks-per-core", arg: requiredArg, argName: "n", support: Warned, note: "usine does not place by core"},
		{long: "ntasks-per-gpu", arg: requiredArg, argName: "n", support: Refused, note: "give --ntasks-per-node with --gpus-per-node instead"},
		{long: "ntasks-per-node", arg: requiredArg, argName: "n", support: Supported,
			note: "tasks on each node", set: setInt("ntasks-per-node", func(r *Request) *int { return &r.NtasksPerNode })},
		{long: "ntasks-per-socket", arg: requiredArg, argName: "n", support: Warned, note: "usine does not place by socket"},
		{long: "oom-kill-step", arg: optionalArg, argName: "0|1", support: Warned, note: "the node agent decides what an out-of-memory kill ends"},
		{long: "open-mode", arg: requiredArg, argName: "append|truncate", support: Supported, env: "SBATCH_OPEN_MODE",
			note: "how output files are opened; by default truncated on the first run and appended to when requeued", set: setOpenMode},
		{long: "output", short: 'o', arg: requiredArg, argName: "pattern", support: Supported,
			note: "the file for standard output (default slurm-%j.out, slurm-%A_%a.out for arrays), %-patterns expanded on the node", set: setString("output", func(r *Request) *string { return &r.Output })},
		{long: "overcommit", short: 'O', arg: noArg, support: Warned, env: "SBATCH_OVERCOMMIT", note: "usine does not overcommit CPUs"},
		{long: "oversubscribe", short: 's', arg: noArg, support: Warned, note: "usine never shares an accelerator between jobs"},
		{long: "parsable", arg: noArg, support: Supported, note: "sbatch prints only the job id (and cluster)",
			set: func(s *setter, _ string) error { s.r.Parsable = true; return nil }},
		{long: "partition", short: 'p', arg: requiredArg, argName: "name", support: Supported, env: "SBATCH_PARTITION",
			note: "the partition; of a comma-separated list usine takes the first, with a warning", set: setPartition},
		{long: "power", arg: requiredArg, argName: "flags", support: Warned, env: "SBATCH_POWER", note: "usine does not cap power per job"},
		{long: "prefer", arg: requiredArg, argName: "features", support: Warned, note: "usine has no soft constraints"},
		{long: "priority", arg: requiredArg, argName: "value", support: Warned, note: "operators set priority adjustments in usine"},
		{long: "profile", arg: requiredArg, argName: "type", support: Warned, env: "SBATCH_PROFILE", note: "usine does not profile jobs"},
		{long: "propagate", arg: optionalArg, argName: "rlimits", support: Warned, note: "the node agent sets resource limits"},
		{long: "qos", short: 'q', arg: requiredArg, argName: "qos", support: Supported, env: "SBATCH_QOS",
			note: "the quality of service", set: setString("qos", func(r *Request) *string { return &r.QoS })},
		{long: "quiet", short: 'Q', arg: noArg, support: Supported, note: "sbatch prints no informational messages",
			set: func(s *setter, _ string) error { s.r.Quiet = true; return nil }},
		{long: "reboot", arg: noArg, support: Warned, note: "usine does not reboot nodes for jobs"},
		{long: "requeue", arg: noArg, support: Supported, env: "SBATCH_REQUEUE", group: "requeue",
			note: "the job goes back to the queue when its node is lost or it is preempted", set: func(s *setter, _ string) error { s.r.Requeue = true; return nil }},
		{long: "reservation", arg: requiredArg, argName: "name", support: Refused, env: "SBATCH_RESERVATION", note: "usine has no advance reservations; ask an operator for a partition or QoS"},
		{long: "segment", arg: requiredArg, argName: "size", support: Warned, note: "usine keeps gangs in as few blocks as it can (--switches=1: one block)"},
		{long: "share", arg: noArg, support: Warned, note: "old name of --oversubscribe; usine never shares an accelerator between jobs"},
		{long: "signal", arg: requiredArg, argName: "[B:]sig[@secs]", support: Supported, env: "SBATCH_SIGNAL",
			note: "the signal sent secs (default 60) before the time limit and on preemption", set: setSignal},
		{long: "sockets-per-node", arg: requiredArg, argName: "n", support: Warned, note: "usine does not place by socket"},
		{long: "spread-job", arg: noArg, support: Warned, note: "usine packs jobs onto as few nodes and blocks as it can"},
		{long: "stepmgr", arg: noArg, support: Warned, note: "usine has no step manager"},
		{long: "switches", arg: requiredArg, argName: "n[@time]", support: Supported,
			note: "1 keeps the job inside one block (one leaf switch or scale-up domain); larger counts and @time are ignored with a warning", set: setSwitches},
		{long: "test-only", arg: noArg, support: Supported, note: "says when the job would start, submits nothing",
			set: func(s *setter, _ string) error { s.r.TestOnly = true; return nil }},
		{long: "thread-spec", arg: requiredArg, argName: "n", support: Warned, note: "usine does not reserve threads for the system"},
		{long: "threads-per-core", arg: requiredArg, argName: "n", support: Warned, note: "usine does not place by thread"},
		{long: "time", short: 't', arg: requiredArg, argName: "time", support: Supported, env: "SBATCH_TIMELIMIT",
			note: "the time limit, in every Slurm format; absent, 0 or UNLIMITED: the partition's limit", set: setTime},
		{long: "time-min", arg: requiredArg, argName: "time", support: Warned, note: "usine gives a job its whole --time"},
		{long: "tmp", arg: requiredArg, argName: "size", support: Warned, note: "usine does not count local disk"},
		{long: "tres-bind", arg: requiredArg, argName: "spec", support: Warned, note: "the node agent binds resources per job"},
		{long: "tres-per-task", arg: requiredArg, argName: "list", support: Refused, note: "give --cpus-per-task and --gpus-per-task instead"},
		{long: "uid", arg: requiredArg, argName: "user", support: Refused, note: "only root may submit as another user"},
		{long: "usage", arg: noArg, support: Supported, note: "prints a short usage",
			set: func(s *setter, _ string) error { s.r.Usage = true; return nil }},
		{long: "use-min-nodes", arg: noArg, support: Warned, note: "usine always allocates the minimum of -N min-max"},
		{long: "verbose", short: 'v', arg: noArg, support: Supported, note: "sbatch says more; repeat for more still",
			set: func(s *setter, _ string) error { s.r.Verbose++; return nil }},
		{long: "version", short: 'V', arg: noArg, support: Supported, note: "prints the version",
			set: func(s *setter, _ string) error { s.r.Version = true; return nil }},
		{long: "wait", short: 'W', arg: noArg, support: Supported, env: "SBATCH_WAIT",
			note: "sbatch returns when the job ends, with its exit code", set: func(s *setter, _ string) error { s.r.Wait = true; return nil }},
		{long: "wait-all-nodes", arg: requiredArg, argName: "0|1", support: Warned, env: "SBATCH_WAIT_ALL_NODES", note: "a gang's nodes always start together"},
		{long: "wckey", arg: requiredArg, argName: "key", support: Warned, env: "SBATCH_WCKEY", note: "usine accounts by project"},
		{long: "workdir", arg: requiredArg, argName: "directory", support: Supported, group: "chdir",
			note: "old name of --chdir", set: setString("workdir", func(r *Request) *string { return &r.WorkDir })},
		{long: "wrap", arg: requiredArg, argName: "command", support: Supported,
			note: "runs the command in a /bin/sh script instead of a script file", set: setString("wrap", func(r *Request) *string { return &r.Wrap })},
	}
}

// optionIndex finds options by name.
type optionIndex struct {
	all   []option
	long  map[string]*option
	short map[byte]*option
}

func newOptionIndex() *optionIndex {
	ix := &optionIndex{all: options(), long: map[string]*option{}, short: map[byte]*option{}}
	for i := range ix.all {
		o := &ix.all[i]
		ix.long[o.long] = o
		if o.short != 0 {
			ix.short[o.short] = o
		}
	}
	return ix
}

// lookupLong finds a long option by its name or, as getopt does, by an
// unambiguous prefix of it.
func (ix *optionIndex) lookupLong(name string) (*option, error) {
	if o, ok := ix.long[name]; ok {
		return o, nil
	}
	var matches []*option
	if name != "" {
		for i := range ix.all {
			if strings.HasPrefix(ix.all[i].long, name) {
				matches = append(matches, &ix.all[i])
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("unrecognized option '--%s'", name)
	case 1:
		return matches[0], nil
	}
	var b strings.Builder
	for _, m := range matches {
		fmt.Fprintf(&b, " '--%s'", m.long)
	}
	return nil, fmt.Errorf("option '--%s' is ambiguous; possibilities:%s", name, b.String())
}

// OptionDoc describes one sbatch option for the docs.
type OptionDoc struct {
	Long    string  // without the dashes
	Short   string  // one letter, or ""
	Arg     string  // the argument's form; "" for flags
	Support Support //
	Env     string  // the SBATCH_ variable that sets it, or ""
	Note    string
}

// Options lists every sbatch option usine knows, sorted by long name.
func Options() []OptionDoc {
	all := options()
	docs := make([]OptionDoc, 0, len(all))
	for _, o := range all {
		d := OptionDoc{Long: o.long, Support: o.support, Env: o.env, Note: o.note}
		if o.short != 0 {
			d.Short = string(o.short)
		}
		switch o.arg {
		case requiredArg:
			d.Arg = o.argName
		case optionalArg:
			d.Arg = "[" + o.argName + "]"
		}
		docs = append(docs, d)
	}
	slices.SortFunc(docs, func(a, b OptionDoc) int { return strings.Compare(a.Long, b.Long) })
	return docs
}

// OptionsMarkdown is the table of every option that docs/SLURM.md holds.
func OptionsMarkdown() string {
	var b strings.Builder
	b.WriteString("| option | short | argument | usine | SBATCH_ variable | what it does here |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, d := range Options() {
		short := ""
		if d.Short != "" {
			short = "`-" + d.Short + "`"
		}
		arg := ""
		if d.Arg != "" {
			arg = "`" + d.Arg + "`"
		}
		env := ""
		if d.Env != "" {
			env = "`" + d.Env + "`"
		}
		status := map[Support]string{Supported: "supported", Warned: "accepted with a warning", Refused: "refused"}[d.Support]
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s | %s | %s |\n", d.Long, short, escapePipes(arg), status, env, escapePipes(d.Note))
	}
	return b.String()
}

func escapePipes(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// EnvOptions turns the SBATCH_ input variables of env into options, in the
// table's order. Slurm ranks them between the command line and the script:
// put them before the command-line arguments given to ParseBatch, which
// lets later command-line options win.
func EnvOptions(env map[string]string) []string {
	var args []string
	for _, o := range options() {
		if o.env == "" {
			continue
		}
		v, ok := env[o.env]
		if !ok {
			continue
		}
		switch {
		case o.arg == noArg, o.arg == optionalArg && isTrue(v):
			args = append(args, "--"+o.long)
		default:
			args = append(args, "--"+o.long+"="+v)
		}
	}
	return args
}

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "", "1", "yes", "true":
		return true
	}
	return false
}
