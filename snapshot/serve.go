package snapshot

import (
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Serving: the leader's side of an install. A session per peer pins the
// snapshot offered to it; each SnapshotFetch from that peer for that
// snapshot is answered with the bytes asked for (at most MaxChunkSize),
// once the host's throttle allows. Fetches are independent: any order,
// any number of times. The bytes are not checked against the manifest's
// CRC-32Cs here (the follower checks every byte before it commits); a
// file shorter than its manifest says ends the session.

// maxDelayed caps the fetches of one session waiting for the throttle;
// more are dropped (and counted): the follower asks again.
const maxDelayed = 64

// maxPeers caps how many peers' copy actors a Copier remembers after
// their sessions ended.
const maxPeers = 64

// session serves one snapshot to one peer.
type session struct {
	peer string
	to   actors.Ref // the peer's copy actor
	src  *Source
	gen  uint64
	// last is when the session was opened or last saw a fetch.
	last time.Time
	// delayed holds the fetches waiting for the throttle, by chunk: a
	// fetch asked again while it waits is answered once.
	delayed map[chunkKey]delayedFetch
}

type chunkKey struct {
	file string
	off  uint64
}

type delayedFetch struct {
	term, seq uint64
	n         uint64
}

type peerRef struct {
	peer string
	ref  actors.Ref
}

// Timer messages of the serving side.
type (
	// idleCheck checks whether a session has been idle for
	// ServeIdleTimeout.
	idleCheck struct {
		peer string
		gen  uint64
	}
	// serveLater serves a chunk the throttle delayed.
	serveLater struct {
		peer string
		gen  uint64
		key  chunkKey
	}
)

func (c *Copier) onOffer(env actors.Env, m Offer) {
	src, err := c.cfg.Store.OpenNewestSource()
	if err != nil {
		c.stats.OfferFailures.Add(1)
		env.Send(m.Reply, OfferFailed{Peer: m.Peer, Err: err})
		return
	}
	if old := c.sessions[m.Peer]; old != nil {
		c.endSession(old, "replaced by a new offer") // after the new pin: no gap
	}
	c.gen++
	s := &session{peer: m.Peer, to: m.To, src: src, gen: c.gen, last: env.Now(), delayed: map[chunkKey]delayedFetch{}}
	c.sessions[m.Peer] = s
	c.remember(m.Peer, m.To)
	env.After(c.cfg.ServeIdleTimeout, idleCheck{peer: m.Peer, gen: s.gen})
	c.stats.Offers.Add(1)
	c.log.Info("snapshot: serving a snapshot to a follower", "peer", m.Peer, "snapshot", src.ID().String(), "term", m.Term)
	env.Send(m.Reply, Offered{Peer: m.Peer, Meta: src.Meta()})
}

// remember records peer's copy actor, most recent first, keeping
// maxPeers.
func (c *Copier) remember(peer string, ref actors.Ref) {
	c.peers = slices.DeleteFunc(c.peers, func(p peerRef) bool { return p.peer == peer })
	c.peers = slices.Insert(c.peers, 0, peerRef{peer, ref})
	if len(c.peers) > maxPeers {
		c.peers = c.peers[:maxPeers]
	}
}

func (c *Copier) peerRef(peer string) (actors.Ref, bool) {
	for _, p := range c.peers {
		if p.peer == peer {
			return p.ref, true
		}
	}
	return actors.Ref{}, false
}

func (c *Copier) endSession(s *session, why string) {
	delete(c.sessions, s.peer)
	if err := s.src.Close(); err != nil {
		c.log.Warn("snapshot: closing a served snapshot", "peer", s.peer, "error", err)
	}
	c.log.Info("snapshot: serving session ended: "+why, "peer", s.peer, "snapshot", s.src.ID().String())
}

func (c *Copier) sortedSessions() []*session {
	out := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *session) int { return strings.Compare(a.peer, b.peer) })
	return out
}

func (c *Copier) onIdleCheck(env actors.Env, m idleCheck) {
	s := c.sessions[m.peer]
	if s == nil || s.gen != m.gen {
		return // ended, or replaced
	}
	idle := env.Now().Sub(s.last)
	if idle >= c.cfg.ServeIdleTimeout {
		c.stats.SessionsExpired.Add(1)
		c.endSession(s, "no fetch for the idle timeout")
		return
	}
	env.After(c.cfg.ServeIdleTimeout-idle, m) // timers do not re-arm by themselves
}

// onSnapshotFetch answers a peer's fetch: a chunk if the peer has a
// session for that snapshot and the file exists, missing otherwise.
func (c *Copier) onSnapshotFetch(env actors.Env, e *raftpb.Envelope, f *raftpb.SnapshotFetch) {
	s := c.sessions[e.From]
	if s == nil {
		if to, ok := c.peerRef(e.From); ok {
			c.sendMissing(env, to, e.From, e.Term, e.Seq, f)
		} else {
			c.drop("a fetch from a peer never offered a snapshot", e)
		}
		return
	}
	s.last = env.Now()
	size, ok := s.src.Size(f.File)
	if s.src.ID() != (ID{f.Index, f.Term}) || !ok {
		c.sendMissing(env, s.to, e.From, e.Term, e.Seq, f)
		return
	}
	if f.Offset > size {
		c.drop("a fetch past the end of the file", e)
		return
	}
	n := min(uint64(f.Length), uint64(c.cfg.MaxChunkSize), size-f.Offset)
	key := chunkKey{f.File, f.Offset}
	if d, ok := s.delayed[key]; ok {
		// Asked again while it waits: one answer, with the latest seq.
		s.delayed[key] = delayedFetch{term: e.Term, seq: e.Seq, n: max(d.n, n)}
		return
	}
	if len(s.delayed) >= maxDelayed {
		c.drop("a fetch over the throttled backlog", e)
		return
	}
	if wait := c.cfg.Throttle.Reserve(env.Now(), int(n)); wait > 0 {
		c.stats.Throttled.Add(1)
		s.delayed[key] = delayedFetch{term: e.Term, seq: e.Seq, n: n}
		env.After(wait, serveLater{peer: s.peer, gen: s.gen, key: key})
		return
	}
	c.sendChunk(env, s, key, delayedFetch{term: e.Term, seq: e.Seq, n: n})
}

func (c *Copier) onServeLater(env actors.Env, m serveLater) {
	s := c.sessions[m.peer]
	if s == nil || s.gen != m.gen {
		return // the session ended while the chunk waited
	}
	d, ok := s.delayed[m.key]
	if !ok {
		return
	}
	delete(s.delayed, m.key)
	c.sendChunk(env, s, m.key, d)
}

// sendChunk reads and sends n bytes at key. A read that fails ends the
// session: the peer is told the snapshot is missing.
func (c *Copier) sendChunk(env actors.Env, s *session, key chunkKey, d delayedFetch) {
	id := s.src.ID()
	buf := make([]byte, d.n)
	n, err := s.src.ReadAt(key.file, buf, key.off)
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof {
		c.log.Warn("snapshot: cannot read a snapshot being served; the follower is told it is missing",
			"peer", s.peer, "snapshot", id.String(), "file", key.file, "offset", key.off, "error", err)
		c.endSession(s, "read failed")
		c.sendMissing(env, s.to, s.peer, d.term, d.seq, &raftpb.SnapshotFetch{Index: id.Index, Term: id.Term, File: key.file, Offset: key.off})
		return
	}
	e := c.envelope(s.peer, d.term, d.seq)
	e.Body = &raftpb.Envelope_SnapshotChunk{SnapshotChunk: &raftpb.SnapshotChunk{
		Index: id.Index, Term: id.Term, File: key.file, Offset: key.off, Data: buf[:n:n], Eof: eof,
	}}
	c.stats.ChunksSent.Add(1)
	c.stats.BytesSent.Add(uint64(n))
	env.Send(s.to, e)
}

// sendMissing answers peer's fetch f (of envelope term and seq) that the
// snapshot is not served.
func (c *Copier) sendMissing(env actors.Env, to actors.Ref, peer string, term, seq uint64, f *raftpb.SnapshotFetch) {
	a := c.envelope(peer, term, seq)
	a.Body = &raftpb.Envelope_SnapshotChunk{SnapshotChunk: &raftpb.SnapshotChunk{
		Index: f.Index, Term: f.Term, File: f.File, Offset: f.Offset, Missing: true,
	}}
	c.stats.MissingSent.Add(1)
	env.Send(to, a)
}
