package accel_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/accel"
)

// The tests that run fake vendor tools are not parallel: writing an
// executable while another test forks can make its exec fail with "text
// file busy" (golang.org/issue/22315).

// fakeTool writes an executable shell script named name in dir.
func fakeTool(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeFiles creates files under root, path → content.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// emptyHost is a config that probes nothing real: no tools, no sysfs.
func emptyHost(t *testing.T) accel.Config {
	return accel.Config{Root: t.TempDir(), Path: t.TempDir()}
}

const h100s = `0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa
1, NVIDIA H100 80GB HBM3, 81559, GPU-bbbb`

func TestDiscoverNvidiaThroughNvidiaSMI(t *testing.T) {
	cfg := emptyHost(t)
	// The fake answers only the query Discover must make.
	fakeTool(t, cfg.Path, "nvidia-smi", `[ "$*" = "--query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits" ] || { echo "unexpected: $*" >&2; exit 2; }
cat <<'END'
`+h100s+`
END`)
	got, src, err := accel.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []accel.Device{
		{Index: 0, Vendor: "nvidia", Model: "H100", MemoryGiB: 80, UUID: "GPU-aaaa", Source: accel.SourceNvidiaSMI},
		{Index: 1, Vendor: "nvidia", Model: "H100", MemoryGiB: 80, UUID: "GPU-bbbb", Source: accel.SourceNvidiaSMI},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	if src != accel.SourceNvidiaSMI {
		t.Errorf("source %q, want nvidia-smi", src)
	}
}

func TestDiscoverNvidiaFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		emulate      int
		wantSource   accel.Source
		wantMsg      string // "" = no error
	}{
		{"a driver that sees no GPU falls through to emulation",
			`echo "No devices were found"; exit 6`, 2, accel.SourceEmulated, ""},
		{"a broken driver is an error that says what nvidia-smi said and how to get past it",
			`echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9`, 2, "",
			"couldn't communicate with the NVIDIA driver.; fix the driver, or declare the node's accelerators"},
		{"output that is not the CSV asked for is an error",
			`echo "0; H100"`, 0, "", "want 4 comma-separated fields"},
		{"a wedged nvidia-smi is cut short", `exec sleep 30`, 0, "", "did not answer within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := emptyHost(t)
			cfg.Emulate, cfg.EmulateModel, cfg.Timeout = tc.emulate, "H100", 200*time.Millisecond
			fakeTool(t, cfg.Path, "nvidia-smi", tc.script)
			devs, src, err := accel.Discover(context.Background(), cfg)
			if tc.wantMsg == "" {
				if err != nil || src != tc.wantSource || len(devs) != tc.emulate {
					t.Errorf("Discover = %d devices from %q, %v; want %d from %q", len(devs), src, err, tc.emulate, tc.wantSource)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Discover error %v, want one saying %q", err, tc.wantMsg)
			}
		})
	}
}

// amdRoot is a fake sysfs with two AMD MI300X (cards 0 and 1, listed out
// of order with a connector between), an NVIDIA card that the amdgpu
// probe must ignore, and an AMD display card without video memory.
func amdRoot(t *testing.T) string {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"sys/class/drm/card1/device/vendor":                      "0x1002",
		"sys/class/drm/card1/device/device":                      "0x74a1",
		"sys/class/drm/card1/device/mem_info_vram_total":         "206141652992",
		"sys/class/drm/card1/device/unique_id":                   "bbbb",
		"sys/class/drm/card1/device/hwmon/hwmon3/power1_input":   "300500000",
		"sys/class/drm/card1-DP-1/device/vendor":                 "0x1002",
		"sys/class/drm/card0/device/vendor":                      "0x1002",
		"sys/class/drm/card0/device/device":                      "0x74a1",
		"sys/class/drm/card0/device/mem_info_vram_total":         "206141652992",
		"sys/class/drm/card0/device/unique_id":                   "aaaa",
		"sys/class/drm/card0/device/hwmon/hwmon2/power1_average": "250000000",
		"sys/class/drm/card2/device/vendor":                      "0x10de",
		"sys/class/drm/card2/device/mem_info_vram_total":         "1",
		"sys/class/drm/card3/device/vendor":                      "0x1002",
		"sys/class/drm/renderD128/device/vendor":                 "0x1002",
		"sys/class/drm/renderD128/device/mem_info_vram_total":    "206141652992",
	})
	return root
}

func TestDiscoverAMDThroughSysfs(t *testing.T) {
	for _, tc := range []struct {
		name, rocmSMI string // "" = not installed
		wantModel     string
	}{
		{"without rocm-smi the PCI device ID names the model", "", "MI300X"},
		{"rocm-smi names the model", `echo "GPU[0]		: Card series: 		AMD Instinct MI325X OAM"
echo "GPU[0]		: Card model: 		0x74a5"
echo "GPU[1]		: Card series: 		AMD Instinct MI325X OAM"`, "MI325X"},
		{"rocm-smi naming fewer GPUs than sysfs is not trusted", `echo "GPU[0]		: Card series: 		AMD Instinct MI325X OAM"`, "MI300X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := accel.Config{Root: amdRoot(t), Path: t.TempDir()}
			if tc.rocmSMI != "" {
				fakeTool(t, cfg.Path, "rocm-smi", `[ "$1" = --showproductname ] || exit 2`+"\n"+tc.rocmSMI)
			}
			got, src, err := accel.Discover(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := []accel.Device{
				{Index: 0, Vendor: "amd", Model: tc.wantModel, MemoryGiB: 192, UUID: "aaaa", Source: accel.SourceSysfs},
				{Index: 1, Vendor: "amd", Model: tc.wantModel, MemoryGiB: 192, UUID: "bbbb", Source: accel.SourceSysfs},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("devices (-want +got):\n%s", diff)
			}
			if src != accel.SourceSysfs {
				t.Errorf("source %q, want sysfs", src)
			}
		})
	}
}

func TestDiscoverOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        func(t *testing.T) accel.Config
		wantSource accel.Source
		wantModels []string
	}{
		{"declared devices win over real ones", func(t *testing.T) accel.Config {
			cfg := accel.Config{Root: amdRoot(t), Path: t.TempDir(), Declare: "2 x h200"}
			fakeTool(t, cfg.Path, "nvidia-smi", "echo '0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa'")
			return cfg
		}, accel.SourceConfig, []string{"H200", "H200"}},
		{"NVIDIA before AMD", func(t *testing.T) accel.Config {
			cfg := accel.Config{Root: amdRoot(t), Path: t.TempDir()}
			fakeTool(t, cfg.Path, "nvidia-smi", "echo '0, NVIDIA B200, 183359, GPU-c'")
			return cfg
		}, accel.SourceNvidiaSMI, []string{"B200"}},
		{"real devices win over emulation", func(t *testing.T) accel.Config {
			return accel.Config{Root: amdRoot(t), Path: t.TempDir(), Emulate: 8, EmulateModel: "H100"}
		}, accel.SourceSysfs, []string{"MI300X", "MI300X"}},
		{"emulation on a host without accelerators", func(t *testing.T) accel.Config {
			cfg := emptyHost(t)
			cfg.Emulate, cfg.EmulateModel = 3, "gh200"
			return cfg
		}, accel.SourceEmulated, []string{"GH200", "GH200", "GH200"}},
		{"nothing at all", emptyHost, accel.SourceNone, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs, src, err := accel.Discover(context.Background(), tc.cfg(t))
			if err != nil {
				t.Fatal(err)
			}
			var models []string
			for _, d := range devs {
				models = append(models, d.Model)
			}
			if diff := cmp.Diff(tc.wantModels, models); diff != "" || src != tc.wantSource {
				t.Errorf("source %q, want %q; models (-want +got):\n%s", src, tc.wantSource, diff)
			}
		})
	}
}

func TestDiscoverDeclared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	got, _, err := accel.Discover(ctx, accel.Config{Devices: []accel.Device{
		{Index: 1, Model: "metis", Vendor: "Axelera"},
		{Index: 0, Model: "mi250x"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []accel.Device{
		{Index: 0, Vendor: "amd", Model: "MI250X", MemoryGiB: 64, Source: accel.SourceConfig},
		{Index: 1, Vendor: "axelera", Model: "metis", Source: accel.SourceConfig},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("declared devices (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name    string
		cfg     accel.Config
		wantMsg string
	}{
		{"both a list and a spec", accel.Config{Devices: want, Declare: "8xH100"}, "declared twice"},
		{"a spec for several nodes", accel.Config{Declare: "2x8xH100"}, "such as 8xH100"},
		{"a bad spec", accel.Config{Declare: "eight H100"}, "declared accelerators"},
		{"an index given twice", accel.Config{Devices: []accel.Device{{Model: "H100"}, {Model: "H100"}}}, "index 0 twice"},
		{"a device without a model", accel.Config{Devices: []accel.Device{{Index: 0}}}, "has no model"},
		{"a declared device with a made-up draw", accel.Config{Devices: []accel.Device{{Model: "H100", SyntheticWatts: 300}}}, "only emulated devices"},
	} {
		if _, _, err := accel.Discover(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.wantMsg)
		}
	}
}

func TestPower(t *testing.T) {
	ctx := context.Background()
	t.Run("nvidia-smi power.draw, matched by UUID", func(t *testing.T) {
		cfg := emptyHost(t)
		fakeTool(t, cfg.Path, "nvidia-smi", `case "$1" in
--query-gpu=index,name*) echo "`+strings.ReplaceAll(h100s, "\n", `"; echo "`)+`";;
--query-gpu=index,uuid,power.draw) echo "0, GPU-aaaa, 412.50"; echo "1, GPU-bbbb, 98.25";;
*) exit 2;;
esac`)
		devs, _, err := accel.Discover(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Asked in another order than nvidia-smi's.
		watts, ok := accel.Power(ctx, cfg, []accel.Device{devs[1], devs[0]})
		if diff := cmp.Diff([]float64{98.25, 412.5}, watts); diff != "" || !ok {
			t.Errorf("Power ok=%v, watts (-want +got):\n%s", ok, diff)
		}
	})
	t.Run("a GPU that does not report its draw", func(t *testing.T) {
		cfg := emptyHost(t)
		fakeTool(t, cfg.Path, "nvidia-smi", `echo "0, GPU-aaaa, [N/A]"`)
		dev := accel.Device{Index: 0, Vendor: "nvidia", UUID: "GPU-aaaa", Source: accel.SourceNvidiaSMI}
		if watts, ok := accel.Power(ctx, cfg, []accel.Device{dev}); ok {
			t.Errorf("Power = %v, ok; want not ok", watts)
		}
	})
	t.Run("AMD hwmon, power1_average or power1_input", func(t *testing.T) {
		cfg := accel.Config{Root: amdRoot(t), Path: t.TempDir()}
		devs, _, err := accel.Discover(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		watts, ok := accel.Power(ctx, cfg, devs)
		if diff := cmp.Diff([]float64{250, 300.5}, watts); diff != "" || !ok {
			t.Errorf("Power ok=%v, watts (-want +got):\n%s", ok, diff)
		}
	})
	t.Run("emulated devices draw nothing anyone can read", func(t *testing.T) {
		cfg := emptyHost(t)
		fakeTool(t, cfg.Path, "nvidia-smi", `echo "0, emulated-H100-0, 500"`)
		devs, err := accel.Emulate(1, "H100")
		if err != nil {
			t.Fatal(err)
		}
		if watts, ok := accel.Power(ctx, cfg, devs); ok {
			t.Errorf("Power of an emulated device = %v, ok; want not ok", watts)
		}
	})
	t.Run("emulated devices report their synthetic draw, all of them or none", func(t *testing.T) {
		cfg := emptyHost(t)
		fakeTool(t, cfg.Path, "nvidia-smi", `echo "0, emulated-H100-0, 500"; echo "1, emulated-H100-1, 500"`)
		devs, err := accel.Emulate(2, "H100")
		if err != nil {
			t.Fatal(err)
		}
		devs[0].SyntheticWatts, devs[1].SyntheticWatts = 300, 450.5
		watts, ok := accel.Power(ctx, cfg, devs)
		if diff := cmp.Diff([]float64{300, 450.5}, watts); diff != "" || !ok {
			t.Errorf("Power ok=%v, watts (-want +got):\n%s", ok, diff)
		}
		devs[1].SyntheticWatts = 0
		if watts, ok := accel.Power(ctx, cfg, devs); ok {
			t.Errorf("Power with one emulated device lacking a synthetic draw = %v, ok; want not ok", watts)
		}
	})
}
