package node

import (
	"errors"
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Snapshots: when the node asks its snapshot executor for one. A snapshot
// is taken every SnapshotEntries applied entries, every SnapshotLogBytes
// bytes of entries written to the log, every Ticks.Snapshot ticks if
// anything was applied meanwhile, and when Node.Snapshot asks; never two
// at once. The executor has the FSM caller capture the
// state, persists it and reports Saved or SaveFailed.
//
// After each snapshot the log is compacted (compact): the log manager may
// drop the entries that both the newest snapshot and the one before it
// cover, keeping SnapshotTrailingEntries before the newest. Keeping the
// log back to the snapshot before the newest lets a restart fall back to
// it when the newest turns out damaged (docs/snapshots.md).

// snapshots is the node's record of its snapshots.
type snapshots struct {
	// index is the newest snapshot's last index (0: none), prev the one
	// before it (0: none kept), compacted the first index the log was last
	// told to keep.
	index, prev, compacted uint64
	// running: one was asked for and has not been reported yet; waiter,
	// if set, is the Node.Snapshot call that asked.
	running bool
	waiter  func(uint64, error)
	// unsupported: the state machine refused (fsm.ErrSnapshotUnsupported);
	// no more automatic snapshots in this run.
	unsupported bool
	// sending holds, while this node leads, the last index of the
	// snapshot being installed on each follower: the log keeps the
	// entries after it, which the follower needs next (else compaction
	// could chase an install with another).
	sending map[string]uint64
	// bytes written to the log and ticks passed since the last one was
	// asked for.
	bytes uint64
	ticks int
}

// ErrNoSnapshots is the error of Node.Snapshot on a node that keeps no
// snapshots: one without a data directory.
var ErrNoSnapshots = errors.New("asyncraft: this node keeps no snapshots (it has no data directory)")

// maybeSnapshot starts an automatic snapshot when one is due: SnapshotEntries
// entries applied since the last one, SnapshotLogBytes written to the log
// or Ticks.Snapshot ticks passed since the last was asked for — in every
// case only if something was applied since the last one.
func (a *Actor) maybeSnapshot(env actors.Env) {
	s := &a.snap
	if a.cfg.Snapshotter.IsZero() || s.running || s.unsupported || a.failed != nil || a.applied <= s.index {
		return
	}
	due := (a.cfg.SnapshotEntries > 0 && a.applied >= s.index+a.cfg.SnapshotEntries) ||
		(a.cfg.SnapshotLogBytes > 0 && s.bytes >= a.cfg.SnapshotLogBytes) ||
		(a.cfg.Ticks.Snapshot > 0 && s.ticks >= a.cfg.Ticks.Snapshot)
	if due {
		a.startSnapshot(env)
	}
}

// snapshotTick counts a tick toward Ticks.Snapshot.
func (a *Actor) snapshotTick(env actors.Env) {
	if a.cfg.Ticks.Snapshot > 0 {
		a.snap.ticks++
		a.maybeSnapshot(env)
	}
}

func (a *Actor) startSnapshot(env actors.Env) {
	a.snap.running = true
	a.snap.bytes, a.snap.ticks = 0, 0
	env.Send(a.cfg.Snapshotter, snapshot.Save{})
}

// onTakeSnapshot serves Node.Snapshot.
func (a *Actor) onTakeSnapshot(env actors.Env, m TakeSnapshot) {
	var err error
	switch {
	case a.cfg.Snapshotter.IsZero():
		err = ErrNoSnapshots
	case a.failed != nil:
		err = fmt.Errorf("asyncraft: no snapshot: the node failed: %w", a.failed)
	case a.snap.running:
		err = fmt.Errorf("asyncraft: no snapshot: %w; retry when it completes", snapshot.ErrBusy)
	}
	if err != nil {
		a.snapshotDone(m.Done, 0, err)
		return
	}
	if a.snap.index > 0 && a.applied <= a.snap.index {
		// Nothing applied since the newest snapshot: it is the answer.
		a.snapshotDone(m.Done, a.snap.index, nil)
		return
	}
	a.snap.waiter = m.Done
	a.startSnapshot(env)
}

// onSnapshotReport handles the executor's Saved and SaveFailed. After a
// success the next automatic snapshot may be due already (entries applied
// while this one was taken).
func (a *Actor) onSnapshotReport(env actors.Env, msg any) {
	s := &a.snap
	s.running = false
	done := s.waiter
	s.waiter = nil
	switch m := msg.(type) {
	case snapshot.Saved:
		a.sh.Metrics.Snapshots.Add(1)
		if m.Meta.LastIndex > s.index {
			if a.cfg.SnapshotKeep >= 2 {
				s.prev = s.index
			}
			s.index = m.Meta.LastIndex
			a.sh.snapshot.Store(s.index)
		}
		a.compact(env)
		a.debug("snapshot saved", "index", m.Meta.LastIndex, "term", m.Meta.LastTerm)
		a.snapshotDone(done, m.Meta.LastIndex, nil)
		a.maybeSnapshot(env)
	case snapshot.SaveFailed:
		a.sh.Metrics.SnapshotFailures.Add(1)
		if errors.Is(m.Err, fsm.ErrSnapshotUnsupported) && !s.unsupported {
			s.unsupported = true
			if a.cfg.SnapshotEntries > 0 || a.cfg.SnapshotLogBytes > 0 || a.cfg.Ticks.Snapshot > 0 {
				a.logger.Info("asyncraft: the state machine does not support snapshots; the node takes none and keeps its whole log")
			}
		} else if done == nil {
			a.logger.Warn("asyncraft: snapshot not taken", "err", m.Err)
		}
		a.snapshotDone(done, 0, m.Err)
	}
}

// compact tells the log manager which entries the snapshots made
// unnecessary: those before the newest snapshot's last index less
// SnapshotTrailingEntries, the previous snapshot's last index + 1, and
// the index after each snapshot being installed on a follower. It
// also saves the commit index with the hard state, so that a restart
// replays the entries after the snapshot up to it at once.
func (a *Actor) compact(env actors.Env) {
	s := &a.snap
	first := s.index + 1 - min(s.index, a.cfg.SnapshotTrailingEntries)
	if a.cfg.SnapshotKeep >= 2 {
		first = min(first, s.prev+1)
	}
	for _, idx := range s.sending {
		first = min(first, idx+1)
	}
	if faults.On(faults.CompactPastSnapshot) {
		first = a.stable + 1 // everything durable, snapshot or not
	}
	if first > s.compacted && first > 1 {
		s.compacted = first
		a.confs.Compact(first)
		env.Send(a.cfg.LogManager, logmgr.TruncatePrefix{First: first})
	}
	a.persistHardState(env)
}

// installing records that a follower is being sent the snapshot up to
// index.
func (s *snapshots) installing(peer string, index uint64) {
	if s.sending == nil {
		s.sending = map[string]uint64{}
	}
	s.sending[peer] = index
}

// snapshotDone completes a Node.Snapshot call on the callback executor.
func (a *Actor) snapshotDone(done func(uint64, error), index uint64, err error) {
	if done == nil {
		return
	}
	a.completions = append(a.completions, closure.Completion{Closure: closure.Func(func(closure.Status) { done(index, err) })})
}
