package launch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCgroupLimitsWhereTheHostAllows runs only where this process may
// create cgroups (a cgroup v2 host with a delegated cgroup, as root or
// under systemd's Delegate=yes); elsewhere the fake-root tests cover the
// detection and the files written.
func TestCgroupLimitsWhereTheHostAllows(t *testing.T) {
	t.Parallel()
	l := newLauncher(t, "")
	if caps := l.Capabilities(); !caps.Cgroup {
		t.Skip(caps.String())
	}
	s := scriptSpec(t, "cg", "cat /proc/self/cgroup; touch ready; while [ ! -e stop ]; do sleep 0.02; done")
	s.CPUs, s.MemoryMiB = 2, 64
	p := start(t, l, s)
	cg := p.Cgroup()
	if cg == "" || !strings.HasPrefix(filepath.Base(cg), "usine-job-cg.1.0") {
		t.Fatalf("job cgroup %q, want usine-job-cg.1.0", cg)
	}
	waitFor(t, "the job to start", func() bool { return exists(filepath.Join(s.Task.WorkDir, "ready")) })
	for file, want := range map[string]string{"cpu.max": "200000 100000", "memory.max": "67108864"} {
		if b, err := os.ReadFile(filepath.Join(cg, file)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	touch(t, filepath.Join(s.Task.WorkDir, "stop"))
	if r := wait(t, p); r.ExitCode != 0 {
		t.Errorf("result %+v", r)
	}
	if got := output(t, p); !strings.Contains(got, "/usine-job-cg.1.0\n") {
		t.Errorf("the job saw itself in cgroup %q, want its own", got)
	}
	if exists(cg) {
		t.Errorf("cgroup %s was not removed at the job's end", cg)
	}
}
