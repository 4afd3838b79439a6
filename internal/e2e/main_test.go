package e2e

import (
	"os"
	"testing"

	"github.com/usine-project/usine/internal/launch"
)

// TestMain lets the test binary be the supervisor of the jobs its agents
// launch, as the usine binary is (cmd/usine hands it launch.SupervisorArg).
func TestMain(m *testing.M) {
	launch.SuperviseIfAsked()
	os.Exit(m.Run())
}
