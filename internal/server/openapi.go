package server

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// op documents one API operation. Its schemas come from the Go types the
// handlers decode and encode, so the document cannot drift from them.
type op struct {
	summary string
	in      any // request body type, nil for none
	out     any // 2xx answer type, nil for none
	status  int // 2xx status; 0 = 200
	query   []string
}

var listQuery = []string{"state", "project", "user", "partition", "array", "name", "id", "after", "limit"}

// operations documents every route of apiRoutes, keyed "METHOD path"; a
// test checks that both lists name the same routes.
var operations = withGrantOps(map[string]op{ // + the grants API (grants.go)
	"GET /api/v1/openapi.json":                      {summary: "This document", out: map[string]any{}},
	"GET /api/v1/whoami":                            {summary: "Who the token belongs to and their roles", out: api.Whoami{}},
	"POST /api/v1/jobs":                             {summary: "Submit one job, a job array, or several jobs in one transaction", in: api.SubmitRequest{}, out: api.Jobs{}, status: 201},
	"GET /api/v1/jobs":                              {summary: "List jobs you may see, filtered and paged (pass next as after)", out: api.Jobs{}, query: listQuery},
	"POST /api/v1/jobs/estimate":                    {summary: "Dry run: when and where a job would start, without submitting it", in: api.JobSpec{}, out: api.Estimate{}},
	"GET /api/v1/jobs/{id}":                         {summary: "One job", out: store.Job{}},
	"GET /api/v1/jobs/{id}/events":                  {summary: "A job's history", out: api.Events{}},
	"POST /api/v1/jobs/{id}/cancel":                 {summary: "Cancel a job, or send a running job a signal", in: api.CancelRequest{}, out: store.Job{}},
	"POST /api/v1/jobs/{id}/hold":                   {summary: "Keep a pending job from starting", out: store.Job{}},
	"POST /api/v1/jobs/{id}/release":                {summary: "Let a held job start again", out: store.Job{}},
	"POST /api/v1/jobs/{id}/requeue":                {summary: "Put a running or ended job back in the queue", out: store.Job{}},
	"GET /api/v1/sites":                             {summary: "Sites", out: itemsOf[model.Site]{}},
	"PUT /api/v1/sites/{name}":                      {summary: "Declare a site (operator)", in: model.Site{}, out: model.Site{}},
	"GET /api/v1/partitions":                        {summary: "Partitions", out: itemsOf[model.Partition]{}},
	"PUT /api/v1/partitions/{name}":                 {summary: "Declare a partition, or close it with down (operator)", in: model.Partition{}, out: model.Partition{}},
	"GET /api/v1/nodes":                             {summary: "Nodes and what runs on them", out: api.Nodes{}},
	"GET /api/v1/nodes/{name}":                      {summary: "One node", out: api.NodeView{}},
	"PUT /api/v1/nodes/{name}":                      {summary: "Declare a node (operator)", in: model.Node{}, out: store.Node{}},
	"POST /api/v1/nodes/{name}/drain":               {summary: "Stop new work on a node, with a reason (operator)", in: api.NodeState{}, out: store.Node{}},
	"POST /api/v1/nodes/{name}/resume":              {summary: "Open a drained node again (operator)", out: store.Node{}},
	"GET /api/v1/projects":                          {summary: "Projects you belong to (all, for admins, operators and officers)", out: api.Projects{}},
	"PUT /api/v1/projects/{name}":                   {summary: "Create or change a project (admin, officer, or a manager of its parent)", in: model.Project{}, out: model.Project{}},
	"GET /api/v1/projects/{name}/members":           {summary: "A project's members", out: api.Members{}},
	"PUT /api/v1/projects/{name}/members/{user}":    {summary: "Give a user a role in a project (\"-\" = site-wide)", in: store.Member{}, out: store.Member{}},
	"DELETE /api/v1/projects/{name}/members/{user}": {summary: "Take a user's role away", status: 204},
	"POST /api/v1/tokens":                           {summary: "Create an API token; the secret is shown once", in: api.TokenRequest{}, out: api.NewToken{}, status: 201},
	"GET /api/v1/tokens":                            {summary: "Your tokens (admins: ?user=)", out: api.Tokens{}, query: []string{"user"}},
	"DELETE /api/v1/tokens/{id}":                    {summary: "Delete a token", status: 204},
	"GET /api/v1/audit":                             {summary: "The audit log of state-changing requests (admin)", out: api.Audit{}, query: []string{"after", "limit"}},
	"GET /api/v1/scheduler":                         {summary: "The scheduler loop: leader, passes, last pass's statistics", out: LoopState{}},
	"GET /api/v1/jobs/{id}/log":                     {summary: "A rank's output (text), read from its node's agent; follow=1 streams it", query: []string{"rank", "follow", "offset"}},
	"POST /api/v1/agents/{node}/register":           {summary: "An agent registers its node as discovered (operator)", in: api.Registration{}, out: store.Node{}},
	"GET /api/v1/agents/{node}/orders":              {summary: "The node's orders, one JSON line each time they change (operator)", out: api.Orders{}},
	"POST /api/v1/agents/{node}/report":             {summary: "An agent's heartbeat, ended ranks and health (operator)", in: api.Report{}, status: 204},
})

type itemsOf[T any] struct {
	Items []T `json:"items"`
}

// openapi serves the OpenAPI 3 document of the API.
func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, openAPIDoc(s.apiRoutes()))
	return nil
}

func openAPIDoc(routes []route) map[string]any {
	paths := map[string]any{}
	errResp := map[string]any{"description": "Error", "content": jsonContent(schemaOf(reflect.TypeFor[api.Error]()))}
	for _, rt := range routes {
		o, ok := operations[rt.method+" "+rt.path]
		if !ok {
			continue // the test reports it
		}
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		status := o.status
		if status == 0 {
			status = 200
		}
		ok2xx := map[string]any{"description": http.StatusText(status)}
		if o.out != nil {
			ok2xx["content"] = jsonContent(schemaOf(reflect.TypeOf(o.out)))
		}
		operation := map[string]any{
			"summary":   o.summary,
			"responses": map[string]any{strconv.Itoa(status): ok2xx, "4XX": errResp, "5XX": errResp},
		}
		if rt.access != public {
			operation["security"] = []any{map[string]any{"bearer": []any{}}}
		}
		var params []any
		for _, seg := range strings.Split(rt.path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		for _, q := range o.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			operation["parameters"] = params
		}
		if o.in != nil {
			operation["requestBody"] = map[string]any{"required": true, "content": jsonContent(schemaOf(reflect.TypeOf(o.in)))}
		}
		item[strings.ToLower(rt.method)] = operation
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "usine", "version": "1", "description": "The control plane of an AI factory: jobs, nodes, projects, tokens."},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]any{"type": "http", "scheme": "bearer"},
		}},
	}
}

func jsonContent(schema map[string]any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

// schemaOf describes a Go type as encoding/json writes it.
func schemaOf(t reflect.Type) map[string]any {
	return schemaDepth(t, 0)
}

func schemaDepth(t reflect.Type, depth int) map[string]any {
	if depth > 8 {
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaDepth(t.Elem(), depth)
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": schemaDepth(t.Elem(), depth+1)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaDepth(t.Elem(), depth+1)}
	case reflect.Struct:
		props := map[string]any{}
		addFields(t, props, depth)
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

// addFields adds t's JSON fields to props, flattening embedded structs as
// encoding/json does.
func addFields(t reflect.Type, props map[string]any, depth int) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addFields(f.Type, props, depth)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaDepth(f.Type, depth+1)
	}
}
