package chaos

import (
	"errors"
	"fmt"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// oracle watches a run from outside: every message between hosts (the
// simulator's OnSend hook) and every entry a state machine applies. From
// them it learns which entries are committed and who led each term, and
// checks the Raft safety properties as the run goes:
//
//   - election safety: at most one leader per term (a leader is whoever
//     sends AppendEntries or heartbeats in a term);
//   - leader completeness: when a leader first speaks in its term, its log
//     holds every entry known to be committed in an earlier term;
//   - state machine safety: every entry applied anywhere, and every entry a
//     leader declares committed, agrees with what is known to be committed
//     at that index;
//   - durability (unless skipped): a vote request, a granted vote and a
//     successful append reply leave only once what they state is durable.
type oracle struct {
	r *run
	// committed holds every entry known to be committed, by index; all
	// indexes up to contiguous are present.
	committed  map[uint64]entry
	contiguous uint64
	// committedBy bounds, for each committed index, the term in which it
	// was committed: it was known committed to a node of that term (the
	// leader that declared it, or a node that applied it).
	committedBy map[uint64]uint64
	// firstApplied is when each command was first applied anywhere.
	firstApplied map[string]time.Duration
	leaders      map[uint64]string
	// storage of each node's current life, for the durability checks.
	logs  map[string]*cluster.SyncedLog
	metas map[string]*cluster.SavedMeta
	// watched is what each node published last (invariants.go).
	watched map[string]*nodeWatch
	// states holds, by applied index, the hash of the state the first
	// node to reach it had there, and which node that was (snapshots.go).
	states map[uint64]stateSeen
}

type entry struct {
	term uint64
	data string
}

func newOracle(r *run) *oracle {
	return &oracle{
		r:            r,
		committed:    map[uint64]entry{},
		committedBy:  map[uint64]uint64{},
		firstApplied: map[string]time.Duration{},
		leaders:      map[uint64]string{},
		logs:         map[string]*cluster.SyncedLog{},
		metas:        map[string]*cluster.SavedMeta{},
		watched:      map[string]*nodeWatch{},
		states:       map[uint64]stateSeen{},
	}
}

// applied checks an entry a state machine applies against the committed
// ones, and records it (applied implies committed).
func (o *oracle) applied(node string, index, term uint64, data string) {
	if e, ok := o.committed[index]; ok {
		if e.term != term || e.data != data {
			o.r.violate("state machine safety", "%s applied entry %d of term %d %q, but entry %d of term %d %q is committed",
				node, index, term, data, index, e.term, e.data)
		}
	} else {
		o.committed[index] = entry{term, data}
	}
	if n := o.r.c.Node(node); n != nil {
		o.committedIn(index, n.Status().Term)
	}
	if _, ok := o.firstApplied[data]; !ok {
		o.firstApplied[data] = o.r.c.Sim.Now()
	}
}

// observe sees a message as it leaves its host.
func (o *oracle) observe(from, to actors.Ref, msg any) {
	defer func() {
		for _, w := range o.r.watchers {
			w(from, to, msg)
		}
	}()
	e, ok := msg.(*raftpb.Envelope)
	if !ok {
		return
	}
	switch e.Body.(type) {
	case *raftpb.Envelope_SnapshotFetch, *raftpb.Envelope_SnapshotChunk:
		// From a copy actor, which speaks for no vote or term of its
		// node: what the node publishes need not be durable yet.
	default:
		o.watchNode(e.From)
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_SnapshotChunk:
		o.r.chunks++
	case *raftpb.Envelope_InstallSnapshotResponse:
		if b.InstallSnapshotResponse.Success {
			o.r.installs++
		}
	case *raftpb.Envelope_AppendRequest:
		o.leader(e.Term, e.From)
		o.learnCommitted(e.From, e.Term, b.AppendRequest.Commit)
	case *raftpb.Envelope_HeartbeatRequest:
		o.leader(e.Term, e.From)
	}
	if o.r.cfg.SkipDirectChecks {
		return
	}
	// A vote is safe once the voter cannot vote again in its term: it is
	// durable, or the voter is durably in a later term.
	durableVote := func(node string, term uint64, vote string) bool {
		hs := o.metas[node].Durable
		return hs != nil && (hs.Term > term || (hs.Term == term && hs.Vote == vote))
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_VoteRequest:
		if hs := o.metas[e.From].Durable; !durableVote(e.From, e.Term, e.From) {
			o.r.violate("durability", "%s asked for votes in term %d before its vote for itself was durable (durable: %v)", e.From, e.Term, hs)
		}
	case *raftpb.Envelope_VoteResponse:
		if !b.VoteResponse.Granted {
			return
		}
		if hs := o.metas[e.From].Durable; !durableVote(e.From, e.Term, e.To) {
			o.r.violate("durability", "%s granted its vote to %s in term %d before it was durable (durable: %v)", e.From, e.To, e.Term, hs)
		}
	case *raftpb.Envelope_AppendResponse:
		// Entries up to a snapshot in the node's store are durable there:
		// right after an install, the log is reset only later, in order
		// with the appends that follow.
		durable := o.logs[e.From].Synced
		if n := o.r.c.Node(e.From); n != nil {
			durable = max(durable, n.Status().SnapshotIndex)
		}
		if r := b.AppendResponse; r.Success && r.MatchIndex > durable {
			o.r.violate("durability", "%s acknowledged entries up to %d with only %d synced", e.From, r.MatchIndex, durable)
		}
	}
}

// leader records that id leads term, checking election safety and, the
// first time, leader completeness.
func (o *oracle) leader(term uint64, id string) {
	prev, seen := o.leaders[term]
	if seen {
		if prev != id {
			o.r.violate("election safety", "two leaders in term %d: %s and %s", term, prev, id)
		}
		return
	}
	o.leaders[term] = id
	if !o.r.cfg.SkipDirectChecks {
		o.checkLeases(term, id)
	}
	n := o.r.c.Node(id)
	if n == nil {
		return
	}
	// Raft's leader completeness: a leader holds every entry committed in
	// an earlier term. An entry committed in its term or a later one need
	// not be there: a leader elected, then paused before it first spoke,
	// may speak after a later term's leader committed more. Entries
	// compacted away are covered by the leader's snapshot (the snapshot
	// bounds and the replica state checks see to that), and the term of
	// the one before the first is still known.
	log := n.Log()
	for i := max(1, log.FirstIndex()-1); i <= o.contiguous; i++ {
		if _, known := o.committed[i]; !known || o.committedBy[i] >= term {
			continue // unknown: skipped behind a snapshot (learnCommitted)
		}
		t, err := log.Term(i)
		if err != nil || t != o.committed[i].term {
			o.r.violate("leader completeness", "%s leads term %d but its entry %d has term %d (err %v); committed is term %d",
				id, term, i, t, err, o.committed[i].term)
			return
		}
	}
}

// checkLeases: when id first speaks as the leader of term, no leader of
// an earlier term may still hold a lease, by its own clock: the lease
// promises that no other leader is elected before it runs out.
func (o *oracle) checkLeases(term uint64, id string) {
	for _, x := range o.r.c.Up() {
		if x == id {
			continue
		}
		st := o.r.c.Node(x).Status()
		if st.Role != asyncraft.Leader || st.Term >= term || st.LeaseUntil.IsZero() {
			continue
		}
		if now := o.r.c.Sim.Host(x).Now(); now.Before(st.LeaseUntil) {
			o.r.violate("lease safety", "%s leads term %d while %s, leader of term %d, holds a lease for %v more by its clock",
				id, term, x, st.Term, st.LeaseUntil.Sub(now))
		}
	}
}

// committedIn records that index was known committed in term: it was
// committed in term or earlier.
func (o *oracle) committedIn(index, term uint64) {
	if by, ok := o.committedBy[index]; !ok || term < by {
		o.committedBy[index] = term
	}
}

// learnCommitted records the entries up to commit of the log of leader, of
// term, as committed.
func (o *oracle) learnCommitted(leader string, term, commit uint64) {
	if commit <= o.contiguous {
		return
	}
	n := o.r.c.Node(leader)
	if n == nil {
		return
	}
	log := n.Log()
	for o.contiguous < commit {
		ents, err := log.Entries(o.contiguous+1, commit+1, 1<<20)
		if first := log.FirstIndex(); errors.Is(err, logmgr.ErrCompacted) && o.contiguous+1 < first {
			// The leader compacted them behind its snapshot: it applied
			// them (their commands are known from that), and what its
			// state holds is checked by the replica state check. Entries
			// with no command (no-ops) stay unknown here.
			o.contiguous = first - 1
			continue
		}
		if err != nil || len(ents) == 0 {
			o.r.violate("leader completeness", "leader %s declares %d committed but cannot read entry %d: %v", leader, commit, o.contiguous+1, err)
			return
		}
		for _, e := range ents {
			got := entry{e.Term, string(e.Data)}
			if prev, ok := o.committed[e.Index]; ok && prev != got {
				o.r.violate("state machine safety", "leader %s commits entry %d of term %d, but entry %d of term %d was committed before",
					leader, e.Index, e.Term, e.Index, prev.term)
			}
			o.committed[e.Index] = got
			o.committedIn(e.Index, term)
			o.contiguous = e.Index
		}
	}
}

// checkLogMatching verifies the log matching property over the logs of the
// running nodes: two logs that hold an entry with the same index and term
// are identical up to it.
func (o *oracle) checkLogMatching() {
	ids := o.r.c.Up()
	for a := 0; a < len(ids); a++ {
		for b := a + 1; b < len(ids); b++ {
			if err := logsMatch(o.r, ids[a], ids[b]); err != nil {
				o.r.violate("log matching", "%v", err)
			}
		}
	}
}

func logsMatch(r *run, a, b string) error {
	la, lb := r.c.Node(a).Log(), r.c.Node(b).Log()
	last := min(la.LastIndex(), lb.LastIndex())
	diverged := uint64(0)
	// From the first entry both still hold: compaction drops prefixes.
	for lo := max(la.FirstIndex(), lb.FirstIndex()); lo <= last; {
		ea, err1 := la.Entries(lo, last+1, 1<<20)
		eb, err2 := lb.Entries(lo, last+1, 1<<20)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("reading logs of %s and %s from %d: %v %v", a, b, lo, err1, err2)
		}
		n := min(len(ea), len(eb))
		for i := 0; i < n; i++ {
			x, y := ea[i], eb[i]
			same := x.Term == y.Term
			if same && (x.Type != y.Type || string(x.Data) != string(y.Data)) {
				return fmt.Errorf("%s and %s hold different entries %d of term %d", a, b, x.Index, x.Term)
			}
			if !same && diverged == 0 {
				diverged = x.Index
			}
			if same && diverged != 0 {
				return fmt.Errorf("%s and %s differ at %d but agree on entry %d of term %d", a, b, diverged, x.Index, x.Term)
			}
		}
		lo += uint64(n)
	}
	return nil
}
