// Package trace reads and writes job traces: usine's own trace CSV v1, and
// the public traces it replays (Philly through Gavel's VC streams, Alibaba's
// openb pod lists, the Parallel Workloads Archive's SWF). It also generates
// synthetic gigafactory workloads.
//
// Every reader returns []Record sorted by submit time, then ID. A malformed
// line is a *LineError naming the file, the line and the field; with
// ReadOptions.SkipBad the line is skipped and counted in Stats instead.
// Randomness (Philly run times, the generator) comes from a seeded PCG, so
// the same inputs and seed always give the same records. docs/TRACES.md
// describes the formats and every mapping.
package trace
