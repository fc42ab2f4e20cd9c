package logmgr

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// fadvDontNeed is POSIX_FADV_DONTNEED.
const fadvDontNeed = 4

// evictPages drops the page-cache pages of every file in dir (clean pages
// only, which is all a synced log has), so that the next read comes from
// the disk.
func evictPages(b *testing.B, dir string) {
	names, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n.Name()))
		if err != nil {
			b.Fatal(err)
		}
		_, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0)
		f.Close()
		if errno != 0 {
			b.Fatalf("fadvise %s: %v", n.Name(), errno)
		}
	}
}
