package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Client talks to a usine server.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8642
	Token   string
	HTTP    *http.Client // nil = http.DefaultClient
}

// Do sends one request: in, when not nil, is the JSON body; out, when not
// nil, receives the JSON answer. A non-2xx answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return &UnreachableError{URL: c.BaseURL, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Code = CodeInternal
			e.Message = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return e
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return nil
}

// UnreachableError is what Do returns when no answer came back: the
// server is down, the address is wrong, or the network failed.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the usine server at %s: %v (is it running? set --server or USINE_SERVER)", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsNotFound reports whether err is the server saying "no such thing".
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeNotFound
}

// Submit submits one or more jobs in one transaction.
func (c *Client) Submit(ctx context.Context, specs ...JobSpec) ([]store.Job, error) {
	var req SubmitRequest
	if len(specs) == 1 {
		req.JobSpec = specs[0]
	} else {
		req.Jobs = specs
	}
	var out Jobs
	err := c.Do(ctx, http.MethodPost, Prefix+"/jobs", &req, &out)
	return out.Items, err
}

// JobQuery selects jobs to list.
type JobQuery struct {
	States    []string
	Projects  []string
	User      string
	Partition string
	Array     string
	Name      string
	IDs       []string
	After     string
	Limit     int
}

func (q JobQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("state", strings.Join(q.States, ","))
	set("project", strings.Join(q.Projects, ","))
	set("id", strings.Join(q.IDs, ","))
	set("user", q.User)
	set("partition", q.Partition)
	set("array", q.Array)
	set("name", q.Name)
	set("after", q.After)
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return v
}

// Jobs lists one page of jobs.
func (c *Client) Jobs(ctx context.Context, q JobQuery) (Jobs, error) {
	var out Jobs
	err := c.Do(ctx, http.MethodGet, Prefix+"/jobs?"+q.values().Encode(), nil, &out)
	return out, err
}

// AllJobs lists every job the query selects, page by page.
func (c *Client) AllJobs(ctx context.Context, q JobQuery) ([]store.Job, error) {
	var all []store.Job
	for {
		page, err := c.Jobs(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		q.After = page.Next
	}
}

// Job gets one job.
func (c *Client) Job(ctx context.Context, id string) (store.Job, error) {
	var out store.Job
	err := c.Do(ctx, http.MethodGet, Prefix+"/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// JobAction cancels, holds, releases or requeues a job ("cancel", "hold",
// "release", "requeue"); body may be nil.
func (c *Client) JobAction(ctx context.Context, id, action string, body any) (store.Job, error) {
	var out store.Job
	err := c.Do(ctx, http.MethodPost, Prefix+"/jobs/"+url.PathEscape(id)+"/"+action, body, &out)
	return out, err
}

// Estimate asks when a job would start, without submitting it.
func (c *Client) Estimate(ctx context.Context, spec JobSpec) (Estimate, error) {
	var out Estimate
	err := c.Do(ctx, http.MethodPost, Prefix+"/jobs/estimate", &spec, &out)
	return out, err
}

// Events lists a job's events.
func (c *Client) Events(ctx context.Context, id string) ([]store.Event, error) {
	var out Events
	err := c.Do(ctx, http.MethodGet, Prefix+"/jobs/"+url.PathEscape(id)+"/events", nil, &out)
	return out.Items, err
}

// Nodes lists the nodes and what runs on them.
func (c *Client) Nodes(ctx context.Context) ([]NodeView, error) {
	var out Nodes
	err := c.Do(ctx, http.MethodGet, Prefix+"/nodes", nil, &out)
	return out.Items, err
}

// Drain stops new work on a node; Resume opens it again.
func (c *Client) Drain(ctx context.Context, node, reason string) (store.Node, error) {
	var out store.Node
	err := c.Do(ctx, http.MethodPost, Prefix+"/nodes/"+url.PathEscape(node)+"/drain", &NodeState{Reason: reason}, &out)
	return out, err
}

// Resume opens a drained or down node to new work.
func (c *Client) Resume(ctx context.Context, node string) (store.Node, error) {
	var out store.Node
	err := c.Do(ctx, http.MethodPost, Prefix+"/nodes/"+url.PathEscape(node)+"/resume", nil, &out)
	return out, err
}

// Whoami says who the token belongs to and what they may do.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var out Whoami
	err := c.Do(ctx, http.MethodGet, Prefix+"/whoami", nil, &out)
	return out, err
}

// Node gets one node and what runs on it.
func (c *Client) Node(ctx context.Context, name string) (NodeView, error) {
	var out NodeView
	err := c.Do(ctx, http.MethodGet, Prefix+"/nodes/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Sites lists the sites.
func (c *Client) Sites(ctx context.Context) ([]model.Site, error) {
	var out struct {
		Items []model.Site `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, Prefix+"/sites", nil, &out)
	return out.Items, err
}

// Partitions lists the partitions.
func (c *Client) Partitions(ctx context.Context) ([]model.Partition, error) {
	var out struct {
		Items []model.Partition `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, Prefix+"/partitions", nil, &out)
	return out.Items, err
}

// Projects lists the projects the token's user may see.
func (c *Client) Projects(ctx context.Context) ([]model.Project, error) {
	var out Projects
	err := c.Do(ctx, http.MethodGet, Prefix+"/projects", nil, &out)
	return out.Items, err
}

// PutProject creates or changes a project.
func (c *Client) PutProject(ctx context.Context, p model.Project) (model.Project, error) {
	var out model.Project
	err := c.Do(ctx, http.MethodPut, Prefix+"/projects/"+url.PathEscape(p.Name), &p, &out)
	return out, err
}

// memberProject is how the path names a project: "-" for site-wide roles.
func memberProject(project string) string {
	if project == "" {
		return "-"
	}
	return url.PathEscape(project)
}

// Members lists the members of a project and their roles.
func (c *Client) Members(ctx context.Context, project string) ([]store.Member, error) {
	var out Members
	err := c.Do(ctx, http.MethodGet, Prefix+"/projects/"+memberProject(project)+"/members", nil, &out)
	return out.Items, err
}

// PutMember gives m.User the role m.Role in m.Project ("" = site-wide).
func (c *Client) PutMember(ctx context.Context, m store.Member) (store.Member, error) {
	var out store.Member
	err := c.Do(ctx, http.MethodPut, Prefix+"/projects/"+memberProject(m.Project)+"/members/"+url.PathEscape(m.User), &m, &out)
	return out, err
}

// DeleteMember takes user's role in project ("" = site-wide) away.
func (c *Client) DeleteMember(ctx context.Context, project, user string) error {
	return c.Do(ctx, http.MethodDelete, Prefix+"/projects/"+memberProject(project)+"/members/"+url.PathEscape(user), nil, nil)
}

// CreateToken makes a token; its secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (NewToken, error) {
	var out NewToken
	err := c.Do(ctx, http.MethodPost, Prefix+"/tokens", &req, &out)
	return out, err
}

// Tokens lists a user's tokens ("" = the caller's own).
func (c *Client) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	q := ""
	if user != "" {
		q = "?" + url.Values{"user": {user}}.Encode()
	}
	var out Tokens
	err := c.Do(ctx, http.MethodGet, Prefix+"/tokens"+q, nil, &out)
	return out.Items, err
}

// DeleteToken revokes a token by its ID.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, Prefix+"/tokens/"+url.PathEscape(id), nil, nil)
}
