package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

func TestExamplesLoadAndCompile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		wantNodes, wantAcc     int
		wantBlocks, wantGroups int
		wantPartitions         []string
		wantFirst, wantLast    string
		wantModels             map[string]int // accelerators by model
		wantCPUs               int            // of the first node
		wantSite, wantCountry  string
	}{
		{"gigafactory", 12500, 100_000, 391, 25, []string{"h100"}, "gpu00001", "gpu12500",
			map[string]int{"H100": 100_000}, 112, "eu1", "FI"},
		{"laptop", 4, 32, 2, 1, []string{"h100"}, "node1", "node4",
			map[string]int{"H100": 32}, 16, "local", "FR"},
		{"philly", 552, 2490, 21 + 15, 3 + 2, []string{"gpu-12gb", "gpu-24gb"}, "m0", "m99",
			map[string]int{"GPU-12GB": 321 * 2, "GPU-24GB": 231 * 8}, 0, "philly", "US"},
		{"openb", 1213, 6212, 0, 0, []string{"a10", "g2", "g3", "p100", "t4", "v100m16", "v100m32"}, "openb-node-0000", "",
			nil, 0, "openb", "CN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Example(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sched.Compile(c); err != nil {
				t.Fatalf("sched.Compile: %v", err)
			}
			if c.Name != tc.name || len(c.Nodes) != tc.wantNodes || c.TotalAccelerators() != tc.wantAcc {
				t.Errorf("%s: %d nodes, %d accelerators; want %d and %d", c.Name, len(c.Nodes), c.TotalAccelerators(), tc.wantNodes, tc.wantAcc)
			}
			var parts []string
			for _, p := range c.Partitions {
				parts = append(parts, p.Name)
			}
			if diff := cmp.Diff(tc.wantPartitions, parts); diff != "" {
				t.Errorf("partitions (-want +got):\n%s", diff)
			}
			if c.Sites[0].Name != tc.wantSite || c.Sites[0].Country != tc.wantCountry {
				t.Errorf("site %+v; want %s in %s", c.Sites[0], tc.wantSite, tc.wantCountry)
			}
			blocks, groups := map[string]bool{}, map[string]bool{}
			models := map[string]int{}
			for i, n := range c.Nodes {
				if i > 0 && c.Nodes[i-1].Name >= n.Name {
					t.Fatalf("nodes not sorted by name: %s before %s", c.Nodes[i-1].Name, n.Name)
				}
				blocks[n.Block], groups[n.Group] = true, true
				models[n.Model] += n.Accelerators
			}
			if tc.wantBlocks > 0 && (len(blocks) != tc.wantBlocks || len(groups) != tc.wantGroups) {
				t.Errorf("%d blocks in %d groups; want %d in %d", len(blocks), len(groups), tc.wantBlocks, tc.wantGroups)
			}
			if tc.wantModels != nil {
				if diff := cmp.Diff(tc.wantModels, models); diff != "" {
					t.Errorf("accelerators by model (-want +got):\n%s", diff)
				}
			}
			if c.Nodes[0].Name != tc.wantFirst || (tc.wantLast != "" && c.Nodes[len(c.Nodes)-1].Name != tc.wantLast) {
				t.Errorf("nodes run from %s to %s; want %s to %s", c.Nodes[0].Name, c.Nodes[len(c.Nodes)-1].Name, tc.wantFirst, tc.wantLast)
			}
			if c.Nodes[0].CPUs != tc.wantCPUs && tc.name != "openb" {
				t.Errorf("first node has %d CPUs; want %d", c.Nodes[0].CPUs, tc.wantCPUs)
			}
		})
	}
}

// The embedded examples hold what the traces say: every Philly machine with
// its GPUs, every openb GPU node with its CPUs, memory, GPUs and model.
func TestExamplesHoldTheTracesMachines(t *testing.T) {
	t.Parallel()
	philly, err := Example("philly")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]model.Node{}
	for _, n := range philly.Nodes {
		byName[n.Name] = n
	}
	rows := csvRows(t, filepath.Join(traces, "philly", "cluster_machine_list"))
	if len(rows) != 552 {
		t.Fatalf("cluster_machine_list has %d machines; want 552", len(rows))
	}
	gpus := 0
	for _, r := range rows {
		n, ok := byName[r[0]]
		gpus += atoi(t, r[1])
		if !ok || n.Accelerators != atoi(t, r[1]) || n.Model != "GPU-"+r[2] {
			t.Errorf("machine %s (%s GPUs of %s) is %+v in the example", r[0], r[1], r[2], n)
		}
	}
	if gpus != 2490 {
		t.Errorf("cluster_machine_list has %d GPUs; want 2,490", gpus)
	}

	openb, err := Example("openb")
	if err != nil {
		t.Fatal(err)
	}
	byName = map[string]model.Node{}
	for _, n := range openb.Nodes {
		byName[n.Name] = n
	}
	rows = csvRows(t, filepath.Join(traces, "alibaba_openb_v2023", "openb_node_list_gpu_node.csv"))
	gpus = 0
	for _, r := range rows {
		n := byName[r[0]]
		gpus += atoi(t, r[3])
		want := model.Node{Name: r[0], Site: "openb", Partition: strings.ToLower(r[4]), Group: n.Group, Block: n.Block,
			Accelerators: atoi(t, r[3]), Model: r[4], CPUs: atoi(t, r[1]) / 1000, MemoryMiB: int64(atoi(t, r[2])), State: model.NodeUp}
		if diff := cmp.Diff(want, n); diff != "" {
			t.Errorf("node %s (-want +got):\n%s", r[0], diff)
		}
	}
	if len(rows) != 1213 || gpus != 6212 {
		t.Errorf("openb_node_list_gpu_node.csv has %d nodes, %d GPUs; want 1,213 and 6,212", len(rows), gpus)
	}
}

func TestPoolsExpandIntoBlocksAndGroups(t *testing.T) {
	t.Parallel()
	const file = `{
  "name": "two",
  "sites": [{"name": "s1", "country": "DE"}],
  "accelerators": {"MI300X": {"vendor": "amd", "memory_gib": 192, "bf16_tflops": 1307, "watts": 750}},
  "partitions": [
    {"name": "mi", "model": "MI300X", "pools": [
      {"prefix": "a", "count": 5, "accelerators": 8, "nodes_per_block": 2, "blocks_per_group": 2}
    ]},
    {"name": "cpu", "pools": [{"prefix": "c", "count": 2, "start": 9, "digits": 3, "cpus": 64}],
     "nodes": [{"name": "odd", "cpus": 8, "block": "rack7", "group": "row1", "state": "drain", "reason": "bad fan"}]}
  ]
}`
	c, err := Parse([]byte(file), "two.json")
	if err != nil {
		t.Fatal(err)
	}
	node := func(name, part, block, group string, acc, cpus int) model.Node {
		n := model.Node{Name: name, Site: "s1", Partition: part, Block: block, Group: group, Accelerators: acc, CPUs: cpus, State: model.NodeUp}
		if acc > 0 {
			n.Model = "MI300X"
		}
		return n
	}
	odd := node("odd", "cpu", "rack7", "row1", 0, 8)
	odd.State, odd.Reason = model.NodeDrain, "bad fan"
	want := &model.Cluster{
		Name:         "two",
		Sites:        []model.Site{{Name: "s1", Country: "DE"}},
		Partitions:   []model.Partition{{Name: "mi", Site: "s1", Model: "MI300X"}, {Name: "cpu", Site: "s1"}},
		Accelerators: map[string]model.Accelerator{"MI300X": {Vendor: "amd", Model: "MI300X", MemoryGiB: 192, BF16TFLOPS: 1307, Watts: 750}},
		Nodes: []model.Node{
			node("a1", "mi", "b0001", "g001", 8, 0),
			node("a2", "mi", "b0001", "g001", 8, 0),
			node("a3", "mi", "b0002", "g001", 8, 0),
			node("a4", "mi", "b0002", "g001", 8, 0),
			node("a5", "mi", "b0003", "g002", 8, 0),
			node("c009", "cpu", "b0004", "g003", 0, 64),
			node("c010", "cpu", "b0004", "g003", 0, 64),
			odd,
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if _, err := sched.Compile(c); err != nil {
		t.Errorf("sched.Compile: %v", err)
	}
}

func TestParseErrorsNameTheFieldPath(t *testing.T) {
	t.Parallel()
	// base is a valid file; each case replaces one piece of it.
	const base = `{"name": "x", "sites": [{"name": "s", "country": "FI"}],
"accelerators": {"H100": {"vendor": "nvidia", "memory_gib": 80, "bf16_tflops": 989, "watts": 700}},
"partitions": [{"name": "p", "site": "s", "model": "H100", "pools": [POOLS]}]}`
	const pool = `{"prefix": "gpu", "count": 4, "accelerators": 8, "nodes_per_block": 2}`
	with := func(pools string) string { return strings.Replace(base, "POOLS", pools, 1) }
	tests := []struct {
		name, file, wantErr string
	}{
		{"count zero", with(pool + `, {"prefix": "x", "count": 0, "accelerators": 8}`),
			"cluster.json: partitions[0].pools[1].count: must be positive; got 0"},
		{"unknown pool field", with(`{"prefix": "gpu", "count": 4, "gpus": 8}`),
			"cluster.json: partitions[0].pools[0].gpus: unknown field; known fields here: accelerators, blocks_per_group, count, cpus, digits, memory_mib, nodes_per_block, prefix, start"},
		{"unknown top-level field", strings.Replace(with(pool), `"name": "x",`, `"name": "x", "nodes": [],`, 1),
			"cluster.json: nodes: unknown field; known fields here: accelerators, name, partitions, sites"},
		{"count is a string", with(`{"prefix": "gpu", "count": "4"}`),
			"cluster.json: partitions[0].pools[0].count: is a JSON string; want a whole number"},
		{"sites is an object", strings.Replace(with(pool), `[{"name": "s", "country": "FI"}]`, `{"name": "s"}`, 1),
			"cluster.json: sites: is a JSON object; want a list [...]"},
		{"syntax error", "{\n  \"name\": \"x\",\n  \"sites\": [}\n",
			"cluster.json:3:13: invalid JSON: invalid character '}' looking for beginning of value"},
		{"empty file", "", "cluster.json: is empty; a cluster file is a JSON object"},
		{"two objects", with(pool) + "{}", "cluster.json: holds more than one JSON value; a cluster file is one object"},
		{"undescribed model", strings.Replace(with(pool), `"model": "H100"`, `"model": "B200"`, 1),
			`cluster.json: partitions[0].model: "B200" is not described under accelerators; add its vendor, memory_gib, bf16_tflops and watts`},
		{"unknown site", strings.Replace(with(pool), `"site": "s"`, `"site": "eu9"`, 1),
			`cluster.json: partitions[0].site: "eu9" is not a site of this file; declare it under sites or use one of s`},
		{"bad country", strings.Replace(with(pool), `"FI"`, `"Finland"`, 1),
			`cluster.json: sites[0].country: "Finland" is not an ISO 3166-1 alpha-2 code; give two capital letters such as FI, FR or DE`},
		{"negative watts", strings.Replace(with(pool), `"watts": 700`, `"watts": -1`, 1),
			"cluster.json: accelerators.H100.watts: is -1; give 0 (not published) or more"},
		{"names collide across pools", with(pool + `, {"prefix": "gpu", "count": 2, "start": 3, "accelerators": 8}`),
			"cluster.json: partitions[0].pools[1]: makes node gpu3, which partitions[0].pools[0] already declares; give another prefix or start"},
		{"space in prefix", with(`{"prefix": "g u", "count": 1}`),
			`cluster.json: partitions[0].pools[0].prefix: "g u" contains a space, a comma or a line break; use letters, digits, '-', '_' or '.'`},
		{"no pools or nodes", with(""),
			"cluster.json: partitions[0]: has neither pools nor nodes; give at least one"},
		{"listed node without block", strings.Replace(with(pool), `"pools"`, `"nodes": [{"name": "n1", "accelerators": 8, "group": "g"}], "pools"`, 1),
			"cluster.json: partitions[0].nodes[0].block: is empty; give a name (the node's scale-up domain or leaf switch)"},
		{"listed node in a pool's block", strings.Replace(with(pool), `"pools"`, `"nodes": [{"name": "n1", "block": "b0001", "group": "g001"}], "pools"`, 1),
			`cluster.json: partitions[0].nodes[0].block: "b0001" is also a block that partitions[0].pools[0] makes; pools name their blocks b0001, b0002, …: give this one another name`},
		{"listed node named like a pool's", strings.Replace(with(pool), `"pools"`, `"nodes": [{"name": "gpu2", "block": "r", "group": "g"}], "pools"`, 1),
			`cluster.json: partitions[0].nodes[0].name: "gpu2" is already declared by partitions[0].pools[0]; node names must be unique`},
		{"bad node state", strings.Replace(with(pool), `"pools"`, `"nodes": [{"name": "n", "block": "r", "group": "g", "state": "broken"}], "pools"`, 1),
			`cluster.json: partitions[0].nodes[0].state: "broken" is not a node state; use up, drain or down`},
		{"accelerators without a model", strings.Replace(with(pool), `"model": "H100", `, ``, 1),
			"cluster.json: partitions[0].model: is empty but the nodes of partitions[0].pools[0] have accelerators; name their model (a key of accelerators)"},
		{"too many nodes", with(`{"prefix": "gpu", "count": 20000000}`),
			"cluster.json: partitions[0].pools[0].count: is 20000000; at most 10000000 nodes are allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tc.file), "cluster.json")
			if err == nil {
				t.Fatalf("Parse gave a cluster of %d nodes and no error; want %s", len(c.Nodes), tc.wantErr)
			}
			if got := strings.Split(err.Error(), "\n")[0]; got != tc.wantErr {
				t.Errorf("Parse error:\n got %s\nwant %s", err, tc.wantErr)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	const file = `{"sites": [{"name": "s", "country": "fi"}], "accelerators": {},
"partitions": [{"name": "p", "pools": [{"prefix": "a", "count": -1}, {"prefix": "b", "count": 1, "cpus": -2}]}]}`
	_, err := Parse([]byte(file), "many.json")
	want := []string{
		`many.json: sites[0].country: "fi" is not an ISO 3166-1 alpha-2 code; give two capital letters such as FI, FR or DE`,
		"many.json: partitions[0].pools[0].count: must be positive; got -1",
		"many.json: partitions[0].pools[1].cpus: is -2; give 0 (not limited) or more",
	}
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	laptop, _ := ExampleFile("laptop")
	path := filepath.Join(dir, "mine.json")
	if err := os.WriteFile(path, laptop, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg       string
		wantNodes int
		wantErr   string
	}{
		{"gigafactory", 12500, ""},
		{"laptop", 4, ""},
		{path, 4, ""},
		{"frontier", 0, `no built-in cluster "frontier"; built-ins are gigafactory, laptop, openb, philly, or give the path of a JSON cluster file`},
		{filepath.Join(dir, "none.json"), 0, "load cluster: open " + filepath.Join(dir, "none.json") + ": no such file or directory"},
		{"", 0, "no cluster given; name a built-in (gigafactory, laptop, openb, philly) or give a JSON file"},
	}
	for _, tc := range tests {
		c, err := Resolve(tc.arg)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Resolve(%q) error = %v; want %s", tc.arg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.arg, err)
			continue
		}
		if len(c.Nodes) != tc.wantNodes {
			t.Errorf("Resolve(%q) has %d nodes; want %d", tc.arg, len(c.Nodes), tc.wantNodes)
		}
	}
	if diff := cmp.Diff([]string{"gigafactory", "laptop", "openb", "philly"}, Examples()); diff != "" {
		t.Errorf("Examples (-want +got):\n%s", diff)
	}
}
