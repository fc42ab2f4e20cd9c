package logmgr

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// MemoryStorage is a LogStorage in memory. Nothing survives the process;
// use it for tests and benchmarks.
type MemoryStorage struct {
	mu      sync.RWMutex
	entries []*raftpb.Entry // entries[i].Index == i+1
	closed  bool
}

var _ LogStorage = (*MemoryStorage)(nil)

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{} }

func (m *MemoryStorage) FirstIndex() uint64 { return 1 }

func (m *MemoryStorage) LastIndex() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return uint64(len(m.entries))
}

func (m *MemoryStorage) Term(index uint64) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if index == 0 {
		return 0, nil
	}
	if index > uint64(len(m.entries)) {
		return 0, ErrUnavailable
	}
	return m.entries[index-1].Term, nil
}

func (m *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if lo < 1 {
		return nil, ErrCompacted
	}
	if hi > uint64(len(m.entries))+1 {
		return nil, ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	return limitBytes(m.entries[lo-1:hi-1:hi-1], maxBytes), nil
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
	if want := uint64(len(m.entries)) + 1; entries[0].Index != want {
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
	if from < 1 || from > uint64(len(m.entries))+1 {
		return fmt.Errorf("logmgr: truncate from %d outside [1, %d]", from, len(m.entries)+1)
	}
	// Copy so that slices handed out by Entries stay valid.
	m.entries = append([]*raftpb.Entry(nil), m.entries[:from-1]...)
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
