package agent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEmulation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     Emulation
		wantErr  bool
	}{
		{name: "one node of eight H100", in: "8xH100", want: Emulation{Nodes: 1, PerNode: 8, Model: "H100", Vendor: "nvidia"}},
		{name: "four nodes", in: "4x8xH100", want: Emulation{Nodes: 4, PerNode: 8, Model: "H100", Vendor: "nvidia"}},
		{name: "AMD", in: "2x8xMI300X", want: Emulation{Nodes: 2, PerNode: 8, Model: "MI300X", Vendor: "amd"}},
		{name: "a model usine does not know", in: "4xFoo9", want: Emulation{Nodes: 1, PerNode: 4, Model: "Foo9", Vendor: "emulated"}},
		{name: "no model", in: "8", wantErr: true},
		{name: "zero accelerators", in: "0xH100", wantErr: true},
		{name: "negative nodes", in: "-1x8xH100", wantErr: true},
		{name: "too many parts", in: "1x2x3xH100", wantErr: true},
		{name: "empty model", in: "8x", wantErr: true},
	} {
		got, err := ParseEmulation(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: ParseEmulation(%q) error %v; want error %v", tc.name, tc.in, err, tc.wantErr)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "4x8xH100") {
			t.Errorf("%s: error %q does not show the expected form", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, got); err == nil && diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestEmulatedNodesFillBlocksThenGroups(t *testing.T) {
	t.Parallel()
	e := Emulation{Nodes: 1000, PerNode: 8, Model: "H100", Vendor: "nvidia"}
	var got []string
	for _, i := range []int{0, 1, 2, 3, 4, 999} {
		n := e.Node(i, 2, 2, 16, 1024)
		got = append(got, n.Name+" "+n.Block+" "+n.Group+" "+n.Partition)
	}
	want := []string{"node0001 b01 g01 h100", "node0002 b01 g01 h100", "node0003 b02 g01 h100", "node0004 b02 g01 h100", "node0005 b03 g02 h100", "node1000 b500 g250 h100"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
