package main

import "syscall"

// memberProcAttr puts a member process in its own process group (a Ctrl-C
// on the terminal reaches the orchestrator only, which kills its members
// by PID) and has the kernel kill it if the orchestrator's thread dies.
// A member also exits when its stdin ends.
func memberProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
