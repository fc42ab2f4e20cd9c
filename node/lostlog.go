package node

import (
	"errors"
	"fmt"

	"github.com/asyncraft/asyncraft/replicator"
)

// ErrPeerLogLost is wrapped by Status.PeerLogLoss: a follower holds less
// than it acknowledged to this leader.
var ErrPeerLogLost = errors.New("asyncraft: a follower lost entries it had acknowledged")

// onLostEntries handles a replicator's report that its peer lost entries it
// had acknowledged (a wiped data directory, or a log cut short by a
// repair). The replicator has forgotten the peer's match and sends the log
// again from what the peer still holds; the node forgets it too, so that
// the peer counts toward no commit for entries it no longer holds. That is
// safe: the commit index never goes back (nothing committed is undone) —
// but entries committed with the peer's help may now be held by fewer than
// a majority (docs/operations.md says what that means and what to do).
// The loss is counted, logged at ERROR naming the peer, and shown in
// Status.PeerLogLoss until the peer holds again what it had acknowledged.
func (a *Actor) onLostEntries(m replicator.LostEntries) {
	if a.role != Leader || m.Term != a.term {
		return
	}
	if !a.tr.lostEntries(m.Peer, m.Match) {
		return
	}
	a.sh.Metrics.PeerLogLosses.Add(1)
	err := fmt.Errorf("%w: %s had acknowledged entries up to %d and now holds at most %d (its data directory was wiped or its log cut short); sending it the log again",
		ErrPeerLogLost, m.Peer, m.Match, m.Last)
	a.sh.lostErr.Store(&peerError{m.Peer, err})
	a.logger.Error("asyncraft: a follower lost entries it had acknowledged; this leader sends it the log again. Entries committed with its help may now be on fewer than a majority until it catches up: see docs/operations.md",
		"peer", m.Peer, "acknowledged", m.Match, "holds at most", m.Last, "term", a.term)
}

// peerCaughtUp is called when peer's match rises to match: a peer that had
// lost entries and holds them again is reported as caught up.
func (a *Actor) peerCaughtUp(peer string, match uint64) {
	if !a.tr.caughtUp(peer, match) {
		return
	}
	a.logger.Warn("asyncraft: a follower that had lost entries holds them again", "peer", peer, "match", match, "term", a.term)
	if p := a.sh.lostErr.Load(); p != nil && p.peer == peer {
		a.sh.lostErr.Store(nil)
	}
}
