package usage

import (
	"fmt"
	"math"
)

// Part is the use of one job in one UTC month, or the sum of such parts
// that share every grouping value. A store writes a job's parts when the
// job ends (Pieces) and sums them in the database by user, project, site,
// class, programme and month; Fold turns those sums into a report. Every
// quantity is additive — estimated energy is linear in accelerator-seconds
// of one class, CO2e in energy at one site — so a report over a million
// jobs reads a few thousand sums, not a million records.
type Part struct {
	User      string `json:"user"`
	Project   string `json:"project"`
	Site      string `json:"site"`
	Model     string `json:"model"`
	Programme string `json:"programme,omitempty"`
	Month     string `json:"month"` // UTC, YYYY-MM
	// Jobs counts the jobs that ended in this part (a job's last month).
	Jobs               int   `json:"jobs"`
	AcceleratorSeconds int64 `json:"accelerator_s"`
	CPUSeconds         int64 `json:"cpu_s"`
	WallSeconds        int64 `json:"wall_s"`
	// MeasuredKWh is the energy the agents measured, over
	// MeasuredAcceleratorSeconds of AcceleratorSeconds; the rest is
	// estimated from rated power.
	MeasuredKWh                float64 `json:"measured_kwh"`
	MeasuredAcceleratorSeconds int64   `json:"measured_accelerator_s"`
}

// Pieces splits one finished job's record at UTC month boundaries, as Sum
// would count it, refusing a record Sum refuses.
func Pieces(r Record) ([]Part, error) {
	s := summer{opts: &Options{By: []Key{ByMonth}}, names: map[int]string{}}
	if err := s.check(&r); err != nil {
		return nil, fmt.Errorf("job %s: %w", r.Job, err)
	}
	s.months(r.Start, r.End)
	dur := r.End - r.Start
	out := make([]Part, 0, len(s.pieces))
	for _, pc := range s.pieces {
		secs := pc.to - pc.from
		p := Part{User: r.User, Project: r.Project, Site: r.Site, Model: r.Model, Programme: r.Programme, Month: pc.month,
			AcceleratorSeconds: int64(r.Accelerators) * secs, CPUSeconds: int64(r.CPUs) * secs, WallSeconds: secs}
		if pc.last {
			p.Jobs = 1
		}
		if r.Measured {
			p.MeasuredAcceleratorSeconds = p.AcceleratorSeconds
			p.MeasuredKWh = r.EnergyKWh
			if dur > 0 {
				p.MeasuredKWh = r.EnergyKWh * float64(secs) / float64(dur)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Fold groups parts as opts say, with the same rows, energy and CO2e as
// Sum over the records the parts came from.
func Fold(parts []Part, opts Options) (*Report, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	s := newSummer(&opts)
	for i := range parts {
		p := &parts[i]
		if p.AcceleratorSeconds < 0 || p.CPUSeconds < 0 || p.WallSeconds < 0 || p.Jobs < 0 ||
			p.MeasuredAcceleratorSeconds < 0 || p.MeasuredAcceleratorSeconds > p.AcceleratorSeconds ||
			math.IsNaN(p.MeasuredKWh) || p.MeasuredKWh < 0 {
			return nil, fmt.Errorf("usage report: part %d (%s, %s, %s): negative or inconsistent sums", i, p.User, p.Project, p.Month)
		}
		r := Record{User: p.User, Project: p.Project, Site: p.Site, Model: p.Model, Programme: p.Programme}
		projects := []string{p.Project}
		if opts.RollUp {
			projects = s.chain(p.Project)
		}
		watts, rated := opts.RatedWatts[p.Model]
		rated = rated && watts > 0
		intensity, known := opts.GridIntensity[p.Site]
		rest := p.AcceleratorSeconds - p.MeasuredAcceleratorSeconds
		measured := p.MeasuredKWh
		var estimated float64
		var noEnergy int64
		if rated {
			estimated = float64(rest) * watts * s.util / 3600 / 1000
		} else {
			noEnergy = rest
		}
		for _, proj := range projects {
			row := s.row(&r, p.Month, proj)
			row.Jobs += p.Jobs
			row.AcceleratorSeconds += p.AcceleratorSeconds
			row.CPUSeconds += p.CPUSeconds
			row.WallSeconds += p.WallSeconds
			row.addEnergy(measured, estimated, noEnergy, intensity, known)
		}
	}
	return s.report(), nil
}

// Check says what is wrong with opts, as Sum and Fold would.
func Check(opts Options) error { return opts.check() }
