package chaos

import "syscall"

// procAttr makes a node process die with the test binary, should the
// test itself be killed before its cleanups run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
