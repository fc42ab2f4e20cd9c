package logmgr

import (
	"testing"

	"github.com/asyncraft/asyncraft/raftpb"
)

// BenchmarkAppendCPU measures the processor time of a 256-entry append
// that is not disk time: encoding the batch record (with its checksum)
// and indexing its entries, in ns per batch. BenchmarkWAL's
// append-batch-256 pays it once per batch on top of the write.
func BenchmarkAppendCPU(b *testing.B) {
	data := make([]byte, 128)
	es := make([]*raftpb.Entry, 256)
	for i := range es {
		es[i] = &raftpb.Entry{Term: 1, Data: data}
	}
	var (
		buf  []byte
		pos  []walPos
		x    posIndex
		next = uint64(1)
	)
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range es {
			e.Index = next
			next++
		}
		var err error
		buf, pos, err = appendBatchRecords(buf[:0], pos[:0], es, es[0].Index, seqFrame(1))
		if err != nil {
			b.Fatal(err)
		}
		x.appendAt(pos, 4096)
		if x.len() >= 1<<20 {
			x.truncate(0)
		}
	}
}
