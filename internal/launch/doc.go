// Package launch starts, watches, signals and reaps the processes of jobs
// on this node, for the agent.
//
// A Launcher starts one Spec at a time: the job's script (run by the
// interpreter on its #! line, else /bin/sh) or argv, in its own process
// group and working directory, with a clean environment plus usine's
// variables, the vendor's accelerator visibility variables and the
// PyTorch and JAX rendezvous variables, its output appended to files, and
// within cgroup v2 CPU and memory limits where the host delegates
// cgroups to us (Capabilities says whether it does, and why not).
//
// # Jobs outlive the agent
//
// Each job runs under a small supervisor: the agent's own binary run
// again with the hidden sub-command SupervisorArg, which must call
// Supervise. Written in Go rather than as a shell wrapper, the supervisor
// records exactly how the job ended (an exit code, or the signal that
// killed it, which a shell's $? cannot tell apart from exit 128+N),
// enforces the time limit (the job's signal ahead of it, SIGTERM at it,
// SIGKILL after the grace period) even while no agent runs, kills what
// the job leaves behind in its process group and cgroup, and removes the
// cgroup. It starts in a session of its own, so that neither a terminal's
// Ctrl-C nor the agent's death reaches it.
//
// Everything about a job lives in its directory under the state
// directory: the plan the supervisor follows, the supervisor's and then
// the job's process IDs with their start times in /proc (so that a
// reused process ID is never mistaken for the job), and the result the
// supervisor writes at the end. The agent records the supervisor before
// giving it the go-ahead to start the job, so an agent that dies at any
// instant leaves either a recorded job or none. A restarted agent calls Recover to adopt the jobs
// that still run and to learn how the others ended while no one watched.
// Under systemd, give the agent's unit KillMode=process (and Delegate=yes
// for cgroup limits), or a restart of the agent kills its jobs with it.
//
// The binary wires the sub-command, for example with a hidden command:
//
//	if len(os.Args) > 1 && os.Args[1] == launch.SupervisorArg {
//		os.Exit(launch.Supervise(os.Args[2:]))
//	}
//
// Linux is the platform jobs run on; elsewhere the package builds, runs
// jobs without the Linux-only safeguards and never has cgroup limits.
package launch
