// Package accel finds the accelerators of the node it runs on, whatever
// their vendor, so that the agent can register them and hand them out.
//
// Discover tries, in order: devices declared in the agent's configuration;
// NVIDIA GPUs through nvidia-smi; AMD GPUs through sysfs (with product
// names from rocm-smi when it is installed); and, on a machine with none,
// emulated devices of a model from the built-in table, so that the whole
// product can be tried anywhere. Power reads the devices' current draw for
// energy accounting where the vendor's tools can; emulated devices may be
// given a synthetic draw (Device.SyntheticWatts), a constant stand-in
// that lets the measured-energy path be tested without accelerators.
//
// NVIDIA devices are read through nvidia-smi rather than through NVML
// loaded with cgo: usine is one static, pure-Go binary (its SQLite is pure
// Go for the same reason), a cgo build would need a C toolchain on every
// build machine and a no-cgo build would silently lose NVIDIA discovery.
// nvidia-smi ships with every NVIDIA driver, next to libnvidia-ml, and
// answers from NVML itself; the price is one short-lived process per
// query, which the agent pays at start and at each power reading.
package accel
