// Package agent is usine's node daemon. An Agent registers its node with
// the server (accelerators as discovered or emulated, CPUs, memory,
// topology labels), holds the long-lived orders stream (reconnecting with
// back-off: jobs keep running while the server is away), makes the node
// run exactly what the orders say — launching each (job, epoch, rank) at
// most once, remembered in its state directory across its own restarts,
// stopping what the server no longer wants with the job's signal then
// SIGKILL, delivering signal orders once — and reports ends, heartbeats
// and health (a full disk or a lost accelerator drains the node, with the
// reason). It serves the logs of its runs to the server over HTTP. Where
// it can read the accelerators' power it meters each run's energy and
// reports it with the run's end, for the job's usage (power.go); its
// registration says how it reads power and whether jobs get cgroup limits.
//
// The node's accelerators come from internal/accel (discovered, declared
// or emulated); the processes are internal/launch's, each under a
// supervisor that outlives the agent, enforces the time limit and records
// the exit status, with cgroup v2 limits where the host delegates them
// (the agent says once, at start, whether it does). The agent adds what
// only it knows: which devices a run gets, the rendezvous of the gang,
// the output files' %-patterns expanded, and Slurm's variables.
//
// Several agents may run in one process (emulated nodes): each has its
// own node name, state directory and topology labels, and nothing is
// shared between them but what the caller hands in (an HTTP client).
package agent
