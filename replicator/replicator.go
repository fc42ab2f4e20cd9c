package replicator

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/internal/logsearch"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Defaults of the replication window, for the Config fields left zero. They
// are the defaults of the NodeOptions fields of the same names, which the
// node passes on.
const (
	// DefaultMaxInflightMsgs is the most AppendRequests outstanding to one
	// peer.
	DefaultMaxInflightMsgs = 256
	// DefaultMaxInflightBytes bounds the entries outstanding to one peer,
	// counted as their data plus 24 bytes each (8 MiB): a heartbeat waits
	// behind at most that much of its group's data on the connection.
	DefaultMaxInflightBytes = 8 << 20
	// DefaultMaxBytesPerRPC caps the entries of one AppendRequest
	// (512 KiB).
	DefaultMaxBytesPerRPC = 512 << 10
)

// defaultHeartbeatTicks is the heartbeat period of a Config that sets none.
// The node always sets one (its HeartbeatInterval in ticks), so only this
// package's tests rely on it.
const defaultHeartbeatTicks = 10

// LogReader is the leader's log as a replicator reads it: logmgr.Log in
// production. It must be safe to call from the replicator's goroutine while
// the node appends.
type LogReader interface {
	LastIndex() uint64
	Term(index uint64) (uint64, error)
	Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error)
}

// Config configures one replicator.
type Config struct {
	Group    string
	LeaderID string
	// LeaderAddr is the leader's host address, which probes carry
	// (raftpb.AppendRequest.leader_addr).
	LeaderAddr string
	PeerID     string
	// Term is the term the leader leads; the replicator lives only in it.
	Term uint64
	// Peer is the follower's node actor.
	Peer actors.Ref
	// Node is the leader's node actor (Progress and HigherTerm go there).
	Node actors.Ref
	Log  LogReader
	// NextIndex is the first index to try (the leader's last index + 1).
	NextIndex uint64
	// Commit is the leader's commit index at start.
	Commit uint64

	// MaxInflightMsgs and MaxInflightBytes bound the AppendRequests
	// outstanding to the peer, and MaxBytesPerRPC the entries of one
	// (zero: DefaultMaxInflightMsgs, DefaultMaxInflightBytes,
	// DefaultMaxBytesPerRPC).
	MaxInflightMsgs  int
	MaxInflightBytes uint64
	MaxBytesPerRPC   uint64
	// HeartbeatTicks is the number of idle node ticks between heartbeats
	// (zero: defaultHeartbeatTicks).
	HeartbeatTicks int
	// ResendTicks is how long outstanding requests may go unanswered
	// before the replicator probes again.
	ResendTicks int
	Logger      *slog.Logger
	// Cluster is the cluster identity the replicator puts on its requests
	// and requires on replies; Foreign, if set, counts the replies it
	// drops for carrying another.
	Cluster uint64
	Foreign *atomic.Uint64
	// Incarnation and Rejoined are the leader's, stamped on requests
	// (node/incarnation.go).
	Incarnation uint64
	Rejoined    bool
	// MemberSince is the leader's Peer.since (raftpb.Envelope.member_since),
	// stamped on requests.
	MemberSince uint64
	// Voters are the incarnations of its voters the leader knows, passed
	// on to the peer (raftpb.Envelope.voters) until it answers a request
	// that carried them; a Voters message replaces them.
	Voters []*raftpb.PeerIncarnation
	// View, if set, is where the replicator publishes its state for
	// monitoring (see View); nil publishes nothing.
	View *View
	// Copier is the leader's snapshot copy actor and PeerCopier the
	// peer's (snapshot.CopyName): a peer that needs entries compacted
	// away gets a snapshot through them (install.go). Zero Copier: the
	// leader keeps no snapshots, and such a peer is retried as a failed
	// read.
	Copier     actors.Ref
	PeerCopier actors.Ref
}

type state uint8

const (
	stateProbe state = iota
	stateReplicate
	// stateSnapshot: the peer needs entries compacted away; a snapshot is
	// being installed on it (install.go).
	stateSnapshot
)

func (s state) String() string {
	switch s {
	case stateProbe:
		return "probe"
	case stateSnapshot:
		return "snapshot"
	}
	return "replicate"
}

// flight is one outstanding AppendRequest.
type flight struct {
	seq    uint64
	prev   uint64 // its prev_log_index
	last   uint64 // the index of its last entry (prev if none)
	bytes  uint64
	sentAt time.Time
}

// sentBeat is a heartbeat still awaiting its answer.
type sentBeat struct {
	seq uint64
	at  time.Time
}

// maxBeats bounds the heartbeats whose send times are remembered.
const maxBeats = 8

// Replicator is the actor that replicates the leader's log to one peer.
// It owns the peer's next and match indexes, its state, and the window of
// outstanding requests.
//
// Invariants: match < next; in probe state at most one request is
// outstanding; the outstanding requests are in seq order with increasing
// last indexes.
type Replicator struct {
	cfg Config

	st            state
	next          uint64
	match         uint64
	commit        uint64
	sentHB        uint64 // the commit value last sent in a heartbeat or request
	seq           uint64
	matchSeq      uint64 // seq when match last rose: later requests reach a follower that acknowledged match
	inflight      []flight
	inBytes       uint64
	hbSeq         uint64     // seq of the last heartbeat sent
	hbAcked       uint64     // seq of the last heartbeat answered
	beats         []sentBeat // the latest heartbeats sent, oldest first
	higher        uint64     // the highest term reported in HigherTerm
	reportedInc   uint64     // the peer's incarnation last reported (PeerIncarnation)
	reportedSince uint64     // and its membership

	// The voters' incarnations to pass on: votersSeq is the seq of the
	// first request that carried the current list (0: none yet), and
	// votersHeld that the peer answered one at or after it.
	voters     []*raftpb.PeerIncarnation
	votersSeq  uint64
	votersHeld bool

	idleTicks  int // ticks since anything was sent
	quietTicks int // ticks since an append reply, while requests are outstanding

	// Reading the log: failures counts the reads failed in a row (0 once a
	// read works); while retryIn > 0 nothing is read or sent, and each tick
	// counts it down. The wait doubles with each failure, from 1 tick up
	// to HeartbeatTicks.
	failures int
	backoff  int
	retryIn  int

	// Monitoring, only with a View: contact is when the latest reply
	// accepted in the term arrived (Unix nanoseconds of env.Now, 0 before
	// any), pub what was last stored in the View.
	contact int64
	pub     published

	// ins is the snapshot install under way (stateSnapshot).
	ins install
}

// New returns a replicator actor for cfg.
func New(cfg Config) *Replicator {
	if cfg.MaxInflightMsgs <= 0 {
		cfg.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if cfg.MaxInflightBytes == 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.MaxBytesPerRPC == 0 {
		cfg.MaxBytesPerRPC = DefaultMaxBytesPerRPC
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = defaultHeartbeatTicks
	}
	if cfg.ResendTicks <= 0 {
		cfg.ResendTicks = 2 * cfg.HeartbeatTicks
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NextIndex == 0 {
		cfg.NextIndex = 1
	}
	r := &Replicator{cfg: cfg, next: cfg.NextIndex, commit: cfg.Commit, voters: cfg.Voters}
	if cfg.View != nil {
		r.startView()
	}
	return r
}

// Receive implements actors.Actor.
func (r *Replicator) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		r.heartbeat(env) // announce the leader at once
		r.send(env)
	case Tick:
		r.tick(env)
	case Beat:
		r.heartbeat(env)
	case Voters:
		r.voters, r.votersSeq, r.votersHeld = m.Voters, 0, false
		r.reportedInc = 0 // report the peer's incarnation again: it may have become a voter
	case Update:
		if m.Commit > r.commit {
			r.commit = m.Commit
		}
		r.send(env)
		if min(r.commit, r.match) > r.sentHB {
			r.heartbeat(env)
		}
	case *raftpb.Envelope:
		r.handle(env, m)
	case snapshot.Offered:
		r.onOffered(env, m)
	case snapshot.OfferFailed:
		r.onOfferFailed(env, m)
	case actors.Stopped:
		r.withdraw(env)
	}
	if r.cfg.View != nil {
		r.publish()
	}
	if invariants.Enabled {
		r.checkInvariants()
	}
}

// checkInvariants checks the invariants written on Replicator (under the
// invariants build tag only).
func (r *Replicator) checkInvariants() {
	if r.match >= r.next {
		invariants.Violate("replicator %s->%s: match %d not below next %d", r.cfg.LeaderID, r.cfg.PeerID, r.match, r.next)
	}
	if r.st != stateReplicate && len(r.inflight) > 1 {
		invariants.Violate("replicator %s->%s: %d requests outstanding in probe state", r.cfg.LeaderID, r.cfg.PeerID, len(r.inflight))
	}
	for i := 1; i < len(r.inflight); i++ {
		if r.inflight[i].seq <= r.inflight[i-1].seq || r.inflight[i].last <= r.inflight[i-1].last {
			invariants.Violate("replicator %s->%s: outstanding requests out of order", r.cfg.LeaderID, r.cfg.PeerID)
		}
	}
}

// contacted records that a reply was accepted now, for the View.
func (r *Replicator) contacted(env actors.Env) {
	if r.cfg.View != nil {
		r.contact = env.Now().UnixNano()
	}
}

func (r *Replicator) tick(env actors.Env) {
	r.idleTicks++
	if r.retryIn > 0 {
		r.retryIn--
		if r.retryIn == 0 {
			r.send(env) // read again
		}
	}
	if r.st == stateSnapshot {
		r.installTick(env)
	}
	if len(r.inflight) > 0 {
		r.quietTicks++
		if r.quietTicks >= r.cfg.ResendTicks {
			// The requests or their replies were lost, or the peer is
			// down. What the peer held then is still the best guess:
			// probe again from the first index not acknowledged (in probe
			// state, the same probe). If the peer lost entries meanwhile,
			// its rejection's hint moves the probe back. Falling back to
			// match+1 instead would, at the start of a term (match 0),
			// resend the whole log to a peer that was merely silent.
			r.resetToProbe(r.inflight[0].prev + 1)
			r.send(env)
		}
	}
	if r.idleTicks >= r.cfg.HeartbeatTicks {
		r.heartbeat(env)
	}
}

// resetToProbe forgets the outstanding requests and goes back to probe
// from next, never below match+1 (the invariant match < next).
func (r *Replicator) resetToProbe(next uint64) {
	r.st = stateProbe
	r.inflight = r.inflight[:0]
	r.inBytes = 0
	r.quietTicks = 0
	r.next = max(next, r.match+1)
}

func (r *Replicator) envelope(body any) *raftpb.Envelope {
	r.seq++
	e := &raftpb.Envelope{Group: r.cfg.Group, From: r.cfg.LeaderID, To: r.cfg.PeerID, Term: r.cfg.Term, Seq: r.seq, Cluster: r.cfg.Cluster,
		Incarnation: r.cfg.Incarnation, Rejoined: r.cfg.Rejoined, MemberSince: r.cfg.MemberSince}
	if len(r.voters) > 0 && !r.votersHeld {
		e.Voters = r.voters
		if r.votersSeq == 0 {
			r.votersSeq = r.seq
		}
	}
	switch b := body.(type) {
	case *raftpb.AppendRequest:
		e.Body = &raftpb.Envelope_AppendRequest{AppendRequest: b}
	case *raftpb.HeartbeatRequest:
		e.Body = &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: b}
	case *raftpb.InstallSnapshotRequest:
		e.Body = &raftpb.Envelope_InstallSnapshotRequest{InstallSnapshotRequest: b}
	}
	return e
}

func (r *Replicator) heartbeat(env actors.Env) {
	c := min(r.commit, r.match)
	ct, err := r.cfg.Log.Term(c)
	if err != nil {
		c, ct = 0, 0 // the term is not known: send no commit to adopt unchecked
	}
	env.Send(r.cfg.Peer, r.envelope(&raftpb.HeartbeatRequest{Commit: c, CommitTerm: ct}))
	r.hbSeq = r.seq
	if len(r.beats) == maxBeats {
		r.beats = append(r.beats[:0], r.beats[1:]...)
	}
	r.beats = append(r.beats, sentBeat{seq: r.seq, at: env.Now()})
	r.sentHB = max(r.sentHB, c)
	r.idleTicks = 0
}

// send fills the window with AppendRequests for entries not yet sent.
func (r *Replicator) send(env actors.Env) {
	if r.retryIn > 0 {
		return // a read failed: wait for the retry
	}
	if r.st == stateSnapshot {
		if r.ins.retry {
			r.ins.retry = false
			r.offer(env) // the retry after a failed offer or install
		}
		return
	}
	for {
		if r.st == stateProbe && len(r.inflight) > 0 {
			return
		}
		if len(r.inflight) >= r.cfg.MaxInflightMsgs || r.inBytes >= r.cfg.MaxInflightBytes {
			return
		}
		last := r.cfg.Log.LastIndex()
		if r.next > last+1 {
			// The log shrank: a leader never truncates its own, so this
			// one has stepped down (a follower now, its log cut by a new
			// leader) and this replicator is being stopped. Send nothing,
			// and keep next above the match it learned.
			return
		}
		if r.next > last && r.st == stateReplicate {
			return
		}
		prev := r.next - 1
		prevTerm, err := r.cfg.Log.Term(prev)
		if err != nil {
			r.readFailed(env, fmt.Errorf("term of entry %d: %w", prev, err))
			return
		}
		var ents []*raftpb.Entry
		if r.next <= last {
			ents, err = r.cfg.Log.Entries(r.next, last+1, r.cfg.MaxBytesPerRPC)
			if err != nil {
				r.readFailed(env, fmt.Errorf("entries from %d: %w", r.next, err))
				return
			}
		}
		if r.failures > 0 {
			env.Send(r.cfg.Node, ReadResumed{Peer: r.cfg.PeerID, Term: r.cfg.Term, Failures: r.failures})
			r.failures, r.backoff = 0, 0
		}
		var size uint64
		for _, e := range ents {
			size += uint64(len(e.Data)) + 24
		}
		req := &raftpb.AppendRequest{PrevLogIndex: prev, PrevLogTerm: prevTerm, Commit: r.commit, Entries: ents}
		if r.st == stateProbe {
			req.LeaderAddr = r.cfg.LeaderAddr
		}
		env.Send(r.cfg.Peer, r.envelope(req))
		r.sentHB = max(r.sentHB, min(r.commit, r.match))
		r.idleTicks = 0
		if len(r.inflight) == 0 {
			r.quietTicks = 0
		}
		lastSent := prev + uint64(len(ents))
		r.inflight = append(r.inflight, flight{seq: r.seq, prev: prev, last: lastSent, bytes: size, sentAt: env.Now()})
		r.inBytes += size
		r.next = lastSent + 1
		if r.st == stateProbe {
			// Until the probe is answered, assume nothing was accepted.
			r.next = prev + 1
			return
		}
	}
}

// readFailed reports a failed read of the log to the node and waits before
// reading again: 1 tick after the first failure in a row, then twice as
// long each time, up to HeartbeatTicks. Heartbeats go on meanwhile (they
// read nothing), so the peer keeps following this leader.
//
// A read fails on a storage error, which may pass, or because the entries
// the peer needs are gone from the log (ErrCompacted), which retrying does
// not cure: then the peer gets a snapshot instead (install.go), unless the
// leader keeps none (no Copier), when it is retried and reported like any
// failed read.
func (r *Replicator) readFailed(env actors.Env, err error) {
	if errors.Is(err, logmgr.ErrCompacted) && !r.cfg.Copier.IsZero() {
		r.startInstall(env)
		return
	}
	r.failures++
	r.backoff = min(max(2*r.backoff, 1), r.cfg.HeartbeatTicks)
	r.retryIn = r.backoff
	env.Send(r.cfg.Node, ReadFailed{Peer: r.cfg.PeerID, Term: r.cfg.Term, Err: err, Failures: r.failures, RetryTicks: r.retryIn})
}

func (r *Replicator) handle(env actors.Env, e *raftpb.Envelope) {
	if e.Cluster != r.cfg.Cluster {
		if r.cfg.Foreign != nil {
			r.cfg.Foreign.Add(1)
		}
		return // of another cluster: not a reply to this replicator
	}
	if e.Term > r.cfg.Term {
		if e.Term > r.higher { // once per term, not once per reply
			r.higher = e.Term
			env.Send(r.cfg.Node, HigherTerm{Peer: r.cfg.PeerID, Term: e.Term})
		}
		return
	}
	if e.Term < r.cfg.Term || e.From != r.cfg.PeerID {
		return // stale, or misrouted
	}
	r.incarnation(env, e)
	// Every request from votersSeq on carried the list, and the peer
	// reads it before it answers.
	if r.votersSeq != 0 && e.Seq >= r.votersSeq {
		r.votersHeld = true
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_HeartbeatResponse:
		// Like append replies, a heartbeat reply must answer an
		// outstanding heartbeat: a duplicate, or one overtaken by the
		// answer to a later heartbeat, is not contact now.
		if e.Seq <= r.hbAcked || e.Seq > r.hbSeq {
			return
		}
		r.hbAcked = e.Seq
		r.contacted(env)
		var sentAt time.Time
		for _, b := range r.beats {
			if b.seq == e.Seq {
				sentAt = b.at
			}
		}
		// While a snapshot is installed, the peer's log is about to be
		// replaced: its last index proves no loss.
		lost := r.st != stateSnapshot && r.lostEntries(env, e.Seq, b.HeartbeatResponse.LastLogIndex)
		env.Send(r.cfg.Node, Progress{Peer: r.cfg.PeerID, Term: r.cfg.Term, Match: r.match, SentAt: sentAt})
		if lost {
			r.send(env)
		}
	case *raftpb.Envelope_AppendResponse:
		r.onAppendResponse(env, e.Seq, b.AppendResponse)
	case *raftpb.Envelope_InstallSnapshotResponse:
		r.onInstallResponse(env, e.Seq, b.InstallSnapshotResponse)
	}
}

func (r *Replicator) onAppendResponse(env actors.Env, seq uint64, resp *raftpb.AppendResponse) {
	i := sort.Search(len(r.inflight), func(i int) bool { return r.inflight[i].seq >= seq })
	if i == len(r.inflight) || r.inflight[i].seq != seq {
		return // not outstanding: late, duplicated, or from before a reset
	}
	f := r.inflight[i]
	r.quietTicks = 0
	r.contacted(env)
	if resp.Success {
		// Requests before this one are answered or lost; either way the
		// peer now matches up to f.last.
		for _, g := range r.inflight[:i+1] {
			r.inBytes -= g.bytes
		}
		r.inflight = r.inflight[i+1:]
		if f.last > r.match {
			r.match, r.matchSeq = f.last, r.seq
		}
		if r.st == stateProbe {
			r.st = stateReplicate
			r.next = max(r.next, r.match+1)
		}
		env.Send(r.cfg.Node, Progress{Peer: r.cfg.PeerID, Term: r.cfg.Term, Match: r.match, SentAt: f.sentAt})
		r.send(env)
		if min(r.commit, r.match) > r.sentHB && len(r.inflight) == 0 {
			r.heartbeat(env)
		}
		return
	}
	// A rejection: the peer's log does not hold (f.prev, its term). It
	// still recognises this leader's term: that is contact.
	lost := r.lostEntries(env, seq, min(resp.LastLogIndex, resp.RejectHintIndex))
	env.Send(r.cfg.Node, Progress{Peer: r.cfg.PeerID, Term: r.cfg.Term, Match: r.match, SentAt: f.sentAt})
	if lost {
		r.send(env)
		return
	}
	if f.prev < r.match {
		return // contradicted by a later success: stale
	}
	// Probe next where the hint says the logs may match, and never at or
	// after the rejected probe point: each rejection makes progress even
	// if a hint is wrong.
	r.resetToProbe(min(r.nextFromHint(resp.RejectHintIndex, resp.RejectHintTerm), f.prev))
	r.send(env)
}

// lostEntries checks the reply to request seq, by which the peer's log
// matches the leader's at most up to last. If that is below the match and
// the request left after the match was learned, the peer lost entries it
// had acknowledged: the replicator reports it, forgets the match and
// probes from last+1. Lowering the match is safe: the commit index never
// goes back, so nothing committed is undone, and until the peer
// acknowledges again it counts for nothing it does not hold.
func (r *Replicator) lostEntries(env actors.Env, seq, last uint64) bool {
	if last >= r.match || seq <= r.matchSeq {
		return false
	}
	env.Send(r.cfg.Node, LostEntries{Peer: r.cfg.PeerID, Term: r.cfg.Term, Match: r.match, Last: last})
	r.match, r.matchSeq, r.sentHB = 0, 0, 0
	r.resetToProbe(last + 1)
	return true
}

// nextFromHint returns where to probe next given a rejection hint: after
// the last index k <= hintIndex whose term in the leader's log is at most
// hintTerm — the peer's log may match there — and after match, which is
// known to match.
func (r *Replicator) nextFromHint(hintIndex, hintTerm uint64) uint64 {
	// Candidates are (match, hint]; term(match) is known to be fine.
	return logsearch.LastTermAtMost(r.match, min(hintIndex, r.cfg.Log.LastIndex()), hintTerm, r.cfg.Log.Term) + 1
}

// incarnation reports a reply's incarnation to the node when it differs
// from the last one reported. The replicator acts on the reply all the
// same: what a peer back on wiped data acknowledges, it holds; the node
// refuses the peer (node/incarnation.go), which then fails.
func (r *Replicator) incarnation(env actors.Env, e *raftpb.Envelope) {
	if e.Incarnation != 0 && (e.Incarnation != r.reportedInc || e.MemberSince != r.reportedSince) {
		r.reportedInc, r.reportedSince = e.Incarnation, e.MemberSince
		env.Send(r.cfg.Node, PeerIncarnation{Peer: r.cfg.PeerID, Term: r.cfg.Term, Incarnation: e.Incarnation, Since: e.MemberSince, Rejoined: e.Rejoined})
	}
}
