// Package usage sums what finished jobs used — accelerator-hours,
// CPU-hours, wall time, energy and CO2e — by any of user, project (rolled
// up the project tree), consortium, site, accelerator class, funding
// programme and month, into rows ready for a table, CSV or JSON. It is
// pure: records in, rows out; the store fetches the records.
//
// Energy is the accelerators' energy: measured by the node agent where it
// can read the accelerators' power (NVML), else estimated as rated board
// power × an assumed utilisation (DefaultUtilisation unless told) × time.
// Every row says how much of its energy was measured and how much
// estimated. CO2e is energy × the site's grid intensity (gCO2e/kWh);
// energy at a site without a known intensity is counted apart, not
// guessed.
package usage

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
)

// Record is one finished job's use.
type Record struct {
	Job       string `json:"job"`
	User      string `json:"user"`
	Project   string `json:"project"`
	Site      string `json:"site"`
	Model     string `json:"model"` // accelerator class
	Programme string `json:"programme,omitempty"`
	// Start and End are Unix seconds; End − Start is the wall time.
	Start        int64 `json:"start"`
	End          int64 `json:"end"`
	Accelerators int   `json:"accelerators"`
	CPUs         int   `json:"cpus"` // in total, over all its nodes
	// EnergyKWh is the accelerators' energy as measured by the agent when
	// Measured is set; otherwise it is ignored and estimated.
	EnergyKWh float64 `json:"energy_kwh,omitempty"`
	Measured  bool    `json:"measured,omitempty"`
}

// Key is a dimension rows are grouped by.
type Key string

// Keys.
const (
	ByUser       Key = "user"
	ByProject    Key = "project" // with Options.RollUp, also every ancestor
	ByConsortium Key = "consortium"
	BySite       Key = "site"
	ByModel      Key = "model"
	ByProgramme  Key = "programme"
	ByMonth      Key = "month" // UTC, YYYY-MM; a job's use is split at month boundaries
)

// Keys lists every key.
func Keys() []Key {
	return []Key{ByUser, ByProject, ByConsortium, BySite, ByModel, ByProgramme, ByMonth}
}

// DefaultUtilisation is the share of rated power assumed for a job whose
// power was not measured.
const DefaultUtilisation = 0.7

// Options say how to group and how to count energy.
type Options struct {
	By []Key
	// Projects is the project tree, for RollUp and ByConsortium (a
	// project's consortium is its root; a project not in the tree is its
	// own).
	Projects []model.Project
	// RollUp counts each job under ByProject in its project and in every
	// ancestor, so that a consortium's row holds its members' use. Rows then
	// overlap: do not add them up.
	RollUp bool
	// RatedWatts is each accelerator class's rated board power, W.
	RatedWatts map[string]float64
	// Utilisation is the share of rated power assumed when power was not
	// measured; 0 means DefaultUtilisation.
	Utilisation float64
	// GridIntensity is each site's grid carbon intensity, gCO2e/kWh.
	GridIntensity map[string]float64
}

// Row is the use of one group.
type Row struct {
	// Group holds the group's values, in the order of Options.By.
	Group  []string `json:"-"`
	Labels Labels   `json:"group"`
	Jobs   int      `json:"jobs"` // jobs that ended in the group (in its month)
	// AcceleratorSeconds, CPUSeconds and WallSeconds are sums over the
	// group's jobs of accelerators × run time, CPUs × run time and run time.
	AcceleratorSeconds int64 `json:"accelerator_s"`
	CPUSeconds         int64 `json:"cpu_s"`
	WallSeconds        int64 `json:"wall_s"`
	// EnergyKWh = MeasuredKWh + EstimatedKWh.
	EnergyKWh    float64 `json:"energy_kwh"`
	MeasuredKWh  float64 `json:"measured_kwh"`
	EstimatedKWh float64 `json:"estimated_kwh"`
	// NoEnergyAcceleratorSeconds is use whose energy is unknown: not
	// measured, of a class without a rated power.
	NoEnergyAcceleratorSeconds int64 `json:"no_energy_accelerator_s"`
	// CO2eKg is the energy at sites with a known grid intensity × that
	// intensity; NoIntensityKWh is the energy at the others.
	CO2eKg         float64 `json:"co2e_kg"`
	NoIntensityKWh float64 `json:"no_intensity_kwh"`
}

// addEnergy adds energy, measured and estimated (kWh), use of unknown
// energy (accelerator-seconds) and, where the site's grid intensity is
// known (gCO2e/kWh), the CO2e.
func (row *Row) addEnergy(measured, estimated float64, noEnergy int64, intensity float64, known bool) {
	row.MeasuredKWh += measured
	row.EstimatedKWh += estimated
	row.EnergyKWh += measured + estimated
	row.NoEnergyAcceleratorSeconds += noEnergy
	if known {
		row.CO2eKg += (measured + estimated) * intensity / 1000
	} else {
		row.NoIntensityKWh += measured + estimated
	}
}

// Labels names a row's group values by key, for JSON.
type Labels map[Key]string

// EnergyMethod says how a row's energy was found: measured, estimated,
// mixed or none.
func (r *Row) EnergyMethod() string {
	switch {
	case r.MeasuredKWh > 0 && r.EstimatedKWh > 0:
		return "mixed"
	case r.MeasuredKWh > 0:
		return "measured"
	case r.EstimatedKWh > 0:
		return "estimated"
	}
	return "none"
}

// Report is the rows and how they were counted.
type Report struct {
	By          []Key   `json:"by"`
	RolledUp    bool    `json:"rolled_up,omitempty"`
	Utilisation float64 `json:"utilisation"` // assumed for estimated energy
	// EnergyNote says in words how energy was found, for a report's footer.
	EnergyNote string `json:"energy_note"`
	Rows       []Row  `json:"rows"`
}

// Sum groups records as opts say. It refuses a record that ends before it
// starts or uses negative resources, and options that make no sense,
// naming what is wrong.
func Sum(records []Record, opts Options) (*Report, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	s := newSummer(&opts)
	for i := range records {
		if err := s.add(&records[i]); err != nil {
			return nil, fmt.Errorf("usage report: record %d (job %s): %w", i, records[i].Job, err)
		}
	}
	return s.report(), nil
}

func newSummer(opts *Options) *summer {
	util := opts.Utilisation
	if util == 0 {
		util = DefaultUtilisation
	}
	parent := make(map[string]string, len(opts.Projects))
	for _, p := range opts.Projects {
		parent[p.Name] = p.Parent
	}
	return &summer{opts: opts, util: util, parent: parent, rows: map[string]*Row{},
		chains: map[string][]string{}, roots: map[string]string{}, names: map[int]string{}}
}

// report is the rows summed so far, sorted by group.
func (s *summer) report() *Report {
	rep := &Report{By: slices.Clone(s.opts.By), RolledUp: s.opts.RollUp, Utilisation: s.util, Rows: make([]Row, 0, len(s.rows))}
	for _, r := range s.rows {
		rep.Rows = append(rep.Rows, *r)
	}
	slices.SortFunc(rep.Rows, func(a, b Row) int { return slices.Compare(a.Group, b.Group) })
	var measured, estimated, unknown bool
	for _, r := range rep.Rows {
		measured = measured || r.MeasuredKWh > 0
		estimated = estimated || r.EstimatedKWh > 0
		unknown = unknown || r.NoEnergyAcceleratorSeconds > 0
	}
	rep.EnergyNote = energyNote(measured, estimated, unknown, s.util)
	return rep
}

// energyNote says how the rows' energy was found; unknown is whether some
// accelerator time had neither a measurement nor a rated power.
func energyNote(measured, estimated, unknown bool, util float64) string {
	est := fmt.Sprintf("estimated as rated accelerator power × %.0f %% utilisation (an assumption, not a measurement) × run time", util*100)
	var note string
	switch {
	case measured && estimated:
		note = "accelerator energy: measured where the agent read the accelerators' power, else " + est
	case measured:
		note = "accelerator energy: measured by the node agents"
	case estimated:
		note = "accelerator energy: " + est
	case unknown:
		return "accelerator energy: unknown (no measurement, no rated power)"
	default:
		return "accelerator energy: none (no accelerator time)"
	}
	if unknown {
		note += "; unknown for the accelerator time of models without a measurement or a rated power (no_energy_accelerator_s)"
	}
	return note
}

func (o *Options) check() error {
	var errs []error
	seen := map[Key]bool{}
	for _, k := range o.By {
		if !slices.Contains(Keys(), k) {
			errs = append(errs, fmt.Errorf("unknown grouping %q; use %s", k, joinKeys(Keys())))
		} else if seen[k] {
			errs = append(errs, fmt.Errorf("grouping %q given twice", k))
		}
		seen[k] = true
	}
	if o.RollUp && !seen[ByProject] {
		errs = append(errs, errors.New("roll-up needs grouping by project"))
	}
	if u := o.Utilisation; math.IsNaN(u) || u < 0 || u > 1 {
		errs = append(errs, fmt.Errorf("utilisation %g is not in (0, 1]; give a share such as 0.7", u))
	}
	for _, m := range slices.Sorted(maps.Keys(o.RatedWatts)) {
		if w := o.RatedWatts[m]; math.IsNaN(w) || w < 0 {
			errs = append(errs, fmt.Errorf("rated power of %s is %g W; give 0 (unknown) or more", m, w))
		}
	}
	for _, s := range slices.Sorted(maps.Keys(o.GridIntensity)) {
		if g := o.GridIntensity[s]; math.IsNaN(g) || g < 0 {
			errs = append(errs, fmt.Errorf("grid intensity of site %s is %g gCO2e/kWh; give 0 or more", s, g))
		}
	}
	return errors.Join(errs...)
}

func joinKeys(ks []Key) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// summer accumulates rows.
type summer struct {
	opts   *Options
	util   float64
	parent map[string]string
	rows   map[string]*Row
	key    []byte
	pieces []piece
	chains map[string][]string // project → it and its ancestors (RollUp)
	roots  map[string]string   // project → its consortium
	names  map[int]string      // year×12+month → "YYYY-MM"
}

// piece is the part of a record's run inside one month.
type piece struct {
	month    string
	from, to int64
	last     bool // the piece the job ended in
}

// check refuses a record that cannot be counted.
func (s *summer) check(r *Record) error {
	switch {
	case r.End < r.Start:
		return fmt.Errorf("ends at %d, before it starts at %d", r.End, r.Start)
	case r.Accelerators < 0 || r.CPUs < 0:
		return fmt.Errorf("uses %d accelerators and %d CPUs; neither can be negative", r.Accelerators, r.CPUs)
	case r.Measured && (math.IsNaN(r.EnergyKWh) || r.EnergyKWh < 0):
		return fmt.Errorf("measured energy %g kWh; it cannot be negative", r.EnergyKWh)
	}
	return nil
}

func (s *summer) add(r *Record) error {
	if err := s.check(r); err != nil {
		return err
	}
	s.pieces = append(s.pieces[:0], piece{from: r.Start, to: r.End, last: true})
	if slices.Contains(s.opts.By, ByMonth) {
		s.months(r.Start, r.End)
	}
	projects := []string{r.Project}
	if s.opts.RollUp {
		projects = s.chain(r.Project)
	}
	dur := r.End - r.Start
	watts, rated := s.opts.RatedWatts[r.Model]
	rated = rated && watts > 0
	intensity, known := s.opts.GridIntensity[r.Site]
	for _, pc := range s.pieces {
		secs := pc.to - pc.from
		var measured, estimated float64
		var noEnergy int64
		switch {
		case r.Measured && dur > 0:
			measured = r.EnergyKWh * float64(secs) / float64(dur)
		case r.Measured:
			measured = r.EnergyKWh
		case rated:
			estimated = float64(r.Accelerators) * watts * s.util * float64(secs) / 3600 / 1000
		default:
			noEnergy = int64(r.Accelerators) * secs
		}
		for _, p := range projects {
			row := s.row(r, pc.month, p)
			if pc.last {
				row.Jobs++
			}
			row.AcceleratorSeconds += int64(r.Accelerators) * secs
			row.CPUSeconds += int64(r.CPUs) * secs
			row.WallSeconds += secs
			row.addEnergy(measured, estimated, noEnergy, intensity, known)
		}
	}
	return nil
}

// chain is project p and its ancestors, nearest first.
func (s *summer) chain(p string) []string {
	if c, ok := s.chains[p]; ok {
		return c
	}
	c := []string{p}
	seen := map[string]bool{p: true}
	for q := s.parent[p]; q != "" && !seen[q]; q = s.parent[q] {
		seen[q] = true
		c = append(c, q)
	}
	s.chains[p] = c
	return c
}

// root is project p's consortium: the root of its tree.
func (s *summer) root(p string) string {
	if r, ok := s.roots[p]; ok {
		return r
	}
	c := s.chain(p)
	s.roots[p] = c[len(c)-1]
	return c[len(c)-1]
}

// row finds or makes the row of r's group, with project p and month m.
func (s *summer) row(r *Record, m, p string) *Row {
	s.key = s.key[:0]
	for _, k := range s.opts.By {
		s.key = append(s.key, s.value(k, r, m, p)...)
		s.key = append(s.key, 0)
	}
	if row := s.rows[string(s.key)]; row != nil {
		return row
	}
	row := &Row{Group: make([]string, len(s.opts.By)), Labels: Labels{}}
	for i, k := range s.opts.By {
		row.Group[i] = s.value(k, r, m, p)
		row.Labels[k] = row.Group[i]
	}
	s.rows[string(s.key)] = row
	return row
}

func (s *summer) value(k Key, r *Record, m, p string) string {
	switch k {
	case ByUser:
		return r.User
	case ByProject:
		return p
	case ByConsortium:
		return s.root(r.Project)
	case BySite:
		return r.Site
	case ByModel:
		return r.Model
	case ByProgramme:
		return r.Programme
	case ByMonth:
		return m
	}
	return ""
}

// months splits [from, to) at UTC month boundaries into s.pieces; an
// empty run is one piece in the month it ended.
func (s *summer) months(from, to int64) {
	s.pieces = s.pieces[:0]
	t := time.Unix(from, 0).UTC()
	for {
		y, mo := t.Year(), t.Month()
		next := time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC).Unix()
		idx := y*12 + int(mo)
		name, ok := s.names[idx]
		if !ok {
			name = t.Format("2006-01")
			s.names[idx] = name
		}
		if to <= next {
			s.pieces = append(s.pieces, piece{month: name, from: t.Unix(), to: to, last: true})
			return
		}
		s.pieces = append(s.pieces, piece{month: name, from: t.Unix(), to: next})
		t = time.Unix(next, 0).UTC()
	}
}

// Header is a table's or CSV file's header for rows grouped by by.
func Header(by []Key) []string {
	h := make([]string, 0, len(by)+9)
	for _, k := range by {
		h = append(h, string(k))
	}
	return append(h, "jobs", "accelerator_hours", "cpu_hours", "wall_hours", "energy_kwh", "energy_method", "co2e_kg",
		"no_energy_accelerator_hours", "no_intensity_kwh")
}

// Cells is the row's cells under Header: hours and kWh with two decimals.
func (r *Row) Cells() []string {
	c := slices.Clone(r.Group)
	h := func(s int64) string { return strconv.FormatFloat(float64(s)/3600, 'f', 2, 64) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
	return append(c, strconv.Itoa(r.Jobs), h(r.AcceleratorSeconds), h(r.CPUSeconds), h(r.WallSeconds),
		f(r.EnergyKWh), r.EnergyMethod(), f(r.CO2eKg), h(r.NoEnergyAcceleratorSeconds), f(r.NoIntensityKWh))
}
