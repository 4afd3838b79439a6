package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/server/servertest"
	"github.com/usine-project/usine/internal/store"
)

const wait = 20 * time.Second

func running(j store.Job) bool { return j.State == model.JobRunning }

func spec(project string, accels int) api.JobSpec {
	return api.JobSpec{Project: project, Accelerators: accels, Limit: 600, Task: model.Task{Script: "#!/bin/sh\necho hi\n"}}
}

func TestSubmitStartsAJobThatFits(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	jobs, err := env.Admin.Submit(ctx, spec("default", 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID == "" || jobs[0].State != model.JobPending || jobs[0].User != "admin" {
		t.Fatalf("submit answered %+v; want one pending job of admin with an ID", jobs)
	}
	j := env.WaitJob(t, jobs[0].ID, wait, running)
	if got := j.Alloc; len(got) != 1 || got[0].Accelerators != 4 {
		t.Errorf("alloc = %+v; want 4 accelerators on one node", got)
	}
	if j.Epoch != 1 {
		t.Errorf("epoch = %d after the first start; want 1", j.Epoch)
	}
	ev, err := env.Admin.Events(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	if !strings.Contains(strings.Join(kinds, ","), "started") {
		t.Errorf("events = %v; want a started event", kinds)
	}
}

func TestGangWaitsForResourcesWithAReason(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{}) // laptop: 4 nodes × 8
	ctx := context.Background()
	big := spec("default", 0)
	big.Nodes, big.AcceleratorsPerNode = 4, 8
	first, err := env.Admin.Submit(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	env.WaitJob(t, first[0].ID, wait, running)
	second, err := env.Admin.Submit(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	j := env.WaitJob(t, second[0].ID, wait, func(j store.Job) bool { return j.Reason != "" })
	if j.State != model.JobPending || j.Reason != "Resources" {
		t.Errorf("second gang: state %s reason %q; want pending, Resources", j.State, j.Reason)
	}
	// Cancelling the first frees the cluster for the second.
	if _, err := env.Admin.JobAction(ctx, first[0].ID, "cancel", nil); err != nil {
		t.Fatal(err)
	}
	env.WaitJob(t, second[0].ID, wait, running)
}

// An array with a throttle (0-3%1) runs one element at a time, the others
// waiting with Slurm's reason; a throttle of nothing is refused.
func TestAThrottledArrayRunsOneElementAtATime(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	arr := spec("default", 1)
	arr.Array = "0-3%1"
	jobs, err := env.Admin.Submit(ctx, arr)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 4 || jobs[3].ArrayThrottle != 1 {
		t.Fatalf("submit answered %d jobs, the last throttled to %d; want 4 throttled to 1", len(jobs), jobs[len(jobs)-1].ArrayThrottle)
	}
	env.WaitJob(t, jobs[0].ID, wait, running)
	for _, j := range jobs[1:] {
		w := env.WaitJob(t, j.ID, wait, func(j store.Job) bool { return j.Reason != "" })
		if w.State != model.JobPending || w.Reason != "JobArrayTaskLimit" {
			t.Errorf("element %d is %s (%s); want pending with JobArrayTaskLimit", w.ArrayIndex, w.State, w.Reason)
		}
	}
	arr.Array = "0-3%0"
	if _, err := env.Admin.Submit(ctx, arr); !strings.Contains(fmt.Sprint(err), "throttle") {
		t.Errorf("array 0-3%%0: %v; want an error about the throttle", err)
	}
}

func TestArraysAndBatchesCommitTogether(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	arr := spec("default", 1)
	arr.Array = "1-5:2,8"
	arr.Held = true
	jobs, err := env.Admin.Submit(ctx, arr)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, j := range jobs {
		idx = append(idx, j.ArrayIndex)
		if j.ArrayID != jobs[0].ID {
			t.Errorf("job %s has array ID %q; want the first element's ID %s", j.ID, j.ArrayID, jobs[0].ID)
		}
	}
	if diff := cmp.Diff([]int{1, 3, 5, 8}, idx); diff != "" {
		t.Errorf("array indices (-want +got):\n%s", diff)
	}
	batch, err := env.Admin.Submit(ctx, spec("default", 1), spec("default", 2), spec("default", 3))
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 3 {
		t.Fatalf("batch of 3 answered %d jobs", len(batch))
	}
	page, err := env.Admin.Jobs(ctx, api.JobQuery{Array: jobs[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 {
		t.Errorf("listing the array gives %d jobs; want 4", len(page.Items))
	}
	held := env.WaitJob(t, jobs[0].ID, wait, func(j store.Job) bool { return j.Reason != "" })
	if held.Reason != "JobHeldUser" {
		t.Errorf("held job reason %q; want JobHeldUser", held.Reason)
	}
	if _, err := env.Admin.JobAction(ctx, jobs[0].ID, "release", nil); err != nil {
		t.Fatal(err)
	}
	env.WaitJob(t, jobs[0].ID, wait, running)
}

func TestJobActionsFollowTheJobsState(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	jobs, err := env.Admin.Submit(ctx, spec("default", 1))
	if err != nil {
		t.Fatal(err)
	}
	id := jobs[0].ID
	env.WaitJob(t, id, wait, running)
	// With every node drained, a requeued job stays queued.
	nodes, err := env.Admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := env.Admin.Drain(ctx, n.Name, "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		action   string
		wantCode string // "" = allowed
		want     model.JobState
	}{
		{"hold", api.CodeConflict, model.JobRunning},
		{"release", api.CodeConflict, model.JobRunning},
		{"requeue", "", model.JobPending},
		{"cancel", "", model.JobCancelled},
		{"cancel", api.CodeConflict, model.JobCancelled},
		{"requeue", "", model.JobPending},
		{"hold", "", model.JobPending},
	} {
		j, err := env.Admin.JobAction(ctx, id, tc.action, nil)
		var e *api.Error
		switch {
		case tc.wantCode == "" && err != nil:
			t.Fatalf("%s: %v", tc.action, err)
		case tc.wantCode != "" && (!errors.As(err, &e) || e.Code != tc.wantCode):
			t.Fatalf("%s: err %v; want code %s", tc.action, err, tc.wantCode)
		case tc.wantCode == "" && j.State != tc.want:
			t.Fatalf("%s: state %s; want %s", tc.action, j.State, tc.want)
		}
	}
	if j, _ := env.Admin.Job(ctx, id); !j.Held || j.Requeues != 2 {
		t.Errorf("after the actions: held %v requeues %d; want held, 2 requeues", j.Held, j.Requeues)
	}
}

func TestDrainedNodesGetNoNewWork(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	nodes, err := env.Admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if _, err := env.Admin.Drain(ctx, n.Name, "maintenance"); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for range 3 {
		jobs, err := env.Admin.Submit(ctx, spec("default", 4))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, jobs[0].ID)
	}
	env.WaitJob(t, ids[1], wait, running)
	third := env.WaitJob(t, ids[2], wait, func(j store.Job) bool { return j.Reason != "" })
	if third.State != model.JobPending {
		t.Fatalf("third job %s; want pending: only one node is open", third.State)
	}
	for _, id := range ids[:2] {
		j, _ := env.Admin.Job(ctx, id)
		if j.Alloc[0].Node != nodes[0].Name {
			t.Errorf("job %s runs on %s; want %s, the only open node", id, j.Alloc[0].Node, nodes[0].Name)
		}
	}
	if _, err := env.Admin.Resume(ctx, nodes[1].Name); err != nil {
		t.Fatal(err)
	}
	env.WaitJob(t, ids[2], wait, running)
}

func TestEstimateSaysWhenAndWhere(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	est, err := env.Admin.Estimate(ctx, spec("default", 8))
	if err != nil {
		t.Fatal(err)
	}
	if !est.Start || len(est.Nodes) != 1 {
		t.Errorf("estimate on an idle cluster = %+v; want start now on one node", est)
	}
	full := spec("default", 0)
	full.Nodes, full.AcceleratorsPerNode, full.Limit = 4, 8, 3600
	jobs, err := env.Admin.Submit(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	j := env.WaitJob(t, jobs[0].ID, wait, running)
	est, err = env.Admin.Estimate(ctx, spec("default", 8))
	if err != nil {
		t.Fatal(err)
	}
	if est.Start || est.EstStart != j.Start+3600 || est.Reason != "Resources" {
		t.Errorf("estimate on a full cluster = %+v; want a start at %d (when the running job's limit ends), reason Resources", est, j.Start+3600)
	}
	if n, _ := env.Admin.Jobs(ctx, api.JobQuery{}); len(n.Items) != 1 {
		t.Errorf("a dry run left %d jobs; want only the real one", len(n.Items))
	}
}

// rawDo sends a raw body and decodes the error answer.
func rawDo(t *testing.T, env *servertest.Env, method, path, token, body string) (int, api.Error) {
	t.Helper()
	req, _ := http.NewRequest(method, env.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d with a body that is not a JSON error: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e
}

func TestBadRequestsGetAClearError(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	tok := env.AdminToken
	task := `"task":{"script":"echo"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		wantStatus                      int
		wantCode, wantField             string
	}{
		{"no token", "GET", "/api/v1/jobs", "", "", 401, api.CodeUnauthorized, ""},
		{"unknown token", "GET", "/api/v1/jobs", "usine_nope", "", 401, api.CodeUnauthorized, ""},
		{"malformed JSON", "POST", "/api/v1/jobs", tok, `{"project":`, 400, api.CodeBadRequest, ""},
		{"empty body", "POST", "/api/v1/jobs", tok, ``, 400, api.CodeBadRequest, ""},
		{"unknown field", "POST", "/api/v1/jobs", tok, `{"project":"default","gpus":4,` + task + `}`, 400, api.CodeInvalidField, "gpus"},
		{"wrong type", "POST", "/api/v1/jobs", tok, `{"project":"default","nodes":"two",` + task + `}`, 400, api.CodeInvalidField, "nodes"},
		{"missing project", "POST", "/api/v1/jobs", tok, `{"accelerators":1,` + task + `}`, 400, api.CodeInvalidField, "project"},
		{"unknown project", "POST", "/api/v1/jobs", tok, `{"project":"nope",` + task + `}`, 400, api.CodeInvalidField, "project"},
		{"nothing to run", "POST", "/api/v1/jobs", tok, `{"project":"default"}`, 400, api.CodeInvalidField, "task"},
		{"negative nodes", "POST", "/api/v1/jobs", tok, `{"project":"default","nodes":-1,` + task + `}`, 400, api.CodeInvalidField, "nodes"},
		{"bad array", "POST", "/api/v1/jobs", tok, `{"project":"default","array":"5-1",` + task + `}`, 400, api.CodeInvalidField, "array"},
		{"huge array", "POST", "/api/v1/jobs", tok, `{"project":"default","array":"0-99999",` + task + `}`, 413, api.CodeTooLarge, "array"},
		{"unknown QoS", "POST", "/api/v1/jobs", tok, `{"project":"default","qos":"gold",` + task + `}`, 400, api.CodeInvalidField, "qos"},
		{"missing dependency", "POST", "/api/v1/jobs", tok, `{"project":"default","deps":[{"type":"afterok","job_id":"999"}],` + task + `}`, 400, api.CodeInvalidField, "deps"},
		{"streamed output with a file", "POST", "/api/v1/jobs", tok, `{"project":"default","task":{"script":"true","stream_output":true,"stdout":"x.out"}}`, 400, api.CodeInvalidField, "task.stream_output"},
		{"bad open mode", "POST", "/api/v1/jobs", tok, `{"project":"default","task":{"script":"true","open_mode":"overwrite"}}`, 400, api.CodeInvalidField, "task.open_mode"},
		{"batch names the element", "POST", "/api/v1/jobs", tok, `{"jobs":[{"project":"default",` + task + `},{"project":"default","cpus":-2,` + task + `}]}`, 400, api.CodeInvalidField, "jobs[1].cpus"},
		{"long name", "POST", "/api/v1/jobs", tok, `{"project":"default","name":"` + strings.Repeat("x", 200) + `",` + task + `}`, 400, api.CodeInvalidField, "name"},
		{"two values", "POST", "/api/v1/jobs", tok, `{"project":"default",` + task + `}{}`, 400, api.CodeBadRequest, ""},
		{"too large", "POST", "/api/v1/jobs", tok, `{"project":"default","task":{"script":"` + strings.Repeat("x", 9<<20) + `"}}`, 413, api.CodeTooLarge, ""},
		{"unknown job", "GET", "/api/v1/jobs/424242", tok, "", 404, api.CodeNotFound, "id"},
		{"bad page size", "GET", "/api/v1/jobs?limit=100000", tok, "", 400, api.CodeInvalidField, "limit"},
		{"bad state filter", "GET", "/api/v1/jobs?state=sleeping", tok, "", 400, api.CodeInvalidField, "state"},
		{"no such route", "GET", "/api/v1/gpus", tok, "", 404, api.CodeNotFound, ""},
		{"unknown signal", "POST", "/api/v1/jobs/424242/cancel", tok, `{"signal":"WAKEUP"}`, 400, api.CodeInvalidField, "signal"},
		{"whom without a signal", "POST", "/api/v1/jobs/424242/cancel", tok, `{"to":"batch"}`, 400, api.CodeInvalidField, "to"},
		{"unknown whom", "POST", "/api/v1/jobs/424242/cancel", tok, `{"signal":"USR1","to":"steps"}`, 400, api.CodeInvalidField, "to"},
		{"drain without reason", "POST", "/api/v1/nodes/gpu001/drain", tok, `{}`, 400, api.CodeInvalidField, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := rawDo(t, env, tc.method, tc.path, tc.token, tc.body)
			if status != tc.wantStatus || e.Code != tc.wantCode || e.Field != tc.wantField || e.Message == "" {
				t.Errorf("got %d %+v; want %d code %s field %q and a message", status, e, tc.wantStatus, tc.wantCode, tc.wantField)
			}
		})
	}
}

func TestRateLimitPerToken(t *testing.T) {
	t.Parallel()
	frozen := time.Unix(1_800_000_000, 0)
	env := servertest.Start(t, servertest.Options{Config: server.Config{RateLimit: 5, Now: func() time.Time { return frozen }}})
	limited := 0
	for range 20 {
		status, e := rawDo(t, env, "GET", "/api/v1/whoami", env.AdminToken, "")
		if status == http.StatusTooManyRequests {
			limited++
			if e.Code != api.CodeRateLimited {
				t.Errorf("429 with code %q", e.Code)
			}
		}
	}
	// The clock is frozen: the bucket holds 2×5 and never refills.
	if limited != 10 {
		t.Errorf("%d of 20 requests were limited; want 10 (bursts of 10 at 5/s)", limited)
	}
}

func TestStateChangesAreAudited(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	if _, err := env.Admin.Submit(ctx, spec("default", 1)); err != nil {
		t.Fatal(err)
	}
	rawDo(t, env, "POST", "/api/v1/jobs", "usine_bad", "{}")
	var out api.Audit
	if err := env.Admin.Do(ctx, "GET", "/api/v1/audit", nil, &out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out.Items {
		got = append(got, e.Actor+" "+e.Action+" "+http.StatusText(e.Status))
		if e.Remote == "" || e.Time == 0 {
			t.Errorf("audit entry %+v lacks where or when", e)
		}
	}
	want := []string{"admin POST /api/v1/jobs Created", " POST /api/v1/jobs Unauthorized"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}

func TestMetricsAreExposed(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	jobs, err := env.Admin.Submit(ctx, spec("default", 1))
	if err != nil {
		t.Fatal(err)
	}
	env.WaitJob(t, jobs[0].ID, wait, running)
	wants := []string{
		"usine_scheduler_pass_duration_seconds_bucket",
		"usine_scheduler_jobs_examined_bucket",
		"usine_scheduler_decisions_total{kind=\"start\"} 1",
		"usine_jobs_submitted_total 1",
		`usine_api_request_duration_seconds_count{code="201",route="POST /api/v1/jobs"} 1`,
		"usine_jobs{partition=",
		`usine_accelerators{state="idle"}`,
	}
	// The loop counts a pass's decisions once it has committed them: a
	// client may see the job running a moment before.
	var missing []string
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(env.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = slices.DeleteFunc(slices.Clone(wants), func(w string) bool { return bytes.Contains(b, []byte(w)) })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range missing {
		t.Errorf("/metrics lacks %q", w)
	}
}
