package store

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/usine-project/usine/internal/model"
)

// The computed priority and the administrator's adjustment are both on
// the wire: neither hides the other.
func TestJobJSONKeepsBothPriorities(t *testing.T) {
	in := Job{Job: model.Job{ID: "7", Project: "p", Priority: 5}, Priority: 1234, State: model.JobPending}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Job
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("job through JSON %s (-want +got):\n%s", data, diff)
	}
}
