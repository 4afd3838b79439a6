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
// # A job's environment
//
// Nothing of the agent's environment reaches a job but HOME and USER;
// PATH is BasePath and LANG C.UTF-8. On top of that, in this order (later
// ones win): the caller's Spec.Extra (the agent puts Slurm's SLURM_*
// variables there, for unmodified batch scripts, and USINE_NODE,
// USINE_SERVER, USINE_JOB_NAME, USINE_PROJECT, USINE_ARRAY_ID and
// USINE_ARRAY_INDEX), then usine's own:
//
//	USINE_JOB_ID, USINE_JOB_EPOCH   the job, and which run of it (a requeued job runs again in a new epoch)
//	USINE_NODE_RANK, USINE_NUM_NODES, USINE_NODES   this node's rank in the gang, its size, every node by rank
//	USINE_ACCELERATORS              how many accelerators the job has on this node ("2")
//	USINE_ACCELERATOR_INDEXES       which, as the vendor numbers them ("2,3"; "" for none)
//	CUDA_VISIBLE_DEVICES (and CUDA_DEVICE_ORDER=PCI_BUS_ID) on NVIDIA nodes, ROCR_VISIBLE_DEVICES and
//	HIP_VISIBLE_DEVICES on AMD nodes: the same indexes, "" to hide every device from a job given none
//	MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, NODE_RANK, GROUP_RANK, NNODES, LOCAL_RANK, LOCAL_WORLD_SIZE
//	                                torch.distributed (env://) and torchrun, one process per node: the script
//	JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID   jax.distributed.initialize()
//
// and last the job's own variables (model.Task.Env), which win over all.
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
// Starting the supervisor, a whole Go binary, is most of a launch's time:
// Spares keeps one started ahead of need, and hands it the job's directory
// with its go-ahead.
//
// The binary wires the sub-command first thing in main:
//
//	launch.SuperviseIfAsked()
//
// Linux is the platform jobs run on; elsewhere the package builds, runs
// jobs without the Linux-only safeguards and never has cgroup limits.
package launch
