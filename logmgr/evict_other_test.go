//go:build !linux

package logmgr

import "testing"

// evictPages is Linux only.
func evictPages(b *testing.B, dir string) { b.Skip("evicting pages needs Linux") }
