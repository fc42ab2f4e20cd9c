package logmgr

import "sort"

// posIndex is the WAL's in-memory index: the positions of a run of
// consecutive entries. It is kept in fixed-size chunks, so that it grows
// without copying what it holds (a log of millions of entries would
// otherwise be copied, and its fresh memory faulted in, at every growth)
// and drops a prefix by dropping chunks.
//
// Each entry costs 8 bytes (its offset and length in its segment); terms
// are kept as runs, since a term spans many entries.
//
// A new index's first chunk starts short (walIndexFirst entries) and
// doubles as entries arrive, up to the full size, so that a small log (an
// idle group of a multi-raft host) does not hold a whole chunk.
//
// It is not synchronised: the WAL changes it under its write lock and
// reads it under its read lock (or as the writer).
type posIndex struct {
	chunks  [][]walLoc // each walIndexChunk long, but the first may be shorter
	start   int        // where the first entry is in chunks[0]
	n       int        // number of entries
	dropped int        // entries dropped from the front since the index began
	terms   []termRun  // by increasing from; the last covers the last entry
}

// walLoc is where an entry's record payload is in its segment.
type walLoc struct {
	off, n uint32
}

// termRun says that the entries from ordinal from on (counted since the
// index began, dropped ones included) have term term, up to the next run.
type termRun struct {
	from int
	term uint64
}

const (
	walIndexShift = 14
	walIndexChunk = 1 << walIndexShift
	walIndexMask  = walIndexChunk - 1
	// walIndexFirst is the length of a new index's first chunk.
	walIndexFirst = 256
)

func (x *posIndex) len() int { return x.n }

// at returns the position of the i-th entry, i < len().
func (x *posIndex) at(i int) walPos {
	j := x.start + i
	loc := x.chunks[j>>walIndexShift][j&walIndexMask]
	ord := x.dropped + i
	k := sort.Search(len(x.terms), func(k int) bool { return x.terms[k].from > ord }) - 1
	return walPos{off: loc.off, n: loc.n, term: x.terms[k].term}
}

func (x *posIndex) append(ps ...walPos) { x.appendAt(ps, 0) }

// appendAt appends ps with at added to their offsets.
func (x *posIndex) appendAt(ps []walPos, at uint32) {
	term, runs := uint64(0), len(x.terms)
	if runs > 0 {
		term = x.terms[runs-1].term
	}
	for len(ps) > 0 {
		j := x.start + x.n
		ci, off := j>>walIndexShift, j&walIndexMask
		if ci == len(x.chunks) {
			size := walIndexChunk
			if ci == 0 {
				size = walIndexFirst
			}
			x.chunks = append(x.chunks, make([]walLoc, size))
		}
		if c := x.chunks[ci]; off >= len(c) {
			// A short first chunk, full: double it (at least to fit).
			grown := make([]walLoc, min(walIndexChunk, max(2*len(c), off+len(ps))))
			copy(grown, c)
			x.chunks[ci] = grown
		}
		c := x.chunks[ci][off:]
		c = c[:min(len(c), len(ps))]
		for i, p := range ps[:len(c)] {
			if p.term != term || len(x.terms) == 0 {
				term = p.term
				x.terms = append(x.terms, termRun{from: x.dropped + x.n + i, term: term})
			}
			c[i] = walLoc{off: p.off + at, n: p.n}
		}
		x.n += len(c)
		ps = ps[len(c):]
	}
}

// truncate keeps the first n entries, n <= len().
func (x *posIndex) truncate(n int) {
	x.n = n
	end := x.dropped + n
	k := sort.Search(len(x.terms), func(k int) bool { return x.terms[k].from >= end })
	x.terms = x.terms[:k]
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
	x.dropped += k
	// Keep the run covering the new first entry and those after it.
	i := sort.Search(len(x.terms), func(i int) bool { return x.terms[i].from > x.dropped }) - 1
	if i > 0 {
		x.terms = append(x.terms[:0], x.terms[i:]...)
	}
	if d := x.start >> walIndexShift; d > 0 {
		x.chunks = append([][]walLoc(nil), x.chunks[d:]...)
		x.start &= walIndexMask
	}
}
