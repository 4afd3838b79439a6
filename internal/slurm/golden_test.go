package slurm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and docs/SLURM.md's option table")

// cet is the fixtures' time zone: a fixed zone, so the tests need no tzdata.
var cet = time.FixedZone("CET", 3600)

// goldenNow is when the fixtures are printed.
var goldenNow = time.Date(2026, 11, 24, 10, 0, 0, 0, cet)

func at(h, m, s int) time.Time { return time.Date(2026, 11, 24, h, m, s, 0, cet) }

func fixtureJobs() []JobInfo {
	return []JobInfo{
		{
			ID: "4242", Name: "llama-pretrain", User: "ada", Account: "eurohpc-42", Partition: "boost", QoS: "normal",
			State: model.JobRunning, NumNodes: 4, Nodes: []string{"gpu001", "gpu002", "gpu003", "gpu004"},
			CPUs: 128, Accelerators: 16, AcceleratorsPerNode: 4, Model: "H100", MemoryMiB: 4 * 512 * 1024,
			Limit: 86400, Submit: at(8, 0, 0), Start: at(8, 30, 0), Priority: 12345,
			WorkDir: "/leonardo/home/ada/llama", Command: "/leonardo/home/ada/llama/pretrain.sbatch",
			Stdout: "/leonardo/home/ada/llama/logs/llama-pretrain-4242.out", Requeue: true,
			Deps:  []model.Dependency{{Type: model.AfterOK, JobID: "4100"}}, // met: it started
			Steps: []StepInfo{{ID: "batch", Name: "batch", State: model.JobRunning, Start: at(8, 30, 0), CPUs: 32, GPUs: 4, Nodes: []string{"gpu001"}}},
		},
		{
			ID: "4247", ArrayJobID: "4240", ArrayTaskID: 7, Name: "sweep", User: "bob", Account: "ai4sci", Partition: "boost", QoS: "normal",
			State: model.JobPending, Reason: "Priority", Accelerators: 1, CPUs: 8, MemoryMiB: 64 * 1024, Limit: 2 * 3600,
			Submit: at(9, 15, 0), Start: at(12, 0, 0), SchedNodes: []string{"gpu009"}, Priority: 9000,
			WorkDir: "/leonardo/home/bob/sweep", Command: "/leonardo/home/bob/sweep/sweep.sh",
			Stdout: "/leonardo/home/bob/sweep/slurm-4240_7.out",
		},
		{
			ID: "4250", Name: "eval", User: "ada", Account: "eurohpc-42", Partition: "boost",
			State: model.JobPending, Reason: "Dependency", NumNodes: 1, Accelerators: 4, AcceleratorsPerNode: 4, Model: "H100",
			Limit: 3600, Submit: at(9, 30, 0), Deps: []model.Dependency{{Type: model.AfterOK, JobID: "4242"}},
		},
		{
			ID: "4251", Name: "held-job", User: "carla", Account: "ai4sci", Partition: "cpu",
			State: model.JobPending, Reason: "JobHeldUser", NumNodes: 2, CPUs: 64, Limit: 0, Submit: at(9, 45, 0),
		},
		{
			ID: "4100", Name: "prep", User: "ada", Account: "eurohpc-42", Partition: "cpu", QoS: "normal",
			State: model.JobCompleted, NumNodes: 1, Nodes: []string{"cpu01"}, CPUs: 16, MemoryMiB: 32000,
			Limit: 1800, Submit: at(6, 59, 0), Start: at(7, 0, 0), End: at(7, 5, 3),
			Steps: []StepInfo{{ID: "batch", Name: "batch", State: model.JobCompleted, Start: at(7, 0, 0), End: at(7, 5, 3), CPUs: 16, Nodes: []string{"cpu01"}}},
		},
		{
			ID: "4101", Name: "train-bad", User: "bob", Account: "ai4sci", Partition: "boost", QoS: "normal",
			State: model.JobFailed, NumNodes: 2, Nodes: []string{"gpu005", "gpu006"}, CPUs: 64, Accelerators: 8, AcceleratorsPerNode: 4,
			Limit: 4 * 3600, Submit: at(7, 0, 0), Start: at(7, 10, 0), End: at(7, 12, 30), ExitCode: 1,
			Steps: []StepInfo{
				{ID: "batch", Name: "batch", State: model.JobFailed, Start: at(7, 10, 0), End: at(7, 12, 30), ExitCode: 1, CPUs: 32, GPUs: 4, Nodes: []string{"gpu005"}},
				{ID: "0", Name: "torchrun", State: model.JobFailed, Start: at(7, 10, 5), End: at(7, 12, 29), ExitCode: 1, CPUs: 64, GPUs: 8, Nodes: []string{"gpu005", "gpu006"}},
			},
		},
		{
			ID: "4102", Name: "oops", User: "carla", Account: "ai4sci", Partition: "cpu",
			State: model.JobCancelled, NumNodes: 1, Nodes: []string{"cpu02"}, CPUs: 4, Limit: 600,
			Submit: at(8, 0, 0), Start: at(8, 0, 5), End: at(8, 1, 0), Signal: 15,
		},
		{
			ID: "4103", Name: "long-finetune-with-a-very-long-name", User: "ada", Account: "eurohpc-42", Partition: "boost",
			State: model.JobTimeout, NumNodes: 1, Nodes: []string{"gpu005"}, CPUs: 32, Accelerators: 2, Model: "H100",
			Limit: 3600, Submit: at(5, 0, 0), Start: at(5, 30, 0), End: at(6, 30, 1), Signal: 15,
		},
	}
}

func fixturePartitions() []PartitionInfo {
	return []PartitionInfo{
		{Name: "boost", Default: true, MaxTime: 86400, DefaultTime: 3600},
		{Name: "cpu", MaxTime: 3 * 86400},
		{Name: "maintenance", Down: true},
	}
}

func fixtureNodes() []NodeInfo {
	gpu := func(name string, allocAcc, allocCPUs int) NodeInfo {
		return NodeInfo{
			Name: name, Partitions: []string{"boost"}, State: model.NodeUp, CPUs: 32, AllocCPUs: allocCPUs,
			MemoryMiB: 512000, AllocMemMiB: int64(allocAcc) * 128000, Accelerators: 4, AllocAccel: allocAcc, Model: "H100",
			Sockets: 1, CoresPerSocket: 32, ThreadsPerCore: 1,
		}
	}
	nodes := []NodeInfo{
		gpu("gpu004", 4, 32), gpu("gpu001", 4, 32), gpu("gpu002", 4, 32), gpu("gpu003", 4, 32),
		gpu("gpu005", 2, 16), gpu("gpu006", 0, 0), gpu("gpu007", 0, 0), gpu("gpu008", 1, 8), gpu("gpu009", 0, 0),
		{Name: "cpu01", Partitions: []string{"cpu"}, State: model.NodeUp, CPUs: 128, MemoryMiB: 256000, Sockets: 2, CoresPerSocket: 32, ThreadsPerCore: 2},
		{Name: "cpu02", Partitions: []string{"cpu"}, State: model.NodeUp, CPUs: 128, MemoryMiB: 256000, Sockets: 2, CoresPerSocket: 32, ThreadsPerCore: 2},
	}
	nodes[6].State, nodes[6].Reason = model.NodeDrain, "bad HBM on GPU2"
	nodes[7].State, nodes[7].Reason = model.NodeDrain, "kernel update"
	nodes[8].State, nodes[8].NotResponding, nodes[8].Reason = model.NodeDown, true, "Not responding"
	return nodes
}

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got); run go test -update if the change is intended:\n%s", path, diff)
	}
}

func TestSqueueGolden(t *testing.T) {
	tests := []struct {
		name string
		opt  SqueueOptions
	}{
		{"squeue_default", SqueueOptions{}},
		{"squeue_long", SqueueOptions{Format: SqueueLong}},
		{"squeue_start", SqueueOptions{Format: SqueueStart}},
		{"squeue_format", SqueueOptions{Format: "%.10i|%-12j|%5u|%T|%l|%L|%D|%C|%b|%a|%q|%P|%S|%V|%e|%Q|%r|%N|%A|%K|%F|%E|%m|%c|%%"}},
		{"squeue_Format", SqueueOptions{Fields: "JobID,JobArrayID:.12,Name:10,UserName:6,State,StateCompact:3,TimeUsed:.10,TimeLimit:12,NumNodes:.6,ReasonList:24,SubmitTime,StartTime"}},
		{"squeue_noheader", SqueueOptions{NoHeader: true, Format: "%i %t %R"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Now, tc.opt.Loc = goldenNow, cet
			var b bytes.Buffer
			if err := Squeue(&b, fixtureJobs(), tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func TestSacctGolden(t *testing.T) {
	tests := []struct {
		name string
		opt  SacctOptions
	}{
		{"sacct_default", SacctOptions{}},
		{"sacct_fields", SacctOptions{Fields: "JobID,JobName%20,State,Elapsed,AllocTRES%45,ExitCode,Start,End,NodeList"}},
		{"sacct_allocations", SacctOptions{AllocationsOnly: true, Fields: "JobID,JobIDRaw,Partition,Account,User,NNodes,Timelimit,Submit,AllocCPUS,ReqTRES%40,CPUTime,Reason"}},
		{"sacct_parsable2", SacctOptions{Parsable2: true, AllocationsOnly: true, Fields: "JobID,JobName,State,Elapsed,ElapsedRaw,AllocTRES,ExitCode"}},
		{"sacct_parsable", SacctOptions{Parsable: true, NoHeader: true, Fields: "JobID,State,ExitCode"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Now, tc.opt.Loc = goldenNow, cet
			var b bytes.Buffer
			if err := Sacct(&b, fixtureJobs(), tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func TestSinfoGolden(t *testing.T) {
	tests := []struct {
		name string
		opt  SinfoOptions
	}{
		{"sinfo_default", SinfoOptions{}},
		{"sinfo_long", SinfoOptions{Long: true}},
		{"sinfo_nodes", SinfoOptions{NodeOriented: true}},
		{"sinfo_nodes_long", SinfoOptions{NodeOriented: true, Long: true}},
		{"sinfo_format", SinfoOptions{Format: "%20P %5a %.10L %.15F %.15C %.6D %10T %G %N"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Now, tc.opt.Loc = goldenNow, cet
			var b bytes.Buffer
			if err := Sinfo(&b, fixturePartitions(), fixtureNodes(), tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func TestScontrolGolden(t *testing.T) {
	opt := ShowOptions{Now: goldenNow, Loc: cet}
	var b bytes.Buffer
	if err := ShowJobs(&b, fixtureJobs()[:4], opt); err != nil {
		t.Fatal(err)
	}
	golden(t, "scontrol_job", b.Bytes())
	b.Reset()
	nodes := fixtureNodes()
	if err := ShowNodes(&b, []NodeInfo{nodes[1], nodes[4], nodes[7], nodes[8], nodes[9]}, opt); err != nil {
		t.Fatal(err)
	}
	golden(t, "scontrol_node", b.Bytes())
}

func TestFormatErrors(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unknown squeue letter", Squeue(&b, nil, SqueueOptions{Format: "%i %y"}), `squeue: error: Invalid format specification "%i %y": %y is not a field`},
		{"squeue format ending in a field", Squeue(&b, nil, SqueueOptions{Format: "%i %.10"}), `squeue: error: Invalid format specification "%i %.10": it ends in the middle of a field`},
		{"unknown -O name", Squeue(&b, nil, SqueueOptions{Fields: "JobID,Colour"}), "squeue: error: Invalid job format specification: Colour"},
		{"bad -O width", Squeue(&b, nil, SqueueOptions{Fields: "JobID:wide"}), `squeue: error: Invalid --Format width "wide" for JobID: give a number, as in JobID:30`},
		{"unknown sacct field", Sacct(&b, nil, SacctOptions{Fields: "JobID,Colour"}), `sacct: error: Invalid field requested: "Colour"`},
		{"bad sacct width", Sacct(&b, nil, SacctOptions{Fields: "JobName%x"}), `sacct: error: Invalid width "x" for field JobName: give a number, as in JobName%20`},
		{"unknown sinfo letter", Sinfo(&b, nil, nil, SinfoOptions{Format: "%P %y"}), `sinfo: error: Invalid format specification "%P %y": %y is not a field`},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: error = %v; want %s", tc.name, tc.err, tc.want)
		}
	}
}

func TestStateNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		state      model.JobState
		name, code string
	}{
		{model.JobPending, "PENDING", "PD"}, {model.JobRunning, "RUNNING", "R"}, {model.JobCompleted, "COMPLETED", "CD"},
		{model.JobFailed, "FAILED", "F"}, {model.JobCancelled, "CANCELLED", "CA"}, {model.JobTimeout, "TIMEOUT", "TO"},
		{"node_fail", "NODE_FAIL", "NF"}, {"preempted", "PREEMPTED", "PR"}, {"out_of_memory", "OUT_OF_MEMORY", "OOM"},
		{"something_new", "SOMETHING_NEW", "SOMETHING_NEW"},
	} {
		if n, c := StateName(tc.state), StateCode(tc.state); n != tc.name || c != tc.code {
			t.Errorf("state %s = %s/%s; want %s/%s", tc.state, n, c, tc.name, tc.code)
		}
	}
	node := func(state model.NodeState, alloc int) *NodeInfo {
		return &NodeInfo{State: state, Accelerators: 4, AllocAccel: alloc, CPUs: 8}
	}
	for _, tc := range []struct {
		n             *NodeInfo
		compact, long string
	}{
		{node(model.NodeUp, 0), "idle", "idle"}, {node(model.NodeUp, 2), "mix", "mixed"}, {node(model.NodeUp, 4), "alloc", "allocated"},
		{node(model.NodeDrain, 0), "drain", "drained"}, {node(model.NodeDrain, 1), "drng", "draining"}, {node(model.NodeDown, 0), "down", "down"},
		{&NodeInfo{State: model.NodeUp, CPUs: 8, AllocCPUs: 8}, "alloc", "allocated"},
		{&NodeInfo{State: model.NodeDown, NotResponding: true}, "down*", "down*"},
	} {
		if c, l := NodeState(tc.n); c != tc.compact || l != tc.long {
			t.Errorf("node %+v = %s/%s; want %s/%s", tc.n, c, l, tc.compact, tc.long)
		}
	}
	if strings.Contains(StateName(""), " ") {
		t.Error("empty state name has a space")
	}
}
