package accel_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/training"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     accel.Spec
	}{
		{"one node of eight", "8xH100", accel.Spec{Nodes: 1, PerNode: 8, Model: "H100"}},
		{"four nodes of eight", "4x8xH100", accel.Spec{Nodes: 4, PerNode: 8, Model: "H100"}},
		{"a model that ends in X", "8xMI300X", accel.Spec{Nodes: 1, PerNode: 8, Model: "MI300X"}},
		{"capital separators and a model in lower case", "2X4Xmi250x", accel.Spec{Nodes: 2, PerNode: 4, Model: "MI250X"}},
		{"spaces and a times sign", " 8 × b200 ", accel.Spec{Nodes: 1, PerNode: 8, Model: "B200"}},
		{"an unknown model is kept as written", "2xMetis", accel.Spec{Nodes: 1, PerNode: 2, Model: "Metis"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := accel.ParseSpec(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseSpec(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseSpecRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, wantMsg string }{
		{"nothing", "", "no count"},
		{"a model alone", "H100", "no count"},
		{"no model", "8x", "no model"},
		{"no separator", "8H100", "expected x after 8"},
		{"zero per node", "0xH100", "accelerators per node 0 is not in 1–1024"},
		{"zero nodes", "0x8xH100", "nodes 0 is not in 1–100000"},
		{"too many per node", "2000xH100", "accelerators per node 2000"},
		{"too many nodes", "200000x8xH100", "nodes 200000"},
		{"three counts", "1x2x3xH100", "too many counts"},
		{"a model that is a number", "8x100", `model "100" does not start with a letter`},
		{"a model starting with a digit", "8x 4090", "does not start with a letter"},
		{"a model with a space", "8xH 100", "holds a space"},
		{"a list", "8xH100,8xA100", "holds a space, comma or slash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := accel.ParseSpec(tc.in)
			if err == nil {
				t.Fatalf("ParseSpec(%q) = %+v, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "4x8xH100") {
				t.Errorf("ParseSpec(%q) error %q: want it to say %q and show an example", tc.in, err, tc.wantMsg)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"8xH100", "4x8xH100", "8 x MI300X", "2×4×b200", "x", "8x", "1x2x3x4", "９xH100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := accel.ParseSpec(s)
		if err != nil {
			return
		}
		if sp.Nodes < 1 || sp.PerNode < 1 || sp.Model == "" {
			t.Fatalf("ParseSpec(%q) = %+v without an error", s, sp)
		}
		again, err := accel.ParseSpec(sp.String())
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %+v, whose String %q does not parse: %v", s, sp, sp.String(), err)
		}
		if diff := cmp.Diff(sp, again); diff != "" {
			t.Fatalf("spec %q does not read back (-first +again):\n%s", s, diff)
		}
	})
}

func TestEmulate(t *testing.T) {
	t.Parallel()
	got, err := accel.Emulate(2, "mi300x")
	if err != nil {
		t.Fatal(err)
	}
	want := []accel.Device{
		{Index: 0, Vendor: "amd", Model: "MI300X", MemoryGiB: 192, UUID: "emulated-MI300X-0", Source: accel.SourceEmulated},
		{Index: 1, Vendor: "amd", Model: "MI300X", MemoryGiB: 192, UUID: "emulated-MI300X-1", Source: accel.SourceEmulated},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Emulate(2, mi300x) (-want +got):\n%s", diff)
	}
	if _, err := accel.Emulate(8, "Z9000"); err == nil || !strings.Contains(err.Error(), "H100") {
		t.Errorf("Emulate of an unknown model: error %v, want one listing the known models", err)
	}
	if _, err := accel.Emulate(0, "H100"); err == nil {
		t.Error("Emulate(0, H100) gave no error")
	}
}

func TestModelsReuseTheTrainingCatalogue(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for _, a := range accel.Models() {
		seen[strings.ToUpper(a.Model)]++
		if a.Vendor == "" || a.MemoryGiB <= 0 || a.BF16TFLOPS <= 0 || a.Watts <= 0 {
			t.Errorf("model %s lacks a figure: %+v", a.Model, a)
		}
	}
	for m, n := range seen {
		if n > 1 {
			t.Errorf("model %s is described %d times", m, n)
		}
	}
	for _, c := range training.Catalogue() {
		got, ok := accel.Lookup(c.Model)
		if !ok {
			t.Errorf("the training catalogue's %s is missing", c.Model)
			continue
		}
		if diff := cmp.Diff(c.Accelerator, got); diff != "" {
			t.Errorf("model %s differs from the training catalogue (-catalogue +accel):\n%s", c.Model, diff)
		}
	}
	for _, m := range []string{"H100", "H200", "B200", "A100", "MI250X", "MI300X", "GH200"} {
		if _, ok := accel.Lookup(m); !ok {
			t.Errorf("model %s is not in the table", m)
		}
	}
}

func TestModelFromName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"H100 SXM", "NVIDIA H100 80GB HBM3", "H100"},
		{"A100 with dashes", "NVIDIA A100-SXM4-80GB", "A100"},
		{"H200", "NVIDIA H200", "H200"},
		{"GH200 is not an H200", "NVIDIA GH200 480GB", "GH200"},
		{"B200", "NVIDIA B200", "B200"},
		{"MI300X OAM", "AMD Instinct MI300X OAM", "MI300X"},
		{"MI250X in capitals", "AMD INSTINCT MI250X", "MI250X"},
		{"an unknown NVIDIA card", "NVIDIA RTX A6000", "RTX-A6000"},
		{"an unknown Tesla", "Tesla V100-SXM2-16GB", "V100-SXM2-16GB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := accel.ModelFromName(tc.in); got != tc.want {
				t.Errorf("ModelFromName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
