package accel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Device is one accelerator of this node.
type Device struct {
	Index     int    `json:"index"`  // the vendor's index, as its visibility variables take it
	Vendor    string `json:"vendor"` // nvidia, amd, or another vendor's name
	Model     string `json:"model"`  // usine's model name: H100, MI300X, …
	MemoryGiB int    `json:"memory_gib,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Source    Source `json:"source"` // where it was found; Power reads real devices only
	// SyntheticWatts is the made-up draw Power reports for an emulated
	// device, so that the measured-energy path (agent, server, usage) can
	// be tried and tested on a machine without accelerators. It is no
	// measurement: only SourceEmulated devices may have it, and 0 (the
	// default) leaves their power unreadable, as a real reading would be.
	SyntheticWatts float64 `json:"synthetic_watts,omitempty"`
}

// Source says where devices were found.
type Source string

// Sources, in the order Discover tries them.
const (
	SourceConfig    Source = "config"     // declared by the operator
	SourceNvidiaSMI Source = "nvidia-smi" // NVIDIA's driver, through nvidia-smi
	SourceSysfs     Source = "sysfs"      // AMD's amdgpu driver, through /sys/class/drm
	SourceEmulated  Source = "emulated"   // made up, for machines without accelerators
	SourceNone      Source = "none"       // nothing found and no emulation asked for
)

// Config says how to find the node's accelerators. The zero value probes
// the real host.
type Config struct {
	// Devices declares the devices; Declare says the same as "N x MODEL"
	// ("8xH100"). At most one of them; either wins over probing.
	Devices []Device
	Declare string
	// Emulate, when > 0, makes that many devices of EmulateModel when
	// nothing real is found. To emulate on a machine that has real
	// accelerators, declare the devices instead.
	Emulate      int
	EmulateModel string
	// Root is the file system root sysfs is read under ("" = "/"), and
	// Path the directories vendor tools are looked for in ("" = $PATH):
	// tests point them at fakes.
	Root string
	Path string
	// Timeout bounds each run of a vendor tool (0 = 10 s): nvidia-smi
	// hangs when a GPU is wedged, and the agent must not hang with it.
	Timeout time.Duration
}

func (c *Config) root() string { return cmp.Or(c.Root, "/") }

func (c *Config) timeout() time.Duration { return cmp.Or(c.Timeout, 10*time.Second) }

// lookTool finds a vendor tool in c.Path, or in $PATH; "" when absent.
func (c *Config) lookTool(name string) string {
	path := c.Path
	if path == "" {
		path = os.Getenv("PATH")
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Discover finds this node's accelerators. A source that is absent (no
// nvidia-smi, no /sys/class/drm) is skipped; one that is present but
// fails is an error, because a node that silently registers without its
// GPUs is worse than one that does not start. Nothing found and no
// emulation asked for is no error: the node has no accelerators
// (SourceNone).
func Discover(ctx context.Context, cfg Config) ([]Device, Source, error) {
	switch {
	case len(cfg.Devices) > 0 && cfg.Declare != "":
		return nil, "", errors.New("accelerators are declared twice, as a list and as " + cfg.Declare + ": keep one")
	case len(cfg.Devices) > 0:
		devs, err := declared(cfg.Devices)
		return devs, SourceConfig, err
	case cfg.Declare != "":
		sp, err := ParseSpec(cfg.Declare)
		if err != nil {
			return nil, "", fmt.Errorf("declared accelerators: %w", err)
		}
		if sp.Nodes != 1 {
			return nil, "", fmt.Errorf("declared accelerators %q name %d nodes; an agent declares its own node's only, such as %dx%s", cfg.Declare, sp.Nodes, sp.PerNode, sp.Model)
		}
		devs := make([]Device, sp.PerNode)
		for i := range devs {
			devs[i] = Device{Index: i, Model: sp.Model}
		}
		devs, err = declared(devs)
		return devs, SourceConfig, err
	}
	if devs, err := nvidiaDevices(ctx, &cfg); err != nil || len(devs) > 0 {
		return devs, SourceNvidiaSMI, err
	}
	if devs, err := amdDevices(ctx, &cfg); err != nil || len(devs) > 0 {
		return devs, SourceSysfs, err
	}
	if cfg.Emulate > 0 {
		devs, err := Emulate(cfg.Emulate, cfg.EmulateModel)
		return devs, SourceEmulated, err
	}
	return nil, SourceNone, nil
}

// declared checks the operator's devices and fills what the table knows.
func declared(in []Device) ([]Device, error) {
	out := slices.Clone(in)
	seen := map[int]bool{}
	var errs []error
	for i := range out {
		d := &out[i]
		switch {
		case d.Model == "":
			errs = append(errs, fmt.Errorf("declared accelerator %d has no model: give one, such as H100", i))
		case d.Index < 0:
			errs = append(errs, fmt.Errorf("declared accelerator %d has index %d: give 0 or more", i, d.Index))
		case seen[d.Index]:
			errs = append(errs, fmt.Errorf("declared accelerators give index %d twice", d.Index))
		case d.SyntheticWatts != 0:
			errs = append(errs, fmt.Errorf("declared accelerator %d has a synthetic power of %g W: only emulated devices have a made-up draw; remove it (real devices' power is read from the vendor's tools)", i, d.SyntheticWatts))
		}
		seen[d.Index] = true
		if a, ok := Lookup(d.Model); ok {
			d.Model = a.Model
			d.Vendor = cmp.Or(d.Vendor, a.Vendor)
			d.MemoryGiB = cmp.Or(d.MemoryGiB, a.MemoryGiB)
		}
		d.Vendor = strings.ToLower(cmp.Or(d.Vendor, "other"))
		d.Source = SourceConfig
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Device) int { return a.Index - b.Index })
	return out, nil
}

// Power reads the current draw of each device, in watts, in the order
// given. ok is false when any of them cannot be read: declared devices,
// emulated ones without a SyntheticWatts, a vendor tool missing or
// failing, a reading not available. Emulated devices with SyntheticWatts
// report that constant: a deterministic stand-in, never a measurement.
func Power(ctx context.Context, cfg Config, devs []Device) (watts []float64, ok bool) {
	if len(devs) == 0 {
		return nil, false
	}
	src := devs[0].Source
	for _, d := range devs {
		if d.Source != src {
			return nil, false
		}
	}
	switch src {
	case SourceNvidiaSMI:
		return nvidiaPower(ctx, &cfg, devs)
	case SourceSysfs:
		return amdPower(&cfg, devs)
	case SourceEmulated:
		return syntheticPower(devs)
	}
	return nil, false
}

// syntheticPower is the made-up draw of emulated devices, when every one
// of them has one.
func syntheticPower(devs []Device) ([]float64, bool) {
	watts := make([]float64, len(devs))
	for i, d := range devs {
		if !(d.SyntheticWatts > 0) || math.IsInf(d.SyntheticWatts, 0) {
			return nil, false
		}
		watts[i] = d.SyntheticWatts
	}
	return watts, true
}
