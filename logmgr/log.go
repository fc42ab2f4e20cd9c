package logmgr

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asyncraft/asyncraft/raftpb"
)

// Log is a node's log as the protocol sees it: every entry the node holds,
// durable or not. Recent entries are cached in memory; older ones are read
// from the storage, where they are durable.
//
// Owner: the node actor is its only writer (Append, TruncateFrom, Trim).
// Replicators and the FSM caller read it from their own goroutines; reads
// never wait for disk I/O while holding the lock, so they cannot stall the
// node.
//
// Invariant: entries below the cache (index < cacheStart) are durable in
// the storage and are never rewritten while below it. The node trims the
// cache only up to an index that is both durable and committed, which Raft
// never truncates: up to what is also applied (Trim), and beyond it, when
// the cache outgrows its byte budget, up to what is not (Spill). Right
// after a restart nothing is cached and the storage may end with
// uncommitted entries; truncating those moves the cache start back to the
// cut, so from then on the storage is only read below the cut, where
// nothing changes.
//
// Slices returned by Entries stay valid and unchanged forever: the cache
// only ever grows into unused capacity, and a truncation copies it.
type Log struct {
	storage LogStorage

	mu         sync.RWMutex
	cacheStart uint64          // index of cache[0]
	cache      []*raftpb.Entry // entries [cacheStart, last]
	last       uint64
	lastTerm   uint64
	// resetIndex and resetTerm are the entry before the log's start after
	// a Reset (0: none): its term is known here before the storage, which
	// the log manager resets later, says so.
	resetIndex, resetTerm uint64

	// bytes is the size of the cached entries (EntrySize each). Written
	// under mu by the node actor; read without it by CachedBytes.
	bytes atomic.Uint64
}

// NewLog returns the Log over storage, whose entries are all durable.
func NewLog(storage LogStorage) (*Log, error) {
	last := storage.LastIndex()
	term, err := storage.Term(last)
	if err != nil {
		return nil, fmt.Errorf("logmgr: term of last entry %d: %w", last, err)
	}
	return &Log{storage: storage, cacheStart: last + 1, last: last, lastTerm: term}, nil
}

// Storage is the storage under the log.
func (l *Log) Storage() LogStorage { return l.storage }

// FirstIndex is the index of the first entry of the log.
func (l *Log) FirstIndex() uint64 { return l.storage.FirstIndex() }

// LastIndex is the index of the last entry (0 for an empty log).
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// Last returns the index and term of the last entry.
func (l *Log) Last() (index, term uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last, l.lastTerm
}

// Term returns the term of entry index (0 for index 0).
func (l *Log) Term(index uint64) (uint64, error) {
	l.mu.RLock()
	if index == 0 {
		l.mu.RUnlock()
		return 0, nil
	}
	if index > l.last {
		l.mu.RUnlock()
		return 0, ErrUnavailable
	}
	if index >= l.cacheStart {
		t := l.cache[index-l.cacheStart].Term
		l.mu.RUnlock()
		return t, nil
	}
	if index == l.resetIndex {
		t := l.resetTerm
		l.mu.RUnlock()
		return t, nil
	}
	l.mu.RUnlock()
	return l.storage.Term(index)
}

// MatchTerm reports whether the log holds entry index with the given term.
func (l *Log) MatchTerm(index, term uint64) bool {
	t, err := l.Term(index)
	return err == nil && t == term
}

// Entries returns the entries in [lo, hi), stopping once their sizes exceed
// maxBytes but returning at least one when lo < hi. The result must not be
// modified.
func (l *Log) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	l.mu.RLock()
	start, cache, last := l.cacheStart, l.cache, l.last
	l.mu.RUnlock()
	if hi > last+1 {
		return nil, fmt.Errorf("logmgr: entries [%d, %d) beyond last index %d: %w", lo, hi, last, ErrUnavailable)
	}
	if lo >= start {
		return limitBytes(cache[lo-start:hi-start:hi-start], maxBytes), nil
	}
	// The part below the cache is durable and never changes: read it
	// without the lock.
	stored, err := l.storage.Entries(lo, min(hi, start), maxBytes)
	if err != nil {
		return nil, err
	}
	if hi <= start || uint64(len(stored)) < min(hi, start)-lo {
		return stored, nil
	}
	var size uint64
	for _, e := range stored {
		size += entrySize(e)
	}
	out := stored
	for i := start; i < hi; i++ {
		e := cache[i-start]
		size += entrySize(e)
		if size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// Append adds entries after the last one. Only the node actor calls it.
func (l *Log) Append(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ents[0].Index != l.last+1 {
		return fmt.Errorf("logmgr: append at index %d after last index %d", ents[0].Index, l.last)
	}
	l.cache = append(l.cache, ents...)
	l.bytes.Add(sizeOf(ents))
	l.last = ents[len(ents)-1].Index
	l.lastTerm = ents[len(ents)-1].Term
	return nil
}

// TruncateFrom removes the entries at and after index from, which must be
// in the cache. Only the node actor calls it.
func (l *Log) TruncateFrom(from uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from < 1 || from > l.last+1 {
		return fmt.Errorf("logmgr: truncate from %d outside the log [1, %d]", from, l.last+1)
	}
	if from == l.last+1 {
		return nil
	}
	if from < l.cacheStart {
		// The entries to remove are only in storage (after a restart,
		// nothing is cached). Start the cache at the cut: the storage's
		// stale entries from there on are never read again, and the
		// log manager removes them in order with later appends.
		l.cache = nil
		l.bytes.Store(0)
		l.cacheStart = from
	} else {
		// Copy, so that slices handed out by Entries stay valid.
		cut := from - l.cacheStart
		l.bytes.Add(-sizeOf(l.cache[cut:]))
		l.cache = append([]*raftpb.Entry(nil), l.cache[:cut]...)
	}
	l.last = from - 1
	if len(l.cache) > 0 {
		l.lastTerm = l.cache[len(l.cache)-1].Term
		return nil
	}
	t, err := l.storage.Term(l.last)
	if err != nil {
		return fmt.Errorf("logmgr: term of %d after truncation: %w", l.last, err)
	}
	l.lastTerm = t
	return nil
}

// Reset empties the log so that it continues at next, the entry before it
// having term term (a snapshot up to next-1 was installed). Only the node
// actor calls it, and sends the log manager a Reset to do the same to the
// storage, in order with later appends; until the manager has, reads
// below next may still reach the storage's old entries, which the
// snapshot covers.
func (l *Log) Reset(next, term uint64) error {
	if next == 0 {
		return fmt.Errorf("logmgr: reset to next index 0")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cache = nil
	l.bytes.Store(0)
	l.cacheStart = next
	l.last, l.lastTerm = next-1, term
	l.resetIndex, l.resetTerm = next-1, term
	return nil
}

// Trim drops cached entries up to and including upTo, which the caller
// guarantees are durable in the storage and committed. Only the node actor
// calls it.
func (l *Log) Trim(upTo uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if upTo < l.cacheStart {
		return
	}
	l.dropThrough(min(upTo, l.last))
}

// Spill drops the oldest cached entries, none after upTo, until the cache
// holds at most keep bytes (or everything up to upTo is gone): entries the
// caller guarantees are durable and committed but may not be applied yet.
// Readers get them from the storage from then on. It bounds the memory of
// a backlog that a slow state machine, or a lagging follower, leaves in
// the cache. Only the node actor calls it.
func (l *Log) Spill(upTo, keep uint64) {
	if l.bytes.Load() <= keep {
		return // the usual case, without the lock (only the caller writes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Count the entries to drop from the front; each entry is counted
	// once over the cache's life, as it leaves.
	total := l.bytes.Load()
	n := 0
	for idx := l.cacheStart; total > keep && idx <= min(upTo, l.last); idx++ {
		total -= entrySize(l.cache[n])
		n++
	}
	if n > 0 {
		l.drop(uint64(n), total)
	}
}

// dropThrough drops the cached entries up to and including upTo (none if
// upTo is before the cache; upTo <= last). l.mu is held.
func (l *Log) dropThrough(upTo uint64) {
	if upTo < l.cacheStart {
		return
	}
	n := upTo - l.cacheStart + 1
	l.drop(n, l.bytes.Load()-sizeOf(l.cache[:n]))
}

// drop drops the first n cached entries, leaving bytes in the cache. l.mu
// is held.
func (l *Log) drop(n, bytes uint64) {
	// No clear(): readers may still hold the old slice. The trimmed
	// pointers go when append next reallocates the array.
	l.cache = l.cache[n:]
	l.cacheStart += n
	l.bytes.Store(bytes)
}

// sizeOf is the size of ents, EntrySize each.
func sizeOf(ents []*raftpb.Entry) uint64 {
	var n uint64
	for _, e := range ents {
		n += entrySize(e)
	}
	return n
}

// Cached is the number of entries held in memory.
func (l *Log) Cached() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.cache)
}

// CachedBytes is the size of the entries held in memory, counted as
// EntrySize counts them. Safe from any goroutine.
func (l *Log) CachedBytes() uint64 { return l.bytes.Load() }
