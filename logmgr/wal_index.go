package logmgr

// posIndex is the WAL's in-memory index: the positions of a run of
// consecutive entries. It is kept in fixed-size chunks, so that it grows
// without copying what it holds (a log of millions of entries would
// otherwise be copied, and its fresh memory faulted in, at every growth)
// and drops a prefix by dropping chunks.
//
// It is not synchronised: the WAL changes it under its write lock and
// reads it under its read lock (or as the writer).
type posIndex struct {
	chunks [][]walPos // each walIndexChunk long
	start  int        // where the first entry is in chunks[0]
	n      int        // number of entries
}

const (
	walIndexShift = 14
	walIndexChunk = 1 << walIndexShift
	walIndexMask  = walIndexChunk - 1
)

func (x *posIndex) len() int { return x.n }

// at returns the position of the i-th entry, i < len().
func (x *posIndex) at(i int) walPos {
	j := x.start + i
	return x.chunks[j>>walIndexShift][j&walIndexMask]
}

func (x *posIndex) append(ps ...walPos) {
	for _, p := range ps {
		j := x.start + x.n
		if j>>walIndexShift == len(x.chunks) {
			x.chunks = append(x.chunks, make([]walPos, walIndexChunk))
		}
		x.chunks[j>>walIndexShift][j&walIndexMask] = p
		x.n++
	}
}

// truncate keeps the first n entries, n <= len().
func (x *posIndex) truncate(n int) {
	x.n = n
	// Keep one spare chunk; let the rest go.
	if keep := (x.start+n)>>walIndexShift + 2; keep < len(x.chunks) {
		clear(x.chunks[keep:])
		x.chunks = x.chunks[:keep]
	}
}

// dropFront removes the first k entries, k <= len().
func (x *posIndex) dropFront(k int) {
	x.start += k
	x.n -= k
	if d := x.start >> walIndexShift; d > 0 {
		x.chunks = append([][]walPos(nil), x.chunks[d:]...)
		x.start &= walIndexMask
	}
}
