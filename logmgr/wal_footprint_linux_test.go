//go:build linux

package logmgr

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/vfs"
)

// BenchmarkWALIdle1000 opens 1,000 WALs with the default options in a
// temporary directory (a real disk), appends a few entries to each (five
// batches of four entries of 128 bytes, synced), and reports what they
// cost while open: disk (allocated blocks, as du counts them) per WAL and
// in all, file descriptors per WAL, and the time to open one. Skipped
// unless -bench names it: go test -run '^$' -bench WALIdle1000 ./logmgr/
func BenchmarkWALIdle1000(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "WALIdle1000") {
		b.Skip("opens 1,000 WALs: select it with -bench WALIdle1000")
	}
	const n = 1000
	for range b.N {
		dir := b.TempDir()
		fds := openFDs(b)
		ws := make([]*WAL, n)
		var openTime time.Duration
		for i := range ws {
			start := time.Now()
			w, err := OpenWAL(vfs.OS, filepath.Join(dir, fmt.Sprintf("g%04d", i)), WALOptions{})
			if err != nil {
				b.Fatal(err)
			}
			openTime += time.Since(start)
			ws[i] = w
			for j := uint64(1); j <= 20; j += 4 {
				if err := w.Append(batchOf(j, 4, 128, 1)); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		used := allocatedBytes(b, dir)
		open := openFDs(b) - fds
		for _, w := range ws {
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(used)/n/(1<<20), "MiB-disk/WAL")
		b.ReportMetric(float64(used)/(1<<30), "GiB-disk-total")
		b.ReportMetric(float64(open)/n, "fds/WAL")
		b.ReportMetric(openTime.Seconds()/n*1e3, "ms/open")
	}
}

// openFDs is the number of file descriptors the process has open.
func openFDs(b *testing.B) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(es)
}

// allocatedBytes is the disk space the files under dir take: their
// allocated blocks, as du counts them.
func allocatedBytes(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}
