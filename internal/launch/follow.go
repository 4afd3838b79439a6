package launch

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// followPoll is how often Follow looks for appended data.
const followPoll = 100 * time.Millisecond

// Follow copies the file at path from offset to w, then keeps copying
// what is appended to it, looking every 100 ms, until done is closed (it
// then copies what was written last and returns nil) or ctx ends (it
// returns ctx's error). A nil done follows until ctx ends. It returns the
// offset it reached, for a caller that resumes. The file must exist.
func Follow(ctx context.Context, path string, offset int64, w io.Writer, done <-chan struct{}) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return offset, fmt.Errorf("follow output: %w", err)
	}
	defer f.Close()
	if offset < 0 {
		return offset, fmt.Errorf("follow %s from offset %d: give 0 or more", path, offset)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, fmt.Errorf("follow %s from offset %d: %w", path, offset, err)
	}
	pos := offset
	drain := func() error {
		n, err := io.Copy(w, f)
		pos += n
		if err != nil {
			return fmt.Errorf("follow %s: %w", path, err)
		}
		return nil
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		if err := drain(); err != nil {
			return pos, err
		}
		select {
		case <-done:
			return pos, drain()
		case <-ctx.Done():
			return pos, ctx.Err()
		case <-t.C:
		}
	}
}
