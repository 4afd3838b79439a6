package sched

import (
	"fmt"
	"strings"
)

// FIFO is strict first-come first-served: the queue stops at the first job
// that cannot start. A baseline for comparison.
func FIFO() Config {
	return Config{Name: "fifo", Order: OrderFIFO, Backfill: BackfillNone, Estimates: true}
}

// EASY is first-come first-served with EASY backfill: what a default Slurm
// does. A baseline for comparison.
func EASY() Config {
	return Config{Name: "easy", Order: OrderFIFO, Backfill: BackfillEASY, Reservations: 1, Estimates: true}
}

// Default is usine's own policy: multifactor priority (age, hierarchical fair
// share, QoS, favouring small jobs so that short work does not queue behind
// giants) with conservative backfill for the first few blocked jobs, so big
// gangs are not starved, and preemption across QoS classes.
func Default() Config {
	return Config{
		Name:         "usine",
		Order:        OrderMultifactor,
		Backfill:     BackfillConservative,
		Reservations: 4,
		Weights:      Weights{Age: 1000, FairShare: 2000, QoS: 10000, Size: 1000},
		MaxAge:       7 * 24 * 3600,
		FavorSmall:   true,
		Preemption:   true,
		Estimates:    true,
	}
}

// Policies lists the built-in policies by name.
func Policies() []Config { return []Config{FIFO(), EASY(), Default()} }

// PolicyByName returns a built-in policy.
func PolicyByName(name string) (Config, error) {
	var names []string
	for _, c := range Policies() {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return Config{}, fmt.Errorf("unknown policy %q; choose one of %s", name, strings.Join(names, ", "))
}
