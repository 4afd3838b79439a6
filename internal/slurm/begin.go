package slurm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var errBeginFormat = errors.New("use HH:MM[:SS] [AM|PM], YYYY-MM-DD[THH:MM[:SS]], MMDD[YY], MM/DD[/YY][-HH:MM[:SS]], now[+count[seconds|minutes|hours|days|weeks]], today, tomorrow, midnight, noon, elevenses, fika or teatime")

// ParseBegin reads a --begin time relative to now, in now's time zone:
//
//   - "HH:MM[:SS]" with an optional AM/PM: that time today, or tomorrow if
//     it has passed;
//   - "YYYY-MM-DD[THH:MM[:SS]]", "MMDD[YY]", "MM/DD[/YY]" and "MM.DD[.YY]",
//     each optionally followed by "-HH:MM[:SS]" (or "T…" after the ISO form):
//     that day at midnight unless a time is given; a date without a year
//     that has passed this year means next year;
//   - "now", "now+count[unit]" or "now-count[unit]", the unit one of
//     seconds (the default), minutes, hours, days or weeks, abbreviations
//     such as "min", "h" and "d" accepted;
//   - "today" and "tomorrow" (at midnight), "midnight" (the next one),
//     "noon", "elevenses" (11:00), "fika" (15:00) and "teatime" (16:00),
//     each today or, once passed, tomorrow.
func ParseBegin(s string, now time.Time) (time.Time, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return time.Time{}, fmt.Errorf("begin time is empty: %w", errBeginFormat)
	}
	lower := strings.ToLower(in)
	if t, ok := namedBegin(lower, now); ok {
		return t, nil
	}
	if rest, ok := strings.CutPrefix(lower, "now"); ok {
		return relativeBegin(in, rest, now)
	}
	t, err := absoluteBegin(lower, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("begin time %q: %w", s, err)
	}
	return t, nil
}

func midnightOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// nextAt is the first time at h:m:s that is not before now.
func nextAt(now time.Time, h, m, s int) time.Time {
	y, mo, d := now.Date()
	t := time.Date(y, mo, d, h, m, s, 0, now.Location())
	if t.Before(now) {
		t = time.Date(y, mo, d+1, h, m, s, 0, now.Location())
	}
	return t
}

func namedBegin(s string, now time.Time) (time.Time, bool) {
	switch s {
	case "today":
		return midnightOf(now), true
	case "tomorrow":
		y, m, d := now.Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, now.Location()), true
	case "midnight":
		y, m, d := now.Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, now.Location()), true
	case "noon":
		return nextAt(now, 12, 0, 0), true
	case "elevenses":
		return nextAt(now, 11, 0, 0), true
	case "fika":
		return nextAt(now, 15, 0, 0), true
	case "teatime":
		return nextAt(now, 16, 0, 0), true
	}
	return time.Time{}, false
}

func relativeBegin(orig, rest string, now time.Time) (time.Time, error) {
	if rest == "" {
		return now, nil
	}
	sign := int64(1)
	switch rest[0] {
	case '+':
	case '-':
		sign = -1
	default:
		return time.Time{}, fmt.Errorf("begin time %q: after 'now' write +count or -count, as in now+1hour: %w", orig, errBeginFormat)
	}
	rest = rest[1:]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return time.Time{}, fmt.Errorf("begin time %q: give a count of at most 9 digits after 'now', as in now+1hour", orig)
	}
	n, _ := strconv.ParseInt(rest[:i], 10, 64)
	unit, ok := beginUnit(strings.TrimSpace(rest[i:]))
	if !ok {
		return time.Time{}, fmt.Errorf("begin time %q: unknown unit %q; use seconds, minutes, hours, days or weeks", orig, rest[i:])
	}
	return now.Add(time.Duration(sign*n) * unit), nil
}

func beginUnit(u string) (time.Duration, bool) {
	switch u {
	case "", "s", "sec", "secs", "second", "seconds":
		return time.Second, true
	case "m", "min", "mins", "minute", "minutes":
		return time.Minute, true
	case "h", "hr", "hrs", "hour", "hours":
		return time.Hour, true
	case "d", "day", "days":
		return 24 * time.Hour, true
	case "w", "week", "weeks":
		return 7 * 24 * time.Hour, true
	}
	return 0, false
}

// absoluteBegin reads the date and time-of-day forms.
func absoluteBegin(s string, now time.Time) (time.Time, error) {
	// A time of day alone.
	if strings.Contains(s, ":") && !strings.ContainsAny(s, "/.t") && strings.Count(s, "-") == 0 {
		h, m, sec, err := clock(s)
		if err != nil {
			return time.Time{}, err
		}
		return nextAt(now, h, m, sec), nil
	}
	// ISO: YYYY-MM-DD[THH:MM[:SS]].
	if len(s) >= 10 && s[4] == '-' && s[7] == '-' {
		date, tod, _ := strings.Cut(s, "t")
		y, err1 := digits(date[0:4])
		mo, err2 := digits(date[5:7])
		d, err3 := digits(date[8:])
		if err := errors.Join(err1, err2, err3); err != nil || len(date) != 10 {
			return time.Time{}, errBeginFormat
		}
		return dateAt(now, y, mo, d, tod, false)
	}
	// MMDD[YY], MM/DD[/YY], MM.DD[.YY], each with an optional -HH:MM[:SS].
	date, tod, _ := strings.Cut(s, "-")
	var fields []string
	switch {
	case strings.Contains(date, "/"):
		fields = strings.Split(date, "/")
	case strings.Contains(date, "."):
		fields = strings.Split(date, ".")
	case len(date) == 4 || len(date) == 6:
		for i := 0; i < len(date); i += 2 {
			fields = append(fields, date[i:i+2])
		}
	default:
		return time.Time{}, errBeginFormat
	}
	if len(fields) < 2 || len(fields) > 3 {
		return time.Time{}, errBeginFormat
	}
	mo, err1 := digits(fields[0])
	d, err2 := digits(fields[1])
	if err := errors.Join(err1, err2); err != nil {
		return time.Time{}, errBeginFormat
	}
	y, guessYear := now.Year(), true
	if len(fields) == 3 {
		yy, err := digits(fields[2])
		if err != nil || len(fields[2]) != 2 && len(fields[2]) != 4 {
			return time.Time{}, errBeginFormat
		}
		if yy < 100 {
			yy += 2000
		}
		y, guessYear = yy, false
	}
	return dateAt(now, y, mo, d, tod, guessYear)
}

// dateAt builds a date at an optional time of day. With guessYear, a day
// already past this year means next year.
func dateAt(now time.Time, y, mo, d int, tod string, guessYear bool) (time.Time, error) {
	h, m, sec := 0, 0, 0
	if tod != "" {
		var err error
		if h, m, sec, err = clock(tod); err != nil {
			return time.Time{}, err
		}
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 {
		return time.Time{}, fmt.Errorf("month %d, day %d is not a date", mo, d)
	}
	t := time.Date(y, time.Month(mo), d, h, m, sec, 0, now.Location())
	if t.Day() != d {
		return time.Time{}, fmt.Errorf("%04d-%02d-%02d is not a date", y, mo, d)
	}
	if guessYear && t.Before(midnightOf(now)) {
		t = time.Date(y+1, time.Month(mo), d, h, m, sec, 0, now.Location())
	}
	return t, nil
}

// clock reads HH:MM[:SS] with an optional AM or PM.
func clock(s string) (h, m, sec int, err error) {
	s = strings.TrimSpace(s)
	pm, am := strings.HasSuffix(s, "pm"), strings.HasSuffix(s, "am")
	if pm || am {
		s = strings.TrimSpace(s[:len(s)-2])
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, errBeginFormat
	}
	vals := make([]int, 3)
	for i, p := range parts {
		if len(p) == 0 || len(p) > 2 {
			return 0, 0, 0, errBeginFormat
		}
		if vals[i], err = digits(p); err != nil {
			return 0, 0, 0, errBeginFormat
		}
	}
	h, m, sec = vals[0], vals[1], vals[2]
	if am || pm {
		if h < 1 || h > 12 {
			return 0, 0, 0, fmt.Errorf("hour %d does not go with AM or PM; give 1 to 12", h)
		}
		h %= 12
		if pm {
			h += 12
		}
	}
	if h > 23 || m > 59 || sec > 59 {
		return 0, 0, 0, fmt.Errorf("%s is not a time of day", s)
	}
	return h, m, sec, nil
}

func digits(s string) (int, error) {
	if s == "" || len(s) > 4 {
		return 0, errBeginFormat
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBeginFormat
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}
