package slurm

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{"minutes", "30", 30 * 60},
		{"minutes:seconds", "5:30", 5*60 + 30},
		{"hours:minutes:seconds", "2:03:04", 2*3600 + 3*60 + 4},
		{"days-hours", "1-12", 36 * 3600},
		{"days-hours:minutes", "2-01:30", 49*3600 + 30*60},
		{"days-hours:minutes:seconds", "1-02:03:04", 86400 + 2*3600 + 3*60 + 4},
		{"zero", "0", 0},
		{"minutes beyond an hour, as Slurm allows", "90", 90 * 60},
		{"minutes beyond 59 inside a clock", "1:90:00", 2*3600 + 30*60},
		{"unlimited", "UNLIMITED", Unlimited},
		{"infinite in any case", "infinite", Unlimited},
		{"spaces around", " 10 ", 600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseDuration(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"letters", "1h", `"1h" is not a number`},
		{"four clock fields", "1:2:3:4", "too many ':' fields"},
		{"days with a seconds-only clock field", "1-2:3:4:5", "too many"},
		{"empty field", "1::2", "empty field"},
		{"negative", "-5", "empty field"},
		{"two dashes", "1-2-3", "not a number"},
		{"too large", "1234567890", "too large"},
		{"a unit", "2days", "not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDuration(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseDuration(%q) = %v; want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secs         int64
		squeue, sacc string
	}{
		{0, "0:00", "00:00:00"},
		{59, "0:59", "00:00:59"},
		{5*60 + 3, "5:03", "00:05:03"},
		{3600 + 2*60 + 3, "1:02:03", "01:02:03"},
		{86400 + 2*3600 + 3*60 + 4, "1-02:03:04", "1-02:03:04"},
		{10 * 86400, "10-00:00:00", "10-00:00:00"},
		{Unlimited, "UNLIMITED", "UNLIMITED"},
	}
	for _, tc := range tests {
		if got := FormatDuration(tc.secs); got != tc.squeue {
			t.Errorf("FormatDuration(%d) = %q; want %q", tc.secs, got, tc.squeue)
		}
		if got := FormatClock(tc.secs); got != tc.sacc {
			t.Errorf("FormatClock(%d) = %q; want %q", tc.secs, got, tc.sacc)
		}
	}
}

func TestParseBegin(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	// A Tuesday afternoon.
	now := time.Date(2026, 11, 24, 14, 30, 0, 0, paris)
	at := func(y int, mo time.Month, d, h, m, s int) time.Time { return time.Date(y, mo, d, h, m, s, 0, paris) }
	tests := []struct {
		name string
		in   string
		want time.Time
	}{
		{"now", "now", now},
		{"now plus seconds by default", "now+60", now.Add(time.Minute)},
		{"now plus an hour", "now+1hour", now.Add(time.Hour)},
		{"now plus hours abbreviated", "now+2h", now.Add(2 * time.Hour)},
		{"now plus minutes", "now+30minutes", now.Add(30 * time.Minute)},
		{"now plus days", "now+2days", now.Add(48 * time.Hour)},
		{"now plus a week", "now+1week", now.Add(7 * 24 * time.Hour)},
		{"now minus", "now-10min", now.Add(-10 * time.Minute)},
		{"upper case", "NOW+1HOUR", now.Add(time.Hour)},
		{"a time later today", "16:00", at(2026, 11, 24, 16, 0, 0)},
		{"a time already past means tomorrow", "10:15:30", at(2026, 11, 25, 10, 15, 30)},
		{"PM", "4:00 PM", at(2026, 11, 24, 16, 0, 0)},
		{"AM past means tomorrow", "9:00am", at(2026, 11, 25, 9, 0, 0)},
		{"12 AM is midnight", "12:00am", at(2026, 11, 25, 0, 0, 0)},
		{"ISO date", "2026-12-01", at(2026, 12, 1, 0, 0, 0)},
		{"ISO date and time", "2026-12-01T08:30", at(2026, 12, 1, 8, 30, 0)},
		{"ISO date and time with seconds", "2026-12-01T08:30:15", at(2026, 12, 1, 8, 30, 15)},
		{"MMDD", "1201", at(2026, 12, 1, 0, 0, 0)},
		{"MMDD already past means next year", "0315", at(2027, 3, 15, 0, 0, 0)},
		{"MMDDYY", "031527", at(2027, 3, 15, 0, 0, 0)},
		{"MM/DD", "12/01", at(2026, 12, 1, 0, 0, 0)},
		{"MM/DD/YY with a time", "12/01/26-18:00", at(2026, 12, 1, 18, 0, 0)},
		{"MM.DD.YYYY", "12.01.2026", at(2026, 12, 1, 0, 0, 0)},
		{"MMDD with a time", "1201-06:00:05", at(2026, 12, 1, 6, 0, 5)},
		{"today is past midnight", "today", at(2026, 11, 24, 0, 0, 0)},
		{"today's date is not next year", "11/24", at(2026, 11, 24, 0, 0, 0)},
		{"tomorrow", "tomorrow", at(2026, 11, 25, 0, 0, 0)},
		{"midnight is the next one", "midnight", at(2026, 11, 25, 0, 0, 0)},
		{"noon has passed", "noon", at(2026, 11, 25, 12, 0, 0)},
		{"elevenses", "elevenses", at(2026, 11, 25, 11, 0, 0)},
		{"fika is still to come", "fika", at(2026, 11, 24, 15, 0, 0)},
		{"teatime", "teatime", at(2026, 11, 24, 16, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseBegin(tc.in, now)
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("ParseBegin(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseBeginErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 14, 30, 0, 0, time.UTC)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"garbage", "soon", "use HH:MM"},
		{"now without a sign", "now1hour", "write +count"},
		{"now with an unknown unit", "now+3fortnights", `unknown unit "fortnights"`},
		{"now without a count", "now+hour", "give a count"},
		{"hour out of range", "25:00", "not a time of day"},
		{"minute out of range", "10:75", "not a time of day"},
		{"PM with hour 13", "13:00pm", "does not go with AM or PM"},
		{"February 30", "2027-02-30", "not a date"},
		{"month 13", "13/01", "not a date"},
		{"short ISO", "2026-1-1", "use HH:MM"},
		{"letters in a date", "ab/cd", "use HH:MM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseBegin(tc.in, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseBegin(%q) = %v; want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}
