package trace

import (
	"bytes"
	"testing"
)

// BenchmarkReadCSV reads 200,000 generated jobs: go test -run X -bench ReadCSV ./internal/trace
func BenchmarkReadCSV(b *testing.B) {
	recs, err := Generate(GenOptions{Jobs: 200_000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, recs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadCSV(bytes.NewReader(buf.Bytes()), "gen.csv", ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
