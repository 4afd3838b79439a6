package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/model"
)

// Emulation is a set of emulated nodes: Nodes nodes of PerNode
// accelerators of one model, so that the whole product can be tried on a
// machine without them.
type Emulation struct {
	Nodes   int
	PerNode int
	Model   string
	Vendor  string
}

// vendors of the models people emulate most; others count as "emulated".
var vendors = map[string]string{
	"A100": "nvidia", "H100": "nvidia", "H200": "nvidia", "B200": "nvidia", "GB200": "nvidia", "L40S": "nvidia", "GH200": "nvidia",
	"MI250X": "amd", "MI300A": "amd", "MI300X": "amd", "MI325X": "amd", "MI355X": "amd",
	"GAUDI3": "intel", "METIS": "axelera",
}

// ParseEmulation reads "8xH100" (one node) or "4x8xH100" (four nodes).
func ParseEmulation(s string) (Emulation, error) {
	parts := strings.Split(s, "x")
	bad := fmt.Errorf("--emulate %q: give PERNODExMODEL (8xH100) or NODESxPERNODExMODEL (4x8xH100)", s)
	if len(parts) < 2 || len(parts) > 3 {
		return Emulation{}, bad
	}
	e := Emulation{Nodes: 1, Model: parts[len(parts)-1]}
	nums := parts[:len(parts)-1]
	var err error
	if e.PerNode, err = strconv.Atoi(nums[len(nums)-1]); err != nil || e.PerNode <= 0 || e.PerNode > 1024 {
		return Emulation{}, bad
	}
	if len(nums) == 2 {
		if e.Nodes, err = strconv.Atoi(nums[0]); err != nil || e.Nodes <= 0 || e.Nodes > 100_000 {
			return Emulation{}, bad
		}
	}
	if e.Model == "" || strings.ContainsAny(e.Model, " ,/") {
		return Emulation{}, bad
	}
	e.Vendor = vendors[strings.ToUpper(e.Model)]
	if e.Vendor == "" {
		e.Vendor = "emulated"
	}
	return e, nil
}

// NodeNames names emulated nodes node001, node002, … (wider as needed).
func (e Emulation) NodeNames() []string {
	out := make([]string, e.Nodes)
	for i := range out {
		out[i] = e.name(i)
	}
	return out
}

func (e Emulation) name(i int) string {
	return fmt.Sprintf("node%0*d", max(3, len(strconv.Itoa(e.Nodes))), i+1)
}

// Node is the i-th emulated node, placed in blocks of nodesPerBlock and
// groups of blocksPerGroup.
func (e Emulation) Node(i, nodesPerBlock, blocksPerGroup, cpus int, memMiB int64) model.Node {
	b := i / nodesPerBlock
	g := b / blocksPerGroup
	return model.Node{
		Name: e.name(i), Partition: strings.ToLower(e.Model),
		Block: fmt.Sprintf("b%02d", b+1), Group: fmt.Sprintf("g%02d", g+1),
		Accelerators: e.PerNode, Model: e.Model, CPUs: cpus, MemoryMiB: memMiB, State: model.NodeUp,
	}
}
