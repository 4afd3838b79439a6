package cluster

import (
	"embed"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/usine-project/usine/internal/model"
)

//go:embed examples/*.json
var examples embed.FS

// Examples lists the built-in clusters by name: gigafactory, laptop, openb,
// philly.
func Examples() []string {
	ents, _ := examples.ReadDir("examples") // embedded: cannot fail
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// ExampleFile returns the JSON of a built-in cluster, to copy and edit.
func ExampleFile(name string) ([]byte, error) {
	data, err := examples.ReadFile("examples/" + name + ".json")
	if err != nil || strings.ContainsAny(name, `/\.`) {
		return nil, fmt.Errorf("no built-in cluster %q; built-ins are %s", name, strings.Join(Examples(), ", "))
	}
	return data, nil
}

// Example returns a built-in cluster by name (see Examples).
func Example(name string) (*model.Cluster, error) {
	data, err := ExampleFile(name)
	if err != nil {
		return nil, err
	}
	return Parse(data, name+".json")
}

// Resolve returns the built-in cluster named nameOrPath, or loads the file
// at that path. A bare word (no path separator, no ".json") names a
// built-in; anything else is a file.
func Resolve(nameOrPath string) (*model.Cluster, error) {
	if nameOrPath == "" {
		return nil, fmt.Errorf("no cluster given; name a built-in (%s) or give a JSON file", strings.Join(Examples(), ", "))
	}
	if !strings.ContainsAny(nameOrPath, `/\`) && filepath.Ext(nameOrPath) != ".json" {
		if _, err := ExampleFile(nameOrPath); err != nil {
			return nil, fmt.Errorf("%w, or give the path of a JSON cluster file", err)
		}
		return Example(nameOrPath)
	}
	return Load(nameOrPath)
}
