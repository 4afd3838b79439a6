package hostlist

import (
	"errors"
	"slices"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, s := range []string{
		"", "login1", "gpu[001-004,009],login1", "r[1-2]n[01-02]", "n[08-10]", "n[8-10]",
		"node[1-2]-ib", "a b\tc", "gpu[1-4", "gpu]", "gpu[4-1]", "[1,,2]", "x[0-131072]",
		"n[1,01,001]", "a[1-1000]b[1-1000]", "z[999999999999999998-999999999999999999]",
	} {
		f.Add(s)
	}
}

// FuzzParse checks that Parse never panics, that errors are *Error values
// pointing inside the input, and that Len agrees with the expansion.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error %v is not an *Error", s, err)
			}
			if e.Pos < 0 || e.Pos > len(s) || e.Msg == "" {
				t.Fatalf("Parse(%q) error %+v points outside the input or says nothing", s, e)
			}
			return
		}
		names := l.Names()
		if len(names) != l.Len() || l.Len() > MaxNames {
			t.Fatalf("Parse(%q): Len() = %d, %d names, cap %d", s, l.Len(), len(names), MaxNames)
		}
		for _, n := range names {
			if n == "" {
				t.Fatalf("Parse(%q) gave an empty name", s)
			}
		}
	})
}

// FuzzRoundTrip checks that Compress(Expand(x)) expands to the same set of
// names, and that compressing again gives the same text.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		names, err := Expand(s)
		if err != nil {
			return
		}
		c := Compress(names)
		back, err := Expand(c)
		if err != nil {
			t.Fatalf("Expand(Compress(Expand(%q))) = %v; compressed to %q", s, err, c)
		}
		if !slices.Equal(set(names), set(back)) {
			t.Fatalf("%q compressed to %q, which expands to a different set", s, c)
		}
		if again := Compress(back); again != c {
			t.Fatalf("Compress is not canonical: %q then %q", c, again)
		}
	})
}
