package trace

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	gen := func(seed uint64) []byte {
		recs, err := Generate(GenOptions{Jobs: 20_000, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return csvBytes(t, recs)
	}
	a, b, c := gen(3), gen(3), gen(4)
	if !bytes.Equal(a, b) {
		t.Error("two runs with seed 3 differ")
	}
	if bytes.Equal(a, c) {
		t.Error("seeds 3 and 4 gave the same workload")
	}
}

// kindOf reads the job class from the ID prefix.
func kindOf(id string) string {
	k, _, _ := strings.Cut(id, "-")
	return k
}

func TestGenerateMix(t *testing.T) {
	t.Parallel()
	const n = 200_000
	recs, err := Generate(GenOptions{Jobs: n, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d jobs; want %d", len(recs), n)
	}
	if !slices.IsSortedFunc(recs, compareRecords) {
		t.Error("jobs not sorted by submit, then id")
	}
	jobs := map[string]float64{}
	work := map[string]float64{}
	states := map[string]float64{}
	projects := map[string]bool{}
	frontier := map[string]bool{}
	ladder := map[int64]bool{}
	for _, l := range Ladder() {
		ladder[l] = true
	}
	var total float64
	for i := range recs {
		r := &recs[i]
		k := kindOf(r.ID)
		jobs[k]++
		rt, st := r.Outcome()
		w := float64(r.Accelerators) * float64(rt)
		work[k] += w
		total += w
		states[r.State]++
		projects[r.Project] = true
		if field, msg := r.check(); field != "" {
			t.Fatalf("%s: field %s: %s", r.ID, field, msg)
		}
		if !ladder[r.Limit] {
			t.Fatalf("%s: limit %d is not on the ladder", r.ID, r.Limit)
		}
		if (r.State == StateTimeout) != (r.Runtime > r.Limit) || st != r.State {
			t.Fatalf("%s: state %s with run time %d and limit %d", r.ID, r.State, r.Runtime, r.Limit)
		}
		switch k {
		case "pretrain":
			frontier[r.Project] = true
			if r.Accelerators < 512 || r.Accelerators > 8192 || r.Nodes*8 != r.Accelerators {
				t.Fatalf("%s: pre-training gang of %d accelerators on %d nodes", r.ID, r.Accelerators, r.Nodes)
			}
		case "finetune":
			if r.Accelerators < 8 || r.Accelerators > 256 || r.Nodes*8 != r.Accelerators {
				t.Fatalf("%s: fine-tune of %d accelerators on %d nodes", r.ID, r.Accelerators, r.Nodes)
			}
		case "eval":
			if r.Accelerators < 1 || r.Accelerators > 8 || r.Nodes != 1 || r.Runtime > 2*hour && r.State != StateTimeout {
				t.Fatalf("%s: evaluation of %d accelerators, %d nodes, %d s", r.ID, r.Accelerators, r.Nodes, r.Runtime)
			}
		case "single":
			if r.Accelerators != 1 || r.Nodes != 0 {
				t.Fatalf("%s: single-accelerator job with %d accelerators, %d nodes", r.ID, r.Accelerators, r.Nodes)
			}
		default:
			t.Fatalf("%s: unknown job class %q", r.ID, k)
		}
	}
	within := func(what string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.4f; want within [%g, %g]", what, got, lo, hi)
		}
	}
	within("share of pre-training jobs", jobs["pretrain"]/n, 0.003, 0.007)
	within("share of fine-tune jobs", jobs["finetune"]/n, 0.14, 0.16)
	within("share of evaluation jobs", jobs["eval"]/n, 0.29, 0.31)
	within("share of single-accelerator jobs", jobs["single"]/n, 0.53, 0.56)
	within("accelerator-seconds in pre-training", work["pretrain"]/total, 0.8, 0.97)
	within("accelerator-seconds in jobs of at most 8 accelerators", (work["eval"]+work["single"])/total, 0, 0.02)
	within("failed", states[StateFailed]/n, 0.045, 0.055)
	within("cancelled", states[StateCancelled]/n, 0.025, 0.035)
	within("timeout", states[StateTimeout]/n, 0.015, 0.025)
	within("projects", float64(len(projects)), 20, 200)
	within("projects that pre-train", float64(len(frontier)), 2, 0.1*float64(len(projects)))
	span := float64(recs[n-1].Submit - recs[0].Submit)
	within("offered load", total/(span*100_000), 0.89, 0.91)
}

func TestGenerateFitsSmallClusters(t *testing.T) {
	t.Parallel()
	recs, err := Generate(GenOptions{Jobs: 5000, Seed: 9, Accelerators: 32, Load: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Accelerators > 32 {
			t.Fatalf("%s asks for %d accelerators on a cluster of 32", r.ID, r.Accelerators)
		}
	}
	var work float64
	for _, r := range recs {
		rt, _ := r.Outcome()
		work += float64(r.Accelerators) * float64(rt)
	}
	if load := work / (float64(recs[len(recs)-1].Submit) * 32); load < 0.45 || load > 0.55 {
		t.Errorf("offered load %.3f; want about 0.5", load)
	}
}

func TestGenerateRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for _, opt := range []GenOptions{{Jobs: 0}, {Jobs: 10, Load: -1}, {Jobs: 10, Accelerators: -8}, {Jobs: 10, Projects: -1}} {
		if _, err := Generate(opt); err == nil {
			t.Errorf("Generate(%+v) gave no error", opt)
		}
	}
}

// BenchmarkGenerate measures the generator: go test -bench Generate ./internal/trace
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(GenOptions{Jobs: 1_000_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
