package launch

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// signalNames are the signals jobs and orders name.
func signalNames() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ABRT": syscall.SIGABRT,
		"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
		"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT,
		"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU,
		"WINCH": syscall.SIGWINCH, "BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE, "ILL": syscall.SIGILL,
		"TRAP": syscall.SIGTRAP, "SYS": syscall.SIGSYS, "PROF": syscall.SIGPROF, "XFSZ": syscall.SIGXFSZ,
		"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "VTALRM": syscall.SIGVTALRM, "IO": syscall.SIGIO,
	}
}

// ParseSignal reads a signal as jobs and users name it: "TERM",
// "SIGTERM", "sigusr1" or "15".
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if s, ok := signalNames()[n]; ok {
		return s, nil
	}
	if i, err := strconv.Atoi(n); err == nil && i > 0 && i < 65 {
		return syscall.Signal(i), nil
	}
	return 0, fmt.Errorf("unknown signal %q: use a name such as TERM, INT, USR1 or KILL, or a number", name)
}

// SignalName is the short name of s ("TERM"), or its number.
func SignalName(s syscall.Signal) string {
	for k, v := range signalNames() {
		if v == s {
			return k
		}
	}
	return strconv.Itoa(int(s))
}
