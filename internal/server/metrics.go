package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/usine-project/usine/internal/model"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, all prefixed usine_.
type metrics struct {
	requests  *prometheus.HistogramVec
	pass      *prometheus.HistogramVec
	examined  prometheus.Histogram
	started   prometheus.Histogram
	decisions *prometheus.CounterVec
	submitted prometheus.Counter
	conflicts prometheus.Counter
	leader    prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usine_api_request_duration_seconds", Help: "API request latency by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "code"}),
		pass: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usine_scheduler_pass_duration_seconds", Help: "Duration of scheduling passes, snapshot to commit.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"kind"}),
		examined: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "usine_scheduler_jobs_examined", Help: "Waiting jobs examined per scheduling pass.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		started: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "usine_scheduler_jobs_started", Help: "Jobs started per scheduling pass.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usine_scheduler_decisions_total", Help: "Decisions committed, by kind (start, preempt).",
		}, []string{"kind"}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usine_jobs_submitted_total", Help: "Jobs acknowledged to clients.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usine_scheduler_conflicts_total", Help: "Passes whose decisions were rejected because the state moved on.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usine_scheduler_leader", Help: "1 when this replica holds the scheduler lease.",
		}),
	}
	reg.MustRegister(m.requests, m.pass, m.examined, m.started, m.decisions, m.submitted, m.conflicts,
		m.leader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}

// loopCollector reports, at scrape time, the jobs and accelerators the
// scheduler loop's view holds.
type loopCollector struct {
	l            *Loop
	jobs, accels *prometheus.Desc
}

func newLoopCollector(l *Loop) *loopCollector {
	return &loopCollector{l: l,
		jobs: prometheus.NewDesc("usine_jobs", "Jobs waiting or running, by state and partition (\"\" = any).",
			[]string{"state", "partition"}, nil),
		accels: prometheus.NewDesc("usine_accelerators", "Accelerators by state: allocated, idle (up and free), down (down or drained).",
			[]string{"state"}, nil),
	}
}

func (c *loopCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.accels
}

func (c *loopCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	type key struct{ state, part string }
	jobs := map[key]int{}
	used := map[string]int{}
	for _, j := range l.v.jobs {
		jobs[key{string(j.State), j.Partition}]++
		for _, a := range j.Alloc {
			used[a.Node] += a.Accelerators
		}
	}
	for k, n := range jobs {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), k.state, k.part)
	}
	var alloc, idle, down int
	for _, n := range l.v.nodes {
		u := used[n.Name]
		alloc += u
		if n.State == model.NodeUp {
			idle += max(n.Accelerators-u, 0)
		} else {
			down += max(n.Accelerators-u, 0)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.accels, prometheus.GaugeValue, float64(alloc), "allocated")
	ch <- prometheus.MustNewConstMetric(c.accels, prometheus.GaugeValue, float64(idle), "idle")
	ch <- prometheus.MustNewConstMetric(c.accels, prometheus.GaugeValue, float64(down), "down")
}
