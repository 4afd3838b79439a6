package agent

import (
	"context"
	"fmt"
	"syscall"
)

// checkHealth says why the node should be drained, or "" when it is fine:
// the state directory's file system nearly full (launches would fail to
// record their runs), or accelerators lost (fallen off the bus, driver
// gone: jobs given them would fail). The server drains the node with
// this reason, and resumes it once the agent reports "" again.
func (a *Agent) checkHealth(ctx context.Context) string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.StateDir, &fs); err == nil {
		if why := diskFull(a.cfg.StateDir, fs.Blocks, fs.Bavail, a.cfg.DiskFull); why != "" {
			return why
		}
	}
	if a.cfg.Accelerators != nil {
		n, err := a.cfg.Accelerators(ctx)
		switch {
		case err != nil:
			return fmt.Sprintf("cannot count the accelerators: %v", err)
		case n < a.cfg.Node.Accelerators:
			return fmt.Sprintf("accelerator lost: only %d of %d are visible", n, a.cfg.Node.Accelerators)
		}
	}
	return ""
}

// diskFull says why a file system of blocks blocks, avail of them
// available to us, is too full at threshold (a fraction in use), or "".
func diskFull(path string, blocks, avail uint64, threshold float64) string {
	if blocks == 0 {
		return ""
	}
	used := 1 - float64(avail)/float64(blocks)
	if used < threshold {
		return ""
	}
	return fmt.Sprintf("disk full: the file system of %s is %.1f%% used", path, 100*used)
}
