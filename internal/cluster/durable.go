package cluster

import (
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// SyncedLog wraps a node's LogStorage to know what is durable: the last
// index covered by a Sync that returned, minus anything truncated since.
// Checks compare what a node says against it.
type SyncedLog struct {
	logmgr.LogStorage
	Synced uint64
	// OnTruncate, if set, sees every suffix truncation before it happens,
	// with the storage still holding the entries it removes.
	OnTruncate func(s logmgr.LogStorage, from uint64)
}

// NewSyncedLog wraps s, whose entries are all durable.
func NewSyncedLog(s logmgr.LogStorage) *SyncedLog {
	return &SyncedLog{LogStorage: s, Synced: s.LastIndex()}
}

func (l *SyncedLog) Sync() error {
	last := l.LogStorage.LastIndex()
	err := l.LogStorage.Sync()
	if err == nil {
		l.Synced = last
	}
	return err
}

func (l *SyncedLog) TruncateSuffix(from uint64) error {
	if l.OnTruncate != nil {
		l.OnTruncate(l.LogStorage, from)
	}
	err := l.LogStorage.TruncateSuffix(from)
	if err == nil && l.Synced >= from {
		// Entries past the cut are gone; those before stay durable.
		l.Synced = from - 1
	}
	return err
}

// Reset empties the log to continue at next (a snapshot was installed);
// it is durable when it returns.
func (l *SyncedLog) Reset(next, term uint64) error {
	err := l.LogStorage.Reset(next, term)
	if err == nil {
		l.Synced = next - 1
	}
	return err
}

// SavedMeta wraps a node's MetaStorage to know the durable hard state: the
// last one loaded or saved.
type SavedMeta struct {
	logmgr.MetaStorage
	Durable *raftpb.HardState
	// OnSave, if set, sees every hard state made durable, after the one
	// durable before it (nil if none).
	OnSave func(prev, next *raftpb.HardState)
}

func (m *SavedMeta) Load() (*raftpb.HardState, error) {
	hs, err := m.MetaStorage.Load()
	if err == nil {
		m.Durable = hs
	}
	return hs, err
}

func (m *SavedMeta) Save(hs *raftpb.HardState) error {
	err := m.MetaStorage.Save(hs)
	if err == nil {
		if m.OnSave != nil {
			m.OnSave(m.Durable, hs)
		}
		m.Durable = hs
	}
	return err
}
