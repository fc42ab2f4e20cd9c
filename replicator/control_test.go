package replicator

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

func clone(e *raftpb.Envelope) *raftpb.Envelope { return proto.Clone(e).(*raftpb.Envelope) }

func appendResp(e *raftpb.Envelope) *raftpb.AppendResponse {
	return e.Body.(*raftpb.Envelope_AppendResponse).AppendResponse
}

// heldWindow returns a replicator in replicate state (term 2, match 20)
// with three requests outstanding (entries 21-30, 31-40, 41-50) whose
// success replies the follower produced but held back: the test delivers
// them itself.
func heldWindow(t *testing.T) (*harness, []*raftpb.Envelope) {
	t.Helper()
	return heldWindowView(t, nil)
}

// heldWindowView is heldWindow with the replicator publishing to v (nil:
// nowhere).
func heldWindowView(t *testing.T, v *View) (*harness, []*raftpb.Envelope) {
	t.Helper()
	base := mkEntries(fixed(8), run{1, 20})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg: Config{Term: 2, MaxInflightMsgs: 16, MaxBytesPerRPC: 320, HeartbeatTicks: 5, ResendTicks: 1000, View: v},
	})
	h.waitConverged(time.Second)
	h.f.hold = true
	h.appendLeader(mkEntriesFrom(21, fixed(8), run{2, 30}), 0)
	h.run(5 * time.Millisecond)
	rs := h.f.take()
	if len(rs) != 3 || len(h.r.inflight) != 3 || h.r.st != stateReplicate {
		h.fatalf("%d replies held, want 3 outstanding requests in replicate", len(rs))
	}
	for i, r := range rs {
		if a := appendResp(r); !a.Success || a.MatchIndex != uint64(30+10*i) {
			h.fatalf("reply %d: %v", i, r)
		}
	}
	return h, rs
}

// unchanged injects e and checks that the replicator's state, what it
// reported and what it sent did not change.
func (h *harness) unchanged(what string, e *raftpb.Envelope) {
	h.t.Helper()
	before := h.snap()
	h.inject(e)
	if after := h.snap(); after != before {
		h.fatalf("%s changed the replicator:\n  before %+v\n  after  %+v", what, before, after)
	}
}

// TestStaleRepliesIgnored: replies that match no outstanding request, or
// come from an older term or another peer, change nothing and report
// nothing.
func TestStaleRepliesIgnored(t *testing.T) {
	t.Run("unknown-seq", func(t *testing.T) {
		h, rs := heldWindow(t)
		for _, seq := range []uint64{0, 1, 2, rs[0].Seq - 1, h.r.seq + 1, h.r.seq + 100} {
			e := clone(rs[2])
			e.Seq = seq
			h.unchanged("a success with an unknown seq", e)
			appendResp(e).Success = false
			h.unchanged("a rejection with an unknown seq", e)
		}
	})
	t.Run("older-term", func(t *testing.T) {
		h, rs := heldWindow(t)
		e := clone(rs[0])
		e.Term = 1
		h.unchanged("a success of an older term", e)
		appendResp(e).Success = false
		h.unchanged("a rejection of an older term", e)
		// The request is still outstanding: its genuine reply counts.
		h.inject(rs[0])
		if h.r.match != 30 || h.lastProgress() != 30 {
			h.fatalf("genuine reply not taken")
		}
	})
	t.Run("other-peer", func(t *testing.T) {
		h, rs := heldWindow(t)
		e := clone(rs[2])
		e.From = "x"
		h.unchanged("a reply from another peer", e)
	})
	t.Run("other-cluster", func(t *testing.T) {
		h, rs := heldWindow(t)
		e := clone(rs[2])
		e.Cluster = 0x5eed
		h.unchanged("a reply of another cluster identity", e)
		appendResp(e).Success = false
		h.unchanged("a rejection of another cluster identity", e)
	})
	t.Run("duplicate", func(t *testing.T) {
		h, rs := heldWindow(t)
		n := len(h.node.progress)
		h.inject(rs[0])
		if h.r.match != 30 || len(h.node.progress) != n+1 || h.lastProgress() != 30 {
			h.fatalf("first reply not taken")
		}
		h.unchanged("a duplicate reply", rs[0])
		h.inject(rs[1])
		h.unchanged("a duplicate of an earlier reply", rs[0])
		h.unchanged("a duplicate reply", rs[1])
	})
	t.Run("late", func(t *testing.T) {
		h, rs := heldWindow(t)
		h.inject(rs[2]) // answers the two earlier ones too
		if h.r.match != 50 || len(h.r.inflight) != 0 || h.lastProgress() != 50 {
			h.fatalf("the last reply did not answer the window")
		}
		h.unchanged("a late success", rs[0])
		h.unchanged("a late success", rs[1])
		e := clone(rs[1])
		appendResp(e).Success, appendResp(e).RejectHintIndex = false, 5
		h.unchanged("a late rejection", e)
	})
	t.Run("heartbeat-replies", func(t *testing.T) {
		h, _ := heldWindow(t)
		h.tickN(5) // a heartbeat, whose reply is held
		hb := h.f.take()
		if len(hb) != 1 || hb[0].GetHeartbeatResponse() == nil {
			h.fatalf("held %v, want one heartbeat reply", hb)
		}
		n := len(h.node.progress)
		h.inject(hb[0])
		if len(h.node.progress) != n+1 || h.lastProgress() != 20 {
			h.fatalf("a heartbeat reply is contact: want Progress with match 20, got %v", h.node.progress[n:])
		}
		h.unchanged("a duplicate heartbeat reply", hb[0])
		for _, seq := range []uint64{0, hb[0].Seq - 1, h.r.seq + 1} {
			e := clone(hb[0])
			e.Seq = seq
			h.unchanged("a heartbeat reply with an unknown or older seq", e)
		}
		e := clone(hb[0])
		e.Term = 1
		h.unchanged("a heartbeat reply of an older term", e)
	})
}

// TestHigherTerm: a reply of a later term is reported once as HigherTerm,
// and reports no progress.
func TestHigherTerm(t *testing.T) {
	t.Run("injected", func(t *testing.T) {
		h, rs := heldWindow(t)
		before := h.snap()
		e := clone(rs[1])
		e.Term = 3
		h.inject(e)
		if len(h.node.higher) != 1 || h.node.higher[0] != (HigherTerm{Peer: testPeer, Term: 3}) {
			h.fatalf("HigherTerm reports %v, want one for term 3", h.node.higher)
		}
		after := h.snap()
		after.higher = before.higher
		if after != before {
			h.fatalf("a reply of a later term changed the replicator:\n  before %+v\n  after  %+v", before, after)
		}
		h.unchanged("the same reply again", e)
		appendResp(e).Success = false
		h.unchanged("another reply of that term", e)
		e.Body = &raftpb.Envelope_HeartbeatResponse{HeartbeatResponse: &raftpb.HeartbeatResponse{}}
		h.unchanged("a heartbeat reply of that term", e)
		e.Term = 5
		h.inject(e)
		if len(h.node.higher) != 2 || h.node.higher[1].Term != 5 {
			h.fatalf("HigherTerm reports %v, want a second one for term 5", h.node.higher)
		}
	})
	t.Run("follower-in-later-term", func(t *testing.T) {
		// The follower moved on to term 3: it answers the heartbeat and
		// the probe sent at start, and every heartbeat after, with it.
		leader := mkEntries(fixed(8), run{1, 10}, run{2, 1})
		h := newHarness(t, setup{seed: testseed.For(t), leader: leader, follower: leader[:10], cfg: Config{HeartbeatTicks: 2}})
		h.f.term = 3
		h.run(5 * time.Millisecond)
		h.tickN(6)
		if len(h.node.higher) != 1 || h.node.higher[0] != (HigherTerm{Peer: testPeer, Term: 3}) {
			h.fatalf("HigherTerm reports %v, want exactly one for term 3", h.node.higher)
		}
		if len(h.node.progress) != 0 || h.r.match != 0 {
			h.fatalf("progress %v from a follower of a later term", h.node.progress)
		}
		if h.f.last() != 10 {
			h.fatalf("the follower of a later term took entries")
		}
	})
}

// TestHeartbeats: idle, the replicator sends a heartbeat every
// HeartbeatTicks ticks carrying min(commit, match); an Update raising the
// commit index sends one at once when nothing else goes out, and a success
// that raises the match past what was sent does too.
func TestHeartbeats(t *testing.T) {
	base := mkEntries(fixed(8), run{1, 30})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg: Config{Commit: 10, HeartbeatTicks: 4, ResendTicks: 100},
	})
	h.waitConverged(time.Second)
	h.run(2 * time.Millisecond)
	// At start the match is unknown: commit 0. Once the probe succeeds the
	// follower may learn 10 at once.
	if len(h.f.hbs) != 2 || h.f.hbs[0] != 0 || h.f.hbs[1] != 10 || h.f.commit != 10 {
		h.fatalf("heartbeats %v, follower commit %d; want [0 10] and 10", h.f.hbs, h.f.commit)
	}

	expect := func(what string, n int, commit uint64) {
		t.Helper()
		if len(h.f.hbs) != n {
			h.fatalf("%s: %d heartbeats, want %d", what, len(h.f.hbs), n)
		}
		if n > 0 && h.f.hbs[n-1] != commit {
			h.fatalf("%s: heartbeat carries commit %d, want %d", what, h.f.hbs[n-1], commit)
		}
	}
	hb, reqs, progress := len(h.f.hbs), len(h.f.reqs), len(h.node.progress)
	for i := 1; i <= 20; i++ {
		h.tickN(1)
		expect("idle", hb+i/4, 10)
	}
	if len(h.f.reqs) != reqs {
		h.fatalf("idle: %d append requests sent", len(h.f.reqs)-reqs)
	}
	if len(h.node.progress) != progress+5 || h.lastProgress() != 30 {
		h.fatalf("idle: progress %v, want one per heartbeat reply with match 30", h.node.progress[progress:])
	}

	hb = len(h.f.hbs)
	h.update(20)
	expect("update", hb+1, 20)
	h.update(20)
	h.update(15)
	expect("same commit", hb+1, 20)
	h.tickN(3)
	expect("3 ticks after", hb+1, 20)
	h.tickN(1)
	expect("4 ticks after", hb+2, 20)

	// The commit index passes the match: the request carries it, the
	// heartbeats only what the follower is known to hold.
	hb = len(h.f.hbs)
	h.f.hold = true
	h.appendLeader(mkEntriesFrom(31, fixed(8), run{1, 10}), 35)
	h.run(2 * time.Millisecond)
	if r := h.f.reqs[len(h.f.reqs)-1]; r.prev != 30 || r.n != 10 || r.commit != 35 {
		h.fatalf("request %+v, want entries 31-40 with commit 35", r)
	}
	expect("request sent", hb, 20)
	h.tickN(4) // the request is outstanding, nothing else is sent
	expect("commit beyond match", hb+1, 30)
	h.f.hold = false
	h.F.Send(followerRef, release{})
	h.run(2 * time.Millisecond)
	expect("match passes commit", hb+2, 35)
	if h.f.commit != 35 {
		h.fatalf("follower commit %d, want 35", h.f.commit)
	}
}

// TestVotersPassedOnUntilAnswered: the leader's list of its voters'
// incarnations goes on every request until the peer answers one that
// carried it, and a new list (a Voters message) goes out again the same
// way; with the replies lost, every request carries it.
func TestVotersPassedOnUntilAnswered(t *testing.T) {
	base := mkEntries(fixed(8), run{1, 10})
	first := []*raftpb.PeerIncarnation{{Id: "a", Incarnation: 7}}
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg: Config{HeartbeatTicks: 2, ResendTicks: 100, Voters: first},
	})
	h.waitConverged(time.Second)
	// carried reports, for the requests from the from-th on, how many
	// carried the list.
	carried := func(from int) (with, without int) {
		for _, n := range h.f.voters[from:] {
			if n > 0 {
				with++
			} else {
				without++
			}
		}
		return with, without
	}
	if with, _ := carried(0); with == 0 || h.f.voters[0] != 1 {
		h.fatalf("requests at start carried %v voters; want the first to carry the list", h.f.voters)
	}
	n := len(h.f.voters)
	h.tickN(8)
	if with, without := carried(n); with != 0 || without == 0 {
		h.fatalf("after an answer: %d requests carried the list, %d did not; want none to", with, without)
	}

	n = len(h.f.voters)
	h.L.Send(replRef, Voters{Voters: append(first, &raftpb.PeerIncarnation{Id: "b", Incarnation: 9})})
	h.tickN(8)
	if h.f.voters[n] != 2 {
		h.fatalf("the request after a new list carried %d voters, want 2", h.f.voters[n])
	}
	if with, without := carried(n + 1); with != 0 || without == 0 {
		h.fatalf("after an answer to the new list: %d requests carried it, %d did not; want none to", with, without)
	}

	n = len(h.f.voters)
	h.f.drop = func(*raftpb.Envelope) bool { return true }
	h.L.Send(replRef, Voters{Voters: first})
	h.tickN(8)
	if with, without := carried(n); with == 0 || without != 0 {
		h.fatalf("replies lost: %d requests carried the list, %d did not; want all to", with, without)
	}
}

func (h *harness) update(commit uint64) {
	h.t.Helper()
	h.L.Send(replRef, Update{Commit: commit})
	h.run(2 * time.Millisecond)
}

// TestResendAfterSilence: with requests outstanding and no append reply for
// ResendTicks ticks, the replicator probes again from the first index not
// acknowledged (here its match); heartbeat replies do not count as answers.
func TestResendAfterSilence(t *testing.T) {
	base := mkEntries(fixed(8), run{1, 20})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg: Config{Term: 2, HeartbeatTicks: 3, ResendTicks: 5, MaxBytesPerRPC: 320},
	})
	h.waitConverged(time.Second)
	h.f.drop = func(e *raftpb.Envelope) bool { return e.GetAppendResponse() != nil }
	h.appendLeader(mkEntriesFrom(21, fixed(8), run{2, 20}), 0)
	h.run(2 * time.Millisecond)
	if len(h.r.inflight) != 2 {
		h.fatalf("%d requests outstanding, want 2", len(h.r.inflight))
	}
	for round := range 2 {
		reqs, hbs := len(h.f.reqs), len(h.f.hbs)
		h.tickN(4)
		if len(h.f.reqs) != reqs {
			h.fatalf("round %d: requests sent before ResendTicks: %+v", round, h.f.reqs[reqs:])
		}
		if len(h.f.hbs) != hbs+1 {
			h.fatalf("round %d: %d heartbeats in 4 ticks, want 1", round, len(h.f.hbs)-hbs)
		}
		h.tickN(1)
		if len(h.f.reqs) != reqs+1 {
			h.fatalf("round %d: %d requests at ResendTicks, want 1", round, len(h.f.reqs)-reqs)
		}
		if r := h.f.reqs[reqs]; r.prev != 20 || r.prevTerm != 1 {
			h.fatalf("round %d: resent %+v, want a probe after the match (20, 1)", round, r)
		}
		if h.r.st != stateProbe || len(h.r.inflight) != 1 {
			h.fatalf("round %d: not probing", round)
		}
	}
	h.f.drop = nil
	h.tickN(5)
	h.waitConverged(time.Second)
}

// TestSilentPeerReprobedWhereItWas: a replicator starts, as a new leader's
// does, at the leader's last index + 1 (its no-op) while its peer is down:
// the probe and its resends are lost for many ResendTicks, and the leader
// appends meanwhile. When the peer answers again it gets only what it
// lacks: the silence must not move the probe back to match+1, which at the
// start of a term is index 1 and would resend the whole log. A peer that
// lost entries while down costs one rejection, whose hint moves the probe
// back to them.
func TestSilentPeerReprobedWhereItWas(t *testing.T) {
	cases := []struct {
		name     string
		follower []run // the peer's log when it answers again
		rejects  int
	}{
		{"intact", []run{{1, 1000}}, 0},
		{"lost-its-tail", []run{{1, 600}}, 1},
		// A restarted ex-leader: entries of its term that never committed.
		{"old-leader-suffix", []run{{1, 1050}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leader := mkEntries(fixed(8), run{1, 1000}, run{2, 1})
			h := newHarness(t, setup{
				seed: testseed.For(t), net: fifoNet, leader: leader, follower: mkEntries(fixed(8), tc.follower...),
				cfg:       Config{Term: 2, NextIndex: 1001, MaxInflightMsgs: 8, MaxBytesPerRPC: 1 << 10, HeartbeatTicks: 2, ResendTicks: 4},
				tickEvery: 10 * time.Millisecond,
			})
			h.s.Block("L", "F")
			next := uint64(1002)
			for range 10 {
				h.run(20 * time.Millisecond)
				h.appendLeader(mkEntriesFrom(next, fixed(8), run{2, 20}), 0)
				next += 20
			}
			h.run(50 * time.Millisecond)
			if h.tick.n < 6*h.r.cfg.ResendTicks || len(h.f.reqs) != 0 {
				h.fatalf("%d ticks of silence, %d requests through: want many ResendTicks and none", h.tick.n, len(h.f.reqs))
			}
			h.s.Unblock("L", "F")
			h.waitConverged(10 * time.Second)
			sent, redundant := 0, 0
			for _, r := range h.f.reqs {
				sent += r.n
				if r.n > 0 && r.prev+1 <= h.common {
					redundant += int(min(h.common, r.prev+uint64(r.n)) - r.prev)
				}
			}
			t.Logf("%d entries sent in %d requests for %d missing, %d of them already held; %d rejections",
				sent, len(h.f.reqs), h.log.LastIndex()-h.common, redundant, h.f.rejects)
			if first := h.f.reqs[0]; first.prev != 1000 {
				h.fatalf("first request after the silence %+v, want the probe after 1000, where it was", first)
			}
			if redundant > 0 {
				h.fatalf("%d entries sent that the peer already held (its log matched up to %d)", redundant, h.common)
			}
			if h.f.rejects != tc.rejects {
				h.fatalf("%d rejections, want %d", h.f.rejects, tc.rejects)
			}
			h.checkResent(1 << 10 / 32)
		})
	}
}

// TestNoResendWhileRepliesFlow: slow replies, each well within ResendTicks,
// never trigger a probe even though the whole transfer takes many times
// ResendTicks.
func TestNoResendWhileRepliesFlow(t *testing.T) {
	base := mkEntries(fixed(8), run{1, 5})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: base, follower: base,
		cfg:       Config{MaxInflightMsgs: 1, MaxBytesPerRPC: 32, HeartbeatTicks: 2, ResendTicks: 5},
		tickEvery: 10 * time.Millisecond,
	})
	h.waitConverged(time.Second)
	h.f.hold, h.f.holdFor = true, 25*time.Millisecond
	reqs := len(h.f.reqs)
	h.appendLeader(mkEntriesFrom(6, fixed(8), run{1, 40}), 0)
	h.waitConverged(10 * time.Second)
	if sent := len(h.f.reqs) - reqs; sent != 40 {
		h.fatalf("%d requests for 40 entries one by one: resent some", sent)
	}
	if h.tick.n < 10*5 {
		h.fatalf("only %d ticks passed, want a transfer of many times ResendTicks", h.tick.n)
	}
}

func TestNextFromHint(t *testing.T) {
	// Terms: 1-10 of term 1, 11-20 of term 2, 21-30 of term 4.
	st := logmgr.NewMemoryStorage()
	if err := st.Append(mkEntries(fixed(0), run{1, 10}, run{2, 10}, run{4, 10})); err != nil {
		t.Fatal(err)
	}
	lg, err := logmgr.NewLog(st)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ match, hintIndex, hintTerm, want uint64 }{
		{0, 30, 4, 31},
		{0, 30, 3, 21},
		{0, 30, 2, 21},
		{0, 25, 1, 11},
		{0, 15, 5, 16},
		{0, 0, 0, 1},
		{0, 15, 0, 1},
		{0, 100, 9, 31}, // beyond the leader's log
		{0, 100, 3, 21},
		{12, 30, 1, 13}, // never before the match
		{25, 20, 2, 26},
		{25, 30, 4, 31},
	}
	for _, c := range cases {
		r := New(Config{Log: lg})
		r.match = c.match
		if got := r.nextFromHint(c.hintIndex, c.hintTerm); got != c.want {
			t.Errorf("match %d, hint (%d, %d): next %d, want %d", c.match, c.hintIndex, c.hintTerm, got, c.want)
		}
	}
}

// compacted is a leader's log whose first entries are gone.
type compacted struct {
	*logmgr.Log
	first uint64
}

func (c compacted) Term(i uint64) (uint64, error) {
	if i > 0 && i < c.first {
		return 0, logmgr.ErrCompacted
	}
	return c.Log.Term(i)
}

func (c compacted) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	if lo < c.first {
		return nil, logmgr.ErrCompacted
	}
	return c.Log.Entries(lo, hi, maxBytes)
}

// TestUnreadableLog: when the entries a follower needs are gone from the
// leader's log, the replicator sends none, reports every failed read to the
// node and retries with a back-off capped at HeartbeatTicks (it has no
// Copier, so no snapshot to install instead: see install_test.go), and
// keeps the follower's heartbeats going.
func TestUnreadableLog(t *testing.T) {
	leader := mkEntries(fixed(8), run{1, 10})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:3],
		cfg: Config{HeartbeatTicks: 2, ResendTicks: 3},
		log: func(l *logmgr.Log) LogReader { return compacted{l, 5} },
	})
	h.run(5 * time.Millisecond)
	if len(h.node.readFailed) != 1 {
		h.fatalf("%d read failures reported after the entries were found missing, want 1", len(h.node.readFailed))
	}
	reqs, hbs := len(h.f.reqs), len(h.f.hbs)
	h.update(10)
	h.tickN(20) // retries at ticks 1, 3, 5 … 19
	if len(h.f.reqs) != reqs {
		h.fatalf("%d requests sent without entries to send", len(h.f.reqs)-reqs)
	}
	if len(h.f.hbs) != hbs+10 {
		h.fatalf("%d heartbeats in 20 ticks, want 10", len(h.f.hbs)-hbs)
	}
	if h.f.commit != 0 {
		h.fatalf("follower commit %d, want 0 (its match is unknown)", h.f.commit)
	}
	if len(h.node.readFailed) != 11 || len(h.node.resumed) != 0 {
		h.fatalf("%d read failures and %d resumptions reported, want 11 (one per retry) and 0", len(h.node.readFailed), len(h.node.resumed))
	}
	for i, m := range h.node.readFailed {
		if m.Peer != testPeer || m.Term != 1 || m.Failures != i+1 || !errors.Is(m.Err, logmgr.ErrCompacted) || m.RetryTicks != min(1<<i, 2) {
			h.fatalf("read failure %d reported as %+v", i, m)
		}
	}
}

// flaky is a leader's log whose reads of entries fail while fail > 0, each
// failure counting it down.
type flaky struct {
	*logmgr.Log
	fail int
}

var errFlaky = errors.New("flaky read")

func (f *flaky) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	if f.fail > 0 {
		f.fail--
		return nil, errFlaky
	}
	return f.Log.Entries(lo, hi, maxBytes)
}

// TestReadFailuresRetried: reads of the entries a follower needs fail five
// times, then work. Each failure is reported to the node; the replicator
// retries after 1, 2, 4, 4 ticks (HeartbeatTicks caps the wait), reports
// that reads work again, and the follower catches up.
func TestReadFailuresRetried(t *testing.T) {
	leader := mkEntries(fixed(8), run{1, 100})
	lg := &flaky{fail: 5}
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:20],
		cfg:       Config{NextIndex: 21, HeartbeatTicks: 4, ResendTicks: 8, MaxBytesPerRPC: 1 << 10},
		tickEvery: 10 * time.Millisecond,
		log:       func(l *logmgr.Log) LogReader { lg.Log = l; return lg },
	})
	var at []int // the tick of each report
	sentBefore := -1
	h.node.onRead = func(m any) {
		at = append(at, h.tick.n)
		if _, ok := m.(ReadResumed); ok {
			sentBefore = len(h.f.reqs)
		}
	}
	h.waitConverged(10 * time.Second)
	if len(h.node.readFailed) != 5 || len(h.node.resumed) != 1 {
		h.fatalf("%d read failures and %d resumptions reported, want 5 and 1", len(h.node.readFailed), len(h.node.resumed))
	}
	for i, m := range h.node.readFailed {
		if m.Peer != testPeer || m.Failures != i+1 || !errors.Is(m.Err, errFlaky) {
			h.fatalf("read failure %d reported as %+v", i, m)
		}
	}
	if r := h.node.resumed[0]; r.Peer != testPeer || r.Failures != 5 {
		h.fatalf("resumption reported as %+v", r)
	}
	if want := []int{0, 1, 3, 7, 11, 15}; !slices.Equal(at, want) {
		h.fatalf("reports at ticks %v, want %v", at, want)
	}
	if sentBefore != 0 {
		h.fatalf("%d requests reached the follower before reads worked", sentBefore)
	}
	if len(h.f.hbs) < 4 {
		h.fatalf("%d heartbeats while reads failed: the follower must keep hearing from its leader", len(h.f.hbs))
	}
}
