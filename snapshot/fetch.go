package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Fetching: the follower's side of an install. The snapshot is a sequence
// of files in transfer order (the data, then the extra files in the
// manifest's order), fetched chunk by chunk into a partial download of
// the store and written strictly in that order. The window is the part of
// that sequence asked for and not yet written: pieces, each outstanding
// (asked, no answer yet) or received (held in memory until every piece
// before it is written). Answers are matched to pieces by file and
// offset, so lost, repeated and reordered chunks do no harm; a piece
// unanswered for FetchTimeout is asked again.

// fetch is the current fetch.
//
// Invariants: the window's pieces are contiguous in transfer order and
// the first starts at the partial download's write position; outstanding
// counts the pieces without data and is at most Window; asked is the sum
// of the sizes of the outstanding pieces, buffered of the received ones,
// and asked + buffered ≤ Window × ChunkSize; (nextSeg, nextOff) is where
// the last piece ends.
type fetch struct {
	meta   *raftpb.SnapshotMeta
	id     ID
	leader string
	from   actors.Ref
	term   uint64
	gen    uint64
	part   *partial

	window      []*piece
	outstanding int
	asked       uint64
	buffered    uint64
	// nextSeg and nextOff are where the next piece starts.
	nextSeg int
	nextOff uint64
	// firstSeq: the envelopes of this fetch have seqs above it.
	firstSeq uint64
	// progressed is when a chunk was last accepted (or the fetch began).
	progressed time.Time
	total      uint64
}

// piece is a run of bytes of one file, asked for and not yet written.
type piece struct {
	seg  int
	off  uint64
	n    uint64
	data []byte // nil while outstanding
	// sent is when it was last asked for.
	sent time.Time
}

// fetchTick is the fetch's periodic check for unanswered pieces and
// stalls.
type fetchTick struct{ gen uint64 }

func (c *Copier) onFetch(env actors.Env, m Fetch) {
	if err := checkMeta(m.Meta, c.cfg.MaxSnapshotBytes); err != nil {
		c.stats.FetchFailures.Add(1)
		c.log.Warn("snapshot: refused to fetch a snapshot", "leader", m.Leader, "error", err)
		env.Send(c.cfg.Node, FetchFailed{Meta: proto.CloneOf(m.Meta), Err: err})
		return
	}
	id := ID{m.Meta.LastIndex, m.Meta.LastTerm}
	if f := c.fetch; f != nil && f.id == id && proto.Equal(f.meta, m.Meta) {
		c.join(env, m)
		return
	}
	// Answered at once, leaving a running fetch alone.
	st := c.cfg.Store
	if have := st.metaOf(id); have != nil {
		c.log.Info("snapshot: asked to fetch a snapshot the store holds", "snapshot", id.String())
		env.Send(c.cfg.Node, Fetched{Meta: have})
		return
	}
	if newest := st.Newest(); newest != nil && (ID{newest.LastIndex, newest.LastTerm}).compare(id) > 0 {
		c.stats.FetchFailures.Add(1)
		env.Send(c.cfg.Node, FetchFailed{Meta: proto.CloneOf(m.Meta),
			Err: fmt.Errorf("%w: snapshot %s asked for, the store holds %s", ErrStale, id, ID{newest.LastIndex, newest.LastTerm})})
		return
	}
	if c.fetch != nil {
		c.endFetch(env, fmt.Errorf("%w: superseded by a fetch of snapshot %s", ErrCanceled, id), true)
	}
	part, err := st.startPartial(m.Meta)
	if err != nil {
		c.stats.FetchFailures.Add(1)
		c.log.Warn("snapshot: cannot start a download", "snapshot", id.String(), "error", err)
		env.Send(c.cfg.Node, FetchFailed{Meta: proto.CloneOf(m.Meta), Err: err})
		return
	}
	c.gen++
	f := &fetch{meta: proto.CloneOf(m.Meta), id: id, leader: m.Leader, from: m.From, term: m.Term, gen: c.gen, part: part,
		firstSeq: c.seq, progressed: env.Now()}
	for _, sg := range part.segs {
		f.total += sg.size
	}
	f.nextSeg, f.nextOff = part.position()
	c.fetch = f
	c.stats.Fetches.Add(1)
	c.stats.BytesResumed.Add(part.resumed)
	c.log.Info("snapshot: fetching a snapshot", "snapshot", id.String(), "leader", m.Leader, "bytes", f.total, "resumed_at", part.resumed)
	c.publish()
	if part.done() {
		c.finish(env)
		return
	}
	c.fill(env)
	env.After(c.tickEvery(), fetchTick{gen: f.gen})
	c.checkFetch(env)
}

func (c *Copier) tickEvery() time.Duration { return max(c.cfg.FetchTimeout/2, time.Millisecond) }

// join takes a Fetch of the snapshot being fetched: a new leader (or the
// same one in a new term) serves it. The pieces asked of the old one are
// asked again of the new one.
func (c *Copier) join(env actors.Env, m Fetch) {
	f := c.fetch
	moved := f.leader != m.Leader || f.from != m.From
	f.leader, f.from, f.term = m.Leader, m.From, m.Term
	if !moved {
		return
	}
	c.log.Info("snapshot: the fetch goes on from another leader", "snapshot", f.id.String(), "leader", m.Leader)
	f.firstSeq = c.seq // answers from the old leader are dropped from now on
	f.progressed = env.Now()
	c.publish()
	for _, p := range f.window {
		if p.data == nil {
			c.stats.ChunksRefetched.Add(1)
			c.ask(env, p)
		}
	}
}

// fill asks for pieces until the window is full.
func (c *Copier) fill(env actors.Env) {
	f := c.fetch
	segs := f.part.segs
	budget := uint64(c.cfg.Window) * uint64(c.cfg.ChunkSize)
	for f.outstanding < c.cfg.Window && f.nextSeg < len(segs) {
		n := min(uint64(c.cfg.ChunkSize), segs[f.nextSeg].size-f.nextOff)
		if f.asked+f.buffered+n > budget {
			return
		}
		p := &piece{seg: f.nextSeg, off: f.nextOff, n: n}
		f.window = append(f.window, p)
		f.outstanding++
		f.asked += n
		f.nextOff += n
		for f.nextSeg < len(segs) && f.nextOff == segs[f.nextSeg].size {
			f.nextSeg, f.nextOff = f.nextSeg+1, 0 // empty files are complete already
		}
		c.ask(env, p)
	}
}

// ask sends the SnapshotFetch of piece p.
func (c *Copier) ask(env actors.Env, p *piece) {
	f := c.fetch
	c.seq++
	p.sent = env.Now()
	e := c.envelope(f.leader, f.term, c.seq)
	e.Body = &raftpb.Envelope_SnapshotFetch{SnapshotFetch: &raftpb.SnapshotFetch{
		Index: f.id.Index, Term: f.id.Term, File: f.part.segs[p.seg].file, Offset: p.off, Length: uint32(p.n),
	}}
	env.Send(f.from, e)
}

// onSnapshotChunk takes a chunk from the leader: matched to an
// outstanding piece by file and offset, written once every piece before
// it is.
func (c *Copier) onSnapshotChunk(env actors.Env, e *raftpb.Envelope, ch *raftpb.SnapshotChunk) {
	f := c.fetch
	if f == nil || (ID{ch.Index, ch.Term}) != f.id || e.From != f.leader || e.Seq <= f.firstSeq || e.Seq > c.seq {
		c.stats.ChunksDuplicate.Add(1) // late, or for another fetch
		return
	}
	if ch.Missing {
		c.endFetch(env, fmt.Errorf("%w: %s answered that it does not serve snapshot %s", ErrSourceGone, f.leader, f.id), true)
		return
	}
	var p *piece
	at := -1
	for i, q := range f.window {
		if q.data == nil && q.off == ch.Offset && f.part.segs[q.seg].file == ch.File {
			p, at = q, i
			break
		}
	}
	if p == nil {
		c.stats.ChunksDuplicate.Add(1)
		return
	}
	n := uint64(len(ch.Data))
	if n == 0 || n > p.n {
		c.drop(fmt.Sprintf("a chunk of %d bytes for a fetch of %d", n, p.n), e)
		return
	}
	if n < p.n { // a shorter answer: the rest is asked for at once
		rest := &piece{seg: p.seg, off: p.off + n, n: p.n - n}
		p.n = n
		f.window = slices.Insert(f.window, at+1, rest)
		f.outstanding++
		c.ask(env, rest)
	}
	p.data = ch.Data
	f.outstanding--
	f.asked -= n
	f.buffered += n
	if f.buffered > c.stats.MaxBuffered.Load() {
		c.stats.MaxBuffered.Store(f.buffered)
	}
	c.stats.BytesReceived.Add(n)
	f.progressed = env.Now()
	c.checkFetch(env)
	if err := c.drain(); err != nil {
		c.endFetch(env, err, !errors.Is(err, ErrCorrupt))
		return
	}
	c.publish()
	if f.part.done() {
		c.finish(env)
		return
	}
	c.fill(env)
	c.checkFetch(env)
}

// drain writes the received pieces at the head of the window, and
// checkpoints every SyncBytes.
func (c *Copier) drain() error {
	f := c.fetch
	for len(f.window) > 0 && f.window[0].data != nil {
		p := f.window[0]
		if err := f.part.write(p.data); err != nil {
			return err
		}
		f.buffered -= p.n
		f.window[0] = nil
		f.window = f.window[1:]
	}
	if int64(f.part.unsynced) >= c.cfg.SyncBytes && !f.part.done() {
		return f.part.checkpoint()
	}
	return nil
}

// finish commits the complete download and reports it.
func (c *Copier) finish(env actors.Env) {
	f := c.fetch
	meta, err := f.part.commit()
	if errors.Is(err, ErrExists) { // taken meanwhile by the executor, or already installed
		if have := c.cfg.Store.metaOf(f.id); have != nil {
			if rerr := f.part.remove(); rerr != nil {
				c.log.Warn("snapshot: removing a download the store holds already", "error", rerr)
			}
			meta, err = have, nil
		}
	}
	if err != nil {
		c.endFetch(env, err, true)
		return
	}
	c.stats.Installed.Add(1)
	c.log.Info("snapshot: fetched and installed a snapshot", "snapshot", f.id.String(), "leader", f.leader)
	c.fetch = nil
	c.stats.progress.Store(nil)
	env.Send(c.cfg.Node, Fetched{Meta: meta})
}

// endFetch ends the current fetch with err, reported to the node. With
// keep, the download stays for a later Fetch to resume (made durable
// first); without, it is removed.
func (c *Copier) endFetch(env actors.Env, err error, keep bool) {
	f := c.fetch
	c.fetch = nil
	c.stats.progress.Store(nil)
	c.stats.FetchFailures.Add(1)
	if errors.Is(err, ErrCorrupt) {
		c.stats.Corrupt.Add(1)
	}
	if keep && !f.part.closed {
		if cerr := f.part.checkpoint(); cerr != nil {
			c.log.Warn("snapshot: could not save the progress of a download", "snapshot", f.id.String(), "error", cerr)
		}
		f.part.close()
	} else if !keep {
		if rerr := f.part.remove(); rerr != nil {
			c.log.Warn("snapshot: could not remove a download", "snapshot", f.id.String(), "error", rerr)
		}
	}
	if errors.Is(err, ErrCanceled) {
		c.log.Info("snapshot: fetch ended", "snapshot", f.id.String(), "reason", err)
	} else {
		c.log.Warn("snapshot: fetch failed", "snapshot", f.id.String(), "leader", f.leader, "error", err)
	}
	env.Send(c.cfg.Node, FetchFailed{Meta: proto.CloneOf(f.meta), Err: err})
}

// onFetchTick asks again for the pieces unanswered for FetchTimeout, and
// fails a fetch that received nothing for StallTimeout.
func (c *Copier) onFetchTick(env actors.Env, m fetchTick) {
	f := c.fetch
	if f == nil || f.gen != m.gen {
		return
	}
	now := env.Now()
	if now.Sub(f.progressed) >= c.cfg.StallTimeout {
		c.endFetch(env, fmt.Errorf("%w: nothing from %s for %v", ErrStalled, f.leader, now.Sub(f.progressed)), true)
		return
	}
	for _, p := range f.window {
		if p.data == nil && now.Sub(p.sent) >= c.cfg.FetchTimeout {
			c.stats.ChunksRefetched.Add(1)
			c.ask(env, p)
		}
	}
	env.After(c.tickEvery(), m)
}

// publish updates the progress other goroutines read.
func (c *Copier) publish() {
	f := c.fetch
	c.stats.progress.Store(&Progress{ID: f.id, Leader: f.leader, Done: f.part.written(), Total: f.total})
}

// checkFetch checks the fetch's invariants; a violation in a production
// build ends the fetch (the download is kept: what is durable is sound).
func (c *Copier) checkFetch(env actors.Env) {
	f := c.fetch
	if f == nil {
		return
	}
	if err := f.check(c.cfg.Window, uint64(c.cfg.ChunkSize)); err != nil {
		c.endFetch(env, err, true)
	}
}

func (f *fetch) check(window int, chunk uint64) error {
	seg, off := f.part.position()
	var asked, buffered uint64
	outstanding := 0
	for _, p := range f.window {
		if p.seg != seg || p.off != off {
			return invariants.Violate("snapshot fetch %s: a piece at %d/%d, the window is at %d/%d", f.id, p.seg, p.off, seg, off)
		}
		if p.data == nil {
			outstanding++
			asked += p.n
		} else {
			buffered += uint64(len(p.data))
		}
		off += p.n
		for seg < len(f.part.segs) && off == f.part.segs[seg].size {
			seg, off = seg+1, 0
		}
	}
	if seg != f.nextSeg || off != f.nextOff {
		return invariants.Violate("snapshot fetch %s: the window ends at %d/%d, the next piece starts at %d/%d", f.id, seg, off, f.nextSeg, f.nextOff)
	}
	return invariants.Check(outstanding == f.outstanding && outstanding <= window && asked == f.asked && buffered == f.buffered &&
		asked+buffered <= uint64(window)*chunk,
		"snapshot fetch %s: outstanding %d (counted %d, window %d), asked %d (counted %d), buffered %d (counted %d), budget %d",
		f.id, outstanding, f.outstanding, window, asked, f.asked, buffered, f.buffered, uint64(window)*chunk)
}
