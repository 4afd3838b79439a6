package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Output formats of the listing commands.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
)

// output is the -o flag of a listing command.
type output struct {
	format    string
	noHeaders bool
}

func (o *output) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", formatTable, "output format: table, wide (more columns) or json (the API's objects, stable for scripts)")
	cmd.Flags().BoolVar(&o.noHeaders, "no-headers", false, "leave out the header line of tables")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatTable, formatWide, formatJSON}, cobra.ShellCompDirectiveNoFileComp))
}

// check fails on an unknown format, before the command asks the server
// anything.
func (o *output) check() error {
	switch o.format {
	case formatTable, formatWide, formatJSON:
		return nil
	}
	return &UsageError{fmt.Errorf("-o %q: use table, wide or json", o.format)}
}

func (o *output) wide() bool { return o.format == formatWide }
func (o *output) json() bool { return o.format == formatJSON }

// writeJSON prints v as indented JSON, as the API would answer.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

// newTable starts a table with a header line, unless noHeaders.
func (o *output) table(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if !o.noHeaders {
		t.row(header...)
	}
	return t
}

// row adds a line; tabs and newlines in cells would break the columns,
// so they become spaces.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fmtDuration prints seconds for people: "45s", "2m13s", "3h02m05s", and
// "1-02:03:04" from a day on, as Slurm prints long times.
func fmtDuration(secs int64) string {
	if secs < 0 {
		secs = 0
	}
	d, h, m, s := secs/86400, secs/3600%24, secs/60%60, secs%60
	switch {
	case d > 0:
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// fmtTime prints a Unix time in local time: the clock alone today, the
// day and clock within a year, the date otherwise. 0 prints as "-".
func fmtTime(unix int64, now time.Time) string {
	if unix <= 0 {
		return "-"
	}
	t := time.Unix(unix, 0).In(now.Location())
	ty, tm, td := t.Date()
	ny, nm, nd := now.Date()
	switch {
	case ty == ny && tm == nm && td == nd:
		return t.Format("15:04:05")
	case t.Sub(now).Abs() < 180*24*time.Hour:
		return t.Format("Jan 02 15:04")
	}
	return t.Format("2006-01-02")
}

// fmtFullTime prints a Unix time in local time, whole, for details.
func fmtFullTime(unix int64) string {
	if unix <= 0 {
		return "-"
	}
	return time.Unix(unix, 0).Local().Format("2006-01-02 15:04:05 MST")
}

// fmtRelative says how far a time is from now: "in 2h03m", "5m ago".
func fmtRelative(unix int64, now time.Time) string {
	d := unix - now.Unix()
	if d >= 0 {
		return "in " + fmtDuration(d)
	}
	return fmtDuration(-d) + " ago"
}

// fmtMiB prints a memory size in mebibytes with the largest whole unit.
func fmtMiB(mib int64) string {
	switch {
	case mib <= 0:
		return "-"
	case mib%(1<<20) == 0:
		return strconv.FormatInt(mib>>20, 10) + "T"
	case mib%(1<<10) == 0:
		return strconv.FormatInt(mib>>10, 10) + "G"
	}
	return strconv.FormatInt(mib, 10) + "M"
}

// dash prints "-" for an empty cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// compactIDs writes numeric job IDs as ranges: "12-15,18". IDs that are not
// numbers are listed as they are.
func compactIDs(ids []string) string {
	nums := make([]int64, 0, len(ids))
	var other []string
	for _, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != id {
			other = append(other, id)
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.FormatInt(nums[i], 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", nums[i], nums[j]))
		}
		i = j + 1
	}
	return strings.Join(append(parts, other...), ",")
}
