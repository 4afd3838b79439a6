// Package sched is usine's scheduler: a pure function from a snapshot of the
// cluster and its queue to decisions — which jobs start where, which are
// preempted, which hold reservations, and why every other job waits and when
// it is expected to start.
//
// Plan does no I/O, reads no clock, starts no goroutines and draws no random
// numbers; ties break on stable keys, so the same snapshot and time always
// give the same decisions. The server's loop, the simulator, the "when will
// my job start" query and the benchmarks all call the same Plan.
package sched
