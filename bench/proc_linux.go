package main

import (
	"io/fs"
	"syscall"
)

// memberProcAttr puts a member process in its own process group (a Ctrl-C
// on the terminal reaches the orchestrator only, which kills its members
// by PID) and has the kernel kill it if the orchestrator's thread dies.
// A member also exits when its stdin ends.
func memberProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// allocatedBytes is the space a file takes on disk (st_blocks × 512).
func allocatedBytes(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
