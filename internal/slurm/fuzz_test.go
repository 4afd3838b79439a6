package slurm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseBatch checks that ParseBatch never panics, that its errors are
// *Error values worded as sbatch's, and that a request it accepts always
// maps onto a job.
func FuzzParseBatch(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "scripts", "*.sbatch"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b), filepath.Base(p))
		}
	}
	for _, seed := range [][2]string{
		{"#!/bin/sh\n#SBATCH -N 2-4 --gres=gpu:h100:4 -t 1-00:00\n", ""},
		{"#!/bin/sh\n#SBATCH -J \"a \\\"b\\\"\" -o 'x %j' # c\n", "-Hvv\n--wrap"},
		{"#!/bin/sh\n#SBATCH --array=1-9:2%3 -d afterok:1:2,singleton\n", "--export=ALL,A=1"},
		{"#!/bin/sh\n#SBATCH --mem-per-gpu=10G -G 3 -N 3\n", "--signal=B:USR1@90\n--switches=1@5"},
		{"#!/bin/sh\n#SBATCH -C [a100|h100]&ib --begin=now+1hour\n", "-n\n9\n--ntasks-per-node=4\n-N\n2"},
		{"", "--wrap=hostname"},
		{"#!/bin/sh\r\n", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, script, argLines string) {
		var args []string
		if argLines != "" {
			args = strings.Split(argLines, "\n")
		}
		r, warnings, err := ParseBatch([]byte(script), args)
		for _, w := range warnings {
			if !strings.HasPrefix(w, "sbatch: warning: ") || strings.Contains(w, "\n") {
				t.Fatalf("warning %q is not one sbatch warning line", w)
			}
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" || !strings.HasPrefix(err.Error(), "sbatch: ") {
				t.Fatalf("error %v is not an sbatch *Error", err)
			}
			return
		}
		r.Now = submitAt
		job, task, err := r.Job()
		if err != nil {
			t.Fatalf("ParseBatch accepted %q %q but Job failed: %v", script, args, err)
		}
		if job.Nodes < 0 || job.AcceleratorsPerNode < 0 || job.Accelerators < 0 || job.CPUs < 0 || job.MemoryMiB < 0 || job.Limit < 0 {
			t.Fatalf("negative resources in %+v", job)
		}
		if job.Nodes == 0 && job.AcceleratorsPerNode != 0 {
			t.Fatalf("accelerators per node without nodes: %+v", job)
		}
		if task.Stdout == "" {
			t.Fatal("no stdout file")
		}
	})
}
