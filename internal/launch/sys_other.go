//go:build !linux

package launch

import (
	"errors"
	"syscall"
)

const cgroupsSupported = false

func jobAttr(int) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func waitExited(int) error { return errors.ErrUnsupported }
