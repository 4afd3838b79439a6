package cluster

import (
	"testing"

	"github.com/usine-project/usine/internal/sched"
)

// FuzzParse: any bytes give a cluster that compiles, or an error; never a
// panic. go test -fuzz FuzzParse ./internal/cluster
func FuzzParse(f *testing.F) {
	for _, name := range []string{"laptop", "gigafactory"} {
		data, err := ExampleFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"sites":[{"name":"s","country":"FI"}],"partitions":[{"name":"p","nodes":[{"name":"n","block":"b","group":"g"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		if len(c.Nodes) > 100_000 {
			return // compiling a fuzzed gigafactory is slow and proves nothing more
		}
		if _, err := sched.Compile(c); err != nil {
			t.Fatalf("Parse accepted a cluster that does not compile: %v", err)
		}
	})
}
