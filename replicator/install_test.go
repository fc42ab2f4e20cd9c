package replicator

// Tests of the snapshot install (install.go) in the harness: the leader's
// log has compacted away what the follower needs, a copierProbe stands in
// for the leader's copy actor, and the fake follower records the
// InstallSnapshotRequests (the test answers them, or onInstall does).

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// copierProbe stands in for the leader's snapshot copy actor: it records
// the Offers and Withdraws it gets and, if answer is set, answers each
// Offer with what answer returns (nil: nothing).
type copierProbe struct {
	offers    []snapshot.Offer
	withdraws []snapshot.Withdraw
	answer    func(snapshot.Offer) any
}

func (c *copierProbe) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case snapshot.Offer:
		c.offers = append(c.offers, m)
		if c.answer != nil {
			if r := c.answer(m); r != nil {
				env.Send(m.Reply, r)
			}
		}
	case snapshot.Withdraw:
		c.withdraws = append(c.withdraws, m)
	}
}

// testMeta is the snapshot the copier offers in these tests: up to entry
// 25 (of term 2), which the leader's log still holds, as it holds every
// entry after its newest snapshot.
func testMeta() *raftpb.SnapshotMeta {
	return &raftpb.SnapshotMeta{LastIndex: 25, LastTerm: 2, DataSize: 123, DataCrc32C: 0xc0ffee,
		Files: []*raftpb.SnapshotFile{{Name: "extra", Size: 7}}}
}

// installHarness is a leader of term 2 whose log holds entries 1-30 (1-20
// of term 1, 21-30 of term 2) of which it has compacted 1-20 away, a
// follower holding 1-5, and the leader's copy actor at copierRef. The
// replicator starts probing at 6, so its first read fails with
// ErrCompacted. ResendTicks is 3: an install goes unanswered for 15 ticks
// before it is sent again. v, if set, is the replicator's View.
func installHarness(t *testing.T, v *View) *harness {
	t.Helper()
	leader := mkEntries(fixed(8), run{1, 20}, run{2, 10})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:5],
		cfg: Config{Term: 2, NextIndex: 6, HeartbeatTicks: 2, ResendTicks: 3, View: v,
			Copier: copierRef, PeerCopier: peerCopierRef},
		log: func(l *logmgr.Log) LogReader { return compacted{l, 21} },
	})
	h.run(2 * time.Millisecond)
	return h
}

// offered delivers the copier's answer to the replicator's Offer.
func (h *harness) offered(meta *raftpb.SnapshotMeta) {
	h.t.Helper()
	h.L.Send(replRef, snapshot.Offered{Peer: testPeer, Meta: meta})
	h.run(2 * time.Millisecond)
}

// request is the i-th install request the follower got (from 0).
func (h *harness) request(i int) installReq {
	h.t.Helper()
	if i >= len(h.f.installs) {
		h.fatalf("the follower got %d install requests, want at least %d", len(h.f.installs), i+1)
	}
	return h.f.installs[i]
}

// installResp is the follower's answer to install request req.
func installResp(req installReq, ok bool, reason string) *raftpb.Envelope {
	resp := &raftpb.InstallSnapshotResponse{Success: ok, Reason: reason}
	if ok {
		resp.LastIndex = req.meta.LastIndex
	}
	return &raftpb.Envelope{Group: testGroup, From: testPeer, To: testLeader, Term: req.term, Seq: req.seq,
		Body: &raftpb.Envelope_InstallSnapshotResponse{InstallSnapshotResponse: resp}}
}

// answerInstall makes the follower answer req: on success it installs the
// snapshot first (its log then holds the leader's entries up to there).
func (h *harness) answerInstall(req installReq, ok bool, reason string) {
	h.t.Helper()
	if ok {
		h.f.installTo(req.meta.LastIndex)
	}
	h.inject(installResp(req, ok, reason))
}

// installCounts is what the replicator told the node and the copier about
// installs, for "nothing happened" checks.
type installCounts struct {
	offers, withdraws, installing, installed, readFailed, resumed, requests int
	ins                                                                     install
}

func (h *harness) installCounts() installCounts {
	return installCounts{
		offers: len(h.copier.offers), withdraws: len(h.copier.withdraws),
		installing: len(h.node.installing), installed: len(h.node.installed),
		readFailed: len(h.node.readFailed), resumed: len(h.node.resumed),
		requests: len(h.f.installs), ins: h.r.ins,
	}
}

// ignored injects e and checks that it changed nothing: neither the
// replicator's state nor the install under way, and nothing was sent or
// reported.
func (h *harness) ignored(what string, e *raftpb.Envelope) {
	h.t.Helper()
	before := h.installCounts()
	h.unchanged(what, e)
	if after := h.installCounts(); after != before {
		h.fatalf("%s changed the install:\n  before %+v\n  after  %+v", what, before, after)
	}
}

// TestInstallStartsWhenEntriesAreCompacted: the entries the follower needs
// are compacted away (the read fails with ErrCompacted): the replicator
// switches to snapshot state and asks its copy actor to serve the peer,
// once. No AppendRequest goes out while the offer is out, however the
// leader's log grows, and heartbeats go on. It is not reported as a failed
// read.
func TestInstallStartsWhenEntriesAreCompacted(t *testing.T) {
	h := installHarness(t, nil)
	want := snapshot.Offer{Peer: testPeer, To: peerCopierRef, Reply: replRef, Term: 2}
	if len(h.copier.offers) != 1 || h.copier.offers[0] != want {
		h.fatalf("the copier got offers %+v, want one %+v", h.copier.offers, want)
	}
	if h.r.st != stateSnapshot {
		h.fatalf("state %v, want snapshot", h.r.st)
	}
	if len(h.f.reqs) != 0 || len(h.f.installs) != 0 {
		h.fatalf("%d append and %d install requests sent before the copier answered", len(h.f.reqs), len(h.f.installs))
	}
	if len(h.node.readFailed) != 0 || len(h.node.installing) != 0 {
		h.fatalf("reported %v and %v, want nothing yet", h.node.readFailed, h.node.installing)
	}
	hbs := len(h.f.hbs)
	h.appendLeader(mkEntriesFrom(31, fixed(8), run{2, 5}), 30)
	h.L.Send(replRef, Beat{})
	h.tickN(10)
	if len(h.f.reqs) != 0 || len(h.f.installs) != 0 {
		h.fatalf("%d append and %d install requests sent in snapshot state without an offer", len(h.f.reqs), len(h.f.installs))
	}
	if got := len(h.f.hbs) - hbs; got != 6 {
		h.fatalf("%d heartbeats in 10 ticks and a Beat, want 6", got)
	}
	if len(h.copier.offers) != 1 {
		h.fatalf("%d offers, want the one still out", len(h.copier.offers))
	}
	if h.f.commit != 0 {
		h.fatalf("follower commit %d from heartbeats, want 0 (its match is unknown)", h.f.commit)
	}
}

// TestInstallOffered: the copier's Offered sends the follower an
// InstallSnapshotRequest with the offered manifest and reports Installing
// to the node; the View shows State "snapshot" with the snapshot's index
// (0 while the offer is out). An Offered for another peer, or a second
// one, is ignored.
func TestInstallOffered(t *testing.T) {
	v := &View{}
	h := installHarness(t, v)
	if pv := v.Load(); pv.State != "snapshot" || pv.Snapshot != 0 {
		h.fatalf("view while the offer is out: State %q Snapshot %d, want snapshot, 0", pv.State, pv.Snapshot)
	}
	h.L.Send(replRef, snapshot.Offered{Peer: "x", Meta: testMeta()})
	h.run(2 * time.Millisecond)
	if len(h.f.installs) != 0 || len(h.node.installing) != 0 {
		h.fatalf("an Offered for another peer was taken")
	}

	h.offered(testMeta())
	if len(h.f.installs) != 1 {
		h.fatalf("%d install requests, want 1", len(h.f.installs))
	}
	if req := h.request(0); !proto.Equal(req.meta, testMeta()) || req.term != 2 {
		h.fatalf("install request %+v, want the offered meta %v in term 2", req, testMeta())
	}
	if want := (Installing{Peer: testPeer, Term: 2, Index: 25}); len(h.node.installing) != 1 || h.node.installing[0] != want {
		h.fatalf("node got %+v, want %+v", h.node.installing, want)
	}
	if pv := v.Load(); pv.State != "snapshot" || pv.Snapshot != 25 || pv.Match != 0 {
		h.fatalf("view during the install: State %q Snapshot %d Match %d, want snapshot, 25, 0", pv.State, pv.Snapshot, pv.Match)
	}

	other := testMeta()
	other.LastIndex = 28
	h.offered(other)
	if len(h.f.installs) != 1 || len(h.node.installing) != 1 || h.r.ins.index() != 25 {
		h.fatalf("a second Offered was taken: %d requests, installing %v", len(h.f.installs), h.node.installing)
	}
	hbs := len(h.f.hbs)
	h.appendLeader(mkEntriesFrom(31, fixed(8), run{2, 5}), 30)
	h.tickN(6)
	if len(h.f.reqs) != 0 || len(h.f.hbs) != hbs+3 {
		h.fatalf("during the install: %d append requests and %d heartbeats in 6 ticks, want 0 and 3", len(h.f.reqs), len(h.f.hbs)-hbs)
	}
	if len(h.copier.offers) != 1 || len(h.f.installs) != 1 {
		h.fatalf("the leader's log grew during the install: %d offers, %d requests, want 1 each", len(h.copier.offers), len(h.f.installs))
	}
}

// TestInstallSucceeds: the follower's success sets the match to the
// snapshot's last index, withdraws the serving session, reports Progress
// and Installed, and probes from the index after the snapshot; entries
// then flow from the leader's log again.
func TestInstallSucceeds(t *testing.T) {
	v := &View{}
	h := installHarness(t, v)
	h.offered(testMeta())
	req := h.request(0)
	h.f.hold = true // see the probe before its answer
	reqs := len(h.f.reqs)
	h.answerInstall(req, true, "")

	if h.r.match != 25 || h.lastProgress() != 25 {
		h.fatalf("match %d, last progress %d, want 25", h.r.match, h.lastProgress())
	}
	if want := (Installed{Peer: testPeer, Term: 2, Index: 25}); len(h.node.installed) != 1 || h.node.installed[0] != want {
		h.fatalf("node got %+v, want %+v", h.node.installed, want)
	}
	if want := (snapshot.Withdraw{Peer: testPeer}); len(h.copier.withdraws) != 1 || h.copier.withdraws[0] != want {
		h.fatalf("the copier got %+v, want %+v", h.copier.withdraws, want)
	}
	if len(h.f.reqs) != reqs+1 {
		h.fatalf("%d requests after the install, want a probe", len(h.f.reqs)-reqs)
	}
	if p := h.f.reqs[reqs]; p.prev != 25 || p.prevTerm != 2 || p.n != 5 {
		h.fatalf("probe %+v, want entries 26-30 after (25, 2)", p)
	}
	if pv := v.Load(); pv.State != "probe" || pv.Snapshot != 0 || pv.Match != 25 || pv.Next != 26 {
		h.fatalf("view after the install: %+v, want probe, Snapshot 0, Match 25, Next 26", pv)
	}
	if len(h.node.readFailed) != 0 || len(h.node.resumed) != 0 {
		h.fatalf("reported read failures %v, resumptions %v", h.node.readFailed, h.node.resumed)
	}

	h.f.hold = false
	h.F.Send(followerRef, release{})
	h.appendLeader(mkEntriesFrom(31, fixed(8), run{2, 5}), 30)
	h.waitConverged(time.Second)
	if pv := v.Load(); pv.State != "replicate" || pv.Snapshot != 0 || pv.Match != 35 {
		h.fatalf("view once replicating: %+v", pv)
	}
	// The same answer again (a duplicate) changes nothing.
	h.ignored("a duplicate install answer", installResp(req, true, ""))
	if len(h.copier.offers) != 1 || len(h.copier.withdraws) != 1 || len(h.node.installed) != 1 {
		h.fatalf("offers %d, withdraws %d, installed %d: want 1 each", len(h.copier.offers), len(h.copier.withdraws), len(h.node.installed))
	}
}

// TestInstallFailureRetried: a failed install and a failed offer are
// reported like failed reads (ReadFailed, the back-off doubling) and offered
// again after the back-off; a late success of the failed install's request
// is not taken for the new one's; once an install works, ReadResumed.
func TestInstallFailureRetried(t *testing.T) {
	v := &View{}
	h := installHarness(t, v)
	h.offered(testMeta())
	first := h.request(0)
	h.answerInstall(first, false, "disk full")
	if len(h.copier.withdraws) != 1 {
		h.fatalf("the failed install's session not withdrawn: %+v", h.copier.withdraws)
	}
	if len(h.node.readFailed) != 1 {
		h.fatalf("read failures %+v, want 1", h.node.readFailed)
	}
	if m := h.node.readFailed[0]; m.Peer != testPeer || m.Term != 2 || m.Failures != 1 || m.RetryTicks != 1 || !m.PeerSide ||
		!strings.Contains(m.Err.Error(), "disk full") || !strings.Contains(m.Err.Error(), "25") {
		h.fatalf("ReadFailed %+v, want failure 1 on the peer's side, retry in 1 tick, naming the snapshot and the reason", m)
	}
	if h.r.st != stateSnapshot || h.r.match != 0 || len(h.node.installed) != 0 {
		h.fatalf("after a failed install: %s, installed %v", h.state(), h.node.installed)
	}
	if pv := v.Load(); pv.State != "snapshot" || pv.Snapshot != 0 || pv.ReadFailures != 1 {
		h.fatalf("view after a failed install: %+v", pv)
	}
	if len(h.copier.offers) != 1 {
		h.fatalf("offered again before the back-off")
	}
	h.tickN(1)
	if len(h.copier.offers) != 2 {
		h.fatalf("%d offers after the back-off, want 2", len(h.copier.offers))
	}

	// The offer fails: reported, then offered again after 2 ticks.
	h.L.Send(replRef, snapshot.OfferFailed{Peer: "x", Err: snapshot.ErrNotFound})
	h.run(2 * time.Millisecond)
	if len(h.node.readFailed) != 1 {
		h.fatalf("an OfferFailed for another peer was taken")
	}
	h.L.Send(replRef, snapshot.OfferFailed{Peer: testPeer, Err: fmt.Errorf("no snapshot: %w", snapshot.ErrNotFound)})
	h.run(2 * time.Millisecond)
	if len(h.node.readFailed) != 2 {
		h.fatalf("read failures %+v, want 2", h.node.readFailed)
	}
	if m := h.node.readFailed[1]; m.Failures != 2 || m.RetryTicks != 2 || m.PeerSide || !errors.Is(m.Err, snapshot.ErrNotFound) {
		h.fatalf("ReadFailed %+v, want failure 2 on the leader's side, retry in 2 ticks, wrapping ErrNotFound", m)
	}
	if len(h.copier.withdraws) != 1 {
		h.fatalf("withdrew a session the copier never opened")
	}
	h.L.Send(replRef, snapshot.OfferFailed{Peer: testPeer, Err: snapshot.ErrNotFound})
	h.run(2 * time.Millisecond)
	if len(h.node.readFailed) != 2 {
		h.fatalf("an OfferFailed with no offer out was taken")
	}
	h.tickN(1)
	if len(h.copier.offers) != 2 {
		h.fatalf("offered again 1 tick into a back-off of 2")
	}
	h.tickN(1)
	if len(h.copier.offers) != 3 {
		h.fatalf("%d offers after the back-off, want 3", len(h.copier.offers))
	}

	h.offered(testMeta())
	if len(h.f.installs) != 2 {
		h.fatalf("%d install requests, want 2", len(h.f.installs))
	}
	second := h.request(1)
	// The first request's answer, late, is not an answer to this one: a
	// success (it would install nothing now) or a failure.
	h.ignored("a failure answering the failed install's request", installResp(first, false, "late"))
	h.f.installTo(25)
	h.ignored("a success answering the failed install's request", installResp(first, true, ""))

	h.answerInstall(second, true, "")
	if h.r.match < 25 || len(h.node.installed) != 1 {
		h.fatalf("the second install's success not taken: match %d, installed %v", h.r.match, h.node.installed)
	}
	if len(h.node.resumed) != 1 || h.node.resumed[0] != (ReadResumed{Peer: testPeer, Term: 2, Failures: 2}) {
		h.fatalf("resumptions %+v, want one after 2 failures", h.node.resumed)
	}
	if len(h.copier.withdraws) != 2 {
		h.fatalf("withdraws %+v, want one per install", h.copier.withdraws)
	}
	h.waitConverged(time.Second)
	if pv := v.Load(); pv.ReadFailures != 0 || pv.State != "replicate" {
		h.fatalf("view once replicating: %+v", pv)
	}
}

// TestInstallStaleAnswersIgnored: an install answer that does not answer
// a request of the install under way — its seq from before the request
// (the heartbeat sent before it), after the last one sent, or another
// term's, peer's or cluster's — changes nothing; neither does one while the
// offer is out.
func TestInstallStaleAnswersIgnored(t *testing.T) {
	h := installHarness(t, nil)
	h.f.installTo(25) // so that a wrongly taken success passes the harness's checks
	e := installResp(installReq{seq: h.r.seq, term: 2, meta: testMeta()}, true, "")
	h.ignored("an answer while the offer is out", e)

	h.offered(testMeta())
	req := h.request(0)
	if req.seq < 2 || h.r.ins.firstSeq != req.seq {
		h.fatalf("request seq %d, first seq %d", req.seq, h.r.ins.firstSeq)
	}
	for _, ok := range []bool{true, false} {
		for _, seq := range []uint64{0, 1, req.seq - 1, h.r.seq + 1, h.r.seq + 50} {
			e := installResp(req, ok, "stale")
			e.Seq = seq
			h.ignored(fmt.Sprintf("an answer (success %v) with seq %d", ok, seq), e)
		}
		e := installResp(req, ok, "stale")
		e.Term = 1
		h.ignored("an answer of an older term", e)
		e = installResp(req, ok, "stale")
		e.From = "x"
		h.ignored("an answer from another peer", e)
		e = installResp(req, ok, "stale")
		e.Cluster = 0x5eed
		h.ignored("an answer of another cluster", e)
	}
	// The genuine answer is still taken.
	h.answerInstall(req, true, "")
	if h.r.match < 25 || len(h.node.installed) != 1 {
		h.fatalf("the genuine answer not taken")
	}
}

// TestInstallResentWhenUnanswered: an install request unanswered for
// installResendFactor × ResendTicks ticks is sent again (the same meta, a
// new seq), and again after as long; an answer to any of them is taken.
func TestInstallResentWhenUnanswered(t *testing.T) {
	every := installResendFactor * 3
	for _, answer := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("answer-request-%d", answer), func(t *testing.T) {
			h := installHarness(t, nil)
			h.offered(testMeta())
			for n := 2; n <= 3; n++ {
				hbs := len(h.f.hbs)
				h.tickN(every - 1)
				if len(h.f.installs) != n-1 {
					h.fatalf("%d requests after %d ticks, want %d", len(h.f.installs), every-1, n-1)
				}
				h.tickN(1)
				if len(h.f.installs) != n {
					h.fatalf("%d requests after %d ticks unanswered, want %d", len(h.f.installs), every, n)
				}
				if len(h.f.hbs) <= hbs {
					h.fatalf("no heartbeats while the install was unanswered")
				}
				prev, req := h.f.installs[n-2], h.f.installs[n-1]
				if !proto.Equal(req.meta, testMeta()) || req.seq <= prev.seq || req.term != 2 {
					h.fatalf("resent %+v after %+v, want the same meta with a later seq", req, prev)
				}
			}
			if len(h.copier.offers) != 1 || len(h.node.installing) != 1 || len(h.node.readFailed) != 0 {
				h.fatalf("a resend offered again (%d) or reported (%v, %v)", len(h.copier.offers), h.node.installing, h.node.readFailed)
			}
			h.answerInstall(h.request(answer), true, "")
			if h.r.match < 25 || len(h.node.installed) != 1 || len(h.copier.withdraws) != 1 {
				h.fatalf("answer to request %d not taken: match %d, installed %v", answer, h.r.match, h.node.installed)
			}
			for _, req := range h.f.installs {
				h.ignored("an answer to a request of the finished install", installResp(req, true, ""))
			}
			h.tickN(every)
			if len(h.f.installs) != 3 {
				h.fatalf("install resent after it was answered")
			}
			h.waitConverged(time.Second)
		})
	}
}

// TestInstallWithdrawnWhenStopped: a replicator stopped during an install
// (the leader stepped down) ends the serving session: Withdraw, whether the
// offer is out or the request is. One stopped with no session open sends
// nothing.
func TestInstallWithdrawnWhenStopped(t *testing.T) {
	cases := []struct {
		name string
		to   func(h *harness)
		want int // withdraws sent when stopped
	}{
		{"offering", func(*harness) {}, 1},
		{"installing", func(h *harness) { h.offered(testMeta()) }, 1},
		{"backing-off", func(h *harness) {
			h.offered(testMeta())
			h.answerInstall(h.request(0), false, "no")
		}, 0},
		{"installed", func(h *harness) {
			h.offered(testMeta())
			h.answerInstall(h.request(0), true, "")
			h.waitConverged(time.Second)
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := installHarness(t, nil)
			c.to(h)
			before := len(h.copier.withdraws)
			h.L.Stop(replRef)
			h.run(2 * time.Millisecond)
			if got := h.copier.withdraws[before:]; len(got) != c.want || (c.want == 1 && got[0] != (snapshot.Withdraw{Peer: testPeer})) {
				h.fatalf("stopped: the copier got %+v, want %d Withdraw", got, c.want)
			}
		})
	}
}

// TestCompactedWithoutCopier: a leader without a copy actor (no snapshots)
// has nothing to install: entries compacted away are a failed read,
// reported and retried, and no install starts.
func TestCompactedWithoutCopier(t *testing.T) {
	leader := mkEntries(fixed(8), run{1, 20}, run{2, 10})
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:5],
		cfg: Config{Term: 2, NextIndex: 6, HeartbeatTicks: 2, ResendTicks: 3},
		log: func(l *logmgr.Log) LogReader { return compacted{l, 21} },
	})
	h.run(2 * time.Millisecond)
	h.tickN(4)
	if h.r.st != stateProbe || len(h.f.installs) != 0 || len(h.node.installing) != 0 {
		h.fatalf("an install started without a copier: %s, %d requests", h.state(), len(h.f.installs))
	}
	if len(h.node.readFailed) != 3 { // at start, then retries at ticks 1 and 3
		h.fatalf("%d read failures, want 3", len(h.node.readFailed))
	}
	for _, m := range h.node.readFailed {
		if !errors.Is(m.Err, logmgr.ErrCompacted) {
			h.fatalf("ReadFailed %+v, want ErrCompacted", m)
		}
	}
}

// TestInstallOnALossyNetwork: the whole install through the fake follower
// (which installs and answers) and an answering copier, on a network that
// drops, duplicates and reorders; the replicator starts at the leader's
// last index + 1, so the follower's rejection leads it to the compacted
// entries. The follower ends with the leader's log, one session opened and
// withdrawn.
func TestInstallOnALossyNetwork(t *testing.T) {
	for range 4 {
		leader := mkEntries(fixed(8), run{1, 20}, run{2, 10})
		h := newHarness(t, setup{
			seed: testseed.For(t), leader: leader, follower: leader[:5],
			net: sim.NetConfig{MinLatency: 100 * time.Microsecond, MaxLatency: time.Millisecond,
				Drop: 0.2, Duplicate: 0.2, Reorder: 0.3, ReorderDelay: 3 * time.Millisecond},
			cfg:       Config{Term: 2, HeartbeatTicks: 2, ResendTicks: 3, Copier: copierRef, PeerCopier: peerCopierRef},
			tickEvery: time.Millisecond,
			log:       func(l *logmgr.Log) LogReader { return compacted{l, 21} },
		})
		h.copier.answer = func(o snapshot.Offer) any { return snapshot.Offered{Peer: o.Peer, Meta: testMeta()} }
		h.f.onInstall = func(_ uint64, req *raftpb.InstallSnapshotRequest) *raftpb.InstallSnapshotResponse {
			return &raftpb.InstallSnapshotResponse{Success: true, LastIndex: req.Meta.LastIndex}
		}
		h.waitConverged(10 * time.Second)
		h.appendLeader(mkEntriesFrom(31, fixed(8), run{2, 20}), 40)
		h.waitConverged(10 * time.Second)
		if len(h.copier.offers) != 1 || len(h.copier.withdraws) != 1 || len(h.node.installed) != 1 {
			h.fatalf("offers %d, withdraws %d, installed %v: want one install", len(h.copier.offers), len(h.copier.withdraws), h.node.installed)
		}
		if len(h.f.installs) == 0 {
			h.fatalf("converged without an install")
		}
		t.Logf("%d install requests, %d append requests", len(h.f.installs), len(h.f.reqs))
	}
}
