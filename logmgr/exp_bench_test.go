package logmgr

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/vfs"
)

func BenchmarkExpWrite(b *testing.B) {
	for _, mode := range []string{"prezeroed", "zero-chunk-ahead", "fallocate-only", "fallocate-only-unaligned"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			var big vfs.File
			if mode == "prezeroed" {
				big = newRawDisk(b, dir).f
			} else {
				f, _ := vfs.OS.Create(filepath.Join(dir, "big"))
				f.Truncate(rawFileSize)
				f.Preallocate(0, rawFileSize)
				f.Sync()
				big = f
			}
			n := 37 << 10
			if mode == "fallocate-only-unaligned" {
				n = 37*1024 + 123
			}
			buf := make([]byte, n)
			off, zeroed := int64(0), int64(0)
			var tw, ts time.Duration
			b.ResetTimer()
			for range b.N {
				s := time.Now()
				out := buf
				if mode == "zero-chunk-ahead" && off+int64(n) > zeroed {
					z := alignUp(off+int64(n), walZeroChunk)
					out = append(append([]byte(nil), buf...), zeros[:z-off-int64(n)]...)
					zeroed = z
				}
				big.WriteAt(out, off)
				m := time.Now()
				big.Sync()
				tw += m.Sub(s)
				ts += time.Since(m)
				off += int64(n)
				if off+int64(n)+walZeroChunk > rawFileSize {
					b.StopTimer()
					off, zeroed = 0, 0
					if mode != "prezeroed" {
						big.Close()
						f, _ := vfs.OS.Create(filepath.Join(dir, "big"))
						f.Truncate(rawFileSize)
						f.Preallocate(0, rawFileSize)
						f.Sync()
						big = f
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(tw.Microseconds())/float64(b.N), "write-us")
			b.ReportMetric(float64(ts.Microseconds())/float64(b.N), "sync-us")
		})
	}
}
