package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/model"
)

// EmulatedNames names the nodes of an emulation (accel.Spec "4x8xH100")
// node001, node002, … (wider as needed).
func EmulatedNames(sp accel.Spec) []string {
	out := make([]string, sp.Nodes)
	for i := range out {
		out[i] = emulatedName(sp, i)
	}
	return out
}

func emulatedName(sp accel.Spec, i int) string {
	return fmt.Sprintf("node%0*d", max(3, len(strconv.Itoa(sp.Nodes))), i+1)
}

// EmulatedNode is the i-th node of an emulation, placed in blocks of
// nodesPerBlock and groups of blocksPerGroup, in the partition named
// after the model. Its devices are accel.Emulate(sp.PerNode, sp.Model).
func EmulatedNode(sp accel.Spec, i, nodesPerBlock, blocksPerGroup, cpus int, memMiB int64) model.Node {
	b := i / nodesPerBlock
	g := b / blocksPerGroup
	return model.Node{
		Name: emulatedName(sp, i), Partition: strings.ToLower(sp.Model),
		Block: fmt.Sprintf("b%02d", b+1), Group: fmt.Sprintf("g%02d", g+1),
		Accelerators: sp.PerNode, Model: sp.Model, CPUs: cpus, MemoryMiB: memMiB, State: model.NodeUp,
	}
}
