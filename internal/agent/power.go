package agent

import (
	"context"
	"time"

	"github.com/usine-project/usine/internal/accel"
)

// Energy: while runs holding accelerators are alive, the agent reads the
// node's accelerator power every Config.PowerEvery (one nvidia-smi call,
// or a few sysfs files, for all devices at once) and each run's meter
// integrates the draw of the devices it holds. The rank's end carries the
// result (api.RunState.EnergyJ) and the server counts it in the job's
// usage as measured energy; a run the agent could not meter (no reading
// while it ran, or adopted after an agent restart, so that part of its run
// went unwatched) reports none and its energy is estimated instead.

// meter integrates one run's accelerator energy from power readings: the
// trapezoid between readings, the first reading held back to the run's
// start and the last one forward to its end. A reading that fails is
// bridged by its neighbours.
type meter struct {
	start  time.Time
	last   time.Time // of the latest reading counted; zero = none yet
	lastW  float64   // the run's draw at last, W
	joules float64
}

// sample counts a reading of w watts, over the run's devices, taken at t.
// Readings older than one already counted are ignored.
func (m *meter) sample(t time.Time, w float64) {
	switch {
	case m.last.IsZero():
		m.joules += w * max(0, t.Sub(m.start).Seconds())
		m.last = t
		if t.Before(m.start) {
			m.last = m.start
		}
	case t.After(m.last):
		m.joules += (m.lastW + w) / 2 * t.Sub(m.last).Seconds()
		m.last = t
	default:
		return
	}
	m.lastW = w
}

// end closes the integral at the run's end, t, and says whether there is
// a measurement: none when no reading came while the run was alive. A
// reading taken after the end (the process had exited, the agent not yet
// noticed) takes back what it counted past the end.
func (m *meter) end(t time.Time) (joules float64, ok bool) {
	if m.last.IsZero() {
		return 0, false
	}
	j := m.joules + m.lastW*t.Sub(m.last).Seconds()
	return max(j, 0), j > 0
}

// powerReader reads the draw of each of the node's devices, W, in their
// order.
type powerReader func(ctx context.Context) (watts []float64, ok bool)

// power is the agent's view of its accelerators' power. Its fields after
// read are guarded by Agent.mu.
type power struct {
	read   powerReader
	every  time.Duration
	pos    map[int]int   // device index → position in Config.Devices
	kick   chan struct{} // read now: a metered run started
	source string        // what a reading comes from, for the registration; "" = none succeeded at start

	latest   []float64 // the latest reading, and when
	latestAt time.Time
}

// newPower sets up power readings for devs, or returns nil when the node
// has no accelerators.
func newPower(cfg *Config) *power {
	if len(cfg.Devices) == 0 {
		return nil
	}
	p := &power{read: cfg.Power, every: cfg.PowerEvery, pos: map[int]int{}, kick: make(chan struct{}, 1)}
	if p.read == nil {
		devs := cfg.Devices
		p.read = func(ctx context.Context) ([]float64, bool) { return accel.Power(ctx, accel.Config{}, devs) }
	}
	for i, d := range cfg.Devices {
		p.pos[d.Index] = i
	}
	return p
}

// draw is what the devices of indexes devs drew in reading w.
func (p *power) draw(w []float64, devs []int) float64 {
	sum := 0.0
	for _, d := range devs {
		if i, ok := p.pos[d]; ok && i < len(w) {
			sum += w[i]
		}
	}
	return sum
}

// probePower reads the power once, before the agent registers, to say in
// the registration whether (and how) it measures energy. It reports
// whether readings are worth taking at all: devices that are not real
// (declared, emulated without a synthetic draw) never become readable.
func (a *Agent) probePower(ctx context.Context) bool {
	p := a.power
	if p == nil {
		return false
	}
	w, ok := p.read(ctx)
	src := a.cfg.Devices[0].Source
	if !ok {
		a.log.Info("agent: the accelerators' power cannot be read; the energy of jobs here will be estimated from rated power", "devices", src)
		return a.cfg.Power != nil || src == accel.SourceNvidiaSMI || src == accel.SourceSysfs
	}
	if src == accel.SourceEmulated {
		a.log.Warn("agent: the accelerators' power is synthetic (emulated devices): jobs' energy is counted as measured, but is made up", "watts", w)
	}
	a.mu.Lock()
	p.source = string(src)
	p.latest, p.latestAt = w, time.Now()
	a.mu.Unlock()
	return true
}

// powerLoop reads the power every PowerEvery while metered runs are
// alive, and at once when one starts, and feeds the readings to their
// meters.
func (a *Agent) powerLoop(ctx context.Context) {
	p := a.power
	t := time.NewTicker(p.every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		a.mu.Lock()
		alive := false
		for _, r := range a.runs {
			alive = alive || (r.running() && r.meter != nil)
		}
		a.mu.Unlock()
		if !alive {
			continue
		}
		w, ok := p.read(ctx)
		now := time.Now()
		if ctx.Err() != nil {
			return
		}
		if !ok {
			if !failing {
				a.log.Warn("agent: cannot read the accelerators' power; bridging the gap until it can")
			}
			failing = true
			continue
		}
		failing = false
		a.mu.Lock()
		p.latest, p.latestAt = w, now
		for _, r := range a.runs {
			if r.running() && r.meter != nil {
				r.meter.sample(now, p.draw(w, r.rec.Devices))
			}
		}
		a.mu.Unlock()
	}
}

// meterLocked starts metering a run that just launched on devs.
func (a *Agent) meterLocked(r *run, start time.Time) {
	if a.power == nil || len(r.rec.Devices) == 0 || !a.powerOn {
		return
	}
	r.meter = &meter{start: start}
	select {
	case a.power.kick <- struct{}{}:
	default:
	}
}

// energyLocked closes a run's meter at its end: joules, or 0 when it was
// not measured. A run too short for a reading of its own takes the
// latest reading when that is recent.
func (a *Agent) energyLocked(r *run, end time.Time) float64 {
	m := r.meter
	r.meter = nil
	if m == nil || end.IsZero() {
		return 0
	}
	p := a.power
	if m.last.IsZero() && p.latest != nil && absDuration(end.Sub(p.latestAt)) <= p.every {
		m.sample(end, p.draw(p.latest, r.rec.Devices))
	}
	j, ok := m.end(end)
	if !ok {
		return 0
	}
	return j
}

// wattsLocked is the latest reading, for the heartbeat, when it is fresh.
func (a *Agent) wattsLocked() []float64 {
	p := a.power
	if p == nil || p.latest == nil || time.Since(p.latestAt) > 2*p.every {
		return nil
	}
	return p.latest
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
