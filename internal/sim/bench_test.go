package sim

import (
	"context"
	"flag"
	"testing"

	clusters "github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/trace"
)

// gigaJobs sizes BenchmarkReplayGigafactory's workload; docs/SIM.md records
// runs of 100,000 and 1,000,000 jobs.
var gigaJobs = flag.Int("giga-jobs", 20_000, "jobs replayed by BenchmarkReplayGigafactory")

// BenchmarkReplayGigafactory replays generated gigafactory workloads (the
// mix of usine trace gen, at 90 % offered load) on the built-in gigafactory
// cluster: 12,500 nodes × 8 = 100,000 accelerators. One policy per
// sub-benchmark; docs/SIM.md records the figures and the command.
func BenchmarkReplayGigafactory(b *testing.B) {
	c, err := clusters.Example("gigafactory")
	if err != nil {
		b.Fatal(err)
	}
	recs, err := trace.Generate(trace.GenOptions{Jobs: *gigaJobs, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Cluster: c, Records: recs}
	for _, cfg := range sched.Policies() {
		b.Run(cfg.Name, func(b *testing.B) {
			b.ReportAllocs()
			var res *Result
			for b.Loop() {
				if res, err = Run(context.Background(), in, cfg, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Passes), "passes")
			b.ReportMetric(float64(res.Jobs)*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/float64(res.Passes)*1e6, "µs/pass")
		})
	}
}
