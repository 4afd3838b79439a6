package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// BenchmarkThousandAgents runs `usine server` as its own process (SQLite
// in a temporary directory, default timings: agents report every 5 s) and
// 1,000 emulated agents of 8 H100 in this process, all connected. Over a
// window it measures the heartbeat load the server takes, its CPU and
// memory, and the latency of API calls made meanwhile — listing jobs,
// reading a node, submitting a small job every 50 ms (each runs `true` on
// some node, so launches and ends flow as well).
//
//	go test ./internal/e2e -run '^$' -bench ThousandAgents -benchtime 1x -timeout 10m
//
// USINE_BENCH_AGENTS and USINE_BENCH_WINDOW (a duration) change the
// number of agents (1000) and the window (30s).
func BenchmarkThousandAgents(b *testing.B) {
	nAgents := 1000
	if v, err := strconv.Atoi(os.Getenv("USINE_BENCH_AGENTS")); err == nil && v > 0 {
		nAgents = v
	}
	window := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("USINE_BENCH_WINDOW")); err == nil && v > 0 {
		window = v
	}
	bin := buildUsine(b)
	data := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command(bin, "server", "--data", data, "--listen", addr, "--rate-limit", "0", "--log-format", "json")
	srv.Stdout, srv.Stderr = io.Discard, io.Discard
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	url := "http://" + addr
	var admin string
	for deadline := time.Now().Add(wait); admin == ""; {
		if raw, err := os.ReadFile(filepath.Join(data, "admin.token")); err == nil && strings.HasSuffix(string(raw), "\n") {
			admin = strings.TrimSpace(string(raw))
		} else if time.Now().After(deadline) {
			b.Fatal("the server wrote no admin token")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := &api.Client{BaseURL: url, Token: admin}
	ctx := context.Background()
	waitReady(b, url)
	if err := c.Do(ctx, "PUT", api.Prefix+"/projects/-/members/agents", store.Member{User: "agents", Role: store.RoleOperator}, nil); err != nil {
		b.Fatal(err)
	}
	var tok api.NewToken
	if err := c.Do(ctx, "POST", api.Prefix+"/tokens", api.TokenRequest{User: "agents"}, &tok); err != nil {
		b.Fatal(err)
	}

	// The agents, started in waves so that registration is not one burst.
	e := accel.Spec{Nodes: nAgents, PerNode: 8, Model: "H100"}
	devs := emulated(b, 8, "H100")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2*nAgents + 16, IdleConnTimeout: time.Minute}}
	actx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	work := b.TempDir()
	spares, err := launch.NewSpares(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer spares.Close()
	for i := range nAgents {
		a, err := agent.New(agent.Config{Server: url, Token: tok.Secret, Node: agent.EmulatedNode(e, i, 8, 4, 64, 512<<10), Devices: devs,
			Address: "127.0.0.1", StateDir: filepath.Join(work, "agents", strconv.Itoa(i)), HTTP: hc, Grace: time.Second, StopOnExit: true, Spares: spares})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
		if i%100 == 99 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		nodes, err := c.Nodes(ctx)
		up := 0
		for _, n := range nodes {
			if n.State == model.NodeUp {
				up++
			}
		}
		if err == nil && up == nAgents && metric(b, url, "usine_agents_connected") == float64(nAgents) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d nodes up within 2 minutes", up, nAgents)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The window.
	b.ResetTimer()
	reports0, cpu0, t0 := metric(b, url, "usine_agent_reports_total"), cpuTicks(b, srv.Process.Pid), time.Now()
	var lat []time.Duration
	submitted := 0
	spec := api.JobSpec{Project: "default", Accelerators: 1, Limit: 60, Task: model.Task{Script: "#!/bin/sh\ntrue\n", WorkDir: work}}
	names := agent.EmulatedNames(e)
	tick := time.NewTicker(50 * time.Millisecond)
	for time.Since(t0) < window {
		<-tick.C
		for _, call := range []func() error{
			func() error { _, err := c.Jobs(ctx, api.JobQuery{Limit: 100}); return err },
			func() error {
				var n api.NodeView
				return c.Do(ctx, "GET", api.Prefix+"/nodes/"+names[submitted%nAgents], nil, &n)
			},
			func() error { _, err := c.Submit(ctx, spec); submitted++; return err },
		} {
			s := time.Now()
			if err := call(); err != nil {
				b.Fatalf("API call during the window: %v", err)
			}
			lat = append(lat, time.Since(s))
		}
	}
	tick.Stop()
	elapsed := time.Since(t0)
	reports, cpu := metric(b, url, "usine_agent_reports_total")-reports0, cpuTicks(b, srv.Process.Pid)-cpu0
	b.StopTimer()
	done, _ := c.AllJobs(ctx, api.JobQuery{States: []string{"completed"}})
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(reports/elapsed.Seconds(), "reports/s")
	b.ReportMetric(float64(cpu)/elapsed.Seconds(), "server_cpu_%") // ticks are 1/100 s
	b.ReportMetric(float64(rssKiB(b, srv.Process.Pid))/1024, "server_rss_MiB")
	b.ReportMetric(q(0.5), "api_p50_ms")
	b.ReportMetric(q(0.99), "api_p99_ms")
	b.ReportMetric(float64(len(done)), "jobs_completed")
	b.Logf("%d agents, %v window: %.0f reports, %d API calls, %d jobs submitted, %d completed", nAgents, elapsed.Round(time.Second), reports, len(lat), submitted, len(done))
}

func waitReady(b *testing.B, url string) {
	for deadline := time.Now().Add(wait); ; {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server is not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads one unlabelled series from the server's /metrics.
func metric(b *testing.B, url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// cpuTicks is a process's user and system time, in clock ticks (1/100 s).
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rssKiB(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
