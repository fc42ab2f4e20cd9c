package logmgr

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

func BenchmarkExpWALSplit(b *testing.B) {
	dir := b.TempDir()
	w, err := OpenWAL(vfs.OS, filepath.Join(dir, "wal"), WALOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := make([]byte, 128)
	next := uint64(1)
	es := make([]*raftpb.Entry, 256)
	var tApp, tSync time.Duration
	ExpZeroW, ExpPlainW, ExpZeroN, ExpPlainN = 0, 0, 0, 0
	b.ResetTimer()
	for range b.N {
		for i := range es {
			es[i] = &raftpb.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		s := time.Now()
		w.Append(es)
		m := time.Now()
		w.Sync()
		e := time.Now()
		tApp += m.Sub(s)
		tSync += e.Sub(m)
	}
	b.ReportMetric(float64(tApp.Microseconds())/float64(b.N), "append-us")
	b.ReportMetric(float64(tSync.Microseconds())/float64(b.N), "sync-us")
	b.ReportMetric(float64(ExpZeroW.Microseconds())/float64(max(1, ExpZeroN)), "zerowrite-us")
	b.ReportMetric(float64(ExpPlainW.Microseconds())/float64(max(1, ExpPlainN)), "plainwrite-us")
	b.ReportMetric(float64(ExpZeroN), "zerowrites")
}
