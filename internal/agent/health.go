package agent

import (
	"context"
	"fmt"
	"syscall"
)

// checkHealth says why the node should be drained, or "" when it is fine:
// the state directory's disk nearly full, or accelerators lost.
func (a *Agent) checkHealth(ctx context.Context) string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.StateDir, &fs); err == nil && fs.Blocks > 0 {
		used := 1 - float64(fs.Bavail)/float64(fs.Blocks)
		if used >= a.cfg.DiskFull {
			return fmt.Sprintf("the disk of %s is %.1f%% full", a.cfg.StateDir, 100*used)
		}
	}
	if a.cfg.Accelerators != nil {
		n, err := a.cfg.Accelerators(ctx)
		switch {
		case err != nil:
			return fmt.Sprintf("cannot count the accelerators: %v", err)
		case n < a.cfg.Node.Accelerators:
			return fmt.Sprintf("only %d of %d accelerators are visible", n, a.cfg.Node.Accelerators)
		}
	}
	return ""
}
