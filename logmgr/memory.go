package logmgr

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// MemoryStorage is a LogStorage in memory. Nothing survives the process;
// use it for tests and benchmarks. TruncatePrefix discards exactly the
// entries asked for.
type MemoryStorage struct {
	mu       sync.RWMutex
	first    uint64          // index of entries[0]
	prevTerm uint64          // term of entry first-1
	entries  []*raftpb.Entry // entries[i].Index == first+i
	closed   bool
}

var _ LogStorage = (*MemoryStorage)(nil)

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{first: 1} }

func (m *MemoryStorage) FirstIndex() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.first
}

func (m *MemoryStorage) LastIndex() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.last()
}

func (m *MemoryStorage) last() uint64 { return m.first + uint64(len(m.entries)) - 1 }

func (m *MemoryStorage) Term(index uint64) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	switch {
	case index == 0:
		return 0, nil
	case index == m.first-1:
		return m.prevTerm, nil
	case index < m.first:
		return 0, ErrCompacted
	case index > m.last():
		return 0, ErrUnavailable
	}
	return m.entries[index-m.first].Term, nil
}

func (m *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if lo < m.first {
		return nil, ErrCompacted
	}
	if hi > m.last()+1 {
		return nil, ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	lo, hi = lo-m.first, hi-m.first
	return limitBytes(m.entries[lo:hi:hi], maxBytes), nil
}

func (m *MemoryStorage) Append(entries []*raftpb.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(entries) == 0 {
		return nil
	}
	if want := m.last() + 1; entries[0].Index != want {
		return fmt.Errorf("logmgr: append at index %d, want %d", entries[0].Index, want)
	}
	m.entries = append(m.entries, entries...)
	return nil
}

func (m *MemoryStorage) TruncateSuffix(from uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if from < m.first || from > m.last()+1 {
		return fmt.Errorf("logmgr: truncate from %d outside [%d, %d]", from, m.first, m.last()+1)
	}
	// Copy so that slices handed out by Entries stay valid.
	m.entries = append([]*raftpb.Entry(nil), m.entries[:from-m.first]...)
	return nil
}

func (m *MemoryStorage) TruncatePrefix(first uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if first > m.last()+1 {
		return fmt.Errorf("logmgr: truncate prefix before %d after the last index %d", first, m.last())
	}
	if first <= m.first {
		return nil
	}
	n := first - m.first
	m.prevTerm = m.entries[n-1].Term
	// Copy, so that the discarded entries can be collected; slices handed
	// out by Entries stay valid.
	m.entries = append([]*raftpb.Entry(nil), m.entries[n:]...)
	m.first = first
	return nil
}

func (m *MemoryStorage) Reset(next, term uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if next == 0 {
		return fmt.Errorf("logmgr: reset to next index 0")
	}
	m.first, m.prevTerm, m.entries = next, term, nil
	return nil
}

func (m *MemoryStorage) Sync() error { return nil }

func (m *MemoryStorage) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// MemoryMeta is a MetaStorage in memory.
type MemoryMeta struct {
	mu sync.Mutex
	hs *raftpb.HardState
}

var _ MetaStorage = (*MemoryMeta)(nil)

// NewMemoryMeta returns an empty MemoryMeta.
func NewMemoryMeta() *MemoryMeta { return &MemoryMeta{} }

func (m *MemoryMeta) Load() (*raftpb.HardState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hs == nil {
		return &raftpb.HardState{}, nil
	}
	return proto.Clone(m.hs).(*raftpb.HardState), nil
}

func (m *MemoryMeta) Save(hs *raftpb.HardState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hs = hs
	return nil
}

func (m *MemoryMeta) Close() error { return nil }

// limitBytes returns the longest prefix of ents whose sizes sum to at most
// maxBytes, and at least one entry.
func limitBytes(ents []*raftpb.Entry, maxBytes uint64) []*raftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := entrySize(ents[0])
	for i := 1; i < len(ents); i++ {
		size += entrySize(ents[i])
		if size > maxBytes {
			return ents[:i:i]
		}
	}
	return ents
}
