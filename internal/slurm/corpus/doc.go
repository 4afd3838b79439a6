// Package corpus has no code of its own: its test submits every batch
// script of internal/slurm/testdata/scripts through the real sbatch
// command (the usine binary under that name) to a whole factory in the
// test process — a server over SQLite and emulated nodes shaped and named
// like those of LUMI, Leonardo, JUWELS, MareNostrum 5, Jean Zay and
// Snellius — runs them to their end, and checks what each job saw:
// shims named python, torchrun, deepspeed… print their environment, and
// NAME.expect says what the job must come to.
package corpus
