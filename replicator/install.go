package replicator

import (
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Installing a snapshot on a peer that needs entries the leader compacted
// away (Raft §7). The replicator switches to snapshot state, stops sending
// entries (heartbeats go on, so the peer keeps following) and:
//
//  1. asks its copy actor to serve the newest snapshot to the peer
//     (snapshot.Offer); the copy actor pins it and answers Offered with
//     its manifest, or OfferFailed;
//  2. sends the peer's node an InstallSnapshotRequest with the manifest.
//     The peer's copy actor then fetches the snapshot from this leader's,
//     chunk by chunk, checks it, and the peer loads it;
//  3. on the peer's InstallSnapshotResponse: on success the peer's log
//     matches up to the snapshot's last index, and replication goes on
//     from there (probe); on failure, or a failed offer, it tries again
//     after a back-off, from the offer.
//
// The request is sent again every installResend ticks without an answer
// (the answer, or the request, may be lost; the peer may have restarted):
// the peer joins or resumes the fetch under way, or answers at once if it
// already holds the snapshot. The session is withdrawn (the snapshot
// unpinned) when the install ends and when the replicator stops.

// installResendFactor times ResendTicks is how long an install may go
// unanswered before the request is sent again.
const installResendFactor = 5

// install is the state of an install under way.
type install struct {
	meta     *raftpb.SnapshotMeta // offered; nil while the offer is out or after a failure
	offering bool                 // an Offer is out
	retry    bool                 // offer again when the back-off ends
	firstSeq uint64               // seq of the first request for meta: answers before it are stale
	ticks    int                  // ticks since the request was last sent
}

func (i *install) index() uint64 {
	if i.meta == nil {
		return 0
	}
	return i.meta.LastIndex
}

// startInstall switches to snapshot state and asks for a snapshot.
func (r *Replicator) startInstall(env actors.Env) {
	r.st = stateSnapshot
	r.inflight = r.inflight[:0]
	r.inBytes = 0
	r.quietTicks = 0
	r.ins = install{}
	r.offer(env)
}

func (r *Replicator) offer(env actors.Env) {
	r.ins.offering = true
	env.Send(r.cfg.Copier, snapshot.Offer{Peer: r.cfg.PeerID, To: r.cfg.PeerCopier, Reply: env.Self(), Term: r.cfg.Term})
}

func (r *Replicator) onOffered(env actors.Env, m snapshot.Offered) {
	if r.st != stateSnapshot || !r.ins.offering || m.Peer != r.cfg.PeerID {
		return
	}
	r.ins.offering = false
	r.ins.meta = m.Meta
	r.ins.firstSeq = 0
	r.sendInstall(env)
	env.Send(r.cfg.Node, Installing{Peer: r.cfg.PeerID, Term: r.cfg.Term, Index: m.Meta.LastIndex})
}

func (r *Replicator) onOfferFailed(env actors.Env, m snapshot.OfferFailed) {
	if r.st != stateSnapshot || !r.ins.offering || m.Peer != r.cfg.PeerID {
		return
	}
	r.ins.offering = false
	r.installFailed(env, fmt.Errorf("no snapshot to install on %s: %w", r.cfg.PeerID, m.Err), false)
}

// installFailed reports a failed offer or install, as a failed read, and
// offers again after the back-off.
func (r *Replicator) installFailed(env actors.Env, err error, peerSide bool) {
	r.ins.meta = nil
	r.ins.retry = true
	r.failures++
	r.backoff = min(max(2*r.backoff, 1), r.cfg.HeartbeatTicks)
	r.retryIn = r.backoff
	env.Send(r.cfg.Node, ReadFailed{Peer: r.cfg.PeerID, Term: r.cfg.Term, Err: err, Failures: r.failures, RetryTicks: r.retryIn, PeerSide: peerSide})
}

func (r *Replicator) sendInstall(env actors.Env) {
	env.Send(r.cfg.Peer, r.envelope(&raftpb.InstallSnapshotRequest{Meta: r.ins.meta, LeaderAddr: r.cfg.LeaderAddr}))
	if r.ins.firstSeq == 0 {
		r.ins.firstSeq = r.seq
	}
	r.ins.ticks = 0
	r.idleTicks = 0
}

func (r *Replicator) installTick(env actors.Env) {
	if r.ins.meta == nil {
		return
	}
	r.ins.ticks++
	if r.ins.ticks >= installResendFactor*r.cfg.ResendTicks {
		r.sendInstall(env)
	}
}

func (r *Replicator) onInstallResponse(env actors.Env, seq uint64, resp *raftpb.InstallSnapshotResponse) {
	if r.st != stateSnapshot || r.ins.meta == nil || seq < r.ins.firstSeq || seq > r.seq {
		return // not an answer to this install
	}
	r.contacted(env)
	meta := r.ins.meta
	r.withdraw(env)
	if !resp.Success {
		r.installFailed(env, fmt.Errorf("%s could not install snapshot %d/%d: %s", r.cfg.PeerID, meta.LastIndex, meta.LastTerm, resp.Reason), true)
		return
	}
	// The peer's log now matches the leader's up to the snapshot's last
	// entry: it holds the snapshot, and entries up to there are committed.
	r.ins = install{}
	if r.failures > 0 {
		env.Send(r.cfg.Node, ReadResumed{Peer: r.cfg.PeerID, Term: r.cfg.Term, Failures: r.failures})
		r.failures, r.backoff, r.retryIn = 0, 0, 0
	}
	if meta.LastIndex > r.match {
		r.match, r.matchSeq = meta.LastIndex, r.seq
	}
	r.st = stateProbe
	r.next = r.match + 1
	env.Send(r.cfg.Node, Progress{Peer: r.cfg.PeerID, Term: r.cfg.Term, Match: r.match})
	env.Send(r.cfg.Node, Installed{Peer: r.cfg.PeerID, Term: r.cfg.Term, Index: meta.LastIndex})
	r.send(env)
}

// withdraw ends the serving session of an install under way, if any.
func (r *Replicator) withdraw(env actors.Env) {
	if r.st == stateSnapshot && (r.ins.meta != nil || r.ins.offering) {
		env.Send(r.cfg.Copier, snapshot.Withdraw{Peer: r.cfg.PeerID})
	}
	r.ins.meta = nil
	r.ins.offering = false
}
