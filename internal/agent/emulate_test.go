package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/accel"
)

func TestEmulatedNodesFillBlocksThenGroups(t *testing.T) {
	t.Parallel()
	sp := accel.Spec{Nodes: 1000, PerNode: 8, Model: "H100"}
	var got []string
	for _, i := range []int{0, 1, 2, 3, 4, 999} {
		n := EmulatedNode(sp, i, 2, 2, 16, 1024)
		got = append(got, n.Name+" "+n.Block+" "+n.Group+" "+n.Partition)
	}
	want := []string{"node0001 b01 g01 h100", "node0002 b01 g01 h100", "node0003 b02 g01 h100", "node0004 b02 g01 h100", "node0005 b03 g02 h100", "node1000 b500 g250 h100"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if names := EmulatedNames(accel.Spec{Nodes: 3, PerNode: 1, Model: "H100"}); !cmp.Equal(names, []string{"node001", "node002", "node003"}) {
		t.Errorf("names of 3 nodes: %v", names)
	}
}
