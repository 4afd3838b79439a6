// Package slurm is usine's Slurm compatibility: it reads sbatch options and
// #SBATCH directives into a Request and maps it onto usine's job shape,
// expands Slurm's %-patterns in file names, builds the SLURM_* environment
// that batch scripts read, and prints jobs, nodes and partitions as squeue,
// sacct, sinfo and scontrol do.
//
// Everything here is pure: no I/O beyond the writers handed in, no clock
// (times are parameters), no server. The commands in internal/cli wire it to
// usine's API.
package slurm
