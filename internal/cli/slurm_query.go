package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm"
	"github.com/usine-project/usine/internal/slurm/hostlist"
	"github.com/usine-project/usine/internal/store"
)

// jobFilter is the selection squeue, scancel and sacct share.
type jobFilter struct {
	ids, users, parts, accounts, names, states string
	me                                         bool
}

func (f *jobFilter) register(fs interface {
	StringVarP(p *string, name, short, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}, withIDs bool, stateName, stateShort, partShort, nameShort string) {
	if withIDs {
		fs.StringVarP(&f.ids, "jobs", "j", "", "job ids")
	}
	fs.StringVarP(&f.users, "user", "u", "", "users")
	fs.StringVarP(&f.parts, "partition", partShort, "", "partitions")
	fs.StringVarP(&f.accounts, "account", "A", "", "accounts (projects)")
	fs.StringVarP(&f.names, "name", nameShort, "", "job names")
	fs.StringVarP(&f.states, stateName, stateShort, "", "states")
	fs.BoolVar(&f.me, "me", false, "your jobs")
}

// jobs lists the jobs the filter selects; active says whether only
// pending and running jobs are wanted when no state is given.
func (f *jobFilter) jobs(ctx context.Context, c *api.Client, extraIDs []string, active bool) ([]store.Job, error) {
	q := api.JobQuery{}
	states, err := slurmStates(f.states)
	if err != nil {
		return nil, err
	}
	switch {
	case f.states != "":
		q.States = states
	case active:
		q.States = []string{string(model.JobPending), string(model.JobRunning)}
	}
	q.Projects = splitComma(f.accounts)
	ids := append(splitComma(f.ids), extraIDs...)
	if len(ids) > 0 {
		if q.IDs, err = expandJobIDs(ctx, c, ids); err != nil {
			return nil, err
		}
	}
	users := splitComma(f.users)
	if f.me {
		me, err := whoami(ctx, c)
		if err != nil {
			return nil, err
		}
		users = append(users, me)
	}
	parts := splitComma(f.parts)
	names := splitComma(f.names)
	var out []store.Job
	// The API filters one user and partition a query; lists are merged.
	for _, u := range orAll(users) {
		for _, p := range orAll(parts) {
			qq := q
			qq.User, qq.Partition = u, p
			js, err := c.AllJobs(ctx, qq)
			if err != nil {
				return nil, err
			}
			for _, j := range js {
				if (len(names) == 0 || slices.Contains(names, j.Name)) && !slices.ContainsFunc(out, func(o store.Job) bool { return o.ID == j.ID }) {
					out = append(out, j)
				}
			}
		}
	}
	return out, nil
}

func orAll(v []string) []string {
	if len(v) == 0 {
		return []string{""}
	}
	return v
}

func runSqueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := slurmFlags("squeue")
	var f jobFilter
	f.register(fs, true, "states", "t", "p", "n")
	format := fs.StringP("format", "o", os.Getenv("SQUEUE_FORMAT"), "output format")
	fields := fs.StringP("Format", "O", os.Getenv("SQUEUE_FORMAT2"), "output fields")
	noHeader := fs.BoolP("noheader", "h", false, "no header")
	long := fs.BoolP("long", "l", false, "long format")
	start := fs.Bool("start", false, "expected start times of pending jobs")
	all := fs.BoolP("all", "a", false, "all partitions (always)")
	array := fs.BoolP("array", "r", false, "one line per array task (always)")
	help := fs.Bool("help", false, "help")
	version := fs.BoolP("version", "V", false, "version")
	fs.IntP("iterate", "i", 0, "refused")
	if err := parseSlurmFlags(fs, "squeue", args, stderr); err != nil {
		return err
	}
	_, _ = all, array
	switch {
	case *help:
		fmt.Fprintln(stdout, "Usage: squeue [-j jobs] [-u users] [-p partitions] [-t states] [--me] [-o format | -O fields] [-l] [--start] [-h]")
		return nil
	case *version:
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	case fs.Changed("iterate"):
		return slurmFail(stderr, "squeue", 1, "--iterate is not supported by usine; use watch squeue")
	}
	c, err := slurmClient(stderr, "squeue")
	if err != nil {
		return err
	}
	jobs, err := f.jobs(ctx, c, fs.Args(), true)
	if err != nil {
		return apiFail(stderr, "squeue", err)
	}
	opt := slurm.SqueueOptions{Format: *format, Fields: *fields, NoHeader: *noHeader, Now: time.Now(), Loc: time.Local}
	if *long && opt.Format == "" && opt.Fields == "" {
		opt.Format = slurm.SqueueLong
	}
	if *start {
		jobs = slices.DeleteFunc(jobs, func(j store.Job) bool { return j.State != model.JobPending })
		if opt.Format == "" && opt.Fields == "" {
			opt.Format = slurm.SqueueStart
		}
	}
	sortSqueue(jobs)
	infos := make([]slurm.JobInfo, len(jobs))
	for i := range jobs {
		infos[i] = jobInfo(&jobs[i])
	}
	if *long {
		fmt.Fprintln(stdout, time.Now().Format("Mon Jan 02 15:04:05 2006"))
	}
	if err := slurm.Squeue(stdout, infos, opt); err != nil {
		return slurmFail(stderr, "squeue", 1, "%s", strings.TrimPrefix(err.Error(), "squeue: error: "))
	}
	return nil
}

func runScancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := slurmFlags("scancel")
	var f jobFilter
	f.register(fs, false, "state", "t", "p", "n")
	sig := fs.StringP("signal", "s", "", "signal to send instead of cancelling")
	batch := fs.BoolP("batch", "b", false, "signal the batch script (and its children) only")
	full := fs.BoolP("full", "f", false, "signal the batch script and every step")
	quiet := fs.BoolP("quiet", "Q", false, "no messages")
	verbose := fs.BoolP("verbose", "v", false, "say what is done")
	interactive := fs.BoolP("interactive", "i", false, "refused")
	version := fs.BoolP("version", "V", false, "version")
	if err := parseSlurmFlags(fs, "scancel", args, stderr); err != nil {
		return err
	}
	switch {
	case *version:
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	case *interactive:
		return slurmFail(stderr, "scancel", 1, "--interactive is not supported by usine")
	case len(fs.Args()) == 0 && f.users == "" && f.parts == "" && f.accounts == "" && f.names == "" && f.states == "" && !f.me:
		return slurmFail(stderr, "scancel", 1, "No job identification provided")
	}
	var body any
	if *sig != "" {
		name, ok := slurm.SignalName(*sig)
		if !ok {
			return slurmFail(stderr, "scancel", 1, "Invalid job signal: %s", *sig)
		}
		// Without either, a batch job's signal goes to its steps' tasks.
		req := api.CancelRequest{Signal: name}
		switch {
		case *batch && *full:
			return slurmFail(stderr, "scancel", 1, "--batch and --full exclude each other: give one")
		case *batch:
			req.To = store.SignalBatch
		case *full:
			req.To = store.SignalFull
		}
		body = req
	}
	c, err := slurmClient(stderr, "scancel")
	if err != nil {
		return err
	}
	var targets []string
	if len(fs.Args()) > 0 && f.users == "" && f.parts == "" && f.accounts == "" && f.names == "" && f.states == "" && !f.me {
		// Plain ids: each is cancelled even if a filter would hide it, and
		// an unknown one is an error of its own.
		for _, id := range fs.Args() {
			ids, err := expandJobIDs(ctx, c, []string{id})
			if err != nil {
				fmt.Fprintf(stderr, "scancel: error: Kill job error on job id %s: %v\n", id, err)
				continue
			}
			targets = append(targets, ids...)
		}
	} else {
		jobs, err := f.jobs(ctx, c, fs.Args(), true)
		if err != nil {
			return apiFail(stderr, "scancel", err)
		}
		for _, j := range jobs {
			targets = append(targets, j.ID)
		}
	}
	failed := false
	for _, id := range targets {
		if _, err := c.JobAction(ctx, id, "cancel", body); err != nil {
			failed = true
			msg := err.Error()
			switch ExitCode(err) {
			case ExitNotFound:
				msg = "Invalid job id specified"
			case ExitConflict:
				msg = "Job/step already completing or completed"
			}
			if !*quiet {
				fmt.Fprintf(stderr, "scancel: error: Kill job error on job id %s: %s\n", id, msg)
			}
			continue
		}
		if *verbose {
			fmt.Fprintf(stderr, "scancel: Terminating job %s\n", id)
		}
	}
	if failed {
		return &reported{code: 1}
	}
	return nil
}

func runSacct(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := slurmFlags("sacct")
	var f jobFilter
	f.register(fs, true, "state", "s", "r", "")
	fields := fs.StringP("format", "o", os.Getenv("SACCT_FORMAT"), "fields")
	fs.StringVar(fields, "fields", os.Getenv("SACCT_FORMAT"), "fields")
	parsable := fs.BoolP("parsable", "p", false, "'|' after each field")
	parsable2 := fs.BoolP("parsable2", "P", false, "'|' between fields")
	noHeader := fs.BoolP("noheader", "n", false, "no header")
	allocs := fs.BoolP("allocations", "X", false, "jobs only, not their steps")
	allUsers := fs.BoolP("allusers", "a", false, "every user's jobs")
	startTime := fs.StringP("starttime", "S", "", "jobs that ended after")
	endTime := fs.StringP("endtime", "E", "", "jobs that started before")
	brief := fs.BoolP("brief", "b", false, "JobID, State and ExitCode")
	long := fs.BoolP("long", "l", false, "more fields")
	version := fs.BoolP("version", "V", false, "version")
	if err := parseSlurmFlags(fs, "sacct", args, stderr); err != nil {
		return err
	}
	if *version {
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	}
	now := time.Now()
	since := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.Local)
	until := time.Time{}
	var err error
	if *startTime != "" {
		if since, err = sacctTime(*startTime, now); err != nil {
			return slurmFail(stderr, "sacct", 1, "Invalid time specification (pos=0): %s", *startTime)
		}
	}
	if *endTime != "" {
		if until, err = sacctTime(*endTime, now); err != nil {
			return slurmFail(stderr, "sacct", 1, "Invalid time specification (pos=0): %s", *endTime)
		}
	}
	c, err := slurmClient(stderr, "sacct")
	if err != nil {
		return err
	}
	if f.ids == "" && f.users == "" && !*allUsers {
		f.me = true
	}
	jobs, err := f.jobs(ctx, c, nil, false)
	if err != nil {
		return apiFail(stderr, "sacct", err)
	}
	if f.ids == "" {
		// Without -j, sacct shows the jobs that ran (or waited) between
		// -S (default: midnight) and -E.
		jobs = slices.DeleteFunc(jobs, func(j store.Job) bool {
			end := j.End
			if !j.State.Final() {
				end = now.Unix()
			}
			return end < since.Unix() || (!until.IsZero() && j.Submit > until.Unix())
		})
	}
	slices.SortStableFunc(jobs, func(a, b store.Job) int {
		if idLess(a.ID, b.ID) {
			return -1
		}
		if idLess(b.ID, a.ID) {
			return 1
		}
		return 0
	})
	opt := slurm.SacctOptions{Fields: *fields, Parsable: *parsable, Parsable2: *parsable2, NoHeader: *noHeader,
		AllocationsOnly: *allocs, Now: now, Loc: time.Local}
	switch {
	case *brief && opt.Fields == "":
		opt.Fields = "JobID,State,ExitCode"
	case *long && opt.Fields == "":
		opt.Fields = "JobID,JobIDRaw,JobName,Partition,Account,User,QOS,State,ExitCode,Submit,Start,End,Elapsed,Timelimit,AllocCPUS,NNodes,NodeList,ReqMem,AllocTRES"
	}
	infos := make([]slurm.JobInfo, len(jobs))
	for i := range jobs {
		infos[i] = jobInfo(&jobs[i])
	}
	if err := slurm.Sacct(stdout, infos, opt); err != nil {
		return slurmFail(stderr, "sacct", 1, "%s", strings.TrimPrefix(err.Error(), "sacct: error: "))
	}
	return nil
}

// sacctTime reads sacct's -S and -E: YYYY-MM-DD[THH:MM[:SS]], HH:MM[:SS]
// today, now, or a --begin form.
func sacctTime(v string, now time.Time) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.Local), nil
		}
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(v), "now-"); ok {
		t, err := slurm.ParseBegin("now+"+rest, now)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-t.Sub(now)), nil
	}
	return slurm.ParseBegin(v, now)
}

// nodeInfos are the nodes as sinfo and scontrol print them.
func nodeInfos(nodes []api.NodeView, now time.Time) []slurm.NodeInfo {
	out := make([]slurm.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = slurm.NodeInfo{
			Name: n.Name, Partitions: []string{n.Partition}, State: n.State, Reason: n.Reason,
			CPUs: n.CPUs, MemoryMiB: n.MemoryMiB, Accelerators: n.Accelerators, AllocAccel: n.Allocated, Model: n.Model,
			NotResponding: n.State != model.NodeDown && n.Heartbeat > 0 && now.Unix()-n.Heartbeat > 60,
		}
	}
	return out
}

func runSinfo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := slurmFlags("sinfo")
	format := fs.StringP("format", "o", os.Getenv("SINFO_FORMAT"), "format")
	nodeOriented := fs.BoolP("Node", "N", false, "one line per node")
	long := fs.BoolP("long", "l", false, "long format")
	noHeader := fs.BoolP("noheader", "h", false, "no header")
	parts := fs.StringP("partition", "p", "", "partitions")
	nodesFlag := fs.StringP("nodes", "n", "", "nodes")
	summarize := fs.BoolP("summarize", "s", false, "summary")
	version := fs.BoolP("version", "V", false, "version")
	fs.BoolP("all", "a", false, "all partitions (always)")
	if err := parseSlurmFlags(fs, "sinfo", args, stderr); err != nil {
		return err
	}
	if *version {
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	}
	c, err := slurmClient(stderr, "sinfo")
	if err != nil {
		return err
	}
	ps, err := c.Partitions(ctx)
	if err != nil {
		return apiFail(stderr, "sinfo", err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return apiFail(stderr, "sinfo", err)
	}
	want := splitComma(*parts)
	var names []string
	if *nodesFlag != "" {
		if names, err = hostlist.Expand(*nodesFlag); err != nil {
			return slurmFail(stderr, "sinfo", 1, "Invalid node name specified: %v", err)
		}
	}
	var pinfo []slurm.PartitionInfo
	for _, p := range ps {
		if len(want) == 0 || slices.Contains(want, p.Name) {
			pinfo = append(pinfo, slurm.PartitionInfo{Name: p.Name, Down: p.Down})
		}
	}
	nodes = slices.DeleteFunc(nodes, func(n api.NodeView) bool {
		return (len(want) > 0 && !slices.Contains(want, n.Partition)) || (len(names) > 0 && !slices.Contains(names, n.Name))
	})
	opt := slurm.SinfoOptions{Format: *format, NodeOriented: *nodeOriented, Long: *long, NoHeader: *noHeader, Now: time.Now(), Loc: time.Local}
	if *summarize && opt.Format == "" {
		opt.Format = "%9P %.5a %.10l %.16F  %N"
	}
	if err := slurm.Sinfo(stdout, pinfo, nodeInfos(nodes, time.Now()), opt); err != nil {
		return slurmFail(stderr, "sinfo", 1, "%v", err)
	}
	return nil
}

func runScontrol(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// scontrol's own options come first; then a command and its words.
	var words []string
	oneLiner := false
	for i, a := range args {
		switch a {
		case "-o", "--oneliner":
			oneLiner = true
			continue
		case "-d", "--details", "-Q", "--quiet", "-a", "--all":
			continue
		case "-V", "--version":
			fmt.Fprintln(stdout, slurmVersion)
			return nil
		}
		if strings.HasPrefix(a, "-") {
			return slurmFail(stderr, "scontrol", 1, "invalid option %q", a)
		}
		words = args[i:]
		break
	}
	_ = oneLiner
	if len(words) == 0 {
		return slurmFail(stderr, "scontrol", 1, "give a command: show job|node|partition|hostnames|hostlist, hold, release, requeue")
	}
	cmd := strings.ToLower(words[0])
	rest := words[1:]
	switch cmd {
	case "show":
		if len(rest) == 0 {
			return slurmFail(stderr, "scontrol", 1, "show what? job, node, partition, hostnames or hostlist")
		}
		return scontrolShow(ctx, strings.ToLower(rest[0]), rest[1:], stdout, stderr)
	case "hold", "uhold", "release", "requeue", "requeuehold":
		action := map[string]string{"hold": "hold", "uhold": "hold", "release": "release", "requeue": "requeue", "requeuehold": "requeue"}[cmd]
		if len(rest) == 0 {
			return slurmFail(stderr, "scontrol", 1, "%s: give job ids", cmd)
		}
		c, err := slurmClient(stderr, "scontrol")
		if err != nil {
			return err
		}
		var ids []string
		for _, w := range rest {
			ids = append(ids, splitComma(w)...)
		}
		ids, err = expandJobIDs(ctx, c, ids)
		if err != nil {
			return slurmFail(stderr, "scontrol", 1, "%v", err)
		}
		failed := false
		for _, id := range ids {
			if _, err := c.JobAction(ctx, id, action, nil); err != nil {
				failed = true
				fmt.Fprintf(stderr, "%s: %v\n", id, err)
				continue
			}
			if cmd == "requeuehold" {
				_, _ = c.JobAction(ctx, id, "hold", nil)
			}
		}
		if failed {
			return &reported{code: 1}
		}
		return nil
	case "update", "create", "delete", "reconfigure", "shutdown", "suspend", "resume", "top", "notify", "reboot":
		return slurmFail(stderr, "scontrol", 1, "%s is not supported by usine; operators use usine drain/resume and the API", cmd)
	}
	return slurmFail(stderr, "scontrol", 1, "invalid keyword: %s", words[0])
}

func scontrolShow(ctx context.Context, what string, rest []string, stdout, stderr io.Writer) error {
	switch what {
	case "hostnames", "hostname":
		list := strings.Join(rest, ",")
		if list == "" {
			list = os.Getenv("SLURM_JOB_NODELIST")
		}
		if list == "" {
			return slurmFail(stderr, "scontrol", 1, "give a host list, or run inside a job (SLURM_JOB_NODELIST is not set)")
		}
		names, err := hostlist.Expand(list)
		if err != nil {
			return slurmFail(stderr, "scontrol", 1, "Invalid hostlist: %v", err)
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case "hostlist", "hostlistsorted":
		var names []string
		for _, w := range rest {
			ns, err := hostlist.Expand(w)
			if err != nil {
				return slurmFail(stderr, "scontrol", 1, "Invalid hostlist: %v", err)
			}
			names = append(names, ns...)
		}
		fmt.Fprintln(stdout, hostlist.Compress(names))
		return nil
	}
	c, err := slurmClient(stderr, "scontrol")
	if err != nil {
		return err
	}
	now := time.Now()
	switch {
	case strings.HasPrefix("jobs", what) && what != "":
		var jobs []store.Job
		if len(rest) > 0 {
			ids, err := expandJobIDs(ctx, c, splitComma(rest[0]))
			if err != nil {
				return slurmFail(stderr, "scontrol", 1, "%v", err)
			}
			if jobs, err = c.AllJobs(ctx, api.JobQuery{IDs: ids}); err != nil {
				return apiFail(stderr, "scontrol", err)
			}
			if len(jobs) == 0 {
				return slurmFail(stderr, "scontrol", 1, "Invalid job id specified")
			}
		} else if jobs, err = c.AllJobs(ctx, api.JobQuery{States: []string{string(model.JobPending), string(model.JobRunning)}}); err != nil {
			return apiFail(stderr, "scontrol", err)
		}
		if len(jobs) == 0 {
			fmt.Fprintln(stdout, "No jobs in the system")
			return nil
		}
		infos := make([]slurm.JobInfo, len(jobs))
		for i := range jobs {
			infos[i] = jobInfo(&jobs[i])
		}
		return slurm.ShowJobs(stdout, infos, slurm.ShowOptions{Now: now, Loc: time.Local})
	case strings.HasPrefix("nodes", what):
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return apiFail(stderr, "scontrol", err)
		}
		if len(rest) > 0 {
			names, err := hostlist.Expand(rest[0])
			if err != nil {
				return slurmFail(stderr, "scontrol", 1, "Invalid node name specified: %v", err)
			}
			nodes = slices.DeleteFunc(nodes, func(n api.NodeView) bool { return !slices.Contains(names, n.Name) })
			if len(nodes) == 0 {
				return slurmFail(stderr, "scontrol", 1, "Node %s not found", rest[0])
			}
		}
		return slurm.ShowNodes(stdout, nodeInfos(nodes, now), slurm.ShowOptions{Now: now, Loc: time.Local})
	case strings.HasPrefix("partitions", what):
		ps, err := c.Partitions(ctx)
		if err != nil {
			return apiFail(stderr, "scontrol", err)
		}
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return apiFail(stderr, "scontrol", err)
		}
		for _, p := range ps {
			if len(rest) > 0 && rest[0] != p.Name {
				continue
			}
			var names []string
			gpus := 0
			for _, n := range nodes {
				if n.Partition == p.Name {
					names = append(names, n.Name)
					gpus += n.Accelerators
				}
			}
			state := "UP"
			if p.Down {
				state = "DOWN"
			}
			fmt.Fprintf(stdout, "PartitionName=%s\n   Nodes=%s\n   State=%s TotalNodes=%d TotalGPUs=%d Model=%s\n\n",
				p.Name, cmp.Or(hostlist.Compress(names), "(null)"), state, len(names), gpus, cmp.Or(p.Model, "(null)"))
		}
		return nil
	}
	return slurmFail(stderr, "scontrol", 1, "invalid entity: %s for keyword: show", what)
}
