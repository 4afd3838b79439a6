package agent

import (
	"os"
	"testing"

	"github.com/usine-project/usine/internal/launch"
)

// TestMain lets the test binary be the supervisor of the jobs its agents
// launch, as the usine binary is (cmd/usine hands it launch.SupervisorArg).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == launch.SupervisorArg {
		os.Exit(launch.Supervise(os.Args[2:]))
	}
	os.Exit(m.Run())
}
