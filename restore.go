package asyncraft

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Restart from a snapshot. Before a node's actors start, StartNode loads
// the newest valid snapshot into the state machine (OnSnapshotLoad, on the
// caller's goroutine: nothing else runs yet) and lines the log up with it:
//
//   - The log continues the snapshot when it holds the snapshot's last
//     entry (index and term), or starts right after it: the node then
//     replays the entries after it, up to the commit index saved with its
//     hard state at once, the rest as the leader commits them.
//   - A log that ends before the snapshot's last entry, or holds another
//     term there, is replaced by an empty one that continues the snapshot
//     (logmgr.LogStorage.Reset). The snapshot holds only committed state,
//     so what the log held there was not committed: a snapshot installed
//     from the leader, then a crash before the log was reset, leaves this.
//   - A log that starts after the snapshot's last entry + 1 cannot be
//     combined with it: entries in between are missing. That snapshot is
//     not used.
//
// A snapshot whose data does not check out as it is read (a checksum
// mismatch, snapshot.ErrCorrupt) is skipped with a warning, and the one
// before it is tried: the node compacts its log no further than that one's
// last entry (node.Actor.compact), so the log still continues it. Any other
// failure (an I/O error, a state machine that refuses) fails the start.

// restored is what restore found: the snapshot loaded (nil: none) and the
// last index of the one before it (0: none).
type restored struct {
	meta *raftpb.SnapshotMeta
	prev uint64
	// load is how long OnSnapshotLoad took (with the verification).
	load time.Duration
}

// restore loads the newest usable snapshot of snaps into sm and lines
// storage up with it.
func restore(logger *slog.Logger, sm fsm.StateMachine, snaps *snapshot.Store, storage logmgr.LogStorage) (restored, error) {
	first := storage.FirstIndex()
	var list []*raftpb.SnapshotMeta
	if snaps != nil {
		list = snaps.List()
	}
	if len(list) == 0 {
		if first > 1 {
			return restored{}, fmt.Errorf("the log starts at entry %d and no snapshot covers the entries before it%s", first, damagedNote(snaps))
		}
		return restored{}, nil
	}
	var skipped []string
	for i, m := range list { // newest first
		if m.LastIndex+1 < first {
			return restored{}, fmt.Errorf("snapshot %d/%d cannot be combined with the log, which starts at entry %d (skipped: %v)%s",
				m.LastIndex, m.LastTerm, first, skipped, damagedNote(snaps))
		}
		start := time.Now()
		err := loadSnapshot(sm, snaps, m)
		if errors.Is(err, snapshot.ErrCorrupt) {
			logger.Warn("asyncraft: snapshot damaged; trying the one before it", "index", m.LastIndex, "term", m.LastTerm, "err", err)
			skipped = append(skipped, fmt.Sprintf("%d/%d damaged", m.LastIndex, m.LastTerm))
			continue
		}
		if err != nil {
			return restored{}, fmt.Errorf("load snapshot %d/%d: %w", m.LastIndex, m.LastTerm, err)
		}
		r := restored{meta: m, load: time.Since(start)}
		logger.Info("asyncraft: state machine restored from snapshot", "index", m.LastIndex, "term", m.LastTerm,
			"bytes", m.DataSize, "load", r.load.Round(time.Millisecond))
		if i+1 < len(list) {
			r.prev = list[i+1].LastIndex
		}
		if t, err := storage.Term(m.LastIndex); m.LastIndex > storage.LastIndex() || err != nil || t != m.LastTerm {
			logger.Info("asyncraft: the log does not continue the snapshot; it restarts after it",
				"snapshot", m.LastIndex, "term", m.LastTerm, "log_first", first, "log_last", storage.LastIndex())
			if err := storage.Reset(m.LastIndex+1, m.LastTerm); err != nil {
				return restored{}, fmt.Errorf("reset the log after snapshot %d/%d: %w", m.LastIndex, m.LastTerm, err)
			}
		}
		return r, nil
	}
	return restored{}, fmt.Errorf("no usable snapshot: %v", skipped)
}

func damagedNote(snaps *snapshot.Store) string {
	if snaps == nil || len(snaps.Damaged()) == 0 {
		return ""
	}
	return fmt.Sprintf("; damaged snapshots: %v", snaps.Damaged())
}

// loadSnapshot has sm load snapshot m. The extra files are checked first
// (a state machine may take them over without reading them); the data is
// checked as sm reads it, and what sm left unread is read afterwards, so
// that the whole data is checked (the reader reports a mismatch at its
// end).
func loadSnapshot(sm fsm.StateMachine, snaps *snapshot.Store, m *raftpb.SnapshotMeta) (err error) {
	r, err := openChecked(snaps, m)
	if err != nil {
		return err
	}
	defer r.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the state machine's OnSnapshotLoad panicked: %v\n%s", p, debug.Stack())
		}
	}()
	if err := sm.OnSnapshotLoad(source{r}); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return nil
}

// openerOf returns how the FSM caller opens a snapshot of snaps to load it
// (fsm.Load.Open): the extra files checked first, and the close func
// reading what the state machine left of the data, to check it.
func openerOf(snaps *snapshot.Store) func(*raftpb.SnapshotMeta) func() (fsm.SnapshotSource, func() error, error) {
	if snaps == nil {
		return nil
	}
	return func(m *raftpb.SnapshotMeta) func() (fsm.SnapshotSource, func() error, error) {
		return func() (fsm.SnapshotSource, func() error, error) {
			r, err := openChecked(snaps, m)
			if err != nil {
				return nil, nil, err
			}
			return source{r}, func() error {
				_, err := io.Copy(io.Discard, r)
				if cerr := r.Close(); err == nil {
					err = cerr
				}
				return err
			}, nil
		}
	}
}

// openChecked opens snapshot m of snaps with its extra files checked.
func openChecked(snaps *snapshot.Store, m *raftpb.SnapshotMeta) (*snapshot.Reader, error) {
	r, err := snaps.Open(m.LastIndex, m.LastTerm)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		fr, err := r.File(f.Name)
		if err == nil {
			_, err = io.Copy(io.Discard, fr)
			if cerr := fr.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// source is a stored snapshot as a state machine reads it.
type source struct{ r *snapshot.Reader }

func (s source) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s source) Meta() fsm.SnapshotMeta {
	m := s.r.Meta()
	return fsm.SnapshotMeta{Index: m.LastIndex, Term: m.LastTerm, Configuration: m.Configuration}
}

func (s source) Files() []string {
	m := s.r.Meta()
	out := make([]string, len(m.Files))
	for i, f := range m.Files {
		out[i] = f.Name
	}
	return out
}

func (s source) OpenFile(name string) (io.ReadCloser, error) { return s.r.File(name) }
