package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// A panic in a pass becomes the pass's error, and the next pass starts from
// a fresh view; a pass that returns normally keeps its error as it is.
func TestAPanickingPassFailsAlone(t *testing.T) {
	l := &Loop{}
	l.v.loaded = true
	err := l.contained(func() error { panic("index out of range") })
	if err == nil || !strings.Contains(err.Error(), "scheduler pass panicked: index out of range") || !strings.Contains(err.Error(), "loop_internal_test.go") {
		t.Errorf("error %v; want the panic and its stack", err)
	}
	if l.v.loaded {
		t.Error("the view survived a panicking pass; want it rebuilt from the store")
	}
	want := errors.New("store unavailable")
	if got := l.contained(func() error { return want }); got != want {
		t.Errorf("a failing pass gave %v; want its own error", got)
	}
}

// The agents' index starts from what the loop loaded: a job it held that
// no longer ran at the loop's revision leaves it (else its node's orders
// would carry a job that ended, beside the job that took its place), and
// what this replica applied after that revision stays.
func TestTheAgentsIndexStartsFromTheLoopsLoad(t *testing.T) {
	h := &agentHub{loaded: make(chan struct{}), jobs: map[string]*store.Job{}, byNode: map[string]map[string]struct{}{},
		gone: map[string]tombstone{}, subs: map[string]map[chan struct{}]int{}}
	running := func(id string, rev int64, node string, accels int) store.Job {
		return store.Job{Job: model.Job{ID: id}, State: model.JobRunning, Rev: rev, Alloc: []store.Alloc{{Node: node, Accelerators: accels}}}
	}
	h.apply(running("ended", 5, "n1", 4))    // heard of before it ended
	h.apply(running("started", 12, "n1", 2)) // applied by this replica after the load's revision
	h.load(10, []store.Job{running("taken", 9, "n1", 5)})
	h.load(10, []store.Job{running("taken", 9, "n1", 5)}) // a reload after a failed pass
	var got []string
	for id := range h.byNode["n1"] {
		got = append(got, id)
	}
	slices.Sort(got)
	if want := []string{"started", "taken"}; !slices.Equal(got, want) {
		t.Errorf("n1 runs %v; want %v", got, want)
	}
	select {
	case <-h.loaded:
	default:
		t.Error("orders streams still wait after the load")
	}
}
