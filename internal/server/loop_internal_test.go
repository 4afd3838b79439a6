package server

import (
	"errors"
	"strings"
	"testing"
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
