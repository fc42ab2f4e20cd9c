package replicator

// The fake follower of the harness.

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// reqInfo is what the follower saw of one AppendRequest.
type reqInfo struct {
	seq, prev, prevTerm, commit uint64
	n                           int
	bytes                       uint64
}

type pending struct{ seq, bytes uint64 }

// release makes the follower send the replies it holds.
type release struct{}

// follower is a fake follower: it keeps its log as a slice, applies the
// AppendEntries rules (reject with the hint when prev does not match,
// otherwise truncate conflicts and append) and answers the replicator
// directly. The test scripts its replies through the fields below, which it
// may change between runs of the simulator (everything runs on the test's
// goroutine).
type follower struct {
	term   uint64
	log    []*raftpb.Entry // log[i].Index == i+1
	commit uint64

	// Scripting.
	drop    func(reply *raftpb.Envelope) bool // drop the reply if true
	hold    bool                              // keep replies until released (or taken)
	holdFor time.Duration                     // with hold: release this long after the first held reply
	reverse bool                              // release held replies newest first
	dup     bool                              // send every reply twice

	// onInstall, if set, answers an InstallSnapshotRequest (nil: no
	// answer); a success installs the snapshot first (installTo). Unset,
	// install requests are only recorded and the test answers them.
	onInstall func(seq uint64, req *raftpb.InstallSnapshotRequest) *raftpb.InstallSnapshotResponse

	held  []*raftpb.Envelope
	armed bool

	// Checks, installed by the harness.
	leaderLog  LogReader
	maxPerRPC  uint64
	violate    func(format string, args ...any)
	onTruncate func(from uint64)
	onCommit   func(commit uint64)

	// What it saw.
	reqs           []reqInfo
	hbs            []uint64 // the commit of every heartbeat
	voters         []int    // len(Envelope.voters) of every request, in order
	rejects        int
	installs       []installReq // install requests received, in order
	dropped        int
	unreplied      []pending // append requests received and not answered, in order
	maxUnreplied   int
	maxBytesBefore uint64 // most bytes unreplied when another request arrived
}

func (f *follower) last() uint64 { return uint64(len(f.log)) }

func (f *follower) termAt(i uint64) uint64 {
	if i == 0 || i > f.last() {
		return 0
	}
	return f.log[i-1].Term
}

func (f *follower) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case *raftpb.Envelope:
		if m.Group != testGroup || m.From != testLeader || m.To != testPeer {
			f.violate("misaddressed envelope %v", m)
		}
		f.voters = append(f.voters, len(m.Voters))
		switch b := m.Body.(type) {
		case *raftpb.Envelope_AppendRequest:
			f.onAppend(env, m, b.AppendRequest)
		case *raftpb.Envelope_HeartbeatRequest:
			f.onHeartbeat(env, m, b.HeartbeatRequest)
		case *raftpb.Envelope_InstallSnapshotRequest:
			f.onInstallRequest(env, m, b.InstallSnapshotRequest)
		default:
			f.violate("unexpected body %T", m.Body)
		}
	case release:
		f.flush(env)
	}
}

func (f *follower) reply(req *raftpb.Envelope) *raftpb.Envelope {
	return &raftpb.Envelope{Group: req.Group, From: testPeer, To: req.From, Term: f.term, Seq: req.Seq}
}

func (f *follower) onHeartbeat(env actors.Env, e *raftpb.Envelope, hb *raftpb.HeartbeatRequest) {
	r := f.reply(e)
	r.Body = &raftpb.Envelope_HeartbeatResponse{HeartbeatResponse: &raftpb.HeartbeatResponse{LastLogIndex: f.last()}}
	if t, err := f.leaderLog.Term(hb.Commit); err != nil || t != hb.CommitTerm {
		f.violate("heartbeat seq %d: commit %d of term %d, but the leader's term there is %d (%v)", e.Seq, hb.Commit, hb.CommitTerm, t, err)
	}
	if e.Term < f.term {
		f.send(env, r)
		return
	}
	f.term = e.Term
	f.hbs = append(f.hbs, hb.Commit)
	if f.onCommit != nil {
		f.onCommit(hb.Commit) // adopted without a log check: must be safe
	}
	if hb.Commit <= f.last() { // beyond its end, the follower lost entries: adopt nothing
		f.commit = max(f.commit, hb.Commit)
	}
	f.send(env, r)
}

func (f *follower) onAppend(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) {
	var size uint64
	for _, ent := range req.Entries {
		size += logmgr.EntrySize(ent)
	}
	f.reqs = append(f.reqs, reqInfo{seq: e.Seq, prev: req.PrevLogIndex, prevTerm: req.PrevLogTerm, commit: req.Commit, n: len(req.Entries), bytes: size})
	if len(req.Entries) > 1 && size > f.maxPerRPC {
		f.violate("request seq %d carries %d entries of %d bytes > MaxBytesPerRPC %d", e.Seq, len(req.Entries), size, f.maxPerRPC)
	}
	f.checkAgainstLeader(e.Seq, req)
	var before uint64
	for _, p := range f.unreplied {
		before += p.bytes
	}
	f.maxBytesBefore = max(f.maxBytesBefore, before)
	f.unreplied = append(f.unreplied, pending{e.Seq, size})
	f.maxUnreplied = max(f.maxUnreplied, len(f.unreplied))

	r := f.reply(e)
	if e.Term < f.term { // a stale leader: tell it the term
		r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{LastLogIndex: f.last()}}
		f.send(env, r)
		return
	}
	f.term = e.Term
	prev := req.PrevLogIndex
	if prev > f.last() || f.termAt(prev) != req.PrevLogTerm {
		// The hint: the largest index <= prev whose term is <= prev's term.
		k := min(prev, f.last())
		for k > 0 && f.termAt(k) > req.PrevLogTerm {
			k--
		}
		f.rejects++
		r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
			RejectHintIndex: k, RejectHintTerm: f.termAt(k), LastLogIndex: f.last(),
		}}
		f.send(env, r)
		return
	}
	for _, ent := range req.Entries {
		if ent.Index <= f.last() {
			if f.log[ent.Index-1].Term == ent.Term {
				continue
			}
			if ent.Index <= f.commit {
				f.violate("entry %d of term %d conflicts with committed entry of term %d", ent.Index, ent.Term, f.log[ent.Index-1].Term)
			}
			if f.onTruncate != nil {
				f.onTruncate(ent.Index)
			}
			f.log = slices.Clip(f.log[:ent.Index-1])
		}
		f.log = append(f.log, ent)
	}
	lastNew := prev + uint64(len(req.Entries))
	f.commit = max(f.commit, min(req.Commit, lastNew))
	r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
		Success: true, MatchIndex: lastNew, LastLogIndex: f.last(),
	}}
	f.send(env, r)
}

// installReq is an InstallSnapshotRequest the follower got.
type installReq struct {
	seq, term uint64
	meta      *raftpb.SnapshotMeta
}

func (f *follower) onInstallRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.InstallSnapshotRequest) {
	f.installs = append(f.installs, installReq{seq: e.Seq, term: e.Term, meta: req.Meta})
	if e.Term < f.term || f.onInstall == nil {
		return
	}
	f.term = e.Term
	resp := f.onInstall(e.Seq, req)
	if resp == nil {
		return
	}
	if resp.Success {
		f.installTo(req.Meta.LastIndex)
	}
	r := f.reply(e)
	r.Body = &raftpb.Envelope_InstallSnapshotResponse{InstallSnapshotResponse: resp}
	f.send(env, r)
}

// installTo replaces the follower's log with the leader's entries up to
// last, as installing a snapshot up to there does (the snapshot holds
// what they hold) — unless, as a node does, it holds that entry already
// or has committed past it.
func (f *follower) installTo(last uint64) {
	if t, err := f.leaderLog.Term(last); f.commit >= last || (err == nil && f.termAt(last) == t) {
		return
	}
	ents, err := f.leaderLog.Entries(1, last+1, 1<<40)
	if err != nil || uint64(len(ents)) != last {
		f.violate("install to %d: the leader's log holds %d entries up to there (%v)", last, len(ents), err)
		return
	}
	f.log = slices.Clone(ents)
	f.commit = max(f.commit, last)
}

// checkAgainstLeader verifies that a request carries the leader's own
// entries, consecutive after prev, and prev's true term.
func (f *follower) checkAgainstLeader(seq uint64, req *raftpb.AppendRequest) {
	if t, err := f.leaderLog.Term(req.PrevLogIndex); err != nil || t != req.PrevLogTerm {
		f.violate("request seq %d: prev (%d, %d) but the leader's term there is %d (%v)", seq, req.PrevLogIndex, req.PrevLogTerm, t, err)
	}
	for i, ent := range req.Entries {
		want := req.PrevLogIndex + 1 + uint64(i)
		got, err := f.leaderLog.Entries(want, want+1, 1<<40)
		if err != nil || ent.Index != want || !sameEntry(ent, got[0]) {
			f.violate("request seq %d: entry %d is %v, not the leader's entry %d", seq, i, ent, want)
			return
		}
	}
}

func (f *follower) send(env actors.Env, r *raftpb.Envelope) {
	if f.drop != nil && f.drop(r) {
		f.dropped++
		f.answered(r.Seq)
		return
	}
	if f.hold {
		f.held = append(f.held, r)
		if f.holdFor > 0 && !f.armed {
			f.armed = true
			env.After(f.holdFor, release{})
		}
		return
	}
	f.deliver(env, r)
}

func (f *follower) deliver(env actors.Env, r *raftpb.Envelope) {
	f.answered(r.Seq)
	env.Send(replRef, r)
	if f.dup {
		env.Send(replRef, proto.Clone(r))
	}
}

func (f *follower) answered(seq uint64) {
	f.unreplied = slices.DeleteFunc(f.unreplied, func(p pending) bool { return p.seq == seq })
}

func (f *follower) flush(env actors.Env) {
	held := f.held
	f.held, f.armed = nil, false
	if f.reverse {
		slices.Reverse(held)
	}
	for _, r := range held {
		f.deliver(env, r)
	}
}

// take removes the held replies without sending them, for the test to
// deliver (or not) itself.
func (f *follower) take() []*raftpb.Envelope {
	held := f.held
	f.held, f.armed = nil, false
	for _, r := range held {
		f.answered(r.Seq)
	}
	return held
}
