// Package logmgr keeps a node's Raft log and its hard state: in memory for
// the protocol, on disk for durability.
//
// Three pieces share the work:
//
//   - [Log] is the log as the node sees it — every entry it holds, durable
//     or not. The node actor is its only writer (append, truncate the
//     suffix, trim the cache); replicators and the FSM caller read it
//     concurrently. It keeps recent entries in memory and reads older ones
//     from storage.
//   - [Manager], the log manager actor, owns the storage. The node sends it
//     appends, suffix truncations and hard-state saves; it batches whatever
//     arrives while a write is in flight into the next write (group
//     commit), and tells the node when entries are durable ([Stable]) and
//     when the hard state is ([HardStateSaved]).
//   - The disk writer actor, the manager's child, performs each batch: the
//     operations in order, then one sync. It is the only actor that blocks
//     on the disk.
//
// Storage sits behind two interfaces, [LogStorage] and [MetaStorage], with
// an in-memory implementation for tests and benchmarks ([MemoryStorage],
// [MemoryMeta]) and file implementations on a [vfs.FS] that survive
// crashes: [WAL], the segmented write-ahead log (see wal.go for its
// format), and [FileMeta].
package logmgr

import (
	"errors"
	"path"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// Errors returned by LogStorage reads.
var (
	// ErrCompacted: the entry is before the first index the storage holds.
	ErrCompacted = errors.New("logmgr: entry compacted")
	// ErrUnavailable: the entry is after the last index the storage holds.
	ErrUnavailable = errors.New("logmgr: entry unavailable")
	// ErrClosed: the storage is closed.
	ErrClosed = errors.New("logmgr: storage closed")
)

// LogStorage holds a node's log entries durably.
//
// The log is the entries [FirstIndex(), LastIndex()], plus the term of the
// entry just before the first one (Term(FirstIndex()-1)), which the
// storage keeps after discarding that entry (TruncatePrefix) or without
// ever having held it (Reset), so that the consistency check of the next
// append still works.
//
// Concurrency: the mutating methods (Append, TruncateSuffix,
// TruncatePrefix, Reset, Sync, Close) are called by one goroutine at a
// time — the disk writer actor's. The reading methods may be called at any
// time from any goroutine, concurrently with each other and with a
// mutation; implementations synchronise internally. A read never observes
// a half-applied mutation.
//
// Ownership: entries passed to Append and returned by Entries are immutable;
// the storage may keep the slice elements passed to Append, and callers must
// not modify returned entries.
//
// Durability: a mutation need not be durable until Sync returns; once it
// is, it stays, and it is ordered with the mutations around it: a crash
// never resurrects removed entries behind later ones. After a crash the
// storage holds the state after some prefix of the mutations since the
// last successful Sync (at least the state as of that Sync).
//
// Errors: once Sync has failed, the storage may not know what reached the
// disk; implementations then fail every later mutation rather than retry.
type LogStorage interface {
	// FirstIndex is the index of the first entry held (LastIndex()+1 when
	// the log is empty). It only grows, except through Reset.
	FirstIndex() uint64
	// LastIndex is the index of the last entry held (FirstIndex()-1 when
	// the log is empty, 0 when it has never held one).
	LastIndex() uint64
	// Term is the term of entry index. Term(0) is 0, and
	// Term(FirstIndex()-1) is the term of the entry before the first one.
	// It returns ErrCompacted for other indexes before FirstIndex()-1 and
	// ErrUnavailable after LastIndex().
	Term(index uint64) (uint64, error)
	// Entries returns the entries in [lo, hi), stopping early once their
	// data exceeds maxBytes (but always at least one entry when lo < hi).
	// It returns ErrCompacted if lo < FirstIndex() and ErrUnavailable if
	// hi > LastIndex()+1.
	Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error)
	// Append writes entries after the last one: entries[0].Index must be
	// LastIndex()+1 and indexes consecutive. The entries need not be
	// durable until Sync.
	Append(entries []*raftpb.Entry) error
	// TruncateSuffix removes every entry at or after index from, which
	// must be at least FirstIndex() and at most LastIndex()+1.
	// Once synced, the removal is durable, and ordered with the appends
	// around it: a crash never resurrects removed entries behind later
	// ones.
	TruncateSuffix(from uint64) error
	// TruncatePrefix allows the storage to discard the entries before
	// index first, which must be at most LastIndex()+1 (a smaller first
	// than FirstIndex() is a no-op). The storage may keep some of them:
	// FirstIndex() reports what it actually kept, and is at most first.
	// Term(FirstIndex()-1) stays known. A discard that was not synced may
	// be undone by a crash, which is harmless.
	TruncatePrefix(first uint64) error
	// Reset empties the log and makes it continue at index next >= 1:
	// afterwards FirstIndex() == next, LastIndex() == next-1 and
	// Term(next-1) == term, and the next Append starts at next. It is
	// meant for installing a snapshot that covers the entries up to
	// next-1. Once synced it is durable and ordered with the appends
	// after it.
	Reset(next, term uint64) error
	// Sync makes every mutation so far durable.
	Sync() error
	// Close releases the storage. Reads after Close return ErrClosed.
	Close() error
}

// MetaStorage holds a node's hard state (term, vote, and the bootstrap
// record the node was first started with).
//
// Save and Load are called by the disk writer actor (Load, and Save at a
// node's first start, also once at start, before any actor runs); calls
// never overlap. An implementation must keep the whole HardState message,
// its bootstrap record included: a node whose record is lost adopts its
// current configuration as the record again (with a warning), so it can
// no longer tell a start with a different configuration from its first;
// and it draws a new incarnation, so its peers take it for a voter back
// on wiped data and refuse it (ErrWipedData, docs/membership.md).
type MetaStorage interface {
	// Load returns the last hard state saved, or an empty one.
	Load() (*raftpb.HardState, error)
	// Save stores hs durably before it returns. The caller does not
	// modify hs afterwards; the storage may keep it.
	Save(hs *raftpb.HardState) error
	// Close releases the storage.
	Close() error
}

// entrySize is the number of bytes an entry counts for against byte caps.
func entrySize(e *raftpb.Entry) uint64 { return uint64(len(e.Data)) + 24 }

// EntrySize is the size an entry counts for in byte caps (batches, RPCs):
// its data plus a fixed overhead for index, term and type.
func EntrySize(e *raftpb.Entry) uint64 { return entrySize(e) }

// mkdirDurable creates dir and any missing parents, and syncs the parent of
// each directory it creates, so that a crash cannot lose the directory
// (and every file in it) after its files were synced.
func mkdirDurable(fsys vfs.FS, dir string) error {
	var missing []string
	for d := path.Clean(dir); ; d = path.Dir(d) {
		if _, err := fsys.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if parent := path.Dir(d); parent == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(path.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
