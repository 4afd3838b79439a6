package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/api"
)

// FuzzDecodeSubmit feeds arbitrary bodies to the submit decoder and the
// checks behind it: they must answer a clear *api.Error or a spec, never
// panic or hang.
func FuzzDecodeSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"project":"p","accelerators":4,"limit_s":60,"task":{"script":"echo"}}`,
		`{"jobs":[{"project":"p","nodes":2,"accelerators_per_node":8,"task":{"command":["sh","-c","x"]}}]}`,
		`{"project":"p","array":"0-7:2,9","task":{"script":"x","env":{"A":"b"}}}`,
		`{"project":"p","deps":[{"type":"afterok","job_id":"1"}],"task":{"script":"x"}}`,
		`{"project":`, `[]`, `null`, `{"nodes":1e400}`, `{"task":{"env":{"":""}}}`, "\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req api.SubmitRequest
		err := decodeBody(strings.NewReader(body), &req)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Message == "" || e.Status < 400 || e.Status > 499 {
				t.Fatalf("decode %q: error %v is not a 4xx API error with a message", body, err)
			}
			return
		}
		for _, sp := range append(req.Jobs, req.JobSpec) {
			if err := checkTask(&sp.Task); err != nil {
				var e *api.Error
				if !errors.As(err, &e) || e.Field == "" {
					t.Fatalf("checkTask: %v does not name a field", err)
				}
			}
			if sp.Array != "" {
				idx, _, err := parseArray(sp.Array)
				if err == nil && len(idx) > maxArray {
					t.Fatalf("array %q expands to %d > %d indices", sp.Array, len(idx), maxArray)
				}
			}
		}
	})
}

// FuzzParseArray checks that array specs parse to sorted, distinct,
// bounded indices or fail with a message.
func FuzzParseArray(f *testing.F) {
	for _, seed := range []string{"0-15", "1,3,5-11:2", "5-1", "0-99999:1000", "%4", "1-2-3", ":", "7", "0-7%2", "0-3%0", "1%x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		idx, throttle, err := parseArray(spec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if throttle < 0 || (throttle > 0) != strings.Contains(spec, "%") {
			t.Fatalf("parseArray(%q) gives throttle %d", spec, throttle)
		}
		for i := range idx {
			if idx[i] < 0 || idx[i] >= maxArray || (i > 0 && idx[i] <= idx[i-1]) {
				t.Fatalf("parseArray(%q) = %v: not sorted, distinct and in [0, %d)", spec, idx, maxArray)
			}
		}
	})
}
