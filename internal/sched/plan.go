package sched

// Plan runs one scheduling pass.
func Plan(s *Snapshot, now int64) *Decisions {
	return &Decisions{}
}
