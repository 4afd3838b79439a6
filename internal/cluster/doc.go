// Package cluster reads cluster description files: JSON that declares an AI
// factory's sites, accelerator models, partitions, and nodes — listed one by
// one or expanded from pools with a block and group topology. It also holds
// built-in examples (philly, openb, gigafactory, laptop) that any command
// can name instead of a file. The result is a validated *model.Cluster.
// docs/TRACES.md describes the format.
package cluster
