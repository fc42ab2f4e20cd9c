package replicator

import (
	"sync/atomic"
	"time"
)

// View is one replicator's state published for monitoring: written only by
// its replicator, read from any goroutine (atomics, no lock).
//
// A replicator given a View (Config.View) fills it in New — Peer, Term and
// the initial state, overwriting whatever the View held — and updates it at
// the end of each message it handles, storing only the fields that changed
// since it last published. A View must serve one replicator at a time: the
// replicator of a new term needs a View of its own (a stopped replicator may
// still be finishing a message when its successor starts). The zero View
// reads as a peer never replicated to: Peer "", State "probe", all else 0.
type View struct {
	peer          atomic.Pointer[string]
	term          atomic.Uint64
	match         atomic.Uint64
	next          atomic.Uint64
	state         atomic.Uint32 // a state
	inflight      atomic.Int64
	inflightBytes atomic.Uint64
	lastContact   atomic.Int64 // Unix nanoseconds; 0: never
	readFailures  atomic.Int64
	snapshot      atomic.Uint64
}

// PeerView is what an operator sees of one follower from its leader.
type PeerView struct {
	Peer          string
	Term          uint64 // the leader's term this replicator serves
	Match         uint64 // highest index known replicated on the peer
	Next          uint64 // next index to send
	State         string // "probe", "replicate" or "snapshot" (installing one)
	Inflight      int    // append requests outstanding
	InflightBytes uint64
	LastContact   time.Time // when the peer last answered in this term (zero: never)
	ReadFailures  int       // log reads failed in a row (0 when reads work)
	// Snapshot is the last index of the snapshot being installed on the
	// peer (State "snapshot"; 0 while the leader's copy actor has not
	// offered one yet, and in the other states).
	Snapshot uint64
}

// Load returns a consistent-enough copy of the view.
//
// Each field is read atomically and is a value the replicator held at the
// end of some message, but two fields may come from different messages:
// a Load racing with an update may see, for instance, the new Inflight
// with the old InflightBytes (Inflight 0 with bytes still counted, or the
// reverse), State "probe" with several requests still counted in flight,
// or ReadFailures not yet reset by the read that sent the counted requests.
//
// One relation is kept: Match < Next. The replicator stores Next before
// Match and Load reads Match before Next, so as long as the match only
// rises, the Next read is above the Match read. The exception is a peer
// found to have lost entries (LostEntries), whose match drops to 0 and
// whose next drops below the old match: a Load racing with that update may
// see the old Match with the new Next.
//
// LastContact is from the replicator's clock (Env.Now) without its
// monotonic reading: compare it with the wall clock (time.Since).
func (v *View) Load() PeerView {
	var pv PeerView
	if p := v.peer.Load(); p != nil { // first: see startView
		pv.Peer = *p
	}
	pv.Term = v.term.Load()
	pv.Match = v.match.Load() // before Next: see above
	pv.Next = v.next.Load()
	pv.State = state(v.state.Load()).String()
	pv.Inflight = int(v.inflight.Load())
	pv.InflightBytes = v.inflightBytes.Load()
	if ns := v.lastContact.Load(); ns != 0 {
		pv.LastContact = time.Unix(0, ns)
	}
	pv.ReadFailures = int(v.readFailures.Load())
	pv.Snapshot = v.snapshot.Load()
	return pv
}

// published is what a replicator last stored in its View: a plain copy,
// compared with its state to store only what changed.
type published struct {
	match, next uint64
	st          state
	inflight    int
	inBytes     uint64
	contact     int64
	failures    int
	snapshot    uint64
}

// startView fills the View in at start: Peer and Term (once, for the
// replicator's life) and the initial state, all of it stored whatever the
// View held before.
func (r *Replicator) startView() {
	v := r.cfg.View
	v.term.Store(r.cfg.Term)
	r.pub = published{match: r.match, next: r.next, st: r.st, inflight: len(r.inflight), inBytes: r.inBytes, contact: r.contact, failures: r.failures}
	v.next.Store(r.next)
	v.match.Store(r.match)
	v.state.Store(uint32(r.st))
	v.inflight.Store(int64(len(r.inflight)))
	v.inflightBytes.Store(r.inBytes)
	v.lastContact.Store(r.contact)
	v.readFailures.Store(int64(r.failures))
	// The peer last: a reader that sees it (View.Load reads it first)
	// sees all of the above.
	peer := r.cfg.PeerID
	v.peer.Store(&peer)
}

// publish stores in the View the fields that changed since the last
// publication. It runs at the end of every message, so it compares plain
// fields and allocates nothing; a message that changes nothing a View
// shows (most heartbeat replies, ticks) stores nothing.
func (r *Replicator) publish() {
	v, p := r.cfg.View, &r.pub
	// Next before Match: see View.Load.
	if r.next != p.next {
		p.next = r.next
		v.next.Store(r.next)
	}
	if r.match != p.match {
		p.match = r.match
		v.match.Store(r.match)
	}
	if r.st != p.st {
		p.st = r.st
		v.state.Store(uint32(r.st))
	}
	if n := len(r.inflight); n != p.inflight {
		p.inflight = n
		v.inflight.Store(int64(n))
	}
	if r.inBytes != p.inBytes {
		p.inBytes = r.inBytes
		v.inflightBytes.Store(r.inBytes)
	}
	if r.contact != p.contact {
		p.contact = r.contact
		v.lastContact.Store(r.contact)
	}
	if r.failures != p.failures {
		p.failures = r.failures
		v.readFailures.Store(int64(r.failures))
	}
	if s := r.ins.index(); s != p.snapshot {
		p.snapshot = s
		v.snapshot.Store(s)
	}
}
