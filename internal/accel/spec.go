package accel

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Limits on what a spec may ask for, so that a typo cannot ask for a
// billion processes.
const (
	MaxPerNode = 1024
	MaxNodes   = 100_000
)

// Spec is a count of accelerators of one model, on one node or on each of
// several: "8xMI300X" is one node of eight, "4x8xH100" four nodes of eight.
type Spec struct {
	Nodes   int    `json:"nodes"`
	PerNode int    `json:"per_node"`
	Model   string `json:"model"` // canonical when known ("h100" reads as "H100")
}

func (s Spec) String() string {
	if s.Nodes == 1 {
		return fmt.Sprintf("%dx%s", s.PerNode, s.Model)
	}
	return fmt.Sprintf("%dx%dx%s", s.Nodes, s.PerNode, s.Model)
}

// ParseSpec reads "PERNODExMODEL" or "NODESxPERNODExMODEL". The separator
// is x, X or ×, with or without spaces around it ("8 x H100"); a model
// name starts with a letter, so "8xMI300X" is not ambiguous. A known
// model is spelled as the table spells it; an unknown one is kept as
// written (declared devices may be of any model), and Emulate refuses it.
func ParseSpec(s string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("accelerator spec %q: %s; write PERNODExMODEL (8xH100) or NODESxPERNODExMODEL (4x8xH100)", s, why)
	}
	rest := strings.TrimSpace(s)
	var nums []string
	for len(nums) < 3 {
		i := 0
		for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			break
		}
		num := rest[:i]
		after := strings.TrimLeft(rest[i:], " \t")
		sep := ""
		for _, p := range []string{"x", "X", "×"} {
			if strings.HasPrefix(after, p) {
				sep = p
			}
		}
		if sep == "" && len(nums) == 0 {
			return bad(fmt.Sprintf("expected x after %s", num))
		}
		if sep == "" {
			break // "8x100": a model that is a number, refused below
		}
		nums = append(nums, num)
		rest = strings.TrimLeft(after[len(sep):], " \t")
	}
	switch {
	case len(nums) == 0:
		return bad("no count")
	case len(nums) > 2:
		return bad("too many counts")
	case rest == "":
		return bad("no model")
	}
	if r := []rune(rest)[0]; !unicode.IsLetter(r) {
		return bad(fmt.Sprintf("model %q does not start with a letter", rest))
	}
	if strings.ContainsFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || r == '/' }) {
		return bad(fmt.Sprintf("model %q holds a space, comma or slash", rest))
	}
	sp := Spec{Nodes: 1, Model: rest}
	if a, ok := Lookup(rest); ok {
		sp.Model = a.Model
	}
	count := func(num, what string, limit int) (int, error) {
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > limit {
			return 0, fmt.Errorf("%s %s is not in 1–%d", what, num, limit)
		}
		return n, nil
	}
	var err error
	if sp.PerNode, err = count(nums[len(nums)-1], "accelerators per node", MaxPerNode); err != nil {
		return bad(err.Error())
	}
	if len(nums) == 2 {
		if sp.Nodes, err = count(nums[0], "nodes", MaxNodes); err != nil {
			return bad(err.Error())
		}
	}
	return sp, nil
}

// Emulate makes n devices of a model from the built-in table, indexed
// from 0, for machines without real ones. The vendor is the model's, so
// that jobs see the same visibility variables as on real hardware.
func Emulate(n int, modelName string) ([]Device, error) {
	if n < 1 || n > MaxPerNode {
		return nil, fmt.Errorf("emulate %d accelerators: give 1 to %d", n, MaxPerNode)
	}
	a, ok := Lookup(modelName)
	if !ok {
		return nil, fmt.Errorf("cannot emulate accelerator model %q: it is not in the built-in table (%s); pick one of those, or declare the devices in the agent's configuration", modelName, modelNames())
	}
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{Index: i, Vendor: a.Vendor, Model: a.Model, MemoryGiB: a.MemoryGiB,
			UUID: fmt.Sprintf("emulated-%s-%d", a.Model, i), Source: SourceEmulated}
	}
	return out, nil
}
