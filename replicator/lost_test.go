package replicator

import (
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

// TestLostEntriesReprobed: a follower that acknowledged the whole log and
// then lost part of it (its tail cut, or everything wiped) is found out by
// the first reply to a request sent after the acknowledgement — a
// heartbeat reply in an idle group, a rejection when entries flow — which
// says where its log ends. The replicator reports LostEntries once,
// forgets the match and sends the log again from there; it used to keep
// probing at match+1, refused forever.
func TestLostEntriesReprobed(t *testing.T) {
	for _, c := range []struct {
		name  string
		keep  int  // entries the follower keeps
		write bool // entries flow after the loss (else the group is idle)
	}{
		{"tail-cut-idle", 20, false},
		{"wiped-idle", 0, false},
		{"tail-cut-writes", 20, true},
		{"wiped-writes", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := mkEntries(varied, run{1, 10}, run{2, 40})
			h := newHarness(t, setup{
				seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
				cfg: Config{Term: 3, MaxInflightMsgs: 4, MaxBytesPerRPC: 500, HeartbeatTicks: 5}, tickEvery: time.Millisecond,
			})
			h.appendLeader(mkEntriesFrom(51, fixed(8), run{3, 1}), 51)
			h.waitConverged(time.Second)
			if h.r.match != 51 {
				h.fatalf("match %d, want 51", h.r.match)
			}
			h.allowLoss = true
			before := len(h.f.reqs)
			h.f.log = slices.Clip(h.f.log[:c.keep])
			h.f.commit = min(h.f.commit, uint64(c.keep))
			if c.write {
				h.appendLeader(mkEntriesFrom(52, fixed(8), run{3, 5}), 51)
			}
			h.waitConverged(time.Second)
			if len(h.node.lost) != 1 {
				h.fatalf("LostEntries reported %d times, want once: %v", len(h.node.lost), h.node.lost)
			}
			got := h.node.lost[0]
			if got.Peer != testPeer || got.Term != 3 || got.Match != 51 || got.Last > uint64(c.keep) {
				h.fatalf("LostEntries %+v: want peer %s, term 3, match 51, last at most %d", got, testPeer, c.keep)
			}
			// What the follower lacked was sent again, from where its log
			// ends, not the whole log — plus the entries the request
			// refused for the loss carried (at most the 5 written).
			sent := 0
			for _, r := range h.f.reqs[before:] {
				sent += r.n
			}
			if lacked := int(h.log.LastIndex()) - c.keep; sent > lacked+5 {
				h.fatalf("%d entries sent after the loss, the follower lacked %d", sent, lacked)
			}
		})
	}
}

// TestEarlierRepliesProveNoLoss: a reply to a request that left before the
// replicator learned its match may show the follower's log ending below
// the match without any loss (requests reordered: the later one refused
// before the earlier one arrived). It is not reported as a loss, and the
// match stays.
func TestEarlierRepliesProveNoLoss(t *testing.T) {
	h, rs := heldWindow(t) // match 20; requests for 21-30, 31-40, 41-50 outstanding
	h.inject(rs[1])        // answers 21-40
	if h.r.match != 40 {
		h.fatalf("match %d, want 40", h.r.match)
	}
	e := clone(rs[2])
	a := appendResp(e)
	a.Success, a.MatchIndex, a.LastLogIndex, a.RejectHintIndex, a.RejectHintTerm = false, 0, 30, 30, 2
	h.f.hold = false
	h.inject(e)
	if len(h.node.lost) != 0 || h.r.match < 40 {
		h.fatalf("a rejection of an earlier request taken as a loss: %v, match %d", h.node.lost, h.r.match)
	}
	h.waitConverged(time.Second)
	if len(h.node.lost) != 0 {
		h.fatalf("reported a loss: %v", h.node.lost)
	}
}

// TestLogCutUnderAStoppingReplicator: a leader that steps down and has its
// log cut by the new leader may still hand its replicator a message before
// stopping it. The replicator must then send nothing and keep its match
// below its next (it used to lower next under the match).
func TestLogCutUnderAStoppingReplicator(t *testing.T) {
	base := mkEntries(fixed(8), run{1, 10}, run{2, 10})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg: Config{Term: 3, HeartbeatTicks: 5}, tickEvery: time.Millisecond,
	})
	h.appendLeader(mkEntriesFrom(21, fixed(8), run{3, 1}), 21)
	h.waitConverged(time.Second)
	if h.r.match != 21 {
		h.fatalf("match %d, want 21", h.r.match)
	}
	before := len(h.f.reqs)
	if err := h.log.TruncateFrom(15); err != nil {
		t.Fatal(err)
	}
	// Only the replicator's step: the fake follower's checks compare
	// what the leader sent with a log that is no longer the leader's.
	h.L.Send(replRef, Update{Commit: 14})
	h.s.RunFor(10 * time.Millisecond)
	if h.r.match >= h.r.next {
		h.fatalf("match %d, next %d after the log was cut to 14", h.r.match, h.r.next)
	}
	if n := len(h.f.reqs) - before; n != 0 {
		h.fatalf("%d append requests sent after the log was cut", n)
	}
}
