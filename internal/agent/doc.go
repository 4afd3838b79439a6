// Package agent is usine's node daemon. An Agent registers its node with
// the server (accelerators as discovered or emulated, CPUs, memory,
// topology labels), holds the long-lived orders stream (reconnecting with
// back-off: jobs keep running while the server is away), makes the node
// run exactly what the orders say — launching each (job, epoch, rank) at
// most once, remembered in its state directory across its own restarts,
// stopping what the server no longer wants with the job's signal then
// SIGKILL, delivering signal orders once — and reports ends, heartbeats
// and health. It serves the logs of its runs to the server over HTTP.
//
// Several agents may run in one process (emulated nodes): each has its
// own node name, state directory and topology labels, and nothing is
// shared between them but what the caller hands in (an HTTP client).
package agent
