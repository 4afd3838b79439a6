package accel

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// amdVendorID is AMD's PCI vendor ID, as sysfs writes it.
const amdVendorID = "0x1002"

// amdDeviceModel names an AMD Instinct PCI device ID, for hosts without
// rocm-smi (IDs from the amdgpu driver's table); "" when unknown. 0x740c
// is both the MI250X and the MI250; usine counts it as the MI250X, one
// device per GCD as ROCm does.
func amdDeviceModel(id string) string {
	switch id {
	case "0x740c":
		return "MI250X"
	case "0x740f":
		return "MI210"
	case "0x74a0":
		return "MI300A"
	case "0x74a1":
		return "MI300X"
	}
	return ""
}

// amdCard is one AMD GPU in sysfs.
type amdCard struct {
	num int    // N of /sys/class/drm/cardN
	dir string // …/cardN/device
}

// amdCards lists AMD GPUs under root's /sys/class/drm, by card number:
// cardN entries (not their connectors, cardN-DP-1) whose PCI vendor is
// AMD and whose driver reports video memory (amdgpu does).
func amdCards(root string) ([]amdCard, error) {
	drm := filepath.Join(root, "sys", "class", "drm")
	entries, err := os.ReadDir(drm)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list GPUs in %s: %w", drm, err)
	}
	var cards []amdCard
	for _, e := range entries {
		num, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "card"))
		if !strings.HasPrefix(e.Name(), "card") || err != nil {
			continue
		}
		dir := filepath.Join(drm, e.Name(), "device")
		if readTrim(filepath.Join(dir, "vendor")) != amdVendorID {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "mem_info_vram_total")); err != nil {
			continue
		}
		cards = append(cards, amdCard{num: num, dir: dir})
	}
	slices.SortFunc(cards, func(a, b amdCard) int { return a.num - b.num })
	return cards, nil
}

// amdDevices lists AMD GPUs from sysfs, indexed from 0 in card order (the
// order ROCm numbers them in on the hosts we know), named by rocm-smi
// when it is installed, else by PCI device ID.
func amdDevices(ctx context.Context, cfg *Config) ([]Device, error) {
	cards, err := amdCards(cfg.root())
	if err != nil || len(cards) == 0 {
		return nil, err
	}
	names := map[int]string{}
	if tool := cfg.lookTool("rocm-smi"); tool != "" {
		out, err := runTool(ctx, cfg, tool, "--showproductname")
		if err != nil {
			return nil, fmt.Errorf("name AMD GPUs: %w; fix ROCm, or declare the node's accelerators in the agent's configuration", err)
		}
		names = parseRocmSMI(out)
	}
	devs := make([]Device, len(cards))
	for i, c := range cards {
		d := Device{Index: i, Vendor: "amd", UUID: readTrim(filepath.Join(c.dir, "unique_id")), Source: SourceSysfs}
		raw := readTrim(filepath.Join(c.dir, "mem_info_vram_total"))
		b, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("read %s: %q is not a byte count", filepath.Join(c.dir, "mem_info_vram_total"), raw)
		}
		d.MemoryGiB = int(math.Round(b / (1 << 30)))
		devID := strings.ToLower(readTrim(filepath.Join(c.dir, "device")))
		switch {
		case len(names) == len(cards) && names[i] != "":
			d.Model = ModelFromName(names[i])
		case amdDeviceModel(devID) != "":
			d.Model = amdDeviceModel(devID)
		default:
			d.Model = "AMD-" + strings.TrimPrefix(devID, "0x")
		}
		devs[i] = d
	}
	return devs, nil
}

var rocmSeries = regexp.MustCompile(`(?im)^GPU\[(\d+)\]\s*:\s*Card series:\s*(.*?)\s*$`)

// parseRocmSMI reads rocm-smi --showproductname's "GPU[0] : Card series:
// AMD Instinct MI300X OAM" lines, by GPU index.
func parseRocmSMI(out []byte) map[int]string {
	names := map[int]string{}
	for _, m := range rocmSeries.FindAllSubmatch(out, -1) {
		i, err := strconv.Atoi(string(m[1]))
		if err == nil && len(m[2]) > 0 {
			names[i] = string(m[2])
		}
	}
	return names
}

// amdPower reads each device's hwmon power1_average (microwatts), or
// power1_input on the GPUs that report only that. Devices are matched to
// cards by UUID where they have one, else by index.
func amdPower(cfg *Config, devs []Device) ([]float64, bool) {
	cards, err := amdCards(cfg.root())
	if err != nil {
		return nil, false
	}
	watts := make([]float64, len(devs))
	for i, d := range devs {
		dir := ""
		for j, c := range cards {
			if (d.UUID != "" && readTrim(filepath.Join(c.dir, "unique_id")) == d.UUID) || (d.UUID == "" && j == d.Index) {
				dir = c.dir
			}
		}
		if dir == "" {
			return nil, false
		}
		w, ok := hwmonWatts(dir)
		if !ok {
			return nil, false
		}
		watts[i] = w
	}
	return watts, true
}

func hwmonWatts(dev string) (float64, bool) {
	mons, _ := filepath.Glob(filepath.Join(dev, "hwmon", "hwmon*"))
	slices.Sort(mons)
	for _, m := range mons {
		for _, f := range []string{"power1_average", "power1_input"} {
			if uw, err := strconv.ParseFloat(readTrim(filepath.Join(m, f)), 64); err == nil && uw >= 0 {
				return uw / 1e6, true
			}
		}
	}
	return 0, false
}

// readTrim reads a small sysfs file; "" when it cannot.
func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
