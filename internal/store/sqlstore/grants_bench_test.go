package sqlstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// benchRecords are n finished jobs over a year: 400 users in 80 projects
// of 8 consortia, 2 sites, 3 classes, 2 programmes; runs of up to a day
// (some cross a month's end).
func benchRecords(n int) ([]usage.Record, []model.Project) {
	var projects []model.Project
	for c := range 8 {
		projects = append(projects, model.Project{Name: fmt.Sprintf("cons%d", c), Shares: 1})
	}
	for p := range 80 {
		projects = append(projects, model.Project{Name: fmt.Sprintf("p%d", p), Parent: fmt.Sprintf("cons%d", p%8), Shares: 1})
	}
	const year = 1767225600 // 2026-01-01 UTC
	recs := make([]usage.Record, n)
	classes := []string{"H100", "MI250X", "B200"}
	for i := range recs {
		u := i % 400
		start := int64(year + (i*7919)%(365*86400))
		recs[i] = usage.Record{Job: fmt.Sprint(i), User: fmt.Sprintf("u%d", u), Project: fmt.Sprintf("p%d", u%80),
			Site: fmt.Sprintf("s%d", i%2), Model: classes[i%3], Programme: fmt.Sprintf("prog%d", u%2),
			Start: start, End: start + int64(60+(i*31)%86400), Accelerators: 1 << (i % 4), CPUs: 8 << (i % 4)}
	}
	return recs, projects
}

// BenchmarkUsageReport measures GET /usage's work over one million
// finished jobs: read the per-group sums the job ends maintain, and fold
// them into rows by project (rolled up the tree) and month, with energy
// and CO2e. The in-memory baseline sums the million records themselves
// (usage.Sum), which is what a report without the sums would cost at
// least, before reading a million rows.
//
//	scripts/with-postgres go test ./internal/store/sqlstore -run '^$' -bench UsageReport -benchtime 10x -count 5
func BenchmarkUsageReport(b *testing.B) {
	recs, projects := benchRecords(1_000_000)
	opts := usage.Options{By: []usage.Key{usage.ByProject, usage.ByMonth}, RollUp: true, Projects: projects,
		RatedWatts: map[string]float64{"H100": 700, "MI250X": 560, "B200": 1000}, GridIntensity: map[string]float64{"s0": 56, "s1": 250}}
	b.Run("in-memory-sum-baseline", func(b *testing.B) {
		for b.Loop() {
			if _, err := usage.Sum(recs, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	benchEngines(b, func(b *testing.B, st *Store) {
		ctx := context.Background()
		for i := 0; i < len(recs); i += 100_000 {
			if err := st.RecordUsage(ctx, recs[i:i+100_000]); err != nil {
				b.Fatal(err)
			}
		}
		var rows int
		for b.Loop() {
			parts, err := st.UsageParts(ctx, store.UsageFilter{})
			if err != nil {
				b.Fatal(err)
			}
			rep, err := usage.Fold(parts, opts)
			if err != nil {
				b.Fatal(err)
			}
			rows = len(rep.Rows)
		}
		b.ReportMetric(float64(rows), "rows")
	})
}
