package accel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// nvidiaNoDevices is nvidia-smi's exit status when the driver runs but
// sees no GPU.
const nvidiaNoDevices = 6

// nvidiaDevices lists NVIDIA GPUs with nvidia-smi; none when it is absent.
func nvidiaDevices(ctx context.Context, cfg *Config) ([]Device, error) {
	tool := cfg.lookTool("nvidia-smi")
	if tool == "" {
		return nil, nil
	}
	out, err := runTool(ctx, cfg, tool, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits")
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == nvidiaNoDevices {
			return nil, nil
		}
		return nil, fmt.Errorf("list NVIDIA GPUs: %w; fix the driver, or declare the node's accelerators in the agent's configuration", err)
	}
	devs, err := parseNvidiaSMI(out)
	if err != nil {
		return nil, fmt.Errorf("list NVIDIA GPUs: %s: %w", tool, err)
	}
	return devs, nil
}

// parseNvidiaSMI reads nvidia-smi's
// --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits:
// "0, NVIDIA H100 80GB HBM3, 81559, GPU-5f1c…", memory in MiB.
func parseNvidiaSMI(out []byte) ([]Device, error) {
	var devs []Device
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			return nil, fmt.Errorf("line %d %q: want 4 comma-separated fields (index, name, memory.total, uuid), got %d", n+1, line, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("line %d %q: index %q is not a number", n+1, line, f[0])
		}
		name := strings.Join(f[1:len(f)-2], ",") // a name with a comma keeps it
		d := Device{Index: idx, Vendor: "nvidia", Model: ModelFromName(name), UUID: f[len(f)-1], Source: SourceNvidiaSMI}
		if mib, err := strconv.ParseFloat(f[len(f)-2], 64); err == nil && mib > 0 {
			d.MemoryGiB = int(math.Round(mib / 1024)) // "[N/A]" leaves it 0
		}
		if d.UUID == "[N/A]" {
			d.UUID = ""
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// nvidiaPower reads power.draw for each device, matched by UUID where it
// has one, else by index.
func nvidiaPower(ctx context.Context, cfg *Config, devs []Device) ([]float64, bool) {
	tool := cfg.lookTool("nvidia-smi")
	if tool == "" {
		return nil, false
	}
	out, err := runTool(ctx, cfg, tool, "--query-gpu=index,uuid,power.draw", "--format=csv,noheader,nounits")
	if err != nil {
		return nil, false
	}
	byIndex, byUUID := map[int]float64{}, map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 3 {
			continue
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
		if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
			continue // "[N/A]": this GPU does not report its draw
		}
		if i, err := strconv.Atoi(strings.TrimSpace(f[0])); err == nil {
			byIndex[i] = w
		}
		byUUID[strings.TrimSpace(f[1])] = w
	}
	watts := make([]float64, len(devs))
	for i, d := range devs {
		w, ok := byUUID[d.UUID]
		if d.UUID == "" {
			w, ok = byIndex[d.Index]
		}
		if !ok {
			return nil, false
		}
		watts[i] = w
	}
	return watts, true
}

// runTool runs a vendor tool with the configured timeout and returns its
// standard output; errors carry what it said on standard error.
func runTool(ctx context.Context, cfg *Config, tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a wedged tool's children must not hold us
	err := cmd.Run()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("%s did not answer within %s", tool, cfg.timeout())
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		if msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", tool, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	return stdout.Bytes(), nil
}
