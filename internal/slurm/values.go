package slurm

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/model"
)

// Limits on what a request may ask for, beyond which a typo is likelier
// than intent.
const (
	MaxArrayTasks = 100_000   // tasks in one --array
	MaxArrayIndex = 4_000_000 // the largest array index, as in Slurm
	maxCount      = 1 << 24   // nodes, tasks, CPUs or accelerators in one option
	maxMemMiB     = 1 << 40   // a mebibyte count: a yobibyte
)

func setString(name string, field func(*Request) *string) func(*setter, string) error {
	return func(s *setter, v string) error {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("--%s is empty; give a value", name)
		}
		*field(s.r) = v
		return nil
	}
}

func setInt(name string, field func(*Request) *int) func(*setter, string) error {
	return func(s *setter, v string) error {
		n, err := positive(name, v)
		if err != nil {
			return err
		}
		*field(s.r) = n
		return nil
	}
}

// positive reads a count of at least 1.
func positive(name, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("Invalid numeric value %q for --%s: give a whole number", v, name)
	}
	if n < 1 || n > maxCount {
		return 0, fmt.Errorf("Invalid numeric value %q for --%s: give a number from 1 to %d", v, name, maxCount)
	}
	return n, nil
}

func setTime(s *setter, v string) error {
	secs, err := ParseDuration(v)
	if err != nil {
		return fmt.Errorf("Invalid --time specification %q: %w", v, errDurationFormat)
	}
	if secs == 0 || secs == Unlimited {
		secs = Unlimited
		s.warn("--time=%s asks for no time limit: usine applies the partition's limit", v)
	}
	s.r.Limit = secs
	return nil
}

func setBegin(s *setter, v string) error {
	// Check the form now, against any clock; Job resolves it against the
	// submission time.
	if _, err := ParseBegin(v, time.Unix(0, 0).UTC()); err != nil {
		return fmt.Errorf("Invalid time specification %q for --begin: %w", v, err)
	}
	s.r.Begin = v
	return nil
}

func setNodes(s *setter, v string) error {
	lo, hi, isRange := strings.Cut(v, "-")
	min, err := positive("nodes", lo)
	if err != nil {
		return fmt.Errorf("Invalid node count specification %q: give n or min-max, as in -N 4 or -N 2-4", v)
	}
	max := min
	if isRange {
		if max, err = positive("nodes", hi); err != nil || max < min {
			return fmt.Errorf("Invalid node count specification %q: give min-max with min <= max, as in -N 2-4", v)
		}
	}
	s.r.NodesMin, s.r.NodesMax = min, max
	if max > min {
		s.warn("--nodes=%s: usine allocates exactly %d nodes, the minimum", v, min)
	}
	return nil
}

// setOpenMode reads --open-mode by its name or, as Slurm also takes it,
// its first letter.
func setOpenMode(s *setter, v string) error {
	switch strings.ToLower(v) {
	case "a", "append":
		s.r.OpenMode = model.OpenAppend
	case "t", "truncate":
		s.r.OpenMode = model.OpenTruncate
	default:
		return fmt.Errorf("Invalid --open-mode argument: %q; give append or truncate", v)
	}
	return nil
}

func setPartition(s *setter, v string) error {
	parts := strings.Split(v, ",")
	if strings.TrimSpace(parts[0]) == "" {
		return fmt.Errorf("--partition is empty; give a partition name")
	}
	if len(parts) > 1 {
		s.warn("--partition=%s: usine submits to one partition, %s", v, parts[0])
	}
	s.r.Partition = strings.TrimSpace(parts[0])
	return nil
}

// parseMem reads a size with an optional K, M, G or T unit (binary, M by
// default, an optional trailing B) and returns MiB, rounding up.
func parseMem(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	if len(t) >= 2 && t[len(t)-1] == 'B' && strings.ContainsRune("KMGT", rune(t[len(t)-2])) {
		t = t[:len(t)-1]
	}
	mult, div := int64(1), int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			div = 1024
		case 'M':
		case 'G':
			mult = 1024
		case 'T':
			mult = 1024 * 1024
		default:
			if t[len(t)-1] > '9' || t[len(t)-1] < '0' {
				return 0, fmt.Errorf("give a size such as 4000, 500M, 32G or 1T")
			}
		}
		if t[len(t)-1] > '9' {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("give a size such as 4000, 500M, 32G or 1T")
	}
	mib := (n*mult + div - 1) / div
	if n > maxMemMiB || mib > maxMemMiB {
		return 0, fmt.Errorf("%s is too large", v)
	}
	return mib, nil
}

func setMem(name string, field func(*Request) *int64) func(*setter, string) error {
	return func(s *setter, v string) error {
		mib, err := parseMem(v)
		if err != nil {
			return fmt.Errorf("invalid memory constraint %q for --%s: %w", v, name, err)
		}
		// The options of the group replace one another.
		s.r.MemMiB, s.r.MemPerCPUMiB, s.r.MemPerGPUMiB, s.r.MemWholeNode = 0, 0, 0, false
		*field(s.r) = mib
		if name == "mem" && mib == 0 {
			s.r.MemWholeNode = true
		}
		return nil
	}
}

// parseGPUs reads "[type:]count".
func parseGPUs(name, v string) (GPUs, error) {
	bad := func(why string) (GPUs, error) {
		return GPUs{}, fmt.Errorf("Invalid --%s specification %q: %s", name, v, why)
	}
	if strings.Contains(v, ",") {
		return bad("usine jobs use one accelerator model; give one [type:]count")
	}
	typ, count, hasType := strings.Cut(v, ":")
	if !hasType {
		typ, count = "", v
	}
	if hasType && !isWord(typ) {
		return bad("the type must be a model name such as h100")
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || n > maxCount {
		return bad("give [type:]count, as in 4 or h100:4")
	}
	return GPUs{Type: typ, Count: n}, nil
}

var wordRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func isWord(s string) bool { return wordRE.MatchString(s) }

func setGPUs(name string, field func(*Request) *GPUs) func(*setter, string) error {
	return func(s *setter, v string) error {
		g, err := parseGPUs(name, v)
		if err != nil {
			return err
		}
		*field(s.r) = g
		return nil
	}
}

// setGres reads a comma-separated list of name[:type][:count]; gpu is the
// only resource usine counts.
func setGres(s *setter, v string) error {
	bad := func(why string) error {
		return fmt.Errorf("Invalid --gres specification %q: %s", v, why)
	}
	s.r.GresGPUs = GPUs{}
	if strings.EqualFold(v, "none") {
		return nil
	}
	gpuSeen := false
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimPrefix(item, "gres/")
		fields := strings.Split(item, ":")
		if len(fields) > 3 || !isWord(fields[0]) {
			return bad("give name[:type][:count] items, as in gpu:h100:4")
		}
		g := GPUs{Count: 1}
		switch len(fields) {
		case 2:
			if n, err := strconv.Atoi(fields[1]); err == nil {
				g.Count = n
			} else {
				g.Type = fields[1]
			}
		case 3:
			g.Type = fields[1]
			n, err := strconv.Atoi(fields[2])
			if err != nil {
				return bad(fmt.Sprintf("%q is not a count", fields[2]))
			}
			g.Count = n
		}
		if g.Count < 0 || g.Count > maxCount || g.Type != "" && !isWord(g.Type) {
			return bad(fmt.Sprintf("%q is not a valid item", item))
		}
		if fields[0] != "gpu" {
			s.warn("--gres=%s: usine ignores the generic resource %q and counts only gpu", v, fields[0])
			continue
		}
		if gpuSeen {
			return bad("usine jobs use one accelerator model; give gpu once")
		}
		gpuSeen = true
		s.r.GresGPUs = g
	}
	return nil
}

func setExclusive(s *setter, v string) error {
	switch v {
	case "":
	case "user", "mcs", "topo":
		s.warn("--exclusive=%s: usine gives the job whole nodes, as --exclusive does", v)
	default:
		return fmt.Errorf("Invalid --exclusive specification %q: give --exclusive, or =user, =mcs or =topo", v)
	}
	s.r.Exclusive = true
	return nil
}

func setConstraint(s *setter, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("--constraint is empty; give a feature such as h100")
	}
	s.r.Constraint = v
	return nil
}

// modelRE matches the features sites give to accelerator models: H100,
// A100, GH200, MI250X, L40S, V100-32G (a memory variant), T4…
var modelRE = regexp.MustCompile(`(?i)^((?:a|b|h|k|l|p|t|v|gb|gh|mi)[0-9]{1,4}[a-z]?)(-[0-9]+g)?$`)

// constraintModel reads an accelerator model out of a --constraint
// expression: features joined by '&' may hold one model; alternatives ('|',
// "[a|b]") cannot become one model, and other features mean nothing here.
func constraintModel(expr string, warn func(string, ...any)) string {
	hasOr := strings.ContainsAny(expr, "|")
	features := strings.FieldsFunc(expr, func(r rune) bool { return strings.ContainsRune("&|[]()", r) })
	var models []string
	for _, f := range features {
		f, _, _ = strings.Cut(strings.TrimSpace(f), "*") // counts such as a100*2
		m := modelRE.FindStringSubmatch(f)
		if m == nil {
			warn("--constraint=%s: usine ignores the node feature %q; it knows nodes only by accelerator model", expr, f)
			continue
		}
		if m[2] != "" {
			warn("--constraint=%s: usine reads %q as the model %s, without the memory variant", expr, f, strings.ToUpper(m[1]))
		}
		models = append(models, strings.ToUpper(m[1]))
	}
	models = slices.Compact(slices.Sorted(slices.Values(models)))
	switch {
	case len(models) == 1:
		return models[0]
	case len(models) > 1 && hasOr:
		warn("--constraint=%s: usine cannot choose between accelerator models; the job may run on any", expr)
	case len(models) > 1:
		warn("--constraint=%s asks for several accelerator models at once; the job may run on any", expr)
	}
	return ""
}

func setArray(s *setter, v string) error {
	a, err := ParseArray(v)
	if err != nil {
		return err
	}
	s.r.Array = a
	return nil
}

// ParseArray reads an --array value: comma-separated indices, lo-hi ranges
// and lo-hi:step ranges, with an optional %N throttle ("0-15%4",
// "1,3,5-11:2").
func ParseArray(v string) (*Array, error) {
	bad := func(why string) (*Array, error) {
		return nil, fmt.Errorf("Invalid --array specification %q: %s", v, why)
	}
	spec, throttleText, hasThrottle := strings.Cut(v, "%")
	a := &Array{Spec: v}
	if hasThrottle {
		t, err := strconv.Atoi(throttleText)
		if err != nil || t < 1 {
			return bad("after % give how many tasks may run at once, at least 1")
		}
		a.Throttle = t
	}
	if spec == "" {
		return bad("give indices such as 0-15, 1,3,5 or 1-9:2")
	}
	index := func(t string) (int, error) {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > MaxArrayIndex {
			return 0, fmt.Errorf("Invalid --array specification %q: %q is not an index from 0 to %d", v, t, MaxArrayIndex)
		}
		return n, nil
	}
	for item := range strings.SplitSeq(spec, ",") {
		rng, stepText, hasStep := strings.Cut(item, ":")
		loText, hiText, isRange := strings.Cut(rng, "-")
		lo, err := index(loText)
		if err != nil {
			return nil, err
		}
		hi, step := lo, 1
		if isRange {
			if hi, err = index(hiText); err != nil {
				return nil, err
			}
			if hi < lo {
				return bad(fmt.Sprintf("range %s is reversed; write %s-%s", rng, hiText, loText))
			}
		}
		if hasStep {
			if step, err = strconv.Atoi(stepText); err != nil || step < 1 || !isRange {
				return bad(fmt.Sprintf("%q: a step follows a range and is at least 1, as in 1-9:2", item))
			}
		}
		if len(a.Indices)+(hi-lo)/step+1 > MaxArrayTasks {
			return bad(fmt.Sprintf("more than %d tasks; split the array", MaxArrayTasks))
		}
		for i := lo; i <= hi; i += step {
			a.Indices = append(a.Indices, i)
		}
	}
	slices.Sort(a.Indices)
	a.Indices = slices.Compact(a.Indices)
	return a, nil
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func setDependency(s *setter, v string) error {
	deps, singleton, err := ParseDependency(v)
	if err != nil {
		return err
	}
	s.r.Deps, s.r.Singleton = deps, singleton
	return nil
}

// ParseDependency reads a --dependency value: type:id[:id…] items joined by
// ',' (all must hold), and singleton. Job ids are kept as written; an array
// task is "id_index".
func ParseDependency(v string) (deps []model.Dependency, singleton bool, err error) {
	bad := func(why string) ([]model.Dependency, bool, error) {
		return nil, false, fmt.Errorf("Invalid --dependency specification %q: %s", v, why)
	}
	if strings.Contains(v, "?") {
		return bad("usine does not support '?' (any of); join dependencies with ',' (all of)")
	}
	if strings.TrimSpace(v) == "" {
		return bad("give type:jobid, as in afterok:1234")
	}
	for item := range strings.SplitSeq(v, ",") {
		typ, ids, hasIDs := strings.Cut(item, ":")
		switch typ {
		case "singleton":
			if hasIDs {
				return bad("singleton takes no job ids")
			}
			singleton = true
			continue
		case "after", "afterany", "afterok", "afternotok":
		case "aftercorr":
			return bad("usine does not support aftercorr; make each array task depend on its job with afterok")
		case "afterburstbuffer":
			return bad("usine has no burst buffers; use afterany")
		case "expand":
			return bad("usine cannot grow a running job")
		default:
			return bad(fmt.Sprintf("%q is not a dependency type; use after, afterany, afterok, afternotok or singleton", typ))
		}
		if !hasIDs || ids == "" {
			return bad(fmt.Sprintf("%s needs job ids, as in %s:1234", typ, typ))
		}
		for id := range strings.SplitSeq(ids, ":") {
			if strings.Contains(id, "+") {
				return bad(fmt.Sprintf("usine does not support delays such as %q; drop the +minutes", id))
			}
			if !jobIDRE.MatchString(id) {
				return bad(fmt.Sprintf("%q is not a job id", id))
			}
			deps = append(deps, model.Dependency{Type: model.DepType(typ), JobID: id})
		}
	}
	return deps, singleton, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func setExport(s *setter, v string) error {
	e, err := ParseExport(v)
	if err != nil {
		return err
	}
	s.r.Export = e
	return nil
}

// ParseExport reads an --export value: ALL, NONE, or a comma-separated list
// of variable names and NAME=value items, with ALL or NONE among them.
// Without ALL, only the listed variables pass, as in Slurm.
func ParseExport(v string) (Export, error) {
	var e Export
	all := false
	e.None = true
	for item := range strings.SplitSeq(v, ",") {
		switch strings.ToUpper(item) {
		case "ALL":
			all = true
			continue
		case "NONE", "NIL":
			continue
		}
		name, value, hasValue := strings.Cut(item, "=")
		if !envNameRE.MatchString(name) {
			return Export{}, fmt.Errorf("Invalid --export specification %q: %q is not a variable name; give ALL, NONE or NAME[=value] items", v, name)
		}
		if hasValue {
			e.Set = append(e.Set, EnvVar{name, value})
		} else {
			e.Names = append(e.Names, name)
		}
	}
	e.None = !all
	return e, nil
}

// signals maps Linux signal numbers to names.
var signals = map[int]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE", 9: "KILL",
	10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM", 16: "STKFLT", 17: "CHLD",
	18: "CONT", 19: "STOP", 20: "TSTP", 21: "TTIN", 22: "TTOU", 23: "URG", 24: "XCPU", 25: "XFSZ",
	26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO", 30: "PWR", 31: "SYS",
}

// SignalName reads a signal as a number, a name or SIG+name, and returns
// its name without SIG ("USR1").
func SignalName(v string) (string, bool) {
	if n, err := strconv.Atoi(v); err == nil {
		name, ok := signals[n]
		return name, ok
	}
	name := strings.TrimPrefix(strings.ToUpper(v), "SIG")
	for _, known := range signals {
		if known == name {
			return name, true
		}
	}
	return "", false
}

// SignalNumber is the Linux number of a signal name without SIG, or 0.
func SignalNumber(name string) int {
	for n, known := range signals {
		if known == name {
			return n
		}
	}
	return 0
}

func setSignal(s *setter, v string) error {
	bad := func(why string) error {
		return fmt.Errorf("Invalid --signal specification %q: %s", v, why)
	}
	rest := v
	batchOnly := false
	if flags, after, ok := strings.Cut(rest, ":"); ok {
		for _, f := range flags {
			switch f {
			case 'B':
				batchOnly = true
			case 'R':
				s.warn("--signal=%s: usine has no reservations; R: is ignored", v)
			default:
				return bad("the prefix before ':' may hold B (batch shell only) and R; give [B:]sig[@secs]")
			}
		}
		rest = after
	}
	sigText, secsText, hasSecs := strings.Cut(rest, "@")
	sig, ok := SignalName(sigText)
	if !ok {
		return bad(fmt.Sprintf("%q is not a signal; give a name such as USR1 or a number", sigText))
	}
	secs := int64(60)
	if hasSecs {
		n, err := strconv.ParseInt(secsText, 10, 64)
		if err != nil || n < 0 || n > 65535 {
			return bad("@secs is a number of seconds from 0 to 65535")
		}
		secs = n
	}
	s.r.Signal, s.r.SignalBefore, s.r.SignalBatchOnly = sig, secs, batchOnly
	return nil
}

func setSwitches(s *setter, v string) error {
	countText, waitText, hasWait := strings.Cut(v, "@")
	n, err := strconv.Atoi(countText)
	if err != nil || n < 1 || n > maxCount {
		return fmt.Errorf("Invalid --switches specification %q: give a count of at least 1, optionally @time, as in 1@2:00:00", v)
	}
	var wait int64
	if hasWait {
		if wait, err = ParseDuration(waitText); err != nil || wait < 0 {
			return fmt.Errorf("Invalid --switches specification %q: the time after @ is a time limit such as 2:00:00", v)
		}
		s.warn("--switches=%s: usine waits for one block as long as it takes; @%s is ignored", v, waitText)
	}
	if n > 1 {
		s.warn("--switches=%s: usine cannot bound a job to %d blocks; it places jobs in as few blocks as it can", v, n)
	}
	s.r.Switches, s.r.SwitchesWait = n, wait
	return nil
}
