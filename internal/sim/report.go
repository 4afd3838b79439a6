package sim

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the results as text tables: one line per policy, then
// the same aggregates per job size class.
func WriteTable(w io.Writer, results []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tjobs\tavg JCT\tp50 JCT\tp95 JCT\tp99 JCT\tavg queue\tp50 queue\tp95 queue\tp99 queue\tavg bsld\tutil\tmakespan\tpreempt\tpasses\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f%%\t%s\t%d\t%d\t\n",
			r.Policy, r.Jobs, Duration(r.AvgJCT), Duration(r.P50JCT), Duration(r.P95JCT), Duration(r.P99JCT),
			Duration(r.AvgQueue), Duration(r.P50Queue), Duration(r.P95Queue), Duration(r.P99Queue),
			r.AvgBoundedSlowdown, 100*r.Utilization, Duration(float64(r.Makespan)), r.Preemptions, r.Passes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tsize\tjobs\tavg JCT\tp50 JCT\tp95 JCT\tp99 JCT\tavg queue\tp95 queue\tavg bsld\t")
	for _, r := range results {
		for _, s := range r.BySize {
			if s.Jobs == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", r.Policy, s.Class, s.Jobs,
				Duration(s.AvgJCT), Duration(s.P50JCT), Duration(s.P95JCT), Duration(s.P99JCT),
				Duration(s.AvgQueue), Duration(s.P95Queue), s.AvgBoundedSlowdown)
		}
	}
	return tw.Flush()
}

// Duration renders seconds for people: 45s, 12.5m, 3.2h, 2.1d.
func Duration(s float64) string {
	switch a := math.Abs(s); {
	case a < 60:
		return strconv.FormatFloat(s, 'f', 0, 64) + "s"
	case a < 3600:
		return strconv.FormatFloat(s/60, 'f', 1, 64) + "m"
	case a < 86400:
		return strconv.FormatFloat(s/3600, 'f', 1, 64) + "h"
	}
	return strconv.FormatFloat(s/86400, 'f', 1, 64) + "d"
}

// WriteJSON writes {"policies": [...]}, one Result per policy; docs/SIM.md
// holds the field names as a contract.
func WriteJSON(w io.Writer, results []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Policies []*Result `json:"policies"`
	}{results})
}

// ReportInfo describes the run for the report's heading.
type ReportInfo struct {
	Title   string // "" = "usine sim"
	Cluster string
	Trace   string
	Notes   []string // lines shown under the heading: options, wall time
}

// WriteReport writes one self-contained HTML page: the comparison table,
// the CDF of completion time, utilisation and queue length over time, and
// the aggregates by job size, with inline SVG and CSS and no script or
// external reference.
func WriteReport(w io.Writer, results []*Result, info ReportInfo) error {
	if info.Title == "" {
		info.Title = "usine sim"
	}
	page := reportPage{Info: info}
	for k, r := range results {
		page.Policies = append(page.Policies, policyRow{Result: r, Color: color(k)})
	}
	if len(results) > 0 {
		page.Capacity = results[0].Capacity
		page.Jobs = results[0].Jobs
		for _, s := range results[0].BySize {
			page.Classes = append(page.Classes, s.Class)
		}
	}
	page.CDF = cdfChart(results)
	page.Util = timeChart(results, "utilisation", func(s Sample) float64 { return s.Utilization }, 1)
	page.Queue = timeChart(results, "jobs waiting", func(s Sample) float64 { return s.Queue }, 0)
	return reportTemplate.Execute(w, page)
}

type reportPage struct {
	Info     ReportInfo
	Capacity int
	Jobs     int
	Policies []policyRow
	Classes  []string
	CDF      chart
	Util     chart
	Queue    chart
}

type policyRow struct {
	*Result
	Color string
}

// palette is colour-blind friendly (Okabe and Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

func color(k int) string { return palette[k%len(palette)] }

// chart is a line chart laid out in SVG user units.
type chart struct {
	W, H           int
	Left, Top      float64 // plot area
	Right, Bottom  float64
	XLabel, YLabel string
	XTicks, YTicks []tick
	Series         []series
}

type tick struct {
	Pos   float64
	Label string
}

type series struct {
	Name, Color string
	Points      string // "x,y x,y …" for <polyline>
	LegendY     float64
}

func newChart(xLabel, yLabel string) chart {
	return chart{W: 760, H: 320, Left: 64, Top: 16, Right: 600, Bottom: 280, XLabel: xLabel, YLabel: yLabel}
}

// scale maps data ranges onto the plot area.
func (c *chart) x(v, lo, hi float64) float64 {
	if hi <= lo {
		return c.Left
	}
	return c.Left + (v-lo)/(hi-lo)*(c.Right-c.Left)
}

func (c *chart) y(v, lo, hi float64) float64 {
	if hi <= lo {
		return c.Bottom
	}
	return c.Bottom - (v-lo)/(hi-lo)*(c.Bottom-c.Top)
}

func (c *chart) add(name, col string, xs, ys []float64) {
	var b strings.Builder
	for k := range xs {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(xs[k], 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(ys[k], 'f', 1, 64))
	}
	c.Series = append(c.Series, series{Name: name, Color: col, Points: b.String(), LegendY: c.Top + 12 + 18*float64(len(c.Series))})
}

// cdfChart draws the CDF of completion time on a logarithmic time axis.
func cdfChart(results []*Result) chart {
	c := newChart("completion time (log scale)", "fraction of jobs")
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		for _, q := range r.JCTQuantiles {
			if q > 0 {
				lo, hi = min(lo, q), max(hi, q)
			}
		}
	}
	if hi == 0 {
		return c
	}
	llo, lhi := math.Log10(lo), math.Log10(max(hi, lo*10))
	for _, t := range []float64{1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400} {
		if l := math.Log10(t); l >= llo && l <= lhi {
			c.XTicks = append(c.XTicks, tick{c.x(l, llo, lhi), Duration(t)})
		}
	}
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		c.YTicks = append(c.YTicks, tick{c.y(f, 0, 1), strconv.FormatFloat(f, 'f', 2, 64)})
	}
	for k, r := range results {
		var xs, ys []float64
		for i, q := range r.JCTQuantiles {
			xs = append(xs, c.x(math.Log10(max(q, lo)), llo, lhi))
			ys = append(ys, c.y(float64(i)/quantileSteps, 0, 1))
		}
		c.add(r.Policy, color(k), xs, ys)
	}
	return c
}

// timeChart draws one timeline column of every policy; yMax 0 scales to
// the data.
func timeChart(results []*Result, yLabel string, val func(Sample) float64, yMax float64) chart {
	t0, t1 := math.Inf(1), math.Inf(-1)
	top := yMax
	for _, r := range results {
		for _, s := range r.Timeline {
			t0, t1 = min(t0, float64(s.T)), max(t1, float64(s.T))
			if yMax == 0 {
				top = max(top, val(s))
			}
		}
	}
	unit, name := 3600.0, "hours"
	if t1-t0 > 14*86400 {
		unit, name = 86400, "days"
	}
	c := newChart("time since the first submit ("+name+")", yLabel)
	if math.IsInf(t0, 1) {
		return c
	}
	top = niceCeil(top)
	for _, v := range niceTicks(0, (t1-t0)/unit) {
		c.XTicks = append(c.XTicks, tick{c.x(v*unit, 0, t1-t0), strconv.FormatFloat(v, 'f', -1, 64)})
	}
	for _, v := range niceTicks(0, top) {
		label := strconv.FormatFloat(v, 'f', -1, 64)
		if yMax == 1 {
			label = strconv.FormatFloat(100*v, 'f', 0, 64) + "%"
		}
		c.YTicks = append(c.YTicks, tick{c.y(v, 0, top), label})
	}
	for k, r := range results {
		var xs, ys []float64
		for _, s := range r.Timeline {
			xs = append(xs, c.x(float64(s.T)-t0, 0, t1-t0))
			ys = append(ys, c.y(val(s), 0, top))
		}
		c.add(r.Policy, color(k), xs, ys)
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceTicks returns about five round values from lo to hi.
func niceTicks(lo, hi float64) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	step := niceCeil((hi - lo) / 5)
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi*(1+1e-9); v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":  Duration,
	"durI": func(v int64) string { return Duration(float64(v)) },
	"pct":  pct,
	"f2":   func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"plus": func(a, b float64) float64 { return a + b },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Info.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0.2em 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 3px 8px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
th { background: #f4f4f4; }
td.name, th.name { text-align: left; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; vertical-align: middle; }
svg { display: block; margin: 0.5em 0; }
svg .axis { stroke: #444; stroke-width: 1; }
svg .grid { stroke: #e5e5e5; stroke-width: 1; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .line { fill: none; stroke-width: 1.8; }
</style>
</head>
<body>
<h1>{{.Info.Title}}</h1>
<p class="meta">cluster {{.Info.Cluster}} · {{.Capacity}} accelerators · trace {{.Info.Trace}} · {{.Jobs}} jobs</p>
{{range .Info.Notes}}<p class="meta">{{.}}</p>
{{end}}
<h2>Comparison</h2>
<table>
<tr><th class="name">policy</th><th>jobs</th><th>avg JCT</th><th>p50 JCT</th><th>p95 JCT</th><th>p99 JCT</th><th>avg queue</th><th>p50 queue</th><th>p95 queue</th><th>p99 queue</th><th>avg bounded slowdown</th><th>utilisation</th><th>makespan</th><th>preemptions</th><th>fairness</th><th>passes</th></tr>
{{range .Policies}}<tr><td class="name"><span class="swatch" style="background: {{.Color}}"></span>{{.Policy}}</td><td>{{.Jobs}}</td><td>{{dur .AvgJCT}}</td><td>{{dur .P50JCT}}</td><td>{{dur .P95JCT}}</td><td>{{dur .P99JCT}}</td><td>{{dur .AvgQueue}}</td><td>{{dur .P50Queue}}</td><td>{{dur .P95Queue}}</td><td>{{dur .P99Queue}}</td><td>{{f2 .AvgBoundedSlowdown}}</td><td>{{pct .Utilization}}</td><td>{{durI .Makespan}}</td><td>{{.Preemptions}}</td><td>{{f2 .Fairness}}</td><td>{{.Passes}}</td></tr>
{{end}}</table>
<h2>Completion time</h2>
<p class="meta">Cumulative distribution of job completion time (submit to end).</p>
{{template "chart" .CDF}}
<h2>Utilisation over time</h2>
<p class="meta">Share of the cluster's accelerators held by jobs, averaged over each step.</p>
{{template "chart" .Util}}
<h2>Queue length over time</h2>
<p class="meta">Jobs waiting, averaged over each step.</p>
{{template "chart" .Queue}}
<h2>By job size</h2>
<table>
<tr><th class="name">policy</th><th class="name">accelerators</th><th>jobs</th><th>avg JCT</th><th>p50 JCT</th><th>p95 JCT</th><th>p99 JCT</th><th>avg queue</th><th>p95 queue</th><th>avg bounded slowdown</th></tr>
{{range .Policies}}{{$p := .Policy}}{{range .BySize}}{{if .Jobs}}<tr><td class="name">{{$p}}</td><td class="name">{{.Class}}</td><td>{{.Jobs}}</td><td>{{dur .AvgJCT}}</td><td>{{dur .P50JCT}}</td><td>{{dur .P95JCT}}</td><td>{{dur .P99JCT}}</td><td>{{dur .AvgQueue}}</td><td>{{dur .P95Queue}}</td><td>{{f2 .AvgBoundedSlowdown}}</td></tr>
{{end}}{{end}}{{end}}</table>
</body>
</html>
{{define "chart"}}<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img">
{{range .YTicks}}<line class="grid" x1="{{$.Left}}" x2="{{$.Right}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="{{plus $.Left -6}}" y="{{plus .Pos 4}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.Top}}" y2="{{$.Bottom}}"/><text x="{{.Pos}}" y="{{plus $.Bottom 16}}" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{.Left}}" x2="{{.Right}}" y1="{{.Bottom}}" y2="{{.Bottom}}"/><line class="axis" x1="{{.Left}}" x2="{{.Left}}" y1="{{.Top}}" y2="{{.Bottom}}"/>
<text x="{{.Right}}" y="{{plus .Bottom 34}}" text-anchor="end">{{.XLabel}}</text>
<text x="12" y="{{.Top}}" transform="rotate(-90 12 {{.Top}})" text-anchor="end">{{.YLabel}}</text>
{{range .Series}}<polyline class="line" stroke="{{.Color}}" points="{{.Points}}"/>
<rect x="{{plus $.Right 20}}" y="{{plus .LegendY -9}}" width="12" height="12" fill="{{.Color}}"/><text x="{{plus $.Right 38}}" y="{{.LegendY}}">{{.Name}}</text>
{{end}}</svg>
{{end}}`))
