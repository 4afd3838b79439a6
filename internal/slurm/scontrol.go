package slurm

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// ShowOptions say how scontrol show prints.
type ShowOptions struct {
	Now time.Time
	Loc *time.Location // nil = UTC
}

// kvBlock writes scontrol's key=value blocks: the first line flush left,
// the others indented three spaces, a blank line after the block.
type kvBlock struct {
	b    strings.Builder
	line []string
	rows int
}

func (k *kvBlock) add(key, value string) { k.line = append(k.line, key+"="+value) }

func (k *kvBlock) end() {
	if len(k.line) == 0 {
		return
	}
	if k.rows > 0 {
		k.b.WriteString("   ")
	}
	k.b.WriteString(strings.Join(k.line, " "))
	k.b.WriteByte('\n')
	k.line = k.line[:0]
	k.rows++
}

// ShowJobs prints jobs as scontrol show job does.
func ShowJobs(w io.Writer, jobs []JobInfo, opt ShowOptions) error {
	loc := orUTC(opt.Loc)
	t := func(v time.Time) string { return FormatTime(v, loc, "Unknown") }
	var out strings.Builder
	for i := range jobs {
		j := &jobs[i]
		var k kvBlock
		k.add("JobId", j.ID)
		if j.ArrayJobID != "" {
			k.add("ArrayJobId", j.ArrayJobID)
			k.add("ArrayTaskId", strconv.Itoa(j.ArrayTaskID))
		}
		k.add("JobName", j.Name)
		k.end()
		k.add("UserId", j.User)
		k.add("Account", j.Account)
		k.add("QOS", orNull(j.QoS))
		k.end()
		k.add("Priority", strconv.FormatInt(j.Priority, 10))
		k.add("Nice", "0")
		k.end()
		k.add("JobState", StateName(j.State))
		k.add("Reason", reason(j.Reason))
		k.add("Dependency", formatDeps(j))
		k.end()
		requeue := "0"
		if j.Requeue {
			requeue = "1"
		}
		k.add("Requeue", requeue)
		k.add("Restarts", "0")
		k.add("BatchFlag", "1")
		k.add("ExitCode", exitCode(j.ExitCode, j.Signal))
		k.end()
		k.add("RunTime", FormatClock(j.elapsed(opt.Now)))
		k.add("TimeLimit", FormatClock(limitOrUnlimited(j.Limit)))
		k.add("TimeMin", "N/A")
		k.end()
		k.add("SubmitTime", t(j.Submit))
		k.add("EligibleTime", t(j.Submit))
		k.end()
		end := j.End
		if end.IsZero() && !j.Start.IsZero() && j.Limit > 0 && (j.running() || j.pending()) {
			end = j.Start.Add(time.Duration(j.Limit) * time.Second)
		}
		k.add("StartTime", t(j.Start))
		k.add("EndTime", t(end))
		k.add("Deadline", "N/A")
		k.end()
		k.add("Partition", orNull(j.Partition))
		k.end()
		nodes := hostlist.Compress(j.Nodes)
		k.add("NodeList", orNull(nodes))
		k.end()
		if len(j.Nodes) > 0 {
			k.add("BatchHost", j.Nodes[0])
			k.end()
		}
		k.add("NumNodes", strconv.Itoa(j.nodeCount()))
		k.add("NumCPUs", strconv.Itoa(j.CPUs))
		k.end()
		k.add("ReqTRES", tres(j.CPUs, j.MemoryMiB, j.nodeCount(), j.Accelerators, j.Model))
		k.end()
		alloc := ""
		if !j.pending() {
			alloc = tres(j.CPUs, j.MemoryMiB, j.nodeCount(), j.Accelerators, j.Model)
		}
		k.add("AllocTRES", orNull(alloc))
		k.end()
		k.add("MinMemoryNode", formatMem(j.MemoryMiB/int64(j.nodeCount())))
		k.end()
		k.add("Features", orNull(j.Constraint))
		k.end()
		k.add("Command", orNull(j.Command))
		k.end()
		k.add("WorkDir", orNull(j.WorkDir))
		k.end()
		stderr := j.Stderr
		if stderr == "" {
			stderr = j.Stdout
		}
		k.add("StdErr", orNull(stderr))
		k.end()
		k.add("StdIn", "/dev/null")
		k.end()
		k.add("StdOut", orNull(j.Stdout))
		k.end()
		if g := j.gres(); g != "N/A" {
			if j.AcceleratorsPerNode > 0 {
				k.add("TresPerNode", g)
			} else {
				k.add("TresPerJob", g)
			}
			k.end()
		}
		out.WriteString(k.b.String())
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// ShowNodes prints nodes as scontrol show node does.
func ShowNodes(w io.Writer, nodes []NodeInfo, opt ShowOptions) error {
	var out strings.Builder
	for i := range nodes {
		n := &nodes[i]
		s, c, th := n.sct()
		var k kvBlock
		k.add("NodeName", n.Name)
		k.add("CoresPerSocket", strconv.Itoa(c))
		k.end()
		k.add("CPUAlloc", strconv.Itoa(n.AllocCPUs))
		k.add("CPUEfctv", strconv.Itoa(n.CPUs))
		k.add("CPUTot", strconv.Itoa(n.CPUs))
		k.add("CPULoad", "N/A")
		k.end()
		k.add("AvailableFeatures", n.features())
		k.end()
		k.add("ActiveFeatures", n.features())
		k.end()
		k.add("Gres", n.gres())
		k.end()
		k.add("NodeAddr", n.Name)
		k.add("NodeHostName", n.Name)
		k.end()
		k.add("RealMemory", strconv.FormatInt(n.MemoryMiB, 10))
		k.add("AllocMem", strconv.FormatInt(n.AllocMemMiB, 10))
		k.add("FreeMem", "N/A")
		k.add("Sockets", strconv.Itoa(s))
		k.add("Boards", "1")
		k.end()
		k.add("State", scontrolNodeState(n))
		k.add("ThreadsPerCore", strconv.Itoa(th))
		k.add("TmpDisk", "0")
		k.add("Weight", "1")
		k.end()
		k.add("Partitions", orNull(strings.Join(n.Partitions, ",")))
		k.end()
		k.add("CfgTRES", tres(n.CPUs, n.MemoryMiB, 0, n.Accelerators, n.Model))
		k.end()
		k.add("AllocTRES", tres(n.AllocCPUs, n.AllocMemMiB, 0, n.AllocAccel, n.Model))
		k.end()
		if n.Reason != "" {
			k.add("Reason", n.Reason)
			k.end()
		}
		out.WriteString(k.b.String())
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// scontrolNodeState is a node's state as scontrol prints it: IDLE, MIXED,
// ALLOCATED or DOWN, with +DRAIN while drained or draining and '*' when the
// node does not respond.
func scontrolNodeState(n *NodeInfo) string {
	var s string
	switch {
	case n.State == model.NodeDown:
		s = "DOWN"
	case n.full():
		s = "ALLOCATED"
	case n.busy():
		s = "MIXED"
	default:
		s = "IDLE"
	}
	if n.NotResponding {
		s += "*"
	}
	if n.State == model.NodeDrain {
		s += "+DRAIN"
	}
	return s
}
