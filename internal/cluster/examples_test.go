package cluster

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// go test ./internal/cluster -run TestExamplesMatchTheTraces -update
// regenerates examples/philly.json and examples/openb.json from the traces.
var update = flag.Bool("update", false, "rewrite the examples made from the traces")

const traces = "../../../shared/traces"

// Philly and openb do not publish their topology. The examples put each
// partition's nodes, in id order, in blocks of examplePerBlock nodes, and
// exampleBlocksPerGroup blocks in a group.
const (
	examplePerBlock       = 16
	exampleBlocksPerGroup = 8
)

// exampleNode is how the generated examples write a node: one line each,
// unknown CPUs and memory left out.
type exampleNode struct {
	Name         string `json:"name"`
	Accelerators int    `json:"accelerators"`
	CPUs         int    `json:"cpus,omitempty"`
	MemoryMiB    int64  `json:"memory_mib,omitempty"`
	Block        string `json:"block"`
	Group        string `json:"group"`
}

type examplePartition struct {
	name, model string
	nodes       []exampleNode
}

// exampleJSON writes a cluster file of one site. Accelerator specs come in
// as JSON objects, by model.
func exampleJSON(name, site, country string, accels map[string]string, parts []examplePartition) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"name\": %q,\n  \"sites\": [{\"name\": %q, \"country\": %q}],\n  \"accelerators\": {\n", name, site, country)
	for i, m := range sortedKeys(accels) {
		fmt.Fprintf(&b, "    %q: %s", m, accels[m])
		if i < len(accels)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("  },\n  \"partitions\": [\n")
	block, group := 0, 0
	for i, p := range parts {
		fmt.Fprintf(&b, "    {\n      \"name\": %q,\n      \"site\": %q,\n      \"model\": %q,\n      \"nodes\": [\n", p.name, site, p.model)
		for j := range p.nodes {
			n := &p.nodes[j]
			if j%examplePerBlock == 0 {
				block++
				if j%(examplePerBlock*exampleBlocksPerGroup) == 0 {
					group++
				}
			}
			n.Block, n.Group = fmt.Sprintf("b%04d", block), fmt.Sprintf("g%03d", group)
			line, _ := json.Marshal(n)
			b.WriteString("        ")
			b.Write(line)
			if j < len(p.nodes)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("      ]\n    }")
		if i < len(parts)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("  ]\n}\n")
	return b.Bytes()
}

// csvRows reads a small CSV file without quoting, trimming spaces and "\r".
func csvRows(t *testing.T, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		f := strings.Split(l, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		rows = append(rows, f)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// phillyExample builds philly.json from cluster_machine_list (machineId,
// number of GPUs, single GPU mem): one partition per kind of machine, the
// machines' own ids, in numeric order.
func phillyExample(t *testing.T) []byte {
	t.Helper()
	byModel := map[string][]exampleNode{}
	accels := map[string]string{}
	for _, r := range csvRows(t, filepath.Join(traces, "philly", "cluster_machine_list")) {
		model := "GPU-" + r[2] // GPU-12GB, GPU-24GB: Philly does not publish the models
		mem := atoi(t, strings.TrimSuffix(r[2], "GB"))
		accels[model] = fmt.Sprintf(`{"vendor": "nvidia", "memory_gib": %d, "bf16_tflops": 0, "watts": 0}`, mem)
		byModel[model] = append(byModel[model], exampleNode{Name: r[0], Accelerators: atoi(t, r[1])})
	}
	var parts []examplePartition
	for _, m := range sortedKeys(byModel) {
		nodes := byModel[m]
		slices.SortFunc(nodes, func(a, b exampleNode) int {
			return atoi(t, strings.TrimPrefix(a.Name, "m")) - atoi(t, strings.TrimPrefix(b.Name, "m"))
		})
		parts = append(parts, examplePartition{name: strings.ToLower(m), model: m, nodes: nodes})
	}
	return exampleJSON("philly", "philly", "US", accels, parts)
}

// openbSpecs are the public specs of openb's GPU models; G2 and G3 are
// Alibaba's undisclosed codes. BF16 is 0 where the GPU has none.
var openbSpecs = map[string]string{
	"A10":     `{"vendor": "nvidia", "memory_gib": 24, "bf16_tflops": 125, "watts": 150}`,
	"G2":      `{"vendor": "undisclosed", "memory_gib": 0, "bf16_tflops": 0, "watts": 0}`,
	"G3":      `{"vendor": "undisclosed", "memory_gib": 0, "bf16_tflops": 0, "watts": 0}`,
	"P100":    `{"vendor": "nvidia", "memory_gib": 16, "bf16_tflops": 0, "watts": 250}`,
	"T4":      `{"vendor": "nvidia", "memory_gib": 16, "bf16_tflops": 0, "watts": 70}`,
	"V100M16": `{"vendor": "nvidia", "memory_gib": 16, "bf16_tflops": 0, "watts": 300}`,
	"V100M32": `{"vendor": "nvidia", "memory_gib": 32, "bf16_tflops": 0, "watts": 300}`,
}

// openbExample builds openb.json from openb_node_list_gpu_node.csv (sn,
// cpu_milli, memory_mib, gpu, model): one partition per GPU model, nodes in
// name order.
func openbExample(t *testing.T) []byte {
	t.Helper()
	byModel := map[string][]exampleNode{}
	for _, r := range csvRows(t, filepath.Join(traces, "alibaba_openb_v2023", "openb_node_list_gpu_node.csv")) {
		if _, ok := openbSpecs[r[4]]; !ok {
			t.Fatalf("GPU model %q has no spec", r[4])
		}
		byModel[r[4]] = append(byModel[r[4]], exampleNode{Name: r[0], Accelerators: atoi(t, r[3]),
			CPUs: (atoi(t, r[1]) + 999) / 1000, MemoryMiB: int64(atoi(t, r[2]))})
	}
	var parts []examplePartition
	for _, m := range sortedKeys(byModel) {
		nodes := byModel[m]
		slices.SortFunc(nodes, func(a, b exampleNode) int { return strings.Compare(a.Name, b.Name) })
		parts = append(parts, examplePartition{name: strings.ToLower(m), model: m, nodes: nodes})
	}
	return exampleJSON("openb", "openb", "CN", openbSpecs, parts)
}

func TestExamplesMatchTheTraces(t *testing.T) {
	t.Parallel()
	for name, gen := range map[string]func(*testing.T) []byte{"philly": phillyExample, "openb": openbExample} {
		want := gen(t)
		path := filepath.Join("examples", name+".json")
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue // the embedded copy is the old one until the next build
		}
		got, err := ExampleFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("embedded %s differs from what the traces give; run go test ./internal/cluster -run TestExamplesMatchTheTraces -update", path)
		}
	}
}
