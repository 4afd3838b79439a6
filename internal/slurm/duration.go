package slurm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Unlimited is the duration ParseDuration returns for UNLIMITED and
// INFINITE, and the limit the formatters print as UNLIMITED.
const Unlimited int64 = -1

// maxField bounds each number in a duration so that no sum overflows:
// 999,999,999 days is far beyond any limit.
const maxField = 999_999_999

var errDurationFormat = errors.New("use minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds, or UNLIMITED")

// ParseDuration reads a time limit in any of Slurm's --time formats and
// returns seconds: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S", or
// "UNLIMITED"/"INFINITE" (any case) for Unlimited. Like Slurm it does not
// insist that minutes and seconds stay below 60 ("90" is 90 minutes,
// "1:90:00" is 2h30). Unlike Slurm, which rounds limits up to whole
// minutes, it keeps seconds: usine counts time in seconds.
func ParseDuration(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToUpper(s) {
	case "UNLIMITED", "INFINITE":
		return Unlimited, nil
	case "":
		return 0, fmt.Errorf("time limit is empty: %w", errDurationFormat)
	}
	days := int64(0)
	rest := s
	hasDays := false
	if d, r, ok := strings.Cut(s, "-"); ok {
		n, err := durationField(s, d)
		if err != nil {
			return 0, err
		}
		days, rest, hasDays = n, r, true
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("time limit %q has too many ':' fields: %w", s, errDurationFormat)
	}
	nums := make([]int64, len(parts))
	for i, p := range parts {
		n, err := durationField(s, p)
		if err != nil {
			return 0, err
		}
		nums[i] = n
	}
	var h, m, sec int64
	switch {
	case hasDays && len(nums) == 1: // D-H
		h = nums[0]
	case hasDays && len(nums) == 2: // D-H:M
		h, m = nums[0], nums[1]
	case len(nums) == 3: // [D-]H:M:S
		h, m, sec = nums[0], nums[1], nums[2]
	case len(nums) == 2: // M:S
		m, sec = nums[0], nums[1]
	default: // M
		m = nums[0]
	}
	return ((days*24+h)*60+m)*60 + sec, nil
}

func durationField(s, f string) (int64, error) {
	if f == "" {
		return 0, fmt.Errorf("time limit %q has an empty field: %w", s, errDurationFormat)
	}
	for i := 0; i < len(f); i++ {
		if f[i] < '0' || f[i] > '9' {
			return 0, fmt.Errorf("time limit %q: %q is not a number: %w", s, f, errDurationFormat)
		}
	}
	n, err := strconv.ParseInt(f, 10, 64)
	if err != nil || n > maxField {
		return 0, fmt.Errorf("time limit %q: %s is too large", s, f)
	}
	return n, nil
}

// FormatDuration prints seconds as squeue and sinfo do: "0:00", "5:03",
// "1:02:03", "1-02:03:04". Negative values (Unlimited) print "UNLIMITED".
func FormatDuration(secs int64) string {
	if secs < 0 {
		return "UNLIMITED"
	}
	d, h, m, s := split(secs)
	switch {
	case d > 0:
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
	case h > 0:
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// FormatClock prints seconds as sacct and scontrol do: "00:05:03",
// "1-02:03:04". Negative values (Unlimited) print "UNLIMITED".
func FormatClock(secs int64) string {
	if secs < 0 {
		return "UNLIMITED"
	}
	d, h, m, s := split(secs)
	if d > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
}

func split(secs int64) (d, h, m, s int64) {
	return secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60
}

// timeLayout is how Slurm prints a point in time.
const timeLayout = "2006-01-02T15:04:05"

// FormatTime prints t as Slurm does, "2026-11-24T10:00:00", in loc; the
// zero time prints as unknown.
func FormatTime(t time.Time, loc *time.Location, unknown string) string {
	if t.IsZero() {
		return unknown
	}
	return t.In(loc).Format(timeLayout)
}
