//go:build !linux

package main

import "syscall"

// memberProcAttr: the bench measures through /proc and needs Linux; this
// keeps it building elsewhere.
func memberProcAttr() *syscall.SysProcAttr { return nil }
