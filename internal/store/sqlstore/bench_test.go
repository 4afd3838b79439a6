package sqlstore

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// BenchmarkSubmit measures durable submits straight into the store from
// 64 concurrent callers, one job each. Each b.N is one job.
//
//	go test ./internal/store/sqlstore -run '^$' -bench Submit -benchtime 20000x -count 5
func BenchmarkSubmit(b *testing.B) {
	urls := map[string]string{"sqlite": "sqlite:" + b.TempDir() + "/usine.db"}
	if u := os.Getenv("USINE_TEST_POSTGRES"); u != "" {
		urls["postgres"] = freshPostgres(b, u)
	}
	for name, url := range urls {
		b.Run(name, func(b *testing.B) {
			st, err := Open(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			job := store.Job{Job: model.Job{ID: "new", Project: "p", User: "u", Accelerators: 1, Limit: 60}, Task: model.Task{Script: "true"}}
			b.SetParallelism(32)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.SubmitJobs(context.Background(), []store.Job{job}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}
