package chaos

import (
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// The oracle's per-node invariants: what must only grow, grows.
//
//   - a node's term never decreases, across restarts (it is durable);
//   - a node's commit and applied indexes never decrease within a life
//     (neither is durable: a restarted node learns them anew);
//   - a durable hard state never goes back a term, and never changes its
//     vote within a term (a node votes once per term, even across crashes);
//   - an entry known to be committed is never truncated from any log;
//   - first log index <= snapshot index + 1 <= applied + 1 <= commit + 1:
//     a log is compacted only behind a snapshot, a snapshot covers only
//     what was applied, and only committed entries are applied.

// nodeWatch is what the oracle remembers of one node.
type nodeWatch struct {
	life            int
	term            uint64 // across lives
	commit, applied uint64 // this life
}

// watchNode checks node id's published state against what it published
// before. It runs each time the node sends a message to another host.
func (o *oracle) watchNode(id string) {
	n := o.r.c.Node(id)
	if n == nil {
		return
	}
	st := n.Status()
	w := o.watched[id]
	if w == nil {
		w = &nodeWatch{}
		o.watched[id] = w
	}
	if life := o.r.c.Life(id); life != w.life {
		w.life, w.commit, w.applied = life, 0, 0
		// A new life starts from the durable term: a term the previous
		// life adopted in memory and lost in the crash before it was
		// durable was never sent (sends wait for durability; its
		// replicators, stopping, still speak in their own term), so
		// going back to the durable one is no regression. The durable
		// term itself never goes back (savedHardState).
		if m := o.metas[id]; m != nil && m.Durable != nil {
			w.term = min(w.term, m.Durable.Term)
		}
	}
	if st.Term < w.term {
		o.r.violate("monotonic", "%s's term went from %d back to %d", id, w.term, st.Term)
	}
	if st.Commit < w.commit {
		o.r.violate("monotonic", "%s's commit index went from %d back to %d (life %d)", id, w.commit, st.Commit, w.life)
	}
	if st.Applied < w.applied {
		o.r.violate("monotonic", "%s's applied index went from %d back to %d (life %d)", id, w.applied, st.Applied, w.life)
	}
	if st.FirstIndex > st.SnapshotIndex+1 || st.SnapshotIndex > st.Applied || st.Applied > st.Commit {
		o.r.violate("snapshot bounds", "%s: first index %d, snapshot %d, applied %d, commit %d: want first <= snapshot+1 <= applied+1 <= commit+1",
			id, st.FirstIndex, st.SnapshotIndex, st.Applied, st.Commit)
	}
	w.term, w.commit, w.applied = max(w.term, st.Term), max(w.commit, st.Commit), max(w.applied, st.Applied)
}

// savedHardState checks a hard state node id made durable against the
// one durable before it.
func (o *oracle) savedHardState(id string, prev, next *raftpb.HardState) {
	if prev == nil {
		return
	}
	switch {
	case next.Term < prev.Term:
		o.r.violate("monotonic", "%s made term %d durable after term %d", id, next.Term, prev.Term)
	case next.Term == prev.Term && prev.Vote != "" && next.Vote != prev.Vote:
		o.r.violate("monotonic", "%s changed its durable vote in term %d from %s to %q", id, next.Term, prev.Vote, next.Vote)
	}
}

// truncating checks that node id's log, about to lose the entries from
// index from on, does not hold a committed entry there.
func (o *oracle) truncating(id string, s logmgr.LogStorage, from uint64) {
	c, ok := o.committed[from]
	if !ok {
		return
	}
	ents, err := s.Entries(from, from+1, 1<<20)
	if err != nil || len(ents) == 0 {
		return
	}
	if e := ents[0]; e.Term == c.term && string(e.Data) == c.data {
		o.r.violate("committed entry truncated", "%s truncates its log from %d, where it holds the committed entry of term %d", id, from, e.Term)
	}
}
