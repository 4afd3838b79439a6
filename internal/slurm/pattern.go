package slurm

import (
	"strconv"
	"strings"
)

// PatternVars are the values %-patterns in -o, -e and -i file names stand
// for.
type PatternVars struct {
	JobID       string // %j: the job's own id
	ArrayJobID  string // %A: the array's job id; "" when the job is not in an array
	ArrayTaskID int    // %a, when ArrayJobID is set
	StepID      string // %s, and the step part of %J; "" = the batch step
	JobName     string // %x
	User        string // %u
	Node        string // %N: the short host name (up to the first '.')
	NodeID      int    // %n: the node's rank in the job
	TaskID      int    // %t: the task's rank
}

// noArrayTask is what %a prints outside an array, as in Slurm.
const noArrayTask = "4294967294"

// ExpandPattern replaces Slurm's file-name patterns in pattern: %j %J %A %a
// %x %u %N %n %t %s and %% (a percent sign). A number after the % pads
// numeric values with zeros to that width ("%4a" → 0007; at most 10);
// names ignore it. Outside an array %A is the job id and %a is 4294967294,
// as Slurm prints them. Unknown patterns are kept as written, and a
// pattern holding a backslash is not expanded at all (Slurm's way to write
// a literal %): only the backslashes are removed.
func ExpandPattern(pattern string, v PatternVars) string {
	if strings.Contains(pattern, `\`) {
		return strings.ReplaceAll(pattern, `\`, "")
	}
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(pattern) && pattern[j] >= '0' && pattern[j] <= '9' {
			j++
		}
		if j >= len(pattern) {
			b.WriteString(pattern[i:])
			break
		}
		width, _ := strconv.Atoi(pattern[i+1 : j])
		width = min(width, 10)
		num := func(n string) {
			for k := len(n); k < width; k++ {
				b.WriteByte('0')
			}
			b.WriteString(n)
		}
		switch pattern[j] {
		case '%':
			b.WriteByte('%')
		case 'j':
			num(v.JobID)
		case 'J':
			num(v.JobID)
			if v.StepID != "" {
				b.WriteString("." + v.StepID)
			}
		case 'A':
			if v.ArrayJobID != "" {
				num(v.ArrayJobID)
			} else {
				num(v.JobID)
			}
		case 'a':
			if v.ArrayJobID != "" {
				num(strconv.Itoa(v.ArrayTaskID))
			} else {
				num(noArrayTask)
			}
		case 's':
			if v.StepID != "" {
				num(v.StepID)
			} else {
				b.WriteString("batch")
			}
		case 'x':
			b.WriteString(v.JobName)
		case 'u':
			b.WriteString(v.User)
		case 'N':
			host, _, _ := strings.Cut(v.Node, ".")
			b.WriteString(host)
		case 'n':
			num(strconv.Itoa(v.NodeID))
		case 't':
			num(strconv.Itoa(v.TaskID))
		default:
			b.WriteString(pattern[i : j+1])
		}
		i = j
	}
	return b.String()
}
