package snapshot

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// The messages of the package's two actors. Each lists who sends it and to
// whom; every message stays on one host except the raftpb.Envelopes the
// copy actors exchange.
//
// The snapshot executor (<group>/<id>/snap, see Executor):
//
//	node ──Save──▶ executor ──fsm.Capture──▶ FSM caller ──fsm.Captured──▶ executor ──Saved | SaveFailed──▶ node
//
// The copy actor (<group>/<id>/snap/copy, see Copier, a child of the
// executor). On the leader, serving:
//
//	replicator ──Offer──▶ leader's copy ──Offered | OfferFailed──▶ replicator (Offer.Reply)
//	replicator ──Withdraw──▶ leader's copy
//
// On the follower, fetching, after the node got an InstallSnapshotRequest:
//
//	node ──Fetch | CancelFetch──▶ follower's copy ──Fetched | FetchFailed──▶ node (CopyConfig.Node)
//
// Between the two copy actors, in raftpb.Envelopes of the group:
//
//	follower's copy ──SnapshotFetch──▶ leader's copy (Fetch.From)
//	leader's copy ──SnapshotChunk──▶ follower's copy (Offer.To)
type (
	// Save asks for a snapshot of the state as applied now (from the
	// node); it records the configuration at that state, which the FSM
	// caller knows.
	Save struct{}
	// Saved reports a snapshot committed to the store (to the node).
	Saved struct{ Meta *raftpb.SnapshotMeta }
	// SaveFailed reports a snapshot not taken, and why (to the node);
	// nothing was left behind.
	SaveFailed struct{ Err error }
)

// Serving (the leader's copy actor).
type (
	// Offer opens a serving session for Peer (from a leader's replicator
	// that found Peer needs entries compacted away): the copy actor picks
	// the store's newest valid snapshot, pins it for the session and
	// answers Reply with Offered, whose Meta the replicator sends to the
	// peer in an InstallSnapshotRequest, or with OfferFailed. To is the
	// peer's copy actor (where chunks go); Term is the leader's term (for
	// the log: chunks carry the term of the fetch they answer).
	//
	// A later Offer for the same Peer replaces its session: the old
	// snapshot is unpinned (unless it is still the newest, which the new
	// session keeps serving without a gap).
	Offer struct {
		Peer  string
		To    actors.Ref
		Reply actors.Ref
		Term  uint64
	}
	// Offered answers an Offer: Peer's session serves the snapshot Meta
	// describes (a copy the receiver owns).
	Offered struct {
		Peer string
		Meta *raftpb.SnapshotMeta
	}
	// OfferFailed answers an Offer no session was opened for. Err wraps
	// ErrNotFound when the store holds no valid snapshot.
	OfferFailed struct {
		Peer string
		Err  error
	}
	// Withdraw ends Peer's serving session, if any (from the replicator,
	// once the peer answered the install or the replicator stops): its
	// snapshot is unpinned, and later fetches are answered missing. A
	// session that sees no fetch for CopyConfig.ServeIdleTimeout ends by
	// itself the same way.
	Withdraw struct{ Peer string }
)

// Fetching (the follower's copy actor).
type (
	// Fetch asks the copy actor to install snapshot Meta (from the node,
	// with the manifest the leader sent in its InstallSnapshotRequest):
	// fetch it chunk by chunk from From, the copy actor of the node
	// Leader, check it and commit it into the store. Term is the leader's
	// term (stamped on the SnapshotFetch envelopes).
	//
	// The answer, to CopyConfig.Node, is Fetched once the snapshot is in
	// the store, or FetchFailed. A Fetch of the snapshot being fetched
	// joins that fetch (taking its Leader, From and Term: a new leader
	// holding the same snapshot), and one report answers both. A Fetch of
	// a snapshot the store holds is answered Fetched at once; of one older
	// than the store's newest, FetchFailed (ErrStale); neither disturbs a
	// running fetch. A Fetch of any other snapshot ends the running fetch
	// with FetchFailed (ErrCanceled) and replaces its partial download.
	Fetch struct {
		Meta   *raftpb.SnapshotMeta
		Leader string
		From   actors.Ref
		Term   uint64
	}
	// Fetched reports snapshot Meta committed to the store (to the node),
	// verified: the node may load it.
	Fetched struct{ Meta *raftpb.SnapshotMeta }
	// FetchFailed reports a fetch that ended without installing Meta, and
	// why (to the node). Err wraps ErrCorrupt (the bytes did not match
	// the manifest: the partial download is removed), ErrSourceGone (the
	// leader no longer serves the snapshot), ErrStalled (no chunk for
	// CopyConfig.StallTimeout), ErrStale, ErrBadMeta (a manifest that
	// makes no sense), ErrCanceled (CancelFetch, a Fetch of another
	// snapshot, or the actor stopping) or an I/O error. Except for
	// ErrCorrupt and ErrBadMeta, the durable part of the download is kept
	// and a later Fetch of the same snapshot resumes from it.
	FetchFailed struct {
		Meta *raftpb.SnapshotMeta
		Err  error
	}
	// CancelFetch stops the current fetch, if any (from the node, e.g.
	// when it leaves the term): what was written is made durable and kept
	// for a later Fetch to resume, and the fetch is reported FetchFailed
	// with ErrCanceled.
	CancelFetch struct{}
)
