package node

// Tests of a follower's side of the snapshot install (install.go), in the
// harness of harness_test.go with setup.snapshots: the node's copy actor
// is a recorder (w.copy), and the test answers for it (snapshot.Fetched,
// FetchFailed) and for the FSM caller (fsm.Applied).

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// snapMeta is the manifest of a snapshot up to index (of term), as a
// leader's copy actor offers it.
func snapMeta(index, term uint64) *raftpb.SnapshotMeta {
	return &raftpb.SnapshotMeta{LastIndex: index, LastTerm: term, DataSize: 100, DataCrc32C: 0xabcd,
		Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "A"}, {Id: "b", Addr: "B"}, {Id: "c", Addr: "C"}}}}
}

func installRequest(meta *raftpb.SnapshotMeta) *raftpb.Envelope {
	return &raftpb.Envelope{Body: &raftpb.Envelope_InstallSnapshotRequest{InstallSnapshotRequest: &raftpb.InstallSnapshotRequest{Meta: meta}}}
}

// copyGot is what the node's copy actor got of type T.
func copyGot[T any](w *world) []T {
	var out []T
	for _, m := range w.copy.msgs {
		if v, ok := m.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// copyRefOf is peer's snapshot copy actor, where a fetch from it goes.
func copyRefOf(p *fakePeer) actors.Ref {
	return actors.Ref{Host: p.host.Name(), Name: snapshot.CopyName(SnapshotterName(hGroup, p.id))}
}

// installAnswers is what peer's replicator of term got in answer to
// install requests.
func installAnswers(p *fakePeer, term uint64) []*raftpb.Envelope {
	return got[*raftpb.Envelope_InstallSnapshotResponse](p, p.replicatorRefOf(term))
}

// expectFetch checks that the i-th message of the copy actor is a Fetch
// of meta from leader p in term.
func (w *world) expectFetch(i int, meta *raftpb.SnapshotMeta, p *fakePeer, term uint64) {
	w.t.Helper()
	f := copyGot[snapshot.Fetch](w)
	if len(f) != i+1 {
		w.fatalf("the copy actor got %d Fetches, want %d: %v", len(f), i+1, w.copy.msgs)
	}
	if m := f[i]; !proto.Equal(m.Meta, meta) || m.Leader != p.id || m.From != copyRefOf(p) || m.Term != term {
		w.fatalf("Fetch %d is %+v, want %v from %s at %v in term %d", i, m, meta, p.id, copyRefOf(p), term)
	}
}

// expectAnswer checks that peer's replicator of term got n install
// answers, the last one for seq with ok, last and reason (reason "*":
// any non-empty).
func (w *world) expectAnswer(p *fakePeer, term uint64, n int, seq uint64, ok bool, last uint64, reason string) {
	w.t.Helper()
	r := installAnswers(p, term)
	if len(r) != n {
		w.fatalf("%s's replicator of term %d got %d install answers, want %d: %v", p.id, term, len(r), n, r)
	}
	if n == 0 {
		return
	}
	e := r[n-1]
	a := e.GetInstallSnapshotResponse()
	if e.Seq != seq || e.Term != w.node.term || a.Success != ok || a.LastIndex != last ||
		(reason == "*" && a.Reason == "") || (reason != "*" && a.Reason != reason) {
		w.fatalf("install answer %v, want seq %d term %d success %v last %d reason %q", e, seq, w.node.term, ok, last, reason)
	}
}

// saveAll answers every SaveHardState not yet answered.
func (w *world) saveAll() {
	w.t.Helper()
	for w.answered < len(w.saves()) {
		w.saveHardState()
	}
}

// TestHarnessInstallFetches: an install request from the current leader
// for a snapshot beyond what the node holds has its copy actor fetch it
// from the leader's copy actor; nothing is answered, written or loaded
// until the fetch ends.
func TestHarnessInstallFetches(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(10, 2)
		w.fromPeer("b", 2, installRequest(meta))
		w.expectFetch(0, meta, b, 2)
		w.expectAnswer(b, 2, 0, 0, false, 0, "")
		if len(w.lm.ops) != 0 || len(fsmGot[fsm.Load](w)) != 0 {
			w.fatalf("fetching: the log manager got %s, the FSM caller %v", w.describeOps(), w.fsm.msgs)
		}
		if st := w.sh.Status(); st.Leader != "b" || st.Commit != 0 || st.LastIndex != 3 || st.SnapshotIndex != 0 {
			w.fatalf("status while fetching: %v snapshot %d", st, st.SnapshotIndex)
		}
		if n := w.sh.Metrics.InstallsStarted.Load(); n != 1 {
			w.fatalf("InstallsStarted %d, want 1", n)
		}
	})
}

// TestHarnessInstallOfWhatTheLogHolds: a request for a snapshot whose last
// entry the node has committed, or holds with the snapshot's term, is
// answered success at once with the snapshot's last index (the commit
// index moving there), and nothing is fetched; the same index with another
// term, or beyond the log, is fetched.
func TestHarnessInstallOfWhatTheLogHolds(t *testing.T) {
	cases := []struct {
		name    string
		commit  uint64 // committed by an append from b first
		compact uint64 // then the log compacted before this index (0: not)
		meta    *raftpb.SnapshotMeta
		fetch   bool
	}{
		{"below-commit", 5, 0, snapMeta(4, 1), false},
		// The entry is gone from the log: committed is enough.
		{"compacted-below-commit", 5, 4, snapMeta(2, 1), false},
		{"at-commit", 5, 0, snapMeta(5, 1), false},
		{"in-the-log", 0, 0, snapMeta(5, 1), false},
		{"in-the-log-above-commit", 2, 0, snapMeta(4, 1), false},
		{"other-term", 2, 0, snapMeta(5, 2), true},
		{"beyond-the-log", 5, 0, snapMeta(6, 1), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forSeeds(t, func(t *testing.T, seed uint64) {
				w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 5), snapshots: true})
				b := w.peers["b"]
				if c.commit > 0 {
					w.fromPeer("b", 2, appendRequest(5, 1, c.commit, nil))
				}
				if st := w.sh.Status(); st.Commit != c.commit {
					w.fatalf("commit %d, want %d", st.Commit, c.commit)
				}
				if c.compact > 0 {
					if err := w.st.TruncatePrefix(c.compact); err != nil {
						t.Fatal(err)
					}
					if w.log.MatchTerm(c.meta.LastIndex, c.meta.LastTerm) {
						w.fatalf("the log still holds %d", c.meta.LastIndex)
					}
				}
				committed := len(fsmGot[fsm.Committed](w))
				seq := w.fromPeer("b", 2, installRequest(c.meta))
				if c.fetch {
					w.expectFetch(0, c.meta, b, 2)
					w.expectAnswer(b, 2, 0, 0, false, 0, "")
					return
				}
				if len(w.copy.msgs) != 0 {
					w.fatalf("the copy actor got %v for a snapshot the log holds", w.copy.msgs)
				}
				w.expectAnswer(b, 2, 1, seq, true, c.meta.LastIndex, "")
				want := max(c.commit, c.meta.LastIndex)
				if st := w.sh.Status(); st.Commit != want || st.LastIndex != 5 || st.SnapshotIndex != 0 {
					w.fatalf("status %v snapshot %d, want commit %d, last 5, no snapshot", st, st.SnapshotIndex, want)
				}
				if cm := fsmGot[fsm.Committed](w)[committed:]; c.meta.LastIndex > c.commit && (len(cm) != 1 || cm[0].Index != want) {
					w.fatalf("the FSM caller got %v, want Committed %d", cm, want)
				}
				if n := w.sh.Metrics.InstallsStarted.Load(); n != 0 {
					w.fatalf("InstallsStarted %d, want 0", n)
				}
			})
		})
	}
}

// TestHarnessInstallRefused: a request of a stale term is answered with
// the node's term (a failure, so that the old leader steps down); one
// that names no snapshot, or reaches a node that keeps no snapshots, is
// refused with a reason. Nothing is fetched.
func TestHarnessInstallRefused(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 3, log: ents(1, 1, 3), snapshots: true})
		b := w.peers["b"]
		seq := w.fromPeer("b", 2, installRequest(snapMeta(10, 2)))
		w.expectAnswer(b, 2, 1, seq, false, 0, "*")
		if r := installAnswers(b, 2); r[0].Term != 3 {
			w.fatalf("stale request answered in term %d, want 3", r[0].Term)
		}
		if st := w.sh.Status(); st.Term != 3 || st.Leader != "" {
			w.fatalf("a stale request made %q leader in term %d", st.Leader, st.Term)
		}

		for i, meta := range []*raftpb.SnapshotMeta{nil, snapMeta(0, 3), snapMeta(10, 0)} {
			seq := w.fromPeer("b", 3, installRequest(meta))
			w.expectAnswer(b, 3, i+1, seq, false, 0, "*")
		}
		if len(w.copy.msgs) != 0 || w.sh.Metrics.InstallsStarted.Load() != 0 {
			w.fatalf("refused requests reached the copy actor: %v", w.copy.msgs)
		}
	})
	t.Run("no-snapshots", func(t *testing.T) {
		w := newWorld(t, setup{seed: 1, term: 2, log: ents(1, 1, 3)})
		b := w.peers["b"]
		seq := w.fromPeer("b", 2, installRequest(snapMeta(10, 2)))
		w.expectAnswer(b, 2, 1, seq, false, 0, "*")
	})
}

// lead makes the node, started in term 1 with a log of one entry, leader
// of term 2 (pre-vote and vote granted by b): its no-op is at 2.
func (w *world) lead() {
	w.t.Helper()
	for i := 0; w.sh.Status().Role != PreCandidate && i < 3*hTicks.Election; i++ {
		w.tick(1)
	}
	w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{Granted: true}}})
	w.saveAll()
	w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_VoteResponse{VoteResponse: &raftpb.VoteResponse{Granted: true}}})
	if st := w.sh.Status(); st.Role != Leader || st.Term != 2 || st.LastIndex != 2 {
		w.fatalf("want the node leader of term 2 with its no-op at 2, got %v", st)
	}
}

// propose appends n proposals through the node (a leader) and returns
// their tasks.
func (w *world) propose(n int) []*fsm.Task {
	w.t.Helper()
	var tasks []*fsm.Task
	for i := range n {
		task := &fsm.Task{}
		task.Init(closure.Func(func(closure.Status) {}))
		if st, _ := w.sh.Proposals.Push(Proposal{Task: task, Data: []byte{byte(i)}}); st.Code != closure.OK {
			w.fatalf("push: %v", st)
		}
		tasks = append(tasks, task)
	}
	w.A.Send(hNodeRef, Nudge{})
	w.settle()
	return tasks
}

// TestHarnessInstallLoads: the whole install on a node that led and still
// holds tasks of its term. A leader of a later term installs a snapshot up
// to 4, over the node's entries 3 and 4 of the old term: the fetched
// snapshot is loaded by the FSM caller with the tasks it covers (entries 3
// and 4; the task at 5 stays pending). While loading, appends are dropped,
// a request for the snapshot is not answered, and the node does not
// campaign however long it hears nothing. Once the FSM caller has applied
// it, the log is reset to continue at 5 (the view at once, the storage
// through logmgr.Reset), the commit index and the snapshot index are 4,
// the leader is answered, and entries flow again from 5.
func TestHarnessInstallLoads(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 1), snapshots: true})
		b := w.peers["b"]
		w.lead()
		tasks := w.propose(3)
		for i, task := range tasks {
			if task.Index != uint64(3+i) || task.Term != 2 {
				w.fatalf("task %d at %d/%d, want %d/2", i, task.Index, task.Term, 3+i)
			}
		}

		meta := snapMeta(4, 3)
		seq := w.fromPeer("b", 3, installRequest(meta))
		w.saveAll() // term 3
		if st := w.sh.Status(); st.Role != Follower || st.Leader != "b" || st.Term != 3 {
			w.fatalf("status %v, want a follower of b in term 3", st)
		}
		// b has committed 1 (an entry of both logs).
		w.fromPeer("b", 3, &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{Commit: 1, CommitTerm: 1}}})
		if cm := fsmGot[fsm.Committed](w); len(cm) != 1 || cm[0].Index != 1 || len(cm[0].Tasks) != 0 {
			w.fatalf("the FSM caller got %v, want Committed 1", cm)
		}
		w.expectFetch(0, meta, b, 3)

		// Fetched for another snapshot: nothing.
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: snapMeta(4, 2)})
		w.settle()
		if l := fsmGot[fsm.Load](w); len(l) != 0 {
			w.fatalf("loaded %v on a Fetched for another snapshot", l)
		}

		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		loads := fsmGot[fsm.Load](w)
		if len(loads) != 1 {
			w.fatalf("the FSM caller got %v, want one Load", w.fsm.msgs)
		}
		l := loads[0]
		if l.Meta.Index != 4 || l.Meta.Term != 3 || !proto.Equal(l.Meta.Configuration, meta.Configuration) {
			w.fatalf("Load of %+v, want 4/3 with the snapshot's configuration", l.Meta)
		}
		if !slices.Equal(l.Tasks, tasks[:2]) {
			w.fatalf("Load carries tasks %v, want the tasks at 3 and 4", l.Tasks)
		}
		if len(w.opened) != 1 || !proto.Equal(w.opened[0], meta) {
			w.fatalf("OpenSnapshot called for %v, want the fetched snapshot", w.opened)
		}
		if st := w.sh.Status(); st.PendingTasks != 1 || st.Commit != 4 || st.LastIndex != 5 {
			w.fatalf("status while loading: %v, %d pending; want commit 4, last 5, 1 pending", st, st.PendingTasks)
		}

		// Loading: appends dropped, requests unanswered, no election; a
		// second report of the fetch, or the FSM caller's report of an
		// earlier apply, changes nothing.
		ops, wire := len(w.lm.ops), len(w.wire)
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.A.Send(hNodeRef, fsm.Applied{Index: 1})
		w.settle()
		if l := fsmGot[fsm.Load](w); len(l) != 1 {
			w.fatalf("loaded %d times", len(l))
		}
		w.fromPeer("b", 3, appendRequest(4, 3, 4, ents(5, 3, 1)))
		w.fromPeer("b", 3, installRequest(meta))
		w.fromPeer("b", 3, &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}})
		wire++ // the heartbeat's answer
		w.tick(3 * hTicks.Election)
		if len(w.lm.ops) != ops {
			w.fatalf("written while loading: %s", w.describeOps())
		}
		if len(w.wire) != wire {
			w.fatalf("sent while loading: %s", w.describeWire())
		}
		if st := w.sh.Status(); st.Role != Follower || st.Term != 3 {
			w.fatalf("status while loading: %v, want a follower in term 3", st)
		}
		w.expectAnswer(b, 3, 0, 0, false, 0, "")

		// Loaded.
		w.A.Send(hNodeRef, fsm.Applied{Index: 4})
		w.settle()
		if op, ok := w.lm.ops[len(w.lm.ops)-1].(logmgr.Reset); !ok || op != (logmgr.Reset{Next: 5, Term: 3}) {
			w.fatalf("the log manager got %s, want Reset to 5 after 4/3 last", w.describeOps())
		}
		if i, term := w.log.Last(); i != 4 || term != 3 {
			w.fatalf("the log view ends at %d/%d, want 4/3", i, term)
		}
		if st := w.sh.Status(); st.Commit != 4 || st.LastIndex != 4 || st.SnapshotIndex != 4 || st.PendingTasks != 1 {
			w.fatalf("status once loaded: %v snapshot %d pending %d; want commit 4, last 4, snapshot 4, 1 pending", st, st.SnapshotIndex, st.PendingTasks)
		}
		w.expectAnswer(b, 3, 1, seq, true, 4, "")
		if n := w.sh.Metrics.InstallsDone.Load(); n != 1 {
			w.fatalf("InstallsDone %d, want 1", n)
		}

		// Entries flow again from 5.
		seq = w.fromPeer("b", 3, appendRequest(4, 3, 4, ents(5, 3, 2)))
		if a := w.appends(); len(a) == 0 || a[len(a)-1].Entries[0].Index != 5 || len(a[len(a)-1].Entries) != 2 {
			w.fatalf("want the append of 5-6 after the snapshot written, got %s", w.describeOps())
		}
		w.stable(6, 3)
		r := got[*raftpb.Envelope_AppendResponse](b, b.replicatorRefOf(3))
		if len(r) != 1 || !r[0].GetAppendResponse().Success || r[0].GetAppendResponse().MatchIndex != 6 || r[0].Seq != seq {
			w.fatalf("want the append acknowledged (match 6, seq %d), got %v", seq, r)
		}
		// A request for the snapshot now is answered at once.
		seq = w.fromPeer("b", 3, installRequest(meta))
		w.expectAnswer(b, 3, 2, seq, true, 4, "")
		if f := copyGot[snapshot.Fetch](w); len(f) != 1 {
			w.fatalf("%d Fetches, want 1", len(f))
		}
	})
}

// TestHarnessInstallFetchFailed: a failed fetch is answered to the leader
// as a failure whose reason is the error; reports about another snapshot,
// and a late report about the failed one, change nothing.
func TestHarnessInstallFetchFailed(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(10, 2)
		seq := w.fromPeer("b", 2, installRequest(meta))
		w.expectFetch(0, meta, b, 2)

		for _, other := range []*raftpb.SnapshotMeta{snapMeta(11, 2), snapMeta(10, 3), nil} {
			w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: other, Err: snapshot.ErrCanceled})
			w.A.Send(hNodeRef, snapshot.Fetched{Meta: other})
			w.settle()
		}
		w.expectAnswer(b, 2, 0, 0, false, 0, "")
		if len(fsmGot[fsm.Load](w)) != 0 || w.sh.Metrics.InstallFailures.Load() != 0 {
			w.fatalf("reports about other snapshots taken")
		}

		err := fmt.Errorf("fetch 10/2: %w", snapshot.ErrCorrupt)
		w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: meta, Err: err})
		w.settle()
		w.expectAnswer(b, 2, 1, seq, false, 0, err.Error())
		if n := w.sh.Metrics.InstallFailures.Load(); n != 1 {
			w.fatalf("InstallFailures %d, want 1", n)
		}
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: meta, Err: err})
		w.settle()
		w.expectAnswer(b, 2, 1, seq, false, 0, err.Error())
		if len(fsmGot[fsm.Load](w)) != 0 {
			w.fatalf("loaded after the install ended")
		}

		// The leader asks again: a new fetch.
		seq = w.fromPeer("b", 2, installRequest(meta))
		w.expectFetch(1, meta, b, 2)
		if n := w.sh.Metrics.InstallsStarted.Load(); n != 2 {
			w.fatalf("InstallsStarted %d, want 2", n)
		}
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		if len(fsmGot[fsm.Load](w)) != 1 {
			w.fatalf("the retried install not loaded")
		}
	})
}

// TestHarnessInstallJoins: a request for the snapshot being fetched joins
// the fetch — the copy actor gets the Fetch again, with the leader of the
// latest request — and the install's one answer goes to the latest
// request. A request for another snapshot starts another install.
func TestHarnessInstallJoins(t *testing.T) {
	t.Run("same-leader", func(t *testing.T) {
		forSeeds(t, func(t *testing.T, seed uint64) {
			w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
			b := w.peers["b"]
			meta := snapMeta(10, 2)
			w.fromPeer("b", 2, installRequest(meta))
			seq := w.fromPeer("b", 2, installRequest(proto.Clone(meta).(*raftpb.SnapshotMeta)))
			w.expectFetch(1, meta, b, 2)
			if n := w.sh.Metrics.InstallsStarted.Load(); n != 1 {
				w.fatalf("InstallsStarted %d, want 1", n)
			}
			w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
			w.settle()
			w.A.Send(hNodeRef, fsm.Applied{Index: 10})
			w.settle()
			w.expectAnswer(b, 2, 1, seq, true, 10, "")
		})
	})
	t.Run("new-leader", func(t *testing.T) {
		forSeeds(t, func(t *testing.T, seed uint64) {
			w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
			b, c := w.peers["b"], w.peers["c"]
			meta := snapMeta(10, 2)
			w.fromPeer("b", 2, installRequest(meta))
			seq := w.fromPeer("c", 3, installRequest(meta))
			w.saveAll()
			w.expectFetch(1, meta, c, 3)
			if n := w.sh.Metrics.InstallsStarted.Load(); n != 1 {
				w.fatalf("InstallsStarted %d, want 1", n)
			}
			err := errors.New("stalled")
			w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: meta, Err: err})
			w.settle()
			w.expectAnswer(c, 3, 1, seq, false, 0, "stalled")
			w.expectAnswer(b, 2, 0, 0, false, 0, "")
		})
	})
	t.Run("another-snapshot", func(t *testing.T) {
		forSeeds(t, func(t *testing.T, seed uint64) {
			w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
			b := w.peers["b"]
			first, second := snapMeta(10, 2), snapMeta(12, 2)
			w.fromPeer("b", 2, installRequest(first))
			seq := w.fromPeer("b", 2, installRequest(second))
			w.expectFetch(1, second, b, 2)
			if n := w.sh.Metrics.InstallsStarted.Load(); n != 2 {
				w.fatalf("InstallsStarted %d, want 2", n)
			}
			// The first fetch, replaced, reports its end: nothing.
			w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: first, Err: snapshot.ErrCanceled})
			w.settle()
			w.expectAnswer(b, 2, 0, 0, false, 0, "")
			w.A.Send(hNodeRef, snapshot.Fetched{Meta: second})
			w.settle()
			if l := fsmGot[fsm.Load](w); len(l) != 1 || l[0].Meta.Index != 12 {
				w.fatalf("the FSM caller got %v, want a Load of 12", l)
			}
			w.A.Send(hNodeRef, fsm.Applied{Index: 12})
			w.settle()
			w.expectAnswer(b, 2, 1, seq, true, 12, "")
		})
	})
	// A new leader's snapshot of the index being fetched, other bytes
	// (each leader wrote its own): a new fetch, one install. The end of
	// the replaced fetch answers nobody; the store's snapshot of that
	// index is loaded, whichever bytes it holds.
	t.Run("same-index-other-bytes", func(t *testing.T) {
		forSeeds(t, func(t *testing.T, seed uint64) {
			for _, loaded := range []string{"new", "old"} {
				w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
				b, c := w.peers["b"], w.peers["c"]
				old, cur := snapMeta(10, 2), snapMeta(10, 2)
				cur.DataCrc32C, cur.DataSize = 0x1234, 101
				w.fromPeer("b", 2, installRequest(old))
				seq := w.fromPeer("c", 3, installRequest(cur))
				w.saveAll()
				w.expectFetch(1, cur, c, 3)
				if n := w.sh.Metrics.InstallsStarted.Load(); n != 1 {
					w.fatalf("InstallsStarted %d, want 1", n)
				}
				w.A.Send(hNodeRef, snapshot.FetchFailed{Meta: old, Err: snapshot.ErrCanceled})
				w.settle()
				w.expectAnswer(c, 3, 0, 0, false, 0, "")
				w.expectAnswer(b, 2, 0, 0, false, 0, "")
				if n := w.sh.Metrics.InstallFailures.Load(); n != 0 {
					w.fatalf("InstallFailures %d after the replaced fetch ended, want 0", n)
				}
				held := cur
				if loaded == "old" {
					held = old // the store had it complete already
				}
				w.A.Send(hNodeRef, snapshot.Fetched{Meta: held})
				w.settle()
				if l := fsmGot[fsm.Load](w); len(l) != 1 || l[0].Meta.Index != 10 || len(w.opened) != 1 || !proto.Equal(w.opened[0], held) {
					w.fatalf("the FSM caller got %v, opening %v; want a Load of 10 opening %v", l, w.opened, held)
				}
				w.A.Send(hNodeRef, fsm.Applied{Index: 10})
				w.settle()
				w.expectAnswer(c, 3, 1, seq, true, 10, "")
			}
		})
	})
}

// TestHarnessInstallCanceledWhenLeading: a node that becomes leader while
// its copy actor fetches a snapshot cancels the fetch (a leader installs
// nothing), and the fetch's report changes nothing.
func TestHarnessInstallCanceledWhenLeading(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 1), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(10, 1)
		w.fromPeer("b", 1, installRequest(meta))
		w.expectFetch(0, meta, b, 1)
		w.lead()
		if c := copyGot[snapshot.CancelFetch](w); len(c) != 1 || len(w.copy.msgs) != 2 {
			w.fatalf("the copy actor got %v, want Fetch then CancelFetch", w.copy.msgs)
		}
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		if len(fsmGot[fsm.Load](w)) != 0 {
			w.fatalf("a leader loaded the canceled fetch")
		}
		w.expectAnswer(b, 1, 0, 0, false, 0, "")
		w.expectAnswer(b, 2, 0, 0, false, 0, "")
	})
}

// TestHarnessInstallFetchedWhatTheLogNowHolds: a fetch that ends once the
// log holds the snapshot's last entry anyway (a leader sent the entries
// meanwhile) is answered success at once, the commit index moving there,
// and nothing is loaded.
func TestHarnessInstallFetchedWhatTheLogNowHolds(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 3), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(5, 1)
		w.fromPeer("b", 2, installRequest(meta))
		seq := w.fromPeer("b", 2, installRequest(meta))
		w.expectFetch(1, meta, b, 2)
		w.fromPeer("b", 2, appendRequest(3, 1, 0, ents(4, 1, 2)))
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		if l := fsmGot[fsm.Load](w); len(l) != 0 {
			w.fatalf("loaded %v, though the log holds the snapshot's entries", l)
		}
		w.expectAnswer(b, 2, 1, seq, true, 5, "")
		if st := w.sh.Status(); st.Commit != 5 || st.LastIndex != 5 || st.SnapshotIndex != 0 {
			w.fatalf("status %v snapshot %d, want commit 5, last 5, no snapshot", st, st.SnapshotIndex)
		}
		if cm := fsmGot[fsm.Committed](w); len(cm) == 0 || cm[len(cm)-1].Index != 5 {
			w.fatalf("the FSM caller got %v, want Committed 5", cm)
		}
	})
}

// TestHarnessInstallOverALongerLog: a snapshot installed over a durable log
// that runs past it (entries of an earlier term, which the snapshot's
// replace) leaves nothing of that log durable: entries the leader sends
// after the snapshot are acknowledged only once they are durable.
func TestHarnessInstallOverALongerLog(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 8), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(5, 2)
		seq := w.fromPeer("b", 2, installRequest(meta))
		w.expectFetch(0, meta, b, 2)
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		if st := w.sh.Status(); st.LastIndex != 8 || st.Commit != 5 {
			w.fatalf("status while loading %v, want last 8 and commit 5", st)
		}
		w.A.Send(hNodeRef, fsm.Applied{Index: 5})
		w.settle()
		if i, term := w.log.Last(); i != 5 || term != 2 {
			w.fatalf("the log view ends at %d/%d, want 5/2", i, term)
		}
		if st := w.sh.Status(); st.LastIndex != 5 || st.Commit != 5 || st.SnapshotIndex != 5 {
			w.fatalf("status once loaded %v snapshot %d, want last, commit and snapshot 5", st, st.SnapshotIndex)
		}
		w.expectAnswer(b, 2, 1, seq, true, 5, "")

		seq = w.fromPeer("b", 2, appendRequest(5, 2, 5, ents(6, 2, 1)))
		repl := b.replicatorRefOf(2)
		if r := got[*raftpb.Envelope_AppendResponse](b, repl); len(r) != 0 {
			w.fatalf("entry 6 acknowledged before it was durable: %v", r)
		}
		w.stable(6, 2)
		r := got[*raftpb.Envelope_AppendResponse](b, repl)
		if len(r) != 1 || !r[0].GetAppendResponse().Success || r[0].GetAppendResponse().MatchIndex != 6 || r[0].Seq != seq {
			w.fatalf("want entry 6 acknowledged once durable (seq %d), got %v", seq, r)
		}
	})
}

// TestHarnessInstallStatusWhileLoading: while the snapshot loads, Status
// shows the commit index at the snapshot's last index already (published
// ahead of the node's own, so that applied <= commit holds when the FSM
// caller publishes the snapshot applied), and a heartbeat that commits
// entries of the old log meanwhile must not move it back: the published
// commit index only rises. (It did move back: advanceCommit stored the
// heartbeat's commit index over the one published ahead.)
func TestHarnessInstallStatusWhileLoading(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2, log: ents(1, 1, 5), snapshots: true})
		b := w.peers["b"]
		meta := snapMeta(8, 2)
		seq := w.fromPeer("b", 2, installRequest(meta))
		w.A.Send(hNodeRef, snapshot.Fetched{Meta: meta})
		w.settle()
		if st := w.sh.Status(); st.Commit != 8 || st.LastIndex != 8 {
			w.fatalf("status while loading %v, want commit and last 8", st)
		}
		w.fromPeer("b", 2, &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{Commit: 3, CommitTerm: 1}}})
		if st := w.sh.Status(); st.Commit != 8 || st.LastIndex != 8 {
			w.fatalf("status after a heartbeat committing 3 while loading %v, want commit and last still 8", st)
		}
		w.A.Send(hNodeRef, fsm.Applied{Index: 8})
		w.settle()
		if st := w.sh.Status(); st.Commit != 8 || st.LastIndex != 8 || st.SnapshotIndex != 8 {
			w.fatalf("status once loaded %v snapshot %d, want 8", st, st.SnapshotIndex)
		}
		w.expectAnswer(b, 2, 1, seq, true, 8, "")
	})
}
