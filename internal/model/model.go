// Package model holds usine's domain types — sites, partitions, topology, nodes,
// accelerators, projects, grants and jobs — and their validation. It has no
// behaviour beyond checking that a value makes sense; every other package
// (scheduler, simulator, store, server) speaks in these types.
//
// Times are integer seconds (Unix seconds on a live factory, seconds from the
// trace start in the simulator); durations are integer seconds; grant amounts
// are integer accelerator-seconds.
package model

// Accelerator describes one accelerator model, vendor-neutral.
type Accelerator struct {
	Vendor     string  `json:"vendor"`      // nvidia, amd, axelera, …
	Model      string  `json:"model"`       // H100, MI300X, …; the accelerator class grants are given in
	MemoryGiB  int     `json:"memory_gib"`  // device memory
	BF16TFLOPS float64 `json:"bf16_tflops"` // peak dense BF16 TFLOP/s
	Watts      int     `json:"watts"`       // board power
}

// NodeState is the operator's or the health checks' view of a node.
type NodeState string

// Node states.
const (
	NodeUp    NodeState = "up"
	NodeDrain NodeState = "drain" // running jobs finish; nothing new starts
	NodeDown  NodeState = "down"  // unreachable or broken
)

// Node is one host: N accelerators of one model, CPUs and memory, placed in
// the topology tree node → block → group → site.
type Node struct {
	Name         string    `json:"name"`
	Site         string    `json:"site"`
	Partition    string    `json:"partition"`
	Group        string    `json:"group"` // spine
	Block        string    `json:"block"` // scale-up domain or leaf switch; unique within the site
	Accelerators int       `json:"accelerators"`
	Model        string    `json:"model"` // accelerator model; "" when Accelerators == 0
	CPUs         int       `json:"cpus"`
	MemoryMiB    int64     `json:"memory_mib"`
	State        NodeState `json:"state"`
	Reason       string    `json:"reason,omitempty"`
}

// Partition is a pool of nodes of one accelerator model within a site.
type Partition struct {
	Name  string `json:"name"`
	Site  string `json:"site"`
	Model string `json:"model"`
	Down  bool   `json:"down,omitempty"` // closed by the operator: nothing starts there
}

// Site is one AI factory.
type Site struct {
	Name    string `json:"name"`
	Country string `json:"country"` // ISO 3166-1 alpha-2; the jurisdiction
}

// Cluster is the static description of one or more sites: what exists,
// not what runs. Nodes are sorted by name.
type Cluster struct {
	Name         string                 `json:"name"`
	Sites        []Site                 `json:"sites"`
	Partitions   []Partition            `json:"partitions"`
	Accelerators map[string]Accelerator `json:"accelerators"` // by model
	Nodes        []Node                 `json:"nodes"`
}

// TotalAccelerators sums the accelerators of every node.
func (c *Cluster) TotalAccelerators() int {
	n := 0
	for i := range c.Nodes {
		n += c.Nodes[i].Accelerators
	}
	return n
}

// Project is an account. Projects nest (consortium → institution → team);
// Parent is "" for a root. Shares weigh a project against its siblings in
// fair share.
type Project struct {
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	Shares int64  `json:"shares"`
}

// Grant is an amount of accelerator-seconds of one accelerator class, at one
// site or any (Site == ""), valid in [From, Until), owned by a project.
type Grant struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	Model   string `json:"model"` // accelerator class; "" = any
	Site    string `json:"site,omitempty"`
	Amount  int64  `json:"amount_s"` // accelerator-seconds
	From    int64  `json:"from"`
	Until   int64  `json:"until"`
	Public  bool   `json:"public"`
}
