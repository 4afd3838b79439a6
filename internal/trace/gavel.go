package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DurationsFile is the file name of Gavel's Philly duration distribution,
// which ReadPhillyGavel looks for when not told where it is.
const DurationsFile = "gavel_philly_job_distribution_cfe14f3.csv"

// Durations is Philly's run-time distribution split by GPU-count class: the
// real (duration_s, num_gpus) pairs of gavel_philly_job_distribution_*.csv,
// whose GPU counts are capped at 8.
type Durations struct {
	classes []int     // GPU counts present, ascending (1, 2, 4, 8 for Philly)
	byClass [][]int64 // run times of each class, in file order, in whole seconds
}

// ReadDurations reads a duration distribution: a header "duration_s,num_gpus"
// then one (seconds, GPU count) pair a line. Seconds are rounded to the
// nearest whole second; 0 becomes 1 s (a job runs at least one second).
func ReadDurations(r io.Reader, name string) (*Durations, error) {
	ls := newLines(r, name)
	byCount := map[int][]int64{}
	header := false
	var parts [][]byte
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if len(b) == 0 {
			continue
		}
		if !header {
			if string(b) != "duration_s,num_gpus" {
				return nil, &LineError{File: name, Line: ls.n, Msg: fmt.Sprintf("header is %q; a duration distribution starts with \"duration_s,num_gpus\"", b)}
			}
			header = true
			continue
		}
		parts = splitBytes(parts, b, ',')
		if len(parts) != 2 {
			return nil, &LineError{File: name, Line: ls.n, Msg: fmt.Sprintf("has %d fields; want 2: duration_s,num_gpus", len(parts))}
		}
		d, err := strconv.ParseFloat(string(parts[0]), 64)
		if err != nil || d < 0 || math.IsInf(d, 0) || math.IsNaN(d) || d > 1e12 {
			return nil, &LineError{File: name, Line: ls.n, Field: "duration_s", Msg: fmt.Sprintf("%q is not a number of seconds, 0 or more", parts[0])}
		}
		g, ok := parseCount(parts[1])
		if !ok || g < 1 || g > 1<<20 {
			return nil, &LineError{File: name, Line: ls.n, Field: "num_gpus", Msg: fmt.Sprintf("%q is not a positive whole number of GPUs", parts[1])}
		}
		byCount[int(g)] = append(byCount[int(g)], max(int64(math.Round(d)), 1))
	}
	if err := ls.err(); err != nil {
		return nil, err
	}
	if len(byCount) == 0 {
		return nil, &LineError{File: name, Msg: "holds no durations"}
	}
	d := &Durations{}
	for g := range byCount {
		d.classes = append(d.classes, g)
	}
	slices.Sort(d.classes)
	for _, g := range d.classes {
		d.byClass = append(d.byClass, byCount[g])
	}
	return d, nil
}

// Classes returns the GPU counts the distribution has run times for, and
// how many run times each has.
func (d *Durations) Classes() (gpus []int, counts []int) {
	for i, g := range d.classes {
		gpus = append(gpus, g)
		counts = append(counts, len(d.byClass[i]))
	}
	return gpus, counts
}

// class is the index of the class a job of g GPUs draws from: the largest
// GPU count of the distribution not above g (Philly: 1, 2 or 3 → 1, 2, 2;
// 4–7 → 4; 8 or more → 8), or the smallest class when g is below all.
func (d *Durations) class(g int) int {
	i, found := slices.BinarySearch(d.classes, g)
	if found {
		return i
	}
	return max(i-1, 0)
}

// draw picks one run time of the class of g GPUs: with x the next Uint64 of
// rng and n the size of the class, the run time at index ⌊x·n / 2⁶⁴⌋.
func (d *Durations) draw(rng *rand.PCG, g int) int64 {
	c := d.byClass[d.class(g)]
	i, _ := bits.Mul64(rng.Uint64(), uint64(len(c)))
	return c[i]
}

// GavelRNG is the generator a VC stream draws its run times from: Go's
// math/rand/v2 PCG seeded with (seed, FNV-1a 64 of the VC name). Each VC
// has its own stream, so a VC converts alone to the same records as in a
// full set.
func GavelRNG(seed uint64, vc string) *rand.PCG {
	h := fnv.New64a()
	h.Write([]byte(vc))
	return rand.NewPCG(seed, h.Sum64())
}

var gavelColumns = []string{"job_type", "command", "steps_flag", "needs_data", "total_steps", "arrival_s", "num_gpus"}

// ReadGavelVC reads one Gavel VC stream: tab-separated lines without a
// header, job_type, command, steps_flag, needs_data, total_steps,
// arrival_s, num_gpus. Every job belongs to project vc and user vc, gets ID
// "<vc>-<line>" and state completed, and leaves its limit unknown. Arrival
// (rounded to the nearest second) and GPU count come from the line; the run
// time is drawn from d with rng, one draw per good line, in file order.
// Jobs of up to 8 GPUs ask for one node; larger ones let the scheduler pack.
func ReadGavelVC(r io.Reader, name, vc string, d *Durations, rng *rand.PCG, opt ReadOptions) ([]Record, Stats, error) {
	if m := checkName(vc); m != "" {
		return nil, Stats{}, fmt.Errorf("%s: VC name %s; name the file <vc>.trace", name, m)
	}
	if d == nil || rng == nil {
		return nil, Stats{}, fmt.Errorf("%s: no duration distribution or generator to draw run times from", name)
	}
	ls := newLines(r, name)
	col := collector{opt: opt}
	recs := make([]Record, 0, ls.count())
	var parts [][]byte
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		parts = splitBytes(parts, b, '\t')
		rec, lerr := parseGavelLine(parts)
		if lerr != nil {
			lerr.File, lerr.Line = name, ls.n
			if err := col.bad(lerr); err != nil {
				return nil, col.stats, err
			}
			continue
		}
		rec.ID = vc + "-" + strconv.Itoa(ls.n)
		rec.Project, rec.User = vc, vc
		rec.Runtime = d.draw(rng, rec.Accelerators)
		rec.Line = ls.n
		recs = append(recs, rec)
	}
	if err := ls.err(); err != nil {
		return nil, col.stats, err
	}
	sortRecords(recs)
	col.stats.Records = len(recs)
	return recs, col.stats, nil
}

func parseGavelLine(f [][]byte) (Record, *LineError) {
	if len(f) != len(gavelColumns) {
		return Record{}, &LineError{Msg: fmt.Sprintf("has %d tab-separated fields; want %d: %s", len(f), len(gavelColumns), strings.Join(gavelColumns, ", "))}
	}
	a, err := strconv.ParseFloat(string(f[5]), 64)
	if err != nil || a < 0 || a > 1e15 || math.IsNaN(a) {
		return Record{}, &LineError{Field: "arrival_s", Msg: fmt.Sprintf("%q is not a number of seconds, 0 or more", f[5])}
	}
	g, ok := parseCount(f[6])
	if !ok || g < 1 || g > 1<<20 {
		return Record{}, &LineError{Field: "num_gpus", Msg: fmt.Sprintf("%q is not a positive whole number of GPUs", f[6])}
	}
	r := Record{Submit: int64(math.Round(a)), Accelerators: int(g), State: StateCompleted}
	if g <= 8 {
		r.Nodes = 1
	}
	return r, nil
}

// ReadPhillyGavel converts Gavel's Philly VC streams: paths are *.trace
// files or directories of them (read in name order, not recursively). The
// VC of a file is its base name without ".trace"; a VC given twice is an
// error. durations is the distribution file; "" looks for DurationsFile in
// the directory of each input and up to three directories above it.
func ReadPhillyGavel(ctx context.Context, paths []string, durations string, seed uint64, opt ReadOptions) ([]Record, Stats, error) {
	files, err := gavelFiles(paths)
	if err != nil {
		return nil, Stats{}, err
	}
	if durations == "" {
		if durations, err = findDurations(paths); err != nil {
			return nil, Stats{}, err
		}
	}
	df, err := os.Open(durations)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("philly-gavel: open duration distribution: %w", err)
	}
	d, err := ReadDurations(df, filepath.Base(durations))
	df.Close()
	if err != nil {
		return nil, Stats{}, fmt.Errorf("philly-gavel: %w", err)
	}
	var all []Record
	var stats Stats
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, stats, err
		}
		vc := strings.TrimSuffix(filepath.Base(f), ".trace")
		recs, st, err := readGavelFile(f, vc, d, seed, opt)
		stats.add(st)
		if err != nil {
			return nil, stats, err
		}
		all = append(all, recs...)
	}
	sortRecords(all)
	stats.Records = len(all)
	return all, stats, nil
}

func readGavelFile(path, vc string, d *Durations, seed uint64, opt ReadOptions) ([]Record, Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("philly-gavel: %w", err)
	}
	defer f.Close()
	return ReadGavelVC(f, filepath.Base(path), vc, d, GavelRNG(seed, vc), opt)
}

// gavelFiles expands directories into their *.trace files and checks that
// no VC comes twice.
func gavelFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("philly-gavel: no input; give VC stream files (<vc>.trace) or directories of them")
	}
	var files []string
	byVC := map[string]string{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("philly-gavel: %w", err)
		}
		found := []string{p}
		if st.IsDir() {
			if found, err = traceFiles(p); err != nil {
				return nil, err
			}
		}
		for _, f := range found {
			vc := strings.TrimSuffix(filepath.Base(f), ".trace")
			if prev, dup := byVC[vc]; dup {
				return nil, fmt.Errorf("philly-gavel: VC %s comes twice, from %s and %s; convert one Gavel seed directory at a time", vc, prev, f)
			}
			byVC[vc] = f
			files = append(files, f)
		}
	}
	return files, nil
}

// traceFiles lists the *.trace files of a directory, in name order.
func traceFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("philly-gavel: %w", err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".trace") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("philly-gavel: directory %s holds no *.trace files", dir)
	}
	return files, nil
}

func findDurations(paths []string) (string, error) {
	var tried []string
	for _, p := range paths {
		dir := p
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			dir = filepath.Dir(p)
		}
		for range 4 {
			c := filepath.Join(dir, DurationsFile)
			if _, err := os.Stat(c); err == nil {
				return c, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("philly-gavel: %w", err)
			}
			tried = append(tried, c)
			dir = filepath.Dir(dir)
		}
	}
	return "", fmt.Errorf("philly-gavel: no duration distribution found (looked for %s); give its path with --durations", strings.Join(tried, ", "))
}
