package slurm

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// sinfo's built-in formats.
const (
	SinfoDefault   = "%9P %.5a %.10l %.6D %.6t %N"                          // sinfo
	SinfoLong      = "%9P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"   // sinfo -l
	SinfoNodes     = "%#N %.6D %#P %6t"                                     // sinfo -N
	SinfoNodesLong = "%#N %.6D %#P %11T %.4c %.8z %.6m %.8d %.6w %.8f %20E" // sinfo -N -l
)

// PartitionInfo is one partition as sinfo prints it.
type PartitionInfo struct {
	Name        string
	Default     bool  // marked with '*'
	Down        bool  // AVAIL down
	MaxTime     int64 // seconds; <= 0 = infinite
	DefaultTime int64 // seconds; <= 0 = none
}

// NodeInfo is one node as sinfo and scontrol print it.
type NodeInfo struct {
	Name          string
	Partitions    []string
	State         model.NodeState // up, drain, down
	NotResponding bool            // marks the state with '*'
	Reason        string
	CPUs          int
	AllocCPUs     int
	MemoryMiB     int64
	AllocMemMiB   int64
	Accelerators  int
	AllocAccel    int
	Model         string
	// Sockets, CoresPerSocket and ThreadsPerCore describe the CPUs; zero
	// means one socket of CPUs single-threaded cores.
	Sockets, CoresPerSocket, ThreadsPerCore int
}

func (n *NodeInfo) busy() bool { return n.AllocCPUs > 0 || n.AllocAccel > 0 }

func (n *NodeInfo) full() bool {
	if n.Accelerators > 0 {
		return n.AllocAccel >= n.Accelerators
	}
	return n.CPUs > 0 && n.AllocCPUs >= n.CPUs
}

// NodeState is a node's state as sinfo prints it, compact (idle, mix,
// alloc, drain, drng, down) and long (idle, mixed, allocated, drained,
// draining, down), with '*' when the node does not respond.
func NodeState(n *NodeInfo) (compact, long string) {
	switch {
	case n.State == model.NodeDown:
		compact, long = "down", "down"
	case n.State == model.NodeDrain && n.busy():
		compact, long = "drng", "draining"
	case n.State == model.NodeDrain:
		compact, long = "drain", "drained"
	case n.full():
		compact, long = "alloc", "allocated"
	case n.busy():
		compact, long = "mix", "mixed"
	default:
		compact, long = "idle", "idle"
	}
	if n.NotResponding {
		compact, long = compact+"*", long+"*"
	}
	return compact, long
}

func (n *NodeInfo) sct() (sockets, cores, threads int) {
	sockets, cores, threads = n.Sockets, n.CoresPerSocket, n.ThreadsPerCore
	if sockets <= 0 {
		sockets = 1
	}
	if threads <= 0 {
		threads = 1
	}
	if cores <= 0 {
		cores = max(n.CPUs/(sockets*threads), 1)
	}
	return sockets, cores, threads
}

func (n *NodeInfo) gres() string {
	if n.Accelerators == 0 {
		return "(null)"
	}
	if n.Model != "" {
		return "gpu:" + strings.ToLower(n.Model) + ":" + strconv.Itoa(n.Accelerators)
	}
	return "gpu:" + strconv.Itoa(n.Accelerators)
}

func (n *NodeInfo) features() string {
	if n.Model == "" {
		return "(null)"
	}
	return strings.ToLower(n.Model)
}

// SinfoOptions say how sinfo prints.
type SinfoOptions struct {
	Format       string // -o; "" = the built-in format for NodeOriented and Long
	NodeOriented bool   // -N: one line per node and partition
	Long         bool   // -l: a date line first, and the long built-in formats
	NoHeader     bool   // -h
	Now          time.Time
	Loc          *time.Location // nil = UTC
}

// sinfoRow is one line: a partition and the nodes it groups.
type sinfoRow struct {
	part  *PartitionInfo
	nodes []*NodeInfo
}

type sinfoField struct {
	header string
	agg    bool // sums or lists the row's nodes; other fields group them
	value  func(r *sinfoRow) string
}

func sinfoFields() map[byte]sinfoField {
	first := func(f func(n *NodeInfo) string, none string) func(r *sinfoRow) string {
		return func(r *sinfoRow) string {
			if len(r.nodes) == 0 {
				return none
			}
			return f(r.nodes[0])
		}
	}
	itoa := strconv.Itoa
	return map[byte]sinfoField{
		'P': {"PARTITION", false, func(r *sinfoRow) string {
			if r.part.Default {
				return r.part.Name + "*"
			}
			return r.part.Name
		}},
		'R': {"PARTITION", false, func(r *sinfoRow) string { return r.part.Name }},
		'a': {"AVAIL", false, func(r *sinfoRow) string {
			if r.part.Down {
				return "down"
			}
			return "up"
		}},
		'l': {"TIMELIMIT", false, func(r *sinfoRow) string {
			if r.part.MaxTime <= 0 {
				return "infinite"
			}
			return FormatDuration(r.part.MaxTime)
		}},
		'L': {"DEFAULTTIME", false, func(r *sinfoRow) string {
			if r.part.DefaultTime <= 0 {
				return "n/a"
			}
			return FormatDuration(r.part.DefaultTime)
		}},
		's': {"JOB_SIZE", false, func(*sinfoRow) string { return "1-infinite" }},
		'r': {"ROOT", false, func(*sinfoRow) string { return "no" }},
		'h': {"OVERSUBSCRIBE", false, func(*sinfoRow) string { return "NO" }},
		'g': {"GROUPS", false, func(*sinfoRow) string { return "all" }},
		't': {"STATE", false, first(func(n *NodeInfo) string { c, _ := NodeState(n); return c }, "n/a")},
		'T': {"STATE", false, first(func(n *NodeInfo) string { _, l := NodeState(n); return l }, "n/a")},
		'c': {"CPUS", false, first(func(n *NodeInfo) string { return itoa(n.CPUs) }, "0")},
		'm': {"MEMORY", false, first(func(n *NodeInfo) string { return strconv.FormatInt(n.MemoryMiB, 10) }, "0")},
		'e': {"FREE_MEM", false, func(*sinfoRow) string { return "N/A" }},
		'O': {"CPU_LOAD", false, func(*sinfoRow) string { return "N/A" }},
		'E': {"REASON", false, first(func(n *NodeInfo) string {
			if n.Reason == "" {
				return "none"
			}
			return n.Reason
		}, "none")},
		'G': {"GRES", false, first((*NodeInfo).gres, "(null)")},
		'f': {"AVAIL_FEATURES", false, first((*NodeInfo).features, "(null)")},
		'b': {"ACTIVE_FEATURES", false, first((*NodeInfo).features, "(null)")},
		'z': {"S:C:T", false, first(func(n *NodeInfo) string {
			s, c, t := n.sct()
			return itoa(s) + ":" + itoa(c) + ":" + itoa(t)
		}, "0:0:0")},
		'X': {"SOCKETS", false, first(func(n *NodeInfo) string { s, _, _ := n.sct(); return itoa(s) }, "0")},
		'Y': {"CORES", false, first(func(n *NodeInfo) string { _, c, _ := n.sct(); return itoa(c) }, "0")},
		'Z': {"THREADS", false, first(func(n *NodeInfo) string { _, _, t := n.sct(); return itoa(t) }, "0")},
		'd': {"TMP_DISK", false, func(*sinfoRow) string { return "0" }},
		'w': {"WEIGHT", false, func(*sinfoRow) string { return "1" }},
		'D': {"NODES", true, func(r *sinfoRow) string { return itoa(len(r.nodes)) }},
		'N': {"NODELIST", true, func(r *sinfoRow) string { return compressNodes(r.nodes) }},
		'n': {"HOSTNAMES", true, func(r *sinfoRow) string { return compressNodes(r.nodes) }},
		'A': {"NODES(A/I)", true, func(r *sinfoRow) string {
			a, i, _ := nodeCounts(r.nodes)
			return itoa(a) + "/" + itoa(i)
		}},
		'F': {"NODES(A/I/O/T)", true, func(r *sinfoRow) string {
			a, i, o := nodeCounts(r.nodes)
			return itoa(a) + "/" + itoa(i) + "/" + itoa(o) + "/" + itoa(len(r.nodes))
		}},
		'C': {"CPUS(A/I/O/T)", true, func(r *sinfoRow) string {
			var a, i, o, t int
			for _, n := range r.nodes {
				t += n.CPUs
				if n.State == model.NodeUp {
					a += n.AllocCPUs
					i += max(n.CPUs-n.AllocCPUs, 0)
				} else {
					o += n.CPUs
				}
			}
			return itoa(a) + "/" + itoa(i) + "/" + itoa(o) + "/" + itoa(t)
		}},
	}
}

func compressNodes(nodes []*NodeInfo) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return hostlist.Compress(names)
}

// nodeCounts counts allocated (busy and up), idle and other (drained or
// down) nodes.
func nodeCounts(nodes []*NodeInfo) (alloc, idle, other int) {
	for _, n := range nodes {
		switch {
		case n.State != model.NodeUp:
			other++
		case n.busy():
			alloc++
		default:
			idle++
		}
	}
	return alloc, idle, other
}

// Sinfo prints partitions and their nodes as sinfo does: by default one
// line per partition and group of nodes that print alike (so, by state),
// partitions in the order given; with NodeOriented one line per node and
// partition, nodes sorted by name.
func Sinfo(w io.Writer, parts []PartitionInfo, nodes []NodeInfo, opt SinfoOptions) error {
	fields := sinfoFields()
	format := opt.Format
	if format == "" {
		switch {
		case opt.NodeOriented && opt.Long:
			format = SinfoNodesLong
		case opt.NodeOriented:
			format = SinfoNodes
		case opt.Long:
			format = SinfoLong
		default:
			format = SinfoDefault
		}
	}
	specs, err := parseFormat(format, func(c byte) bool { _, ok := fields[c]; return ok }, "sinfo")
	if err != nil {
		return err
	}
	sorted := make([]*NodeInfo, len(nodes))
	for i := range nodes {
		sorted[i] = &nodes[i]
	}
	slices.SortStableFunc(sorted, func(a, b *NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	partByName := map[string]*PartitionInfo{}
	for i := range parts {
		partByName[parts[i].Name] = &parts[i]
	}

	var rows []*sinfoRow
	if opt.NodeOriented {
		for _, n := range sorted {
			for _, pn := range n.Partitions {
				p := partByName[pn]
				if p == nil {
					p = &PartitionInfo{Name: pn}
				}
				rows = append(rows, &sinfoRow{part: p, nodes: []*NodeInfo{n}})
			}
		}
	} else {
		for i := range parts {
			p := &parts[i]
			var mine []*sinfoRow
			keys := map[string]*sinfoRow{}
			for _, n := range sorted {
				if !slices.Contains(n.Partitions, p.Name) {
					continue
				}
				probe := &sinfoRow{part: p, nodes: []*NodeInfo{n}}
				var key strings.Builder
				for _, s := range specs {
					if s.field == "" || fields[s.field[0]].agg {
						continue
					}
					key.WriteString(fields[s.field[0]].value(probe))
					key.WriteByte(0)
				}
				if r, ok := keys[key.String()]; ok {
					r.nodes = append(r.nodes, n)
					continue
				}
				keys[key.String()] = probe
				mine = append(mine, probe)
			}
			if len(mine) == 0 {
				mine = append(mine, &sinfoRow{part: p})
			}
			rows = append(rows, mine...)
		}
	}

	header := make([]string, len(specs))
	cells := make([][]string, len(rows))
	for i, s := range specs {
		if s.field != "" {
			header[i] = fields[s.field[0]].header
		}
	}
	for r, row := range rows {
		cells[r] = make([]string, len(specs))
		for i, s := range specs {
			if s.field != "" {
				cells[r][i] = fields[s.field[0]].value(row)
			}
		}
	}
	if opt.Long {
		if _, err := io.WriteString(w, opt.Now.In(orUTC(opt.Loc)).Format("Mon Jan _2 15:04:05 2006")+"\n"); err != nil {
			return err
		}
	}
	return writeTable(w, specs, header, cells, opt.NoHeader)
}
