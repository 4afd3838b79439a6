package sched_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScriptRoundTrip: printing a parsed script gives the file back, so
// that -update rewrites only expected outputs, never comments or commands.
func TestScriptRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseScript(f, string(data))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(data), s.String()); diff != "" {
			t.Errorf("%s does not print back as read (-file +printed):\n%s", f, diff)
		}
	}
}

func TestParseScript(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		wantErr    bool
		wantBlocks int
		wantOut    []string
	}{
		{name: "one block", text: "# c\ncluster nodes=1\n----\nok\n", wantBlocks: 1, wantOut: []string{"ok"}},
		{name: "empty output", text: "# c\nplan\n----\n\nqueue\n----\nempty\n", wantBlocks: 2},
		{name: "commands without ----", text: "# c\ncluster nodes=1\n", wantErr: true},
		{name: "blank line inside commands", text: "# c\ncluster nodes=1\n\nplan\n----\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseScript("x.txt", tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(s.blocks) != tc.wantBlocks {
				t.Fatalf("%d blocks, want %d", len(s.blocks), tc.wantBlocks)
			}
			if diff := cmp.Diff(tc.wantOut, s.blocks[0].want); diff != "" {
				t.Errorf("first output (-want +got):\n%s", diff)
			}
			if s.String() != tc.text {
				t.Errorf("prints back as %q, want %q", s.String(), tc.text)
			}
		})
	}
}
