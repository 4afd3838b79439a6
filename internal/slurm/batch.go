package slurm

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
)

// Error is an option or directive that sbatch refuses, worded as sbatch
// words it.
type Error struct {
	Line int    // the script line of the #SBATCH directive; 0 = the command line
	Msg  string // "unrecognized option '--foo'", "error: Invalid --time specification …"
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("sbatch: %s (script line %d)", e.Msg, e.Line)
	}
	return "sbatch: " + e.Msg
}

// item is one option as written, with where it was written.
type item struct {
	opt  *option
	name string // as written: "-t", "--time", "--ti"
	val  string
	line int // 0 = command line
}

// batchParser turns words into options, as getopt_long does for sbatch.
type batchParser struct {
	ix    *optionIndex
	warns []warning
}

type warning struct {
	line int // 0 = the command line, or the options together
	msg  string
}

func (p *batchParser) warnAt(line int, format string, args ...any) {
	msg := "sbatch: warning: " + fmt.Sprintf(format, args...)
	if line > 0 {
		msg += fmt.Sprintf(" (script line %d)", line)
	}
	p.warns = append(p.warns, warning{line, msg})
}

// warnings lists the warnings in script order, then those of the command
// line and of the options together.
func (p *batchParser) warnings() []string {
	slices.SortStableFunc(p.warns, func(a, b warning) int {
		key := func(w warning) int {
			if w.line == 0 {
				return math.MaxInt
			}
			return w.line
		}
		return cmp.Compare(key(a), key(b))
	})
	var out []string
	for _, w := range p.warns {
		out = append(out, w.msg)
	}
	return out
}

// ParseBatch reads sbatch's command-line options (args, without the program
// name) and the #SBATCH directives of script, as Slurm does: directives are
// read from the lines after the #! line up to the first line that is neither
// blank nor a comment, and an option given on the command line replaces the
// script's. The first argument that is not an option is the script's path,
// and the ones after it the script's arguments; the caller reads that file
// and passes it as script (nil with --wrap).
//
// It returns the request and one "sbatch: warning: …" line for each option
// accepted without effect. Errors are *Error values worded as sbatch's.
func ParseBatch(script []byte, args []string) (*Request, []string, error) {
	p := &batchParser{ix: newOptionIndex()}
	cmd, positional, err := p.scanWords(args, 0)
	if err != nil {
		return nil, p.warnings(), err
	}
	r := &Request{}
	if len(positional) > 0 {
		r.ScriptPath, r.ScriptArgs = positional[0], positional[1:]
	}
	given := map[string]bool{}
	for _, it := range cmd {
		given[it.opt.groupName()] = true
	}
	// A --wrap on the command line means there is no script to read, and
	// help or the version needs none.
	wrap, noScript := "", false
	for _, it := range cmd {
		switch it.opt.long {
		case "wrap":
			wrap = it.val
		case "help", "usage", "version":
			noScript = len(script) == 0
		}
	}
	var directives []item
	switch {
	case noScript && wrap == "":
	case wrap != "":
		if len(script) > 0 || r.ScriptPath != "" {
			return nil, p.warnings(), &Error{Msg: "error: --wrap and a script file are mutually exclusive; give one"}
		}
		script = []byte("#!/bin/sh\n# written by usine's sbatch for --wrap\n" + wrap + "\n")
	default:
		if directives, err = p.scanScript(script); err != nil {
			return nil, p.warnings(), err
		}
	}
	r.Script = script
	s := &setter{r: r}
	for _, it := range directives {
		if given[it.opt.groupName()] {
			continue
		}
		if err := p.apply(s, it); err != nil {
			return nil, p.warnings(), err
		}
	}
	for _, it := range cmd {
		if err := p.apply(s, it); err != nil {
			return nil, p.warnings(), err
		}
	}
	if err := p.finish(r, directives, cmd); err != nil {
		return nil, p.warnings(), err
	}
	return r, p.warnings(), nil
}

// scanWords reads words as getopt_long does with sbatch's options: --long,
// --long=value, --long value, -x, -xvalue, -x value, bundled flags (-Hv), and
// unambiguous prefixes of long names. It stops at "--" or at the first word
// that is not an option, which it returns with the rest.
func (p *batchParser) scanWords(words []string, line int) ([]item, []string, error) {
	var items []item
	fail := func(format string, args ...any) ([]item, []string, error) {
		return nil, nil, &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			return items, words[i+1:], nil
		case strings.HasPrefix(w, "--"):
			name, val, hasVal := strings.Cut(w[2:], "=")
			o, err := p.ix.lookupLong(name)
			if err != nil {
				return nil, nil, &Error{Line: line, Msg: err.Error()}
			}
			switch o.arg {
			case noArg:
				if hasVal {
					return fail("option '--%s' doesn't allow an argument", o.long)
				}
			case requiredArg:
				if !hasVal {
					if i+1 >= len(words) {
						return fail("option '--%s' requires an argument", o.long)
					}
					i++
					val = words[i]
				}
			}
			items = append(items, item{opt: o, name: "--" + o.long, val: val, line: line})
		case len(w) > 1 && w[0] == '-':
			for j := 1; j < len(w); j++ {
				o, ok := p.ix.short[w[j]]
				if !ok {
					return fail("invalid option -- '%c'", w[j])
				}
				it := item{opt: o, name: "-" + string(w[j]), line: line}
				if o.arg == requiredArg {
					switch {
					case j+1 < len(w):
						it.val = w[j+1:]
					case i+1 < len(words):
						i++
						it.val = words[i]
					default:
						return fail("option requires an argument -- '%c'", w[j])
					}
					items = append(items, it)
					break
				}
				items = append(items, it)
			}
		default:
			return items, words[i:], nil
		}
	}
	return items, nil, nil
}

// scanScript checks that script looks like a batch script and reads its
// #SBATCH directives.
func (p *batchParser) scanScript(script []byte) ([]item, error) {
	if len(bytes.TrimSpace(script)) == 0 {
		return nil, &Error{Msg: "error: Batch script is empty!"}
	}
	if !bytes.HasPrefix(script, []byte("#!")) {
		return nil, &Error{Line: 1, Msg: "error: This does not look like a batch script.  The first line must start with #! followed by the path to an interpreter, as in #!/bin/bash"}
	}
	if i := bytes.IndexByte(script, 0); i >= 0 {
		return nil, &Error{Line: bytes.Count(script[:i], []byte("\n")) + 1, Msg: "error: The batch script contains a NUL character; is it a binary file?"}
	}
	if i := bytes.Index(script, []byte("\r\n")); i >= 0 {
		return nil, &Error{Line: bytes.Count(script[:i], []byte("\n")) + 1, Msg: "error: Batch script contains DOS line breaks (\\r\\n) instead of Unix ones (\\n); convert it with dos2unix"}
	}
	var items []item
	firstCommand := 0
	lateWarned := false
	for n, line := range strings.Split(string(script), "\n") {
		lineNo := n + 1
		if lineNo == 1 {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#SBATCH"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			if firstCommand > 0 {
				if !lateWarned {
					p.warnAt(lineNo, "#SBATCH directives after the first command (line %d) are ignored, as Slurm ignores them", firstCommand)
					lateWarned = true
				}
				continue
			}
			words, err := splitDirective(rest)
			if err != nil {
				return nil, &Error{Line: lineNo, Msg: "error: " + err.Error()}
			}
			if len(words) > 0 && (words[0] == "hetjob" || words[0] == "packjob") {
				return nil, &Error{Line: lineNo, Msg: "error: heterogeneous jobs (#SBATCH " + words[0] + ") are not supported by usine; submit the components as separate jobs"}
			}
			got, extra, err := p.scanWords(words, lineNo)
			if err != nil {
				return nil, err
			}
			if len(extra) > 0 {
				p.warnAt(lineNo, "%q in an #SBATCH directive is not an option; it is ignored", strings.Join(extra, " "))
			}
			items = append(items, got...)
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' {
			if firstCommand == 0 && strings.HasPrefix(trimmed, "#SBATCH") && trimmed != line {
				p.warnAt(lineNo, "an indented #SBATCH is a plain comment, as in Slurm; start the line with #SBATCH to use it")
			}
			continue
		}
		if firstCommand == 0 {
			firstCommand = lineNo
		}
	}
	return items, nil
}

// splitDirective splits the rest of an #SBATCH line into words as a shell
// would, without expanding anything: quotes group, a backslash escapes the
// next character (inside double quotes only " and \), and an unquoted '#'
// starting a word begins a comment.
func splitDirective(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' quote in #SBATCH directive; close it")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				} else if s[i] == '"' {
					closed = true
					break
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("unterminated \" quote in #SBATCH directive; close it")
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// apply sets one option on the request, warns about it, or refuses it.
func (p *batchParser) apply(s *setter, it item) error {
	shown := it.opt.long
	if it.val != "" {
		shown += "=" + it.val
	}
	switch it.opt.support {
	case Warned:
		p.warnAt(it.line, "--%s is ignored: %s", shown, it.opt.note)
		return nil
	case Refused:
		return &Error{Line: it.line, Msg: fmt.Sprintf("error: --%s is not supported by usine: %s", it.opt.long, it.opt.note)}
	}
	if it.opt.long == "wrap" && it.line > 0 {
		return &Error{Line: it.line, Msg: "error: --wrap cannot be a directive: it replaces the script; give it on the command line"}
	}
	s.warn = func(format string, args ...any) { p.warnAt(it.line, format, args...) }
	if strings.Contains(it.val, "$") && it.line > 0 {
		p.warnAt(it.line, "--%s: #SBATCH lines are not expanded by a shell; %q is kept as written", it.opt.long, it.val)
	}
	if err := it.opt.set(s, it.val); err != nil {
		return &Error{Line: it.line, Msg: "error: " + err.Error()}
	}
	return nil
}

// finish checks what only the options together can say, and fills in what
// Slurm derives.
func (p *batchParser) finish(r *Request, directives, cmd []item) error {
	// Memory options replace one another across sources, but two in one
	// place contradict each other, as in Slurm.
	for _, src := range [][]item{directives, cmd} {
		mem := map[string]int{}
		for _, it := range src {
			if it.opt.group == "mem" {
				mem[it.opt.long] = it.line
			}
		}
		if len(mem) > 1 {
			line := 0
			for _, l := range mem {
				line = max(line, l)
			}
			return &Error{Line: line, Msg: "error: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive; give one"}
		}
	}
	if r.Name == "" {
		switch {
		case r.Wrap != "":
			r.Name = "wrap"
		case r.ScriptPath != "" && r.ScriptPath != "-":
			r.Name = path.Base(r.ScriptPath)
		default:
			r.Name = "sbatch"
		}
	}
	if r.Ntasks > 0 && r.NodesMin > r.Ntasks {
		p.warnAt(0, "can't run %d processes on %d nodes, setting nnodes to %d", r.Ntasks, r.NodesMin, r.Ntasks)
		r.NodesMin, r.NodesMax = r.Ntasks, r.Ntasks
	}
	if r.MemWholeNode && !r.Exclusive {
		p.warnAt(0, "--mem=0 asks for all of each node's memory, which usine does not count; add --exclusive to have whole nodes")
	}
	if r.Constraint != "" {
		r.Model = constraintModel(r.Constraint, func(format string, args ...any) { p.warnAt(0, format, args...) })
	}
	for _, g := range []struct {
		name string
		gpus GPUs
	}{{"--gpus", r.GPUs}, {"--gpus-per-node", r.GPUsPerNode}, {"--gpus-per-task", r.GPUsPerTask}, {"--gres", r.GresGPUs}} {
		if g.gpus.Type == "" {
			continue
		}
		m := strings.ToUpper(g.gpus.Type)
		if r.Model != "" && r.Model != m {
			return &Error{Msg: fmt.Sprintf("error: conflicting accelerator models: %s asks for %s but another option for %s; give one model", g.name, m, r.Model)}
		}
		r.Model = m
	}
	if _, err := r.shape(); err != nil {
		return &Error{Msg: "error: " + err.Error()}
	}
	return nil
}
