// Package api is usine's HTTP API as both sides see it: the request and
// response bodies under /api/v1, the error body, and a client that the CLI,
// the Slurm commands and the agents use. The server lives in internal/server.
package api

import (
	"fmt"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Prefix is where every API route lives.
const Prefix = "/api/v1"

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`            // stable, for scripts: invalid_field, not_found, …
	Message string `json:"message"`         // for people: what was wrong and how to fix it
	Field   string `json:"field,omitempty"` // the offending field, as JSON names it
}

func (e *Error) Error() string {
	if e.Field != "" && e.Code == CodeInvalidField {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"   // the body or query could not be read
	CodeInvalidField = "invalid_field" // one field is wrong; Field names it
	CodeUnauthorized = "unauthorized"  // no token, or an unknown or expired one
	CodeForbidden    = "forbidden"     // the token's user may not do this
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"     // the object is not in a state that allows this
	CodeTooLarge     = "too_large"    // the body exceeds the size limit
	CodeRateLimited  = "rate_limited" // too many requests from this token; retry later
	CodeInternal     = "internal"
	CodeUnavailable  = "unavailable" // not ready (store down, starting up)
)

// JobSpec is what a client asks for when it submits a job. The server sets
// the ID, the user (from the token) and the submit time.
type JobSpec struct {
	Name                string             `json:"name,omitempty"`
	Project             string             `json:"project"`
	Partition           string             `json:"partition,omitempty"`
	Model               string             `json:"model,omitempty"`
	Nodes               int                `json:"nodes,omitempty"`
	AcceleratorsPerNode int                `json:"accelerators_per_node,omitempty"`
	Accelerators        int                `json:"accelerators,omitempty"`
	CPUs                int                `json:"cpus,omitempty"`
	MemoryMiB           int64              `json:"memory_mib,omitempty"`
	Limit               int64              `json:"limit_s,omitempty"` // 0 = the partition's default
	QoS                 string             `json:"qos,omitempty"`
	Deps                []model.Dependency `json:"deps,omitempty"`
	Preemptible         bool               `json:"preemptible,omitempty"`
	OneBlock            bool               `json:"one_block,omitempty"`
	Exclusive           bool               `json:"exclusive,omitempty"`
	Held                bool               `json:"held,omitempty"`
	Begin               int64              `json:"begin,omitempty"` // Unix seconds
	// Array makes one job per index: "0-15", "1,3,5-11:2".
	Array string     `json:"array,omitempty"`
	Task  model.Task `json:"task"`
}

// SubmitRequest is the body of POST /jobs: one spec, or several in Jobs,
// committed as one transaction.
type SubmitRequest struct {
	JobSpec
	Jobs []JobSpec `json:"jobs,omitempty"`
}

// Jobs is the answer to a submit and to a job listing.
type Jobs struct {
	Items []store.Job `json:"items"`
	Next  string      `json:"next,omitempty"` // pass as ?after= for the next page
}

// Estimate is the answer to a dry run: when the job would start.
type Estimate struct {
	Start    bool     `json:"start_now"`        // it would start at once
	EstStart int64    `json:"est_start"`        // Unix seconds; 0 = unknown
	Reason   string   `json:"reason,omitempty"` // why it would wait
	Nodes    []string `json:"nodes,omitempty"`  // where it would run (now or at EstStart)
}

// CancelRequest is the body of POST /jobs/{id}/cancel.
type CancelRequest struct {
	Signal string `json:"signal,omitempty"` // send this signal instead of ending the job
	// To is whom a batch job's signal goes to, as scancel chooses: its
	// steps' tasks ("", Slurm's default), the batch script alone
	// (store.SignalBatch, scancel --batch) or both (store.SignalFull,
	// scancel --full). Other jobs' processes get it whatever it says.
	To string `json:"to,omitempty"`
}

// NodeState is the body of POST /nodes/{name}/drain.
type NodeState struct {
	Reason string `json:"reason"`
}

// Nodes is the answer to GET /nodes.
type Nodes struct {
	Items []NodeView `json:"items"`
}

// NodeView is a node with what runs on it.
type NodeView struct {
	store.Node
	Jobs      []string `json:"jobs,omitempty"`      // running jobs
	Allocated int      `json:"allocated,omitempty"` // accelerators in use
}

// Projects is the answer to GET /projects.
type Projects struct {
	Items []model.Project `json:"items"`
}

// Members is the answer to GET /projects/{name}/members.
type Members struct {
	Items []store.Member `json:"items"`
}

// TokenRequest is the body of POST /tokens.
type TokenRequest struct {
	User    string `json:"user,omitempty"` // "" = yourself; others need admin
	Name    string `json:"name,omitempty"`
	Expires int64  `json:"expires,omitempty"` // Unix seconds; 0 = never
	// Node makes a token for that node's agent alone (operators and
	// admins only): it can act for the node and do nothing else.
	Node string `json:"node,omitempty"`
}

// NewToken is the answer to POST /tokens: the secret, shown once.
type NewToken struct {
	store.Token
	Secret string `json:"secret"`
}

// Tokens is the answer to GET /tokens.
type Tokens struct {
	Items []store.Token `json:"items"`
}

// Events is the answer to GET /jobs/{id}/events.
type Events struct {
	Items []store.Event `json:"items"`
}

// Audit is the answer to GET /audit.
type Audit struct {
	Items []store.AuditEntry `json:"items"`
}

// Whoami is the answer to GET /whoami.
type Whoami struct {
	User  string         `json:"user"`
	Roles []store.Member `json:"roles"`
}
