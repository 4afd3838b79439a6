package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestChildrenCanTrapAHangupIgnoredByUsine: started with SIGHUP ignored
// (nohup), usine still starts its processes with the default, so a
// job's shell can trap it. The test binary plays usine: run again under
// a shell that ignores SIGHUP, it calls unignoreHangups and starts a
// shell that traps SIGHUP and sends it to itself.
func TestChildrenCanTrapAHangupIgnoredByUsine(t *testing.T) {
	if os.Getenv("USINE_TEST_HANGUP_CHILD") == "1" {
		if os.Getenv("USINE_TEST_UNIGNORE") == "1" {
			unignoreHangups()
		}
		out, _ := exec.Command("/bin/sh", "-c", `trap 'echo trapped; exit 0' HUP; kill -HUP $$; echo ignored`).CombinedOutput()
		os.Stdout.Write(out)
		return
	}
	run := func(unignore string) string {
		cmd := exec.Command("/bin/sh", "-c", `trap '' HUP; exec "$0" -test.run '^TestChildrenCanTrapAHangupIgnoredByUsine$'`, os.Args[0])
		cmd.Env = append(os.Environ(), "USINE_TEST_HANGUP_CHILD=1", "USINE_TEST_UNIGNORE="+unignore)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child: %v\n%s", err, out)
		}
		return string(out)
	}
	// Without it the job's shell cannot trap the signal: the test sees what
	// it guards against.
	if out := run("0"); !strings.Contains(out, "ignored") {
		t.Fatalf("without unignoreHangups the job's shell said %q; want it unable to trap SIGHUP", out)
	}
	if out := run("1"); !strings.Contains(out, "trapped") {
		t.Errorf("the job's shell said %q; want it to trap the SIGHUP usine ignores", out)
	}
}
