package hostlist

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"an empty list has no names", "", []string{}},
		{"a single name", "login1", []string{"login1"}},
		{"a range keeps the zero padding of its low end", "gpu[001-004,009],login1", []string{"gpu001", "gpu002", "gpu003", "gpu004", "gpu009", "login1"}},
		{"padding carries across a change of digit count", "n[08-10]", []string{"n08", "n09", "n10"}},
		{"an unpadded range grows digits", "n[8-10]", []string{"n8", "n9", "n10"}},
		{"padding wider than the high end", "n[001-10]", []string{"n001", "n002", "n003", "n004", "n005", "n006", "n007", "n008", "n009", "n010"}},
		{"two bracket groups make a cartesian product, first slowest", "r[1-2]n[01-02]", []string{"r1n01", "r1n02", "r2n01", "r2n02"}},
		{"brackets in the middle of a name", "node[1-2]-ib", []string{"node1-ib", "node2-ib"}},
		{"a bracket alone", "[3,1]", []string{"3", "1"}},
		{"white space separates like commas", "a1 b2\tc3\nd4", []string{"a1", "b2", "c3", "d4"}},
		{"empty elements are skipped", ",a,,b,", []string{"a", "b"}},
		{"duplicates and order are kept", "b,a,b", []string{"b", "a", "b"}},
		{"single-number brackets", "gpu[7]", []string{"gpu7"}},
		{"several elements with brackets", "a[1-2],b[3-4]", []string{"a1", "a2", "b3", "b4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Expand(tc.in)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Expand(%q) (-want +got):\n%s", tc.in, diff)
			}
			n, err := Count(tc.in)
			if err != nil || n != len(tc.want) {
				t.Errorf("Count(%q) = %d, %v; want %d", tc.in, n, err, len(tc.want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantPos int
		wantMsg string
	}{
		{"unclosed bracket", "gpu[1-4", 3, "'[' is never closed"},
		{"close without open", "gpu1-4]", 6, "']' without a matching '['"},
		{"nested brackets", "gpu[1-[2]]", 6, "brackets do not nest"},
		{"reversed range", "gpu[4-1]", 4, "range 4-1 is reversed; write 1-4"},
		{"letters in brackets", "gpu[a-b]", 4, `'a' in brackets is not a digit`},
		{"empty brackets", "gpu[]", 3, "empty brackets"},
		{"empty element", "gpu[1,,2]", 6, "empty element in brackets"},
		{"trailing comma in brackets", "gpu[1,]", 6, "empty element in brackets"},
		{"missing high end", "gpu[1-]", 6, "missing number"},
		{"missing low end", "gpu[-3]", 4, "missing number"},
		{"three-part range", "gpu[1-2-3]", 7, `'-' in brackets is not a digit`},
		{"number too long", "n[1234567890123456789]", 2, "more than 18 digits"},
		{"one range too large", "n[1-9999999]", 1, "expands to more than 131072 names"},
		{"product too large", "a[1-1000]b[1-1000]", 0, "expands to more than 131072 names"},
		{"sum too large", "a[1-100000],b[1-100000]", 0, "expands to more than 131072 names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v; want an *Error", tc.in, err)
			}
			if e.Pos != tc.wantPos || !strings.Contains(e.Msg, tc.wantMsg) || e.List != tc.in {
				t.Errorf("Parse(%q) error = %+v; want position %d and a message containing %q", tc.in, e, tc.wantPos, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.in) {
				t.Errorf("error %q does not quote the list", err)
			}
		})
	}
}

func TestCompress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"nothing", nil, ""},
		{"one name prints without brackets", []string{"gpu001"}, "gpu001"},
		{"a run and a single", []string{"gpu003", "gpu001", "gpu009", "gpu002", "gpu004", "login1"}, "gpu[001-004,009],login1"},
		{"prefixes are sorted", []string{"login1", "cpu2", "gpu1"}, "cpu2,gpu1,login1"},
		{"duplicates are dropped", []string{"n1", "n2", "n1", "n2"}, "n[1-2]"},
		{"numbers sort numerically", []string{"n10", "n9", "n1", "n2"}, "n[1-2,9-10]"},
		{"a padded run crosses a digit count", []string{"n08", "n09", "n10"}, "n[08-10]"},
		{"an unpadded run crosses a digit count", []string{"n8", "n9", "n10"}, "n[8-10]"},
		{"different paddings of one number stay apart", []string{"n1", "n01", "n2", "n02"}, "n[1-2,01-02]"},
		{"only the trailing number is merged", []string{"r1n01", "r1n02", "r2n01", "r2n02"}, "r1n[01-02],r2n[01-02]"},
		{"names without numbers", []string{"login", "gpu", "gpu1"}, "gpu,gpu1,login"},
		{"a bare name and its numbered siblings", []string{"gpu", "gpu1", "gpu2"}, "gpu,gpu[1-2]"},
		{"a number alone", []string{"2", "1", "3"}, "[1-3]"},
		{"a trailing number too long to merge is kept whole", []string{"a1234567890123456789", "a1234567890123456790"}, "a1234567890123456789,a1234567890123456790"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Compress(tc.in)
			if got != tc.want {
				t.Errorf("Compress(%q) = %q; want %q", tc.in, got, tc.want)
			}
			back, err := Expand(got)
			if err != nil {
				t.Fatalf("Expand(Compress) = %v", err)
			}
			if diff := cmp.Diff(set(tc.in), set(back)); diff != "" {
				t.Errorf("Expand(Compress) changed the set of names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListString(t *testing.T) {
	t.Parallel()
	l, err := Parse("gpu[004-001]")
	if err == nil {
		t.Fatalf("Parse(gpu[004-001]) = %v; want an error", l)
	}
	l, err = Parse("gpu009 gpu[003,001-002],gpu004")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "gpu[001-004,009]"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	var empty List
	if empty.Len() != 0 || len(empty.Names()) != 0 || empty.String() != "" {
		t.Errorf("the zero List is not empty: %d %q", empty.Len(), empty.String())
	}
}

func set(names []string) []string {
	s := append([]string{}, names...)
	slices.Sort(s)
	return slices.Compact(s)
}
