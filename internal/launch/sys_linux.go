//go:build linux

package launch

import (
	"syscall"
	"unsafe"
)

// cgroupsSupported: only Linux has cgroups.
const cgroupsSupported = true

// jobAttr starts a job as the leader of its own process group, inside
// the cgroup open as cgroupFD when it is ≥ 0 (clone3's CLONE_INTO_CGROUP:
// no instant when the job runs outside it).
func jobAttr(cgroupFD int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if cgroupFD >= 0 {
		a.UseCgroupFD, a.CgroupFD = true, cgroupFD
	}
	return a
}

// waitExited waits for child pid to end without reaping it: while it is a
// zombie its ID, which is also its process group's, cannot be reused, so
// the group can still be killed safely.
func waitExited(pid int) error {
	const pPID, wNOWAIT = 1, 0x1000000
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNOWAIT, 0, 0)
		if e != syscall.EINTR {
			if e != 0 {
				return e
			}
			return nil
		}
	}
}
