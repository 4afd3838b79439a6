// Package sim replays a job trace on a cluster, on a virtual clock, driving
// the real scheduler (sched.Plan) the way a live factory would: jobs arrive
// at their submit times, run for their recorded run times cut at their time
// limits, and free their accelerators; nodes may fail and come back; and
// scheduling passes run after batches of such events and periodically while
// jobs wait, as Slurm's main and backfill schedulers do.
//
// The package is deterministic and reads no clock: the same input, policy
// and options always give the same Result. Callers that want wall-clock
// speed time Run themselves (usine sim does).
//
// Run replays one policy; RunAll replays several on the same input, one
// goroutine each. WriteTable, WriteJSON and WriteReport render results.
// docs/SIM.md describes the events, the passes and every metric.
package sim
