package node

// End-to-end tests of the node actor's doors, each in the harness of
// harness_test.go: one node actor alone in the simulator, its siblings
// probes, its peers fakes.

import (
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// TestHarnessVoteWaitsForHardState: a vote is durable before it is
// granted. A vote request of a higher term is refused while the node has
// just started (stickiness); once RestartQuiet ticks have passed, an
// up-to-date candidate gets the vote, but its answer leaves only once the
// log manager has saved the vote — not on the save of the new term alone,
// and never before.
func TestHarnessVoteWaitsForHardState(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 2)})
		b := w.peers["b"]

		// Just started: refused at once, in the node's term, nothing saved.
		seq := w.fromPeer("b", 2, voteRequest(2, 1, "B"))
		resp := got[*raftpb.Envelope_VoteResponse](b, b.ref)
		if len(resp) != 1 || resp[0].GetVoteResponse().Granted || resp[0].Term != 1 || resp[0].Seq != seq {
			w.fatalf("vote request during RestartQuiet: want one refusal of term 1 seq %d, got %v", seq, resp)
		}
		if len(w.saves()) != 0 || w.sh.Status().Term != 1 {
			w.fatalf("a refused vote request changed the hard state")
		}

		w.tick(hTicks.RestartQuiet)
		before := len(w.wire)
		seq = w.fromPeer("b", 2, voteRequest(2, 1, "B"))

		saves := w.saves()
		if len(saves) != 2 || saves[0].Term != 2 || saves[0].Vote != "" || saves[1].Term != 2 || saves[1].Vote != "b" {
			w.fatalf("want saves of (2, \"\") then (2, \"b\"), got %v", saves)
		}
		if st := w.sh.Status(); st.Term != 2 || st.Role != Follower {
			w.fatalf("status %v/%d, want follower in term 2", st.Role, st.Term)
		}
		// Nothing leaves while the vote is not durable, however long.
		w.run(50 * time.Millisecond)
		if len(w.wire) != before {
			w.fatalf("%d envelopes left before the vote was durable", len(w.wire)-before)
		}
		// The new term alone is durable: still not the vote.
		w.saveHardState()
		w.run(10 * time.Millisecond)
		if len(w.wire) != before {
			w.fatalf("%d envelopes left before the vote was durable (only the term was)", len(w.wire)-before)
		}
		// The vote is durable: the grant leaves.
		w.saveHardState()
		resp = got[*raftpb.Envelope_VoteResponse](b, b.ref)
		if len(resp) != 2 || !resp[1].GetVoteResponse().Granted || resp[1].Term != 2 || resp[1].Seq != seq {
			w.fatalf("want the vote granted in term 2 (seq %d) once durable, got %v", seq, resp)
		}
		if len(w.wire) != before+1 {
			w.fatalf("want exactly the grant to leave, %d envelopes left", len(w.wire)-before)
		}
	})
}

// TestHarnessFollowerAcksWaitForStable: a follower acknowledges entries
// only once they are durable; a heartbeat is answered at once.
func TestHarnessFollowerAcksWaitForStable(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		b := w.peers["b"]
		repl := b.replicatorRefOf(2)

		seq := w.fromPeer("b", 2, appendRequest(0, 0, 0, ents(1, 2, 3)))
		if a := w.appends(); len(a) != 1 || len(a[0].Entries) != 3 || a[0].Entries[0].Index != 1 || a[0].Entries[2].Index != 3 {
			w.fatalf("want one Append of 1..3, got %s", w.describeOps())
		}
		if st := w.sh.Status(); st.LastIndex != 3 || st.Leader != "b" || st.Term != 2 {
			w.fatalf("status last %d leader %q term %d, want 3, b, 2", st.LastIndex, st.Leader, st.Term)
		}
		if f := fsmGot[fsm.StartFollowing](w); len(f) != 1 || f[0].Change.Leader != "b" {
			w.fatalf("the FSM caller got %v, want StartFollowing b", f)
		}
		w.run(50 * time.Millisecond)
		if r := got[*raftpb.Envelope_AppendResponse](b, repl); len(r) != 0 {
			w.fatalf("append acknowledged before its entries were durable: %v", r)
		}

		// A heartbeat is answered at once, the ack still held.
		hbSeq := w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}})
		hb := got[*raftpb.Envelope_HeartbeatResponse](b, repl)
		if len(hb) != 1 || hb[0].Seq != hbSeq || hb[0].Term != 2 || hb[0].GetHeartbeatResponse().LastLogIndex != 3 {
			w.fatalf("want the heartbeat answered at once (seq %d, last 3), got %v", hbSeq, hb)
		}
		if r := got[*raftpb.Envelope_AppendResponse](b, repl); len(r) != 0 {
			w.fatalf("append acknowledged before its entries were durable: %v", r)
		}

		// Durable up to 2 of 3: still no ack.
		w.stable(2, 2)
		if r := got[*raftpb.Envelope_AppendResponse](b, repl); len(r) != 0 {
			w.fatalf("append of 1..3 acknowledged with only 2 durable: %v", r)
		}
		w.stable(3, 2)
		r := got[*raftpb.Envelope_AppendResponse](b, repl)
		if len(r) != 1 {
			w.fatalf("want one AppendResponse once 3 is durable, got %v", r)
		}
		if ar := r[0].GetAppendResponse(); !ar.Success || ar.MatchIndex != 3 || r[0].Seq != seq || r[0].Term != 2 {
			w.fatalf("want success match 3 seq %d term 2, got %v", seq, r[0])
		}
	})
}

// TestHarnessTermGate: an append of an earlier term is answered with the
// node's term and not appended; a pre-vote answer reaching a node that is
// not pre-campaigning changes nothing, even one of a higher term.
func TestHarnessTermGate(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 3, log: ents(1, 1, 2)})
		b := w.peers["b"]

		seq := w.fromPeer("b", 2, appendRequest(2, 1, 2, ents(3, 2, 2)))
		r := got[*raftpb.Envelope_AppendResponse](b, b.replicatorRefOf(2))
		if len(r) != 1 {
			w.fatalf("want the stale leader answered, got %v", b.got)
		}
		if r[0].Term != 3 || r[0].Seq != seq || r[0].GetAppendResponse().Success {
			w.fatalf("want a failure carrying term 3 (seq %d), got %v", seq, r[0])
		}
		if len(w.lm.ops) != 0 {
			w.fatalf("a stale append reached the log manager: %s", w.describeOps())
		}
		if st := w.sh.Status(); st.LastIndex != 2 || st.Term != 3 || st.Leader != "" || st.Commit != 0 {
			w.fatalf("status last %d term %d leader %q commit %d, want 2, 3, none, 0", st.LastIndex, st.Term, st.Leader, st.Commit)
		}
		if len(w.fsm.msgs) != 0 {
			w.fatalf("the FSM caller heard of a stale leader: %v", w.fsm.msgs)
		}

		// A stale pre-vote answer: a refusal of a higher term, then a grant.
		before := len(w.wire)
		w.fromPeer("c", 5, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{}}})
		w.fromPeer("b", 4, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{Granted: true}}})
		w.fromPeer("c", 4, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{Granted: true}}})
		if st := w.sh.Status(); st.Term != 3 || st.Role != Follower {
			w.fatalf("stale pre-vote answers moved the node to %v in term %d", st.Role, st.Term)
		}
		if len(w.lm.ops) != 0 || len(w.wire) != before {
			w.fatalf("stale pre-vote answers made the node save %s or send %d envelopes", w.describeOps(), len(w.wire)-before)
		}
	})
}

// TestHarnessElection: a node that hears no leader pre-votes after its
// election timeout, campaigns with a quorum of pre-votes (its requests
// leaving once its own vote is durable), and with a quorum of votes leads:
// it appends a no-op, tells the FSM caller, and its replicators carry the
// no-op to the peers; once a peer and its own disk hold it, it is
// committed.
func TestHarnessElection(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 1)})
		b, c := w.peers["b"], w.peers["c"]

		ticks := 0
		for len(w.wire) == 0 && ticks < 3*hTicks.Election {
			w.tick(1)
			ticks++
		}
		if ticks < hTicks.Election || ticks >= 2*hTicks.Election {
			w.fatalf("first message after %d ticks, want the election timeout in [%d, %d)", ticks, hTicks.Election, 2*hTicks.Election)
		}
		t.Logf("pre-vote after %d ticks", ticks)
		for _, p := range []*fakePeer{b, c} {
			pv := got[*raftpb.Envelope_PreVoteRequest](p, p.ref)
			if len(pv) != 1 || pv[0].Term != 2 || pv[0].GetPreVoteRequest().LastLogIndex != 1 || pv[0].GetPreVoteRequest().LastLogTerm != 1 {
				w.fatalf("%s: want one PreVoteRequest for term 2 with last 1/1, got %v", p.id, pv)
			}
		}
		if st := w.sh.Status(); st.Role != PreCandidate || st.Term != 1 || len(w.saves()) != 0 {
			w.fatalf("pre-vote: %v in term %d with saves %v, want a pre-candidate in term 1 that saved nothing", st.Role, st.Term, w.saves())
		}

		// One pre-vote is a quorum with its own: it campaigns.
		w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{Granted: true}}})
		if s := w.saves(); len(s) != 1 || s[0].Term != 2 || s[0].Vote != hSelf {
			w.fatalf("want its vote for itself in term 2 saved, got %v", s)
		}
		if st := w.sh.Status(); st.Role != Candidate || st.Term != 2 {
			w.fatalf("status %v term %d, want candidate in term 2", st.Role, st.Term)
		}
		w.run(20 * time.Millisecond)
		for _, p := range []*fakePeer{b, c} {
			if v := got[*raftpb.Envelope_VoteRequest](p, p.ref); len(v) != 0 {
				w.fatalf("%s got a VoteRequest before the candidate's vote was durable: %v", p.id, v)
			}
		}
		w.saveHardState()
		for _, p := range []*fakePeer{b, c} {
			v := got[*raftpb.Envelope_VoteRequest](p, p.ref)
			if len(v) != 1 || v[0].Term != 2 || v[0].GetVoteRequest().LastLogIndex != 1 || v[0].GetVoteRequest().LastLogTerm != 1 {
				w.fatalf("%s: want one VoteRequest of term 2 with last 1/1 once the vote is durable, got %v", p.id, v)
			}
		}
		if st := w.sh.Status(); st.Role != Candidate {
			w.fatalf("a candidate with only its own vote is %v", st.Role)
		}

		// One vote and its own: it leads.
		w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_VoteResponse{VoteResponse: &raftpb.VoteResponse{Granted: true}}})
		if st := w.sh.Status(); st.Role != Leader || st.Term != 2 || st.Leader != hSelf || st.LastIndex != 2 {
			w.fatalf("status %v term %d leader %q last %d, want leader a of term 2 with last 2", st.Role, st.Term, st.Leader, st.LastIndex)
		}
		a := w.appends()
		if len(a) != 1 || len(a[0].Entries) != 1 {
			w.fatalf("want one Append of the no-op, got %s", w.describeOps())
		}
		if e := a[0].Entries[0]; e.Index != 2 || e.Term != 2 || e.Type != raftpb.EntryType_ENTRY_TYPE_NOOP {
			w.fatalf("want the no-op at 2 in term 2, got %v", e)
		}
		if ls := fsmGot[fsm.LeaderStart](w); len(ls) != 1 || ls[0] != (fsm.LeaderStart{Term: 2, Index: 2}) {
			w.fatalf("the FSM caller got %v, want LeaderStart{2, 2}", ls)
		}

		// The replicators carry the no-op to both peers.
		var req *raftpb.Envelope
		for _, p := range []*fakePeer{b, c} {
			var found *raftpb.Envelope
			for _, e := range got[*raftpb.Envelope_AppendRequest](p, p.ref) {
				ar := e.GetAppendRequest()
				if e.Term == 2 && e.From == hSelf && ar.PrevLogIndex == 1 && ar.PrevLogTerm == 1 &&
					len(ar.Entries) == 1 && ar.Entries[0].Index == 2 {
					found = e
				}
			}
			if found == nil {
				w.fatalf("%s: no AppendRequest of the no-op from the leader's replicator, got %v", p.id, p.got)
			}
			if p == b {
				req = found
			}
		}
		if len(fsmGot[fsm.Committed](w)) != 0 {
			w.fatalf("committed before anything was durable")
		}
		// b acknowledges it to its replicator; the leader's own disk has it.
		w.fromPeerTo("b", replicatorRef("A", hGroup, hSelf, "b", 2), 2, &raftpb.Envelope{Seq: req.Seq,
			Body: &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{Success: true, MatchIndex: 2, LastLogIndex: 2}}})
		if len(fsmGot[fsm.Committed](w)) != 0 {
			w.fatalf("committed before the leader's own entry was durable")
		}
		w.stable(2, 2)
		if cm := fsmGot[fsm.Committed](w); len(cm) != 1 || cm[0].Index != 2 {
			w.fatalf("want Committed 2 once b and the leader hold the no-op, got %v", cm)
		}
		if st := w.sh.Status(); st.Commit != 2 {
			w.fatalf("status commit %d, want 2", st.Commit)
		}
	})
}

// TestHarnessConflictingSuffix: entries of a deposed leader above the
// commit index are replaced by the new leader's: the log manager is told
// to truncate, then to append, in that order; the log and Status show the
// new entries, and a late Stable about the truncated entries releases
// nothing.
func TestHarnessConflictingSuffix(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		c := w.peers["c"]

		// Leader b of term 2: entries 1@1, 2@2 .. 5@2, 1 committed.
		old := append(ents(1, 1, 1), ents(2, 2, 4)...)
		w.fromPeer("b", 2, appendRequest(0, 0, 1, old))
		if st := w.sh.Status(); st.LastIndex != 5 || st.Commit != 1 {
			w.fatalf("status last %d commit %d, want 5, 1", st.LastIndex, st.Commit)
		}
		nOps := len(w.lm.ops)

		// Leader c of term 3: after 1@1 come 2@3, 3@3, 4@3 (and no 5).
		seq := w.fromPeer("c", 3, appendRequest(1, 1, 1, ents(2, 3, 3)))
		ops := w.lm.ops[nOps:]
		var trunc, app = -1, -1
		for i, op := range ops {
			switch m := op.(type) {
			case logmgr.TruncateSuffix:
				if m.From != 2 || trunc >= 0 {
					w.fatalf("unexpected truncation: %s", w.describeOps())
				}
				trunc = i
			case logmgr.Append:
				if len(m.Entries) != 3 || m.Entries[0].Index != 2 || m.Entries[0].Term != 3 || app >= 0 {
					w.fatalf("unexpected append: %s", w.describeOps())
				}
				app = i
			}
		}
		if trunc < 0 || app < 0 || trunc > app {
			w.fatalf("want TruncateSuffix from 2 then Append 2..4, got %s", w.describeOps())
		}
		if st := w.sh.Status(); st.LastIndex != 4 || st.Term != 3 || st.Leader != "c" || st.Commit != 1 {
			w.fatalf("status last %d term %d leader %q commit %d, want 4, 3, c, 1", st.LastIndex, st.Term, st.Leader, st.Commit)
		}
		for i, want := range []uint64{1, 3, 3, 3} {
			if term, err := w.log.Term(uint64(i + 1)); err != nil || term != want {
				w.fatalf("log entry %d: term %d (%v), want %d", i+1, term, err, want)
			}
		}
		// The storage the probe applied the operations to agrees.
		if _, err := w.log.Term(5); err == nil {
			w.fatalf("the log still holds entry 5")
		}
		if w.st.LastIndex() != 4 {
			w.fatalf("storage last index %d, want 4", w.st.LastIndex())
		}

		// A Stable about the truncated entries (the log manager wrote 4@2
		// before it got the truncation) is stale: it says nothing of 4@3,
		// so no ack.
		w.saveHardState() // term 3 durable
		repl := c.replicatorRefOf(3)
		w.stable(4, 2)
		if r := got[*raftpb.Envelope_AppendResponse](c, repl); len(r) != 0 {
			w.fatalf("acknowledged on a Stable about truncated entries: %v", r)
		}
		w.stable(4, 3)
		r := got[*raftpb.Envelope_AppendResponse](c, repl)
		if len(r) != 1 || !r[0].GetAppendResponse().Success || r[0].GetAppendResponse().MatchIndex != 4 || r[0].Seq != seq {
			w.fatalf("want success match 4 (seq %d) once 4@3 is durable, got %v", seq, r)
		}
	})
}

// TestHarnessShutdownWaitsForASnapshot: a shutdown that finds a snapshot
// being taken waits, once the log manager has closed, for the executor's
// report before it stops the executor (whose Captured, still on its way,
// would be dropped, and the state machine's persister never released).
func TestHarnessShutdownWaitsForASnapshot(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, snapshots: true})
		w.A.Send(hNodeRef, TakeSnapshot{Done: func(uint64, error) {}})
		w.settle()
		if len(w.snap.msgs) != 1 {
			w.fatalf("the executor got %v, want Save", w.snap.msgs)
		}
		w.A.Send(hNodeRef, ShutdownNode{})
		w.settle()
		w.A.Send(hNodeRef, fsm.ShutdownDone{})
		w.settle()
		w.A.Send(hNodeRef, logmgr.Closed{})
		w.settle()
		if w.stopped != 0 || !slices.Contains(w.A.Actors(), SnapshotterName(hGroup, hSelf)) {
			w.fatalf("the node stopped (%d) with a snapshot being taken; actors left %v", w.stopped, w.A.Actors())
		}
		w.A.Send(hNodeRef, snapshot.Saved{Meta: &raftpb.SnapshotMeta{LastIndex: 1, LastTerm: 1}})
		w.settle()
		if w.stopped != 1 || slices.Contains(w.A.Actors(), SnapshotterName(hGroup, hSelf)) {
			w.fatalf("after the snapshot's report: stopped %d, actors left %v", w.stopped, w.A.Actors())
		}
	})
}

// TestHarnessShutdown: an orderly shutdown fails what the node holds with
// ESHUTDOWN (through the executor), then closes the FSM caller and the log
// manager in that order, and only then stops and reports it once.
func TestHarnessShutdown(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		task := &fsm.Task{}
		task.Init(closure.Func(func(closure.Status) {}))
		if st, _ := w.sh.Proposals.Push(Proposal{Task: task, Data: []byte("x")}); st.Code != closure.OK {
			w.fatalf("push: %v", st)
		}

		w.A.Send(hNodeRef, ShutdownNode{})
		w.settle()
		if st := w.sh.Status(); st.Role != Shutdown {
			w.fatalf("role %v after ShutdownNode, want shutdown", st.Role)
		}
		var done []closure.Completion
		for _, m := range w.exec.msgs {
			if b, ok := m.(closure.Batch); ok {
				done = append(done, b...)
			}
		}
		if len(done) != 1 || done[0].Closure != closure.Closure(&task.Guard) || done[0].Status.Code != closure.ESHUTDOWN {
			w.fatalf("executor got %v, want the queued proposal failed with ESHUTDOWN", done)
		}
		if s := fsmGot[fsm.Shutdown](w); len(s) != 1 {
			w.fatalf("the FSM caller got %v, want Shutdown", w.fsm.msgs)
		}
		if len(w.lm.ops) != 0 {
			w.fatalf("the log manager was closed before the FSM caller was done: %s", w.describeOps())
		}

		w.A.Send(hNodeRef, fsm.ShutdownDone{})
		w.settle()
		if len(w.lm.ops) != 1 {
			w.fatalf("want Close to the log manager once the FSM caller is done, got %s", w.describeOps())
		}
		if _, ok := w.lm.ops[0].(logmgr.Close); !ok {
			w.fatalf("want Close to the log manager once the FSM caller is done, got %s", w.describeOps())
		}
		if w.stopped != 0 {
			w.fatalf("Stopped called before the log manager closed")
		}

		w.A.Send(hNodeRef, logmgr.Closed{})
		w.settle()
		if w.stopped != 1 {
			w.fatalf("Stopped called %d times, want once", w.stopped)
		}
		if left := w.A.Actors(); len(left) != 1 || left[0] != hExecRef.Name {
			w.fatalf("actors left on A: %v, want only the executor", left)
		}
		if len(w.out.sent)+len(w.out.stopped)+len(w.out.batches) != 0 {
			w.fatalf("an orderly shutdown used Outside")
		}
	})
}
