// Package hostlist reads and writes Slurm host lists: the compact names such
// as "gpu[001-004,009],login1" that Slurm prints in SLURM_JOB_NODELIST,
// squeue and sinfo, and that scontrol show hostnames expands.
//
// Expand turns a list into names, in the order written; Compress turns names
// into the shortest canonical list Slurm would print: sorted, deduplicated,
// zero padding kept, consecutive numbers merged into ranges.
package hostlist

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxNames is the most names one host list may expand to. It is far above
// the node count of any machine, and stops a typo such as "n[1-9999999]"
// from exhausting memory.
const MaxNames = 1 << 17

// maxDigits is the longest number a bracket may hold: 18 digits always fit
// an int64.
const maxDigits = 18

// Error says what is wrong with a host list and where.
type Error struct {
	List string // the list as given
	Pos  int    // byte offset of the problem in List
	Msg  string // what is wrong and how to fix it
}

func (e *Error) Error() string {
	return fmt.Sprintf("host list %q, at byte %d: %s", e.List, e.Pos, e.Msg)
}

// List is a parsed host list. The zero value is an empty list.
type List struct {
	terms []term
	n     int
}

// term is one comma-separated element: literal text and bracket groups,
// expanded as their cartesian product (the first bracket varies slowest).
type term []part

// part is either literal text or, when ranges is not nil, a bracket group.
type part struct {
	lit    string
	ranges []span
}

// span is lo-hi inclusive, each number printed with at least width digits.
type span struct {
	lo, hi int64
	width  int
}

func (s span) len() int64 { return s.hi - s.lo + 1 }

// Parse reads a host list. Elements are separated by commas or white space;
// each may hold several bracket groups such as "r[1-2]n[01-02]", each group
// a comma-separated set of numbers and lo-hi ranges. A range prints its
// numbers zero-padded to the width of its low end ("[08-10]" gives 08 09 10).
// Empty elements are skipped.
func Parse(s string) (List, error) {
	var l List
	start := -1
	depth := 0
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		t, n, err := parseTerm(s, start, end)
		start = -1
		if err != nil {
			return err
		}
		if int64(l.n)+n > MaxNames {
			return &Error{s, 0, fmt.Sprintf("expands to more than %d names; split it into smaller lists", MaxNames)}
		}
		l.terms = append(l.terms, t)
		l.n += int(n)
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '[':
			if depth > 0 {
				return List{}, &Error{s, i, "'[' inside brackets; brackets do not nest"}
			}
			depth++
		case c == ']':
			if depth == 0 {
				return List{}, &Error{s, i, "']' without a matching '['"}
			}
			depth--
		case depth == 0 && isSep(c):
			if err := flush(i); err != nil {
				return List{}, err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if depth > 0 {
		return List{}, &Error{s, strings.LastIndexByte(s, '['), "'[' is never closed; add the missing ']'"}
	}
	if err := flush(len(s)); err != nil {
		return List{}, err
	}
	return l, nil
}

func isSep(c byte) bool {
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// parseTerm reads s[start:end], which has balanced, unnested brackets, and
// returns the term and how many names it expands to (at most MaxNames+1).
func parseTerm(s string, start, end int) (term, int64, error) {
	var t term
	n := int64(1)
	i := start
	for i < end {
		open := strings.IndexByte(s[i:end], '[')
		if open < 0 {
			t = append(t, part{lit: s[i:end]})
			break
		}
		open += i
		if open > i {
			t = append(t, part{lit: s[i:open]})
		}
		closing := open + strings.IndexByte(s[open:end], ']')
		spans, count, err := parseBracket(s, open+1, closing)
		if err != nil {
			return nil, 0, err
		}
		t = append(t, part{ranges: spans})
		n *= count
		if n > MaxNames {
			return nil, 0, &Error{s, start, fmt.Sprintf("%q expands to more than %d names; split it into smaller lists", s[start:end], MaxNames)}
		}
		i = closing + 1
	}
	return t, n, nil
}

// parseBracket reads the inside of a bracket group, s[start:end].
func parseBracket(s string, start, end int) ([]span, int64, error) {
	if start == end {
		return nil, 0, &Error{s, start - 1, "empty brackets; write numbers or ranges inside, as in [1-4,7]"}
	}
	var spans []span
	var count int64
	for i := start; i <= end; {
		j := i + strings.IndexByte(s[i:end], ',')
		if j < i {
			j = end
		}
		sp, err := parseSpan(s, i, j)
		if err != nil {
			return nil, 0, err
		}
		count += sp.len()
		if count > MaxNames {
			return nil, 0, &Error{s, start - 1, fmt.Sprintf("[%s] expands to more than %d names; split it into smaller lists", s[start:end], MaxNames)}
		}
		spans = append(spans, sp)
		i = j + 1
	}
	return spans, count, nil
}

func parseSpan(s string, start, end int) (span, error) {
	text := s[start:end]
	if text == "" {
		return span{}, &Error{s, start, "empty element in brackets; remove the extra ','"}
	}
	loText, hiText, isRange := strings.Cut(text, "-")
	lo, err := parseNumber(s, start, loText)
	if err != nil {
		return span{}, err
	}
	hi := lo
	if isRange {
		if hi, err = parseNumber(s, start+len(loText)+1, hiText); err != nil {
			return span{}, err
		}
		if hi < lo {
			return span{}, &Error{s, start, fmt.Sprintf("range %s is reversed; write %s-%s", text, hiText, loText)}
		}
	}
	return span{lo: lo, hi: hi, width: len(loText)}, nil
}

func parseNumber(s string, pos int, text string) (int64, error) {
	if text == "" {
		return 0, &Error{s, pos, "missing number in range; write lo-hi, as in 1-4"}
	}
	for k := 0; k < len(text); k++ {
		if text[k] < '0' || text[k] > '9' {
			return 0, &Error{s, pos + k, fmt.Sprintf("%q in brackets is not a digit; brackets hold numbers and ranges such as [1-4,7]", text[k])}
		}
	}
	if len(text) > maxDigits {
		return 0, &Error{s, pos, fmt.Sprintf("number %s has more than %d digits", text, maxDigits)}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, &Error{s, pos, fmt.Sprintf("number %s: %v", text, err)}
	}
	return n, nil
}

// Len is how many names the list expands to, duplicates included.
func (l List) Len() int { return l.n }

// Names expands the list into host names, in the order written, duplicates
// kept.
func (l List) Names() []string {
	names := make([]string, 0, l.n)
	var b []byte
	for _, t := range l.terms {
		names = expandTerm(names, b[:0], t)
	}
	return names
}

func expandTerm(names []string, prefix []byte, t term) []string {
	if len(t) == 0 {
		return append(names, string(prefix))
	}
	p := t[0]
	if p.ranges == nil {
		return expandTerm(names, append(prefix, p.lit...), t[1:])
	}
	for _, sp := range p.ranges {
		for v := sp.lo; v <= sp.hi; v++ {
			names = expandTerm(names, appendPadded(prefix, v, sp.width), t[1:])
		}
	}
	return names
}

func appendPadded(b []byte, v int64, width int) []byte {
	var digits [maxDigits + 1]byte
	d := strconv.AppendInt(digits[:0], v, 10)
	for k := len(d); k < width; k++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// String is the canonical compressed form of the list's names.
func (l List) String() string { return Compress(l.Names()) }

// Expand parses a host list and returns its names in the order written.
func Expand(s string) ([]string, error) {
	l, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return l.Names(), nil
}

// Count parses a host list and returns how many names it holds, without
// expanding it.
func Count(s string) (int, error) {
	l, err := Parse(s)
	if err != nil {
		return 0, err
	}
	return l.n, nil
}

// numbered is a host name split into a prefix and its trailing number.
type numbered struct {
	digits string // as written, zero padding included
	value  int64
}

// Compress returns the shortest canonical host list for names, as Slurm
// prints it: names grouped by the text before their trailing number, groups
// sorted by that text, numbers sorted and merged into ranges that keep their
// zero padding ("gpu[001-004,009],login1"). Duplicates are dropped. Names
// must not contain brackets, commas or white space, which a host list cannot
// express.
func Compress(names []string) string {
	byPrefix := map[string][]numbered{}
	bare := map[string]bool{}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		prefix, digits := splitNumber(name)
		if digits == "" {
			bare[name] = true
			continue
		}
		v, _ := strconv.ParseInt(digits, 10, 64) // splitNumber keeps it short enough
		byPrefix[prefix] = append(byPrefix[prefix], numbered{digits, v})
	}
	prefixes := make([]string, 0, len(byPrefix)+len(bare))
	for p := range byPrefix {
		prefixes = append(prefixes, p)
	}
	for name := range bare {
		if _, ok := byPrefix[name]; !ok {
			prefixes = append(prefixes, name)
		}
	}
	slices.Sort(prefixes)
	var b strings.Builder
	for _, p := range prefixes {
		if bare[p] {
			sep(&b)
			b.WriteString(p)
		}
		if nums := byPrefix[p]; len(nums) > 0 {
			sep(&b)
			writeGroup(&b, p, nums)
		}
	}
	return b.String()
}

func sep(b *strings.Builder) {
	if b.Len() > 0 {
		b.WriteByte(',')
	}
}

// splitNumber splits name into the text before its trailing digits and the
// digits. Names whose trailing number is too long to merge are kept whole.
func splitNumber(name string) (prefix, digits string) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if len(name)-i > maxDigits {
		return name, ""
	}
	return name[:i], name[i:]
}

// writeGroup writes one prefix and its numbers. Each range starts at the
// smallest number not yet written and grows while the next number, padded
// to the range's width, is one of the names.
func writeGroup(b *strings.Builder, prefix string, nums []numbered) {
	if len(nums) == 1 {
		b.WriteString(prefix)
		b.WriteString(nums[0].digits)
		return
	}
	slices.SortFunc(nums, func(x, y numbered) int {
		if x.value != y.value {
			if x.value < y.value {
				return -1
			}
			return 1
		}
		return len(x.digits) - len(y.digits)
	})
	left := make(map[string]bool, len(nums))
	for _, n := range nums {
		left[n.digits] = true
	}
	b.WriteString(prefix)
	b.WriteByte('[')
	first := true
	var buf []byte
	for _, n := range nums {
		if !left[n.digits] {
			continue
		}
		delete(left, n.digits)
		width := len(n.digits)
		hi := n.value
		for {
			next := string(appendPadded(buf[:0], hi+1, width))
			if !left[next] {
				break
			}
			delete(left, next)
			hi++
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(n.digits)
		if hi > n.value {
			b.WriteByte('-')
			b.Write(appendPadded(buf[:0], hi, width))
		}
	}
	b.WriteByte(']')
}
