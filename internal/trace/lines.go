package trace

import (
	"bytes"
	"fmt"
	"io"
)

// lines walks a text file line by line, counting lines from 1 and dropping
// a trailing "\r". It reads the whole input first: trace files fit in
// memory (their records take more), and knowing the line count lets readers
// size their record slice once.
type lines struct {
	data []byte
	name string
	n    int
	rerr error
}

func newLines(r io.Reader, name string) *lines {
	data, err := io.ReadAll(r)
	l := &lines{data: data, name: name}
	if err != nil {
		l.data, l.rerr = nil, fmt.Errorf("read %s: %w", name, err)
	}
	return l
}

// count is an upper bound of the lines left.
func (l *lines) count() int { return bytes.Count(l.data, []byte{'\n'}) + 1 }

// next returns the next line; ok is false at the end of the input. The
// line aliases the file's bytes.
func (l *lines) next() (line []byte, ok bool) {
	if len(l.data) == 0 {
		return nil, false
	}
	l.n++
	i := bytes.IndexByte(l.data, '\n')
	if i < 0 {
		line, l.data = l.data, nil
	} else {
		line, l.data = l.data[:i], l.data[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, true
}

// err is the read error that stopped the input, if any.
func (l *lines) err() error { return l.rerr }

// splitBytes splits b at sep into dst, without quoting rules. The parts
// alias b.
func splitBytes(dst [][]byte, b []byte, sep byte) [][]byte {
	dst = dst[:0]
	start := 0
	for i, c := range b {
		if c == sep {
			dst = append(dst, b[start:i])
			start = i + 1
		}
	}
	return append(dst, b[start:])
}

// parseCount parses a whole decimal number of at most 18 digits, optionally
// negative, from b. ok is false when b is not one.
func parseCount(b []byte) (n int64, ok bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// interner shares one string among equal byte slices (projects, users,
// states repeat on many lines).
type interner map[string]string

func (m interner) get(b []byte) string {
	if s, ok := m[string(b)]; ok {
		return s
	}
	s := string(b)
	m[s] = s
	return s
}
