package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	var req api.SubmitRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	specs := req.Jobs
	if len(specs) == 0 {
		specs = []api.JobSpec{req.JobSpec}
	} else if !isZeroSpec(&req.JobSpec) {
		return invalid("jobs", "give either one job's fields or a jobs list, not both")
	}
	p := who(r.Context())
	jobs, err := s.jobsFromSpecs(r, p, specs)
	if err != nil {
		return err
	}
	rec := auditOf(r)
	rec.entry.Status = http.StatusCreated
	out, err := s.store.SubmitJobs(r.Context(), jobs, rec.entry)
	if err != nil {
		return fmt.Errorf("submit %d jobs: %w", len(jobs), err)
	}
	rec.done = true
	s.metrics.submitted.Add(float64(len(out)))
	s.loop.Wake()
	writeJSON(w, http.StatusCreated, api.Jobs{Items: out})
	return nil
}

func isZeroSpec(s *api.JobSpec) bool {
	return s.Project == "" && s.Name == "" && s.Nodes == 0 && s.Accelerators == 0 &&
		s.Task.Script == "" && len(s.Task.Command) == 0 && s.Array == ""
}

// jobsFromSpecs checks specs and turns them into jobs to store, arrays
// expanded, and refuses what no grant covers where the site says so
// (checkCovered). Errors name the offending field, prefixed by jobs[i] in
// a batch.
func (s *Server) jobsFromSpecs(r *http.Request, p *principal, specs []api.JobSpec) ([]store.Job, error) {
	parents, qos := p.parents, s.qosNames()
	parts, err := s.partitions(r.Context())
	if err != nil {
		return nil, err
	}
	var jobs []store.Job
	for i := range specs {
		prefix := ""
		if len(specs) > 1 {
			prefix = fmt.Sprintf("jobs[%d].", i)
		}
		sp := &specs[i]
		j, indices, err := s.jobFromSpec(p, sp, parents, qos, parts)
		if err != nil {
			if e, ok := err.(*api.Error); ok && prefix != "" {
				e.Field = prefix + e.Field
				e.Message = prefix + e.Message
			}
			return nil, err
		}
		for _, dep := range j.Deps {
			// A job the caller may not see is "not found" here too, as in
			// visibleJob, so a dependency cannot probe other projects' IDs.
			d, err := s.store.Job(r.Context(), dep.JobID)
			if err == nil && !p.canSee(&d) {
				err = store.ErrNotFound
			}
			if err != nil {
				if isNotFound(err) {
					return nil, invalid(prefix+"deps", "dependency on job %s, which does not exist", dep.JobID)
				}
				return nil, fmt.Errorf("check dependency %s: %w", dep.JobID, err)
			}
		}
		if len(jobs)+max(len(indices), 1) > maxBatch {
			return nil, fail(http.StatusRequestEntityTooLarge, api.CodeTooLarge, prefix+"array",
				"more than %d jobs in one request; split it", maxBatch)
		}
		if indices == nil {
			jobs = append(jobs, j)
			continue
		}
		for _, idx := range indices {
			e := j
			e.ArrayID, e.ArrayIndex = "new", idx
			jobs = append(jobs, e)
		}
	}
	return jobs, s.checkCovered(jobs, parents, parts)
}

func (s *Server) qosNames() map[string]bool {
	m := make(map[string]bool, len(s.cfg.QoS))
	for _, q := range s.cfg.QoS {
		m[q.Name] = true
	}
	return m
}

func (s *Server) jobFromSpec(p *principal, sp *api.JobSpec, parents map[string]string, qos map[string]bool, parts []model.Partition) (store.Job, []int, error) {
	var j store.Job
	for _, c := range []struct {
		field, v string
		required bool
	}{{"project", sp.Project, true}, {"name", sp.Name, false}, {"partition", sp.Partition, false}, {"model", sp.Model, false}, {"qos", sp.QoS, false}} {
		if err := checkName(c.field, c.v, c.required); err != nil {
			return j, nil, err
		}
	}
	if _, ok := parents[sp.Project]; !ok {
		return j, nil, invalid("project", "project %q does not exist; usine projects lists yours", sp.Project)
	}
	if !p.in(sp.Project, store.RoleMember, store.RoleManager) {
		return j, nil, forbidden("%s is not a member of project %s; ask its manager to add you", p.User, sp.Project)
	}
	if sp.QoS != "" && !qos[sp.QoS] {
		return j, nil, invalid("qos", "QoS %q does not exist; choose one of %s", sp.QoS, strings.Join(slices.Sorted(mapKeys(qos)), ", "))
	}
	if sp.Partition != "" && !slices.ContainsFunc(parts, func(pt model.Partition) bool { return pt.Name == sp.Partition }) {
		return j, nil, invalid("partition", "partition %q does not exist; usine partitions lists them", sp.Partition)
	}
	if err := checkTask(&sp.Task); err != nil {
		return j, nil, err
	}
	if sp.Limit < 0 {
		return j, nil, invalid("limit_s", "limit_s is %d; give a positive number of seconds, or 0 for the default (%d)", sp.Limit, s.cfg.DefaultLimit)
	}
	limit := sp.Limit
	if limit == 0 {
		limit = s.cfg.DefaultLimit
	}
	j.Job = model.Job{
		ID: "new", Name: sp.Name, Project: sp.Project, User: p.User, Partition: sp.Partition, Model: sp.Model,
		Nodes: sp.Nodes, AcceleratorsPerNode: sp.AcceleratorsPerNode, Accelerators: sp.Accelerators,
		CPUs: sp.CPUs, MemoryMiB: sp.MemoryMiB, Limit: limit, QoS: sp.QoS, Deps: sp.Deps,
		Preemptible: sp.Preemptible, OneBlock: sp.OneBlock, Exclusive: sp.Exclusive, Held: sp.Held,
		Begin: sp.Begin, Submit: s.now().Unix(),
	}
	j.Task = sp.Task
	if err := j.Job.Validate(); err != nil {
		var fe *model.FieldError
		if errors.As(err, &fe) {
			return j, nil, invalid(fe.Field, "%s %s", fe.Field, fe.Msg)
		}
		return j, nil, err
	}
	if sp.Array == "" {
		return j, nil, nil
	}
	indices, throttle, err := parseArray(sp.Array)
	if err != nil {
		return j, nil, invalid("array", "%v", err)
	}
	j.ArrayThrottle = throttle
	return j, indices, nil
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func checkTask(t *model.Task) error {
	if t.Script == "" && len(t.Command) == 0 {
		return invalid("task", "the job runs nothing; give task.script or task.command")
	}
	if t.Script != "" && len(t.Command) > 0 {
		return invalid("task", "give task.script or task.command, not both")
	}
	if len(t.Script) > maxScriptLen {
		return invalid("task.script", "the script is %d bytes; at most %d", len(t.Script), maxScriptLen)
	}
	if strings.IndexByte(t.Script, 0) >= 0 {
		return invalid("task.script", "the script holds a NUL byte; is it a binary file?")
	}
	if len(t.Args) > 0 && t.Script == "" {
		return invalid("task.args", "arguments are for a script; put them in task.command after the program instead")
	}
	if len(t.Args) > maxEnvVars {
		return invalid("task.args", "%d arguments; at most %d", len(t.Args), maxEnvVars)
	}
	if len(t.Command) > maxEnvVars {
		return invalid("task.command", "%d arguments; at most %d", len(t.Command), maxEnvVars)
	}
	if len(t.Env) > maxEnvVars {
		return invalid("task.env", "%d variables; at most %d", len(t.Env), maxEnvVars)
	}
	for k, v := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || len(k) > maxNameLen {
			return invalid("task.env", "variable name %q: give a non-empty name without '=' of at most %d bytes", k, maxNameLen)
		}
		if len(v) > 64<<10 || strings.IndexByte(v, 0) >= 0 {
			return invalid("task.env", "variable %s: value too long or holds a NUL byte", k)
		}
	}
	for _, f := range []struct{ name, v string }{{"task.workdir", t.WorkDir}, {"task.stdout", t.Stdout}, {"task.stderr", t.Stderr}} {
		if err := checkText(f.name, f.v, 4096); err != nil {
			return err
		}
	}
	if t.Signal != "" {
		if err := checkName("task.signal", t.Signal, false); err != nil {
			return err
		}
	}
	if t.SignalBefore < 0 {
		return invalid("task.signal_before_s", "is %d; give 0 or more seconds", t.SignalBefore)
	}
	if t.StreamOutput && (t.Stdout != "" || t.Stderr != "") {
		return invalid("task.stream_output", "a streamed output has no file: give no task.stdout or task.stderr with it")
	}
	if err := model.CheckOpenMode(t.OpenMode); err != nil {
		return invalid("task.open_mode", "%v", err)
	}
	return nil
}

// maxArray bounds an array's indices, as Slurm's MaxArraySize does.
const maxArray = 100_000

// parseArray reads "0-15", "1,3,5-11:2" into sorted distinct indices, and
// a "%N" suffix ("0-15%4") into the throttle: at most N elements at once.
func parseArray(full string) (out []int, throttle int, err error) {
	spec, n, hasThrottle := strings.Cut(full, "%")
	if hasThrottle {
		if throttle, err = strconv.Atoi(n); err != nil || throttle <= 0 {
			return nil, 0, fmt.Errorf("array %q: the throttle after %% must be a positive number of elements that may run at once", full)
		}
	}
	out, err = parseIndices(spec)
	return out, throttle, err
}

// parseIndices reads the indices of an array spec.
func parseIndices(spec string) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	steps := 0
	for part := range strings.SplitSeq(spec, ",") {
		step := 1
		if a, b, ok := strings.Cut(part, ":"); ok {
			n, err := strconv.Atoi(b)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("array %q: step %q must be a positive integer", spec, b)
			}
			part, step = a, n
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, fmt.Errorf("array %q: %q is not an index or a range lo-hi with 0 <= lo <= hi", spec, part)
		}
		if b >= maxArray {
			return nil, fmt.Errorf("array %q: index %d is too large; at most %d", spec, b, maxArray-1)
		}
		if steps += (b-a)/step + 1; steps > maxArray {
			return nil, fmt.Errorf("array %q names more than %d indices; split it", spec, maxArray)
		}
		for i := a; i <= b; i += step {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

var jobStates = []model.JobState{model.JobPending, model.JobRunning, model.JobCompleted, model.JobFailed, model.JobCancelled, model.JobTimeout}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", defaultPage, maxPage)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultPage
	}
	f := store.JobFilter{User: q.Get("user"), Partition: q.Get("partition"), ArrayID: q.Get("array"),
		Name: q.Get("name"), After: q.Get("after"), Limit: limit}
	for _, c := range []struct{ k, v string }{{"user", f.User}, {"partition", f.Partition}, {"array", f.ArrayID}, {"name", f.Name}, {"after", f.After}} {
		if err := checkName(c.k, c.v, false); err != nil {
			return err
		}
	}
	for st := range splitList(q.Get("state")) {
		if !slices.Contains(jobStates, model.JobState(st)) {
			return invalid("state", "state %q does not exist; use %v", st, jobStates)
		}
		f.States = append(f.States, model.JobState(st))
	}
	for id := range splitList(q.Get("id")) {
		f.IDs = append(f.IDs, id)
	}
	for pr := range splitList(q.Get("project")) {
		f.Projects = append(f.Projects, pr)
	}
	p := who(r.Context())
	if !p.global(seeAll...) {
		all, err := s.store.Projects(r.Context())
		if err != nil {
			return fmt.Errorf("list projects: %w", err)
		}
		vis := p.visibleProjects(all)
		if len(f.Projects) == 0 {
			f.Projects = vis
		} else {
			f.Projects = slices.DeleteFunc(f.Projects, func(x string) bool { return !slices.Contains(vis, x) })
		}
		if len(f.Projects) == 0 {
			writeJSON(w, http.StatusOK, api.Jobs{Items: []store.Job{}})
			return nil
		}
	}
	jobs, err := s.store.Jobs(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	out := api.Jobs{Items: jobs}
	if out.Items == nil {
		out.Items = []store.Job{}
	}
	if len(jobs) == limit {
		out.Next = jobs[len(jobs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func splitList(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		if s == "" {
			return
		}
		for x := range strings.SplitSeq(s, ",") {
			if x = strings.TrimSpace(x); x != "" && !yield(x) {
				return
			}
		}
	}
}

// visibleJob loads the job named in the path, as the caller may see it.
// Jobs the caller may not see are "not found", so IDs leak nothing.
func (s *Server) visibleJob(r *http.Request) (store.Job, error) {
	id := r.PathValue("id")
	j, err := s.store.Job(r.Context(), id)
	if err == nil && !who(r.Context()).canSee(&j) {
		err = store.ErrNotFound
	}
	if isNotFound(err) {
		return j, fail(http.StatusNotFound, api.CodeNotFound, "id", "job %s not found", id)
	}
	return j, err
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.visibleJob(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) error {
	j, err := s.visibleJob(r)
	if err != nil {
		return err
	}
	ev, err := s.store.Events(r.Context(), j.ID, 0, maxPage)
	if err != nil {
		return fmt.Errorf("events of job %s: %w", j.ID, err)
	}
	if ev == nil {
		ev = []store.Event{}
	}
	writeJSON(w, http.StatusOK, api.Events{Items: ev})
	return nil
}

type jobAct int

const (
	actCancel jobAct = iota
	actHold
	actRelease
	actRequeue
)

var actNames = [...]string{"cancel", "hold", "release", "requeue"}

// jobAction cancels, holds, releases or requeues the job in the path.
func (s *Server) jobAction(act jobAct) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var body api.CancelRequest
		if act == actCancel && r.ContentLength != 0 {
			if err := decode(r, &body); err != nil {
				return err
			}
			if err := checkSignal(body); err != nil {
				return err
			}
		}
		j, err := s.visibleJob(r)
		if err != nil {
			return err
		}
		p := who(r.Context())
		if !p.canAct(&j) {
			return forbidden("%s may not %s job %s of %s in project %s", p.User, actNames[act], j.ID, j.User, j.Project)
		}
		now := s.now().Unix()
		var ev store.Event
		j, err = s.store.UpdateJob(r.Context(), j.ID, func(j *store.Job) error {
			ev = store.Event{Job: j.ID, Time: now, Kind: actNames[act], Detail: "by " + p.User}
			return applyAction(act, j, body, now, p.User)
		})
		if err != nil {
			return err
		}
		if body.Signal != "" {
			ev.Kind, ev.Detail = "signalled", body.Signal+" by "+p.User
		}
		if err := s.store.AddEvents(r.Context(), []store.Event{ev}); err != nil {
			return fmt.Errorf("record event of job %s: %w", j.ID, err)
		}
		s.loop.Wake()
		writeJSON(w, http.StatusOK, j)
		return nil
	}
}

// checkSignal checks a cancel request's signal and whom it goes to.
func checkSignal(b api.CancelRequest) error {
	if b.Signal != "" {
		if _, err := launch.ParseSignal(b.Signal); err != nil {
			return invalid("signal", "%v", err)
		}
	}
	switch {
	case b.To != "" && b.Signal == "":
		return invalid("to", "says whom a signal goes to: give the signal too")
	case b.To != "" && b.To != store.SignalBatch && b.To != store.SignalFull:
		return invalid("to", "%q: give %q (the batch script alone), %q (the script and the steps) or nothing (the steps)", b.To, store.SignalBatch, store.SignalFull)
	}
	return nil
}

// applyAction changes j as act asks, or says why it cannot.
func applyAction(act jobAct, j *store.Job, body api.CancelRequest, now int64, user string) error {
	signal := body.Signal
	conflict := func(format string, args ...any) error {
		return fail(http.StatusConflict, api.CodeConflict, "", "job %s is %s: "+format, append([]any{j.ID, j.State}, args...)...)
	}
	switch act {
	case actCancel:
		if j.State.Final() {
			return conflict("it has already ended")
		}
		if signal != "" {
			if j.State != model.JobRunning {
				return conflict("only a running job can be signalled")
			}
			seq := int64(1)
			if n := len(j.Signals); n > 0 {
				seq = j.Signals[n-1].Seq + 1
			}
			j.Signals = slices.DeleteFunc(j.Signals, func(s store.SignalRequest) bool { return s.Epoch != j.Epoch })
			j.Signals = append(j.Signals, store.SignalRequest{Seq: seq, Epoch: j.Epoch, Signal: signal, To: body.To, Time: now})
			if n := len(j.Signals); n > store.MaxSignals {
				j.Signals = slices.Delete(j.Signals, 0, n-store.MaxSignals)
			}
			return nil
		}
		j.State, j.End, j.Reason = model.JobCancelled, now, "cancelled by "+user
		j.EstStart = 0
	case actHold:
		if j.State != model.JobPending {
			return conflict("only a pending job can be held")
		}
		j.Held = true
	case actRelease:
		if j.State != model.JobPending || !j.Held {
			return conflict("only a held pending job can be released")
		}
		j.Held = false
	case actRequeue:
		if j.State == model.JobPending {
			return conflict("it is already queued")
		}
		j.State, j.Reason, j.Requeues = model.JobPending, "requeued by "+user, j.Requeues+1
		j.Start, j.End, j.Alloc, j.ExitCode, j.Signal = 0, 0, nil, 0, ""
	}
	return nil
}

func (s *Server) estimate(w http.ResponseWriter, r *http.Request) error {
	var sp api.JobSpec
	if err := decode(r, &sp); err != nil {
		return err
	}
	p := who(r.Context())
	parts, err := s.partitions(r.Context())
	if err != nil {
		return err
	}
	j, _, err := s.jobFromSpec(p, &sp, p.parents, s.qosNames(), parts)
	if err != nil {
		return err
	}
	est, err := s.loop.Estimate(r.Context(), j.Job)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, est)
	return nil
}

// partitions are the loop's view of the partitions, or the store's when
// the loop has none yet.
func (s *Server) partitions(ctx context.Context) ([]model.Partition, error) {
	if parts := s.loop.Partitions(); parts != nil {
		return parts, nil
	}
	parts, err := s.store.Partitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	return parts, nil
}
