package trace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnknownFormat is wrapped by Convert when the format name is not one of
// Formats.
var ErrUnknownFormat = errors.New("unknown trace format")

// ConvertOptions tune Convert. Each reader uses the fields that concern it.
type ConvertOptions struct {
	ReadOptions
	Seed      uint64 // philly-gavel: seed of the run-time draws
	Durations string // philly-gavel: duration distribution file; "" = found next to the inputs
	PerNode   int    // swf: processors per node of the logged machine; 0 = pack
}

type format struct {
	name, about string
	many        bool // takes several inputs
}

var formats = []format{
	{"csv", "usine trace CSV v1", false},
	{"openb", "Alibaba openb pod list (openb_pod_list_*.csv)", false},
	{"philly-gavel", "Gavel's Philly VC streams (<vc>.trace files or directories of them)", true},
	{"swf", "Standard Workload Format log of the Parallel Workloads Archive", false},
}

// Formats lists the format names Convert reads, sorted.
func Formats() []string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.name
	}
	return names
}

// FormatHelp describes a format in a few words, for help texts.
func FormatHelp(name string) string {
	for _, f := range formats {
		if f.name == name {
			return f.about
		}
	}
	return ""
}

// Convert reads the trace at paths in the named format (one of Formats) and
// returns its records sorted by submit time, then ID. philly-gavel takes any
// number of files and directories; the other formats read exactly one file.
// An unknown format wraps ErrUnknownFormat and lists the valid ones.
func Convert(ctx context.Context, name string, paths []string, opt ConvertOptions) ([]Record, Stats, error) {
	var f *format
	for i := range formats {
		if formats[i].name == name {
			f = &formats[i]
		}
	}
	if f == nil {
		return nil, Stats{}, fmt.Errorf("%w %q; use one of: %s", ErrUnknownFormat, name, strings.Join(Formats(), ", "))
	}
	if f.name == "philly-gavel" {
		return ReadPhillyGavel(ctx, paths, opt.Durations, opt.Seed, opt.ReadOptions)
	}
	if len(paths) != 1 {
		return nil, Stats{}, fmt.Errorf("%s reads one file; got %d inputs", f.name, len(paths))
	}
	if err := ctx.Err(); err != nil {
		return nil, Stats{}, err
	}
	file, err := os.Open(paths[0])
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: %w", f.name, err)
	}
	defer file.Close()
	base := filepath.Base(paths[0])
	switch f.name {
	case "csv":
		return ReadCSV(file, base, opt.ReadOptions)
	case "openb":
		return ReadOpenB(file, base, opt.ReadOptions)
	default: // swf
		return ReadSWF(file, base, SWFOptions{ReadOptions: opt.ReadOptions, PerNode: opt.PerNode})
	}
}
