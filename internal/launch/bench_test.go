package launch_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

// BenchmarkStart measures Start: from the call to the job running (the
// supervisor started, recorded, and the job's process started), then its
// end. go test -run XXX -bench Start ./internal/launch
func BenchmarkStart(b *testing.B) {
	l, err := launch.New(launch.Config{StateDir: b.TempDir(), NoCgroup: true})
	if err != nil {
		b.Fatal(err)
	}
	work := b.TempDir()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		p, err := l.Start(ctx, launch.Spec{JobID: "b" + strconv.Itoa(i), NumNodes: 1, Task: model.Task{Command: []string{"/bin/true"}, WorkDir: work}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := p.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		if err := p.Forget(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
