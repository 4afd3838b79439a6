package agent

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
)

// Handler serves GET /logs/{job}?epoch=E&rank=R[&follow=1][&offset=N]:
// the output file of one of the agent's runs, for the server's log proxy.
// It trusts the server alone: a read needs a ticket that the server signs
// for the one rank it allows a caller to read (api.LogTicket).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs/{job}", a.serveLog)
	mux.HandleFunc("POST /steps/{job}", a.serveStep) // srun (steps.go)
	return mux
}

// Mux serves several agents' logs on one listener, under
// /nodes/{node}/logs/{job}: emulated nodes in one process share it.
// Give each agent AgentURL = base + "/nodes/" + its node name.
func Mux(agents []*Agent) http.Handler {
	byNode := make(map[string]*Agent, len(agents))
	for _, a := range agents {
		byNode[a.Node()] = a
	}
	// node hands a request to the agent of the node in its path.
	node := func(serve func(*Agent, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a := byNode[r.PathValue("node")]
			if a == nil {
				logError(w, http.StatusNotFound, api.CodeNotFound, "no agent for node %s here", r.PathValue("node"))
				return
			}
			serve(a, w, r)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nodes/{node}/logs/{job}", node((*Agent).serveLog))
	mux.HandleFunc("POST /nodes/{node}/steps/{job}", node((*Agent).serveStep))
	return mux
}

func logError(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (a *Agent) serveLog(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	q := r.URL.Query()
	epoch, err1 := strconv.ParseInt(q.Get("epoch"), 10, 64)
	rank, err2 := strconv.Atoi(q.Get("rank"))
	offset, err3 := strconv.ParseInt(cmp.Or(q.Get("offset"), "0"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || offset < 0 {
		logError(w, http.StatusBadRequest, api.CodeBadRequest, "give epoch, rank and optionally offset as non-negative integers")
		return
	}
	if err := a.mayRead(r.Header.Get("Authorization"), job, epoch, rank); err != nil {
		var e *api.Error
		errors.As(err, &e)
		logError(w, e.Status, e.Code, "%s", e.Message)
		return
	}
	a.mu.Lock()
	rn := a.runs[runKey{job, epoch, rank}]
	var path string
	var done chan struct{}
	if rn != nil {
		path, done = rn.rec.Stdout, rn.done
	}
	a.mu.Unlock()
	if rn == nil || path == "" {
		logError(w, http.StatusNotFound, api.CodeNotFound, "node %s has no output of job %s rank %d (epoch %d): it never ran here, or its record was forgotten", a.cfg.Node.Name, job, rank, epoch)
		return
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		logError(w, http.StatusNotFound, api.CodeNotFound, "the output file %s of job %s is gone from node %s", path, job, a.cfg.Node.Name)
		return
	} else if err != nil {
		logError(w, http.StatusInternalServerError, api.CodeInternal, "read the output of job %s: %v", job, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if q.Get("follow") != "1" {
		done = closedChan // what is there now, then stop
	}
	fw := flushWriter{w: w}
	fw.f, _ = w.(http.Flusher)
	if _, err := launch.Follow(r.Context(), path, offset, fw, done); err != nil && r.Context().Err() == nil {
		a.log.Debug("agent: serve a log", "job", job, "err", err)
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// flushWriter sends what a followed log gets at once.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

// mayRead checks the log ticket in auth against this node's log key: the
// server's log proxy signs one for each read it allows (api.LogTicket).
func (a *Agent) mayRead(auth, job string, epoch int64, rank int) error {
	ticket, ok := strings.CutPrefix(auth, api.TicketScheme)
	if !ok {
		return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "no log ticket: logs are read through the server (usine logs JOB)"}
	}
	a.mu.Lock()
	key := a.orders.LogKey
	a.mu.Unlock()
	if err := api.CheckLogTicket(key, ticket, job, epoch, rank, time.Now().Unix(), ticketSkew); err != nil {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()}
	}
	return nil
}

// ticketSkew is how far the node's clock may be behind the server's.
const ticketSkew = 60
