package trace

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Header is the first line of a usine trace CSV v1 file that is not a
// comment. Lines starting with '#' are comments; blank lines are ignored.
// Fields hold no commas, quotes or line breaks, so there is no quoting.
const Header = "id,submit_s,project,user,accelerators,nodes,runtime_s,limit_s,state"

var columns = strings.Split(Header, ",")

// WriteCSV writes records as a usine trace CSV v1 file, in the order given:
// the comments first (each as a "# " line), then the header, then one line
// per record. Nodes and Limit of 0 are written empty. Fields that are not
// CSV v1 columns (Model, Models, Milli, CPUs, MemoryMiB, Line) are dropped.
// A record that ReadCSV would refuse is an error and nothing after it is
// written.
func WriteCSV(w io.Writer, recs []Record, comments ...string) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	for _, c := range comments {
		if strings.ContainsAny(c, "\r\n") {
			return fmt.Errorf("write trace: comment %q holds a line break; give one comment per line", c)
		}
		bw.WriteString("# ")
		bw.WriteString(c)
		bw.WriteByte('\n')
	}
	bw.WriteString(Header)
	bw.WriteByte('\n')
	seen := make(map[string]struct{}, len(recs))
	var buf []byte
	for i := range recs {
		r := &recs[i]
		if field, msg := r.check(); field != "" {
			return fmt.Errorf("write trace: record %d (id %q): field %s: %s", i, r.ID, field, msg)
		}
		if _, dup := seen[r.ID]; dup {
			return fmt.Errorf("write trace: record %d: field id: %q appears twice; ids must be unique", i, r.ID)
		}
		seen[r.ID] = struct{}{}
		buf = appendRecord(buf[:0], r)
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write trace: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write trace: %w", err)
	}
	return nil
}

func appendRecord(b []byte, r *Record) []byte {
	b = append(b, r.ID...)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Submit, 10)
	b = append(b, ',')
	b = append(b, r.Project...)
	b = append(b, ',')
	b = append(b, r.User...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Accelerators), 10)
	b = append(b, ',')
	if r.Nodes > 0 {
		b = strconv.AppendInt(b, int64(r.Nodes), 10)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Runtime, 10)
	b = append(b, ',')
	if r.Limit > 0 {
		b = strconv.AppendInt(b, r.Limit, 10)
	}
	b = append(b, ',')
	b = append(b, r.State...)
	return append(b, '\n')
}

// ReadCSV reads a usine trace CSV v1 file; name is the file name errors
// give. Records come back sorted by submit time, then ID, with Line set.
// A malformed line is a *LineError naming the file, line and field, such as
//
//	trace.csv:17: field runtime_s: "abc" is not a whole number of seconds
//
// unless opt.SkipBad, which skips and counts it. A missing or wrong header
// is always an error.
func ReadCSV(r io.Reader, name string, opt ReadOptions) ([]Record, Stats, error) {
	ls := newLines(r, name)
	col := collector{opt: opt}
	strs := interner{}
	recs := make([]Record, 0, ls.count())
	ids := make(map[string]int, cap(recs)) // id → line
	var parts [][]byte
	header := false
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if !header && ls.n == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a BOM some editors add
		}
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		if !header {
			if string(b) != Header {
				return nil, col.stats, headerError(name, ls.n, string(b))
			}
			header = true
			continue
		}
		parts = splitBytes(parts, b, ',')
		rec, lerr := parseCSVLine(parts, strs)
		var err error
		recs, err = col.keep(recs, rec, lerr, ids, name, ls.n, func(first int) *LineError {
			return &LineError{Field: "id", Msg: fmt.Sprintf("%q already appears on line %d; ids must be unique", rec.ID, first)}
		})
		if err != nil {
			return nil, col.stats, err
		}
	}
	if err := ls.err(); err != nil {
		return nil, col.stats, err
	}
	if !header {
		return nil, col.stats, &LineError{File: name, Msg: fmt.Sprintf("no header line: the file is empty or all comments; a usine trace CSV v1 starts with %q", Header)}
	}
	sortRecords(recs)
	col.stats.Records = len(recs)
	return recs, col.stats, nil
}

func headerError(name string, line int, got string) error {
	msg := fmt.Sprintf("header is %q; a usine trace CSV v1 starts with the line %q", got, Header)
	if !strings.HasPrefix(got, "id,") {
		msg = fmt.Sprintf("no header line: the first line that is not a comment is %q; a usine trace CSV v1 starts with the line %q", got, Header)
	}
	return &LineError{File: name, Line: line, Msg: msg}
}

// parseCSVLine turns the fields of one data line into a record. The error
// it returns lacks File and Line.
func parseCSVLine(f [][]byte, strs interner) (Record, *LineError) {
	if len(f) != len(columns) {
		return Record{}, &LineError{Msg: fmt.Sprintf("has %d fields; want %d: %s", len(f), len(columns), Header)}
	}
	var r Record
	var err *LineError
	num := func(i int, what string, empty bool) int64 {
		if err != nil {
			return 0
		}
		if empty && len(f[i]) == 0 {
			return 0
		}
		n, ok := parseCount(f[i])
		switch {
		case !ok:
			err = &LineError{Field: columns[i], Msg: fmt.Sprintf("%q is not %s", f[i], what)}
		case n < 0:
			err = &LineError{Field: columns[i], Msg: fmt.Sprintf("%d is negative; give 0 or more", n)}
		}
		return n
	}
	r.ID = string(f[0])
	r.Project = strs.get(f[2])
	r.User = strs.get(f[3])
	r.State = strs.get(f[8])
	r.Submit = num(1, "a whole number of seconds", false)
	r.Accelerators = int(num(4, "a whole number of accelerators", false))
	r.Nodes = int(num(5, "a whole number of nodes", true))
	r.Runtime = num(6, "a whole number of seconds", false)
	r.Limit = num(7, "a whole number of seconds", true)
	if err != nil {
		return Record{}, err
	}
	if len(f[7]) > 0 && r.Limit == 0 {
		return Record{}, &LineError{Field: "limit_s", Msg: "0 is not a limit; give a positive number of seconds, or leave it empty when unknown"}
	}
	if field, msg := r.check(); field != "" {
		return Record{}, &LineError{Field: field, Msg: msg}
	}
	return r, nil
}
