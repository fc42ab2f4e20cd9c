//go:build !linux

package main

import (
	"io/fs"
	"syscall"
)

// memberProcAttr: the bench measures through /proc and needs Linux; this
// keeps it building elsewhere.
func memberProcAttr() *syscall.SysProcAttr { return nil }

// allocatedBytes is the file's size where the platform does not say
// what it takes on disk.
func allocatedBytes(info fs.FileInfo) int64 { return info.Size() }
