package usage

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/usine-project/usine/internal/model"
)

// TestFoldOfPiecesIsSum: the store keeps sums of Pieces and reports with
// Fold; that must give Sum's rows over the records themselves, whatever
// the grouping.
func TestFoldOfPiecesIsSum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	projects := []model.Project{{Name: "cons", Shares: 1}, {Name: "a", Parent: "cons", Shares: 1}, {Name: "b", Parent: "cons", Shares: 1}, {Name: "solo", Shares: 1}}
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	var recs []Record
	for i := range 2000 {
		start := int64(1767225600 + rng.IntN(200*86400))
		r := Record{Job: "j", User: pick("u1", "u2", "u3"), Project: pick("cons", "a", "b", "solo"), Site: pick("s1", "s2", "s3"),
			Model: pick("H100", "MI250X", "X"), Programme: pick("", "euro"), Start: start, End: start + int64(rng.IntN(40*86400)),
			Accelerators: rng.IntN(9), CPUs: rng.IntN(64)}
		if i%3 == 0 {
			r.Measured, r.EnergyKWh = true, rng.Float64()*100
		}
		recs = append(recs, r)
	}
	var parts []Part
	for _, r := range recs {
		ps, err := Pieces(r)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, ps...)
	}
	for _, by := range [][]Key{{ByProject}, {ByMonth}, {ByConsortium, BySite}, {ByUser, ByModel, ByProgramme, ByMonth}} {
		for _, rollup := range []bool{false, true} {
			if rollup && by[0] != ByProject {
				continue
			}
			opts := Options{By: by, RollUp: rollup, Projects: projects, RatedWatts: map[string]float64{"H100": 700, "MI250X": 560},
				GridIntensity: map[string]float64{"s1": 50, "s2": 300}}
			want, err := Sum(recs, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Fold(parts, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Rows) != len(got.Rows) || want.EnergyNote != got.EnergyNote {
				t.Fatalf("by %v: %d rows from Sum, %d from Fold", by, len(want.Rows), len(got.Rows))
			}
			for i := range want.Rows {
				w, g := want.Rows[i], got.Rows[i]
				near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(a)) }
				if w.Jobs != g.Jobs || w.AcceleratorSeconds != g.AcceleratorSeconds || w.CPUSeconds != g.CPUSeconds ||
					w.WallSeconds != g.WallSeconds || w.NoEnergyAcceleratorSeconds != g.NoEnergyAcceleratorSeconds ||
					!near(w.EnergyKWh, g.EnergyKWh) || !near(w.MeasuredKWh, g.MeasuredKWh) || !near(w.CO2eKg, g.CO2eKg) || !near(w.NoIntensityKWh, g.NoIntensityKWh) {
					t.Fatalf("by %v rollup %v, row %v: Sum %+v, Fold %+v", by, rollup, w.Group, w, g)
				}
			}
		}
	}
}

func TestPiecesRefusesWhatSumRefuses(t *testing.T) {
	t.Parallel()
	if _, err := Pieces(Record{Job: "j", Start: 10, End: 5}); err == nil {
		t.Error("a record that ends before it starts made pieces")
	}
	if _, err := Fold([]Part{{AcceleratorSeconds: -1}}, Options{By: []Key{ByProject}}); err == nil {
		t.Error("a negative part was folded")
	}
}
