package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/raftpb"
)

// fetchEnv is a SnapshotFetch envelope from node from to node to.
func fetchEnv(from, to string, f *raftpb.SnapshotFetch) *raftpb.Envelope {
	return &raftpb.Envelope{Group: testGroup, From: from, To: to, Term: 7, Seq: 1, Cluster: testCluster,
		Body: &raftpb.Envelope_SnapshotFetch{SnapshotFetch: f}}
}

// What the network may bring the leader's copy actor: envelopes of
// another cluster, group or node, fetches past the end, of huge lengths,
// of files the snapshot does not have, of another snapshot, from a peer
// with no session. None panics; each is dropped (and counted) or answered
// missing, and none allocates more than a chunk.
func TestCopyServeMalformed(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	w := newCopyWorld(t, 12, nil)
	l := w.start(w.host("l"), "n1", 2)
	c := bigContent(100, 3, 1<<20, r)
	mustWrite(t, l.store, c)
	peer := &recorder{}
	peerAt, _ := w.host("f").Spawn("peer", peer)
	l.h.Send(l.copy, Offer{Peer: "n2", To: peerAt, Reply: l.recAt, Term: 7})
	w.runUntil("offered", func() bool { return l.rec.count() > 0 }, time.Second)
	size := uint64(len(c.data()))

	send := func(e *raftpb.Envelope) *raftpb.SnapshotChunk {
		t.Helper()
		n := peer.count()
		l.h.Send(l.copy, e)
		w.s.RunFor(10 * time.Millisecond)
		switch peer.count() - n {
		case 0:
			return nil
		case 1:
			a := peer.msgs[n].(*raftpb.Envelope)
			if a.Group != testGroup || a.From != "n1" || a.To != "n2" || a.Cluster != testCluster || a.Seq != e.Seq {
				t.Fatalf("answer %v to %v", a.TraceString(), e.TraceString())
			}
			return a.GetSnapshotChunk()
		default:
			t.Fatalf("%d answers to %v", peer.count()-n, e.TraceString())
			return nil
		}
	}
	dropped := func(e *raftpb.Envelope) {
		t.Helper()
		before := l.stats.Dropped.Load()
		if a := send(e); a != nil {
			t.Fatalf("%v answered %s", e.TraceString(), brief(a))
		}
		if l.stats.Dropped.Load() != before+1 {
			t.Fatalf("%v not counted as dropped", e.TraceString())
		}
	}
	missing := func(e *raftpb.Envelope) {
		t.Helper()
		if a := send(e); a == nil || !a.Missing || len(a.Data) != 0 {
			t.Fatalf("%v answered %s, want missing", e.TraceString(), brief(a))
		}
	}
	ok := &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: 0, Length: 1000}

	e := fetchEnv("n2", "n1", ok)
	e.Cluster = 0xbad
	dropped(e)
	e = fetchEnv("n2", "n1", ok)
	e.Group = "other"
	dropped(e)
	dropped(fetchEnv("n2", "n9", ok))
	dropped(&raftpb.Envelope{Group: testGroup, From: "n2", To: "n1", Cluster: testCluster})
	dropped(&raftpb.Envelope{Group: testGroup, From: "n2", To: "n1", Cluster: testCluster,
		Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}})
	dropped(fetchEnv("n7", "n1", ok)) // never offered: no one to answer
	dropped(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: math.MaxUint64, Length: 10}))
	dropped(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: size + 1, Length: 10}))

	for _, file := range []string{"data", "MANIFEST", "../MANIFEST", "/etc/passwd", "sst-000001/../data", "nope"} {
		missing(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, File: file, Length: 10}))
	}
	missing(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 101, Term: 3, Length: 10})) // not the session's snapshot
	missing(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 2, Length: 10}))

	// A huge length gets one chunk of MaxChunkSize.
	if a := send(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: 5, Length: math.MaxUint32})); a == nil || a.Missing ||
		len(a.Data) != 128<<10 || !bytes.Equal(a.Data, c.data()[5:5+128<<10]) || a.Eof {
		t.Fatalf("a fetch of 4 GiB answered %d bytes", len(a.GetData()))
	}
	// The end of a file: what is left, with eof; at the very end, nothing.
	if a := send(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: size - 3, Length: 1000})); a == nil ||
		!bytes.Equal(a.Data, c.data()[size-3:]) || !a.Eof {
		t.Fatalf("the end answered %s", brief(a))
	}
	if a := send(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, Offset: size, Length: 1000})); a == nil ||
		len(a.Data) != 0 || !a.Eof || a.Missing {
		t.Fatalf("past the end answered %s", brief(a))
	}
	f1 := c.files[0].data
	if a := send(fetchEnv("n2", "n1", &raftpb.SnapshotFetch{Index: 100, Term: 3, File: "sst-000001", Offset: 7, Length: 100})); a == nil ||
		!bytes.Equal(a.Data, f1[7:107]) || a.File != "sst-000001" || a.Offset != 7 {
		t.Fatalf("an extra file answered %s", brief(a))
	}
	// After a Withdraw, the peer is answered missing.
	l.h.Send(l.copy, Withdraw{Peer: "n2"})
	missing(fetchEnv("n2", "n1", ok))
}

// What the network may bring the follower's copy actor: chunks for no
// fetch, from another node than the leader, of too many bytes or none,
// for offsets not asked; and what a leader may put in a manifest. None
// panics, none creates anything, and the fetch goes on.
func TestCopyFetchMalformed(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	w := newCopyWorld(t, 13, nil)
	l := w.start(w.host("l"), "n1", 2)
	f := w.start(w.host("f"), "n2", 2)
	chunk := func(from string, seq uint64, ch *raftpb.SnapshotChunk) *raftpb.Envelope {
		return &raftpb.Envelope{Group: testGroup, From: from, To: "n2", Term: 7, Seq: seq, Cluster: testCluster,
			Body: &raftpb.Envelope_SnapshotChunk{SnapshotChunk: ch}}
	}
	f.h.Send(f.copy, chunk("n1", 1, &raftpb.SnapshotChunk{Index: 100, Term: 3, Data: []byte("x")}))
	w.s.RunFor(time.Millisecond)
	if f.stats.ChunksDuplicate.Load() != 1 {
		t.Fatal("a chunk for no fetch was not counted")
	}

	// Manifests no snapshot can have.
	good := func() *raftpb.SnapshotMeta {
		return &raftpb.SnapshotMeta{LastIndex: 100, LastTerm: 3, DataSize: 10, DataCrc32C: 1,
			Files: []*raftpb.SnapshotFile{{Name: "a", Size: 1, Crc32C: 2}}}
	}
	bad := map[string]func(m *raftpb.SnapshotMeta){
		"no index":        func(m *raftpb.SnapshotMeta) { m.LastIndex = 0 },
		"no term":         func(m *raftpb.SnapshotMeta) { m.LastTerm = 0 },
		"huge data":       func(m *raftpb.SnapshotMeta) { m.DataSize = 1 << 62 },
		"huge file":       func(m *raftpb.SnapshotMeta) { m.Files[0].Size = 1 << 62 },
		"sizes overflow":  func(m *raftpb.SnapshotMeta) { m.DataSize, m.Files[0].Size = math.MaxUint64/2+1, math.MaxUint64/2+1 },
		"path in a name":  func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "../../log/wal" },
		"absolute name":   func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "/etc/passwd" },
		"named data":      func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "data" },
		"named MANIFEST":  func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "MANIFEST" },
		"named PROGRESS":  func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "PROGRESS" },
		"empty name":      func(m *raftpb.SnapshotMeta) { m.Files[0].Name = "" },
		"repeated name":   func(m *raftpb.SnapshotMeta) { m.Files = append(m.Files, m.Files[0]) },
		"nil file":        func(m *raftpb.SnapshotMeta) { m.Files = append(m.Files, nil) },
		"empty with crc":  func(m *raftpb.SnapshotMeta) { m.Files[0].Size = 0 },
		"too many files":  func(m *raftpb.SnapshotMeta) { m.Files = make([]*raftpb.SnapshotFile, maxSnapshotFiles+1) },
		"no data but crc": func(m *raftpb.SnapshotMeta) { m.DataSize = 0 },
	}
	names := slices.Sorted(maps.Keys(bad))
	for i, name := range append(names, "nil") {
		m := good()
		if name == "nil" {
			m = nil
		} else {
			bad[name](m)
		}
		f.h.Send(f.copy, Fetch{Meta: m, Leader: "n1", From: l.copy, Term: 7})
		if got := w.report(f, i+1, time.Second); !errors.Is(got.(FetchFailed).Err, ErrBadMeta) {
			t.Fatalf("%s: %+v, want ErrBadMeta", name, got)
		}
	}
	if names, _ := f.h.Disk().List("/data/g/n2/snaps"); len(names) != 0 {
		t.Fatalf("the store's directory holds %v after refused manifests", names)
	}
	reports := f.rec.count()

	// A fetch whose leader does not answer (its link is cut): chunks that
	// must not be taken.
	c := bigContent(100, 3, 1<<20, r)
	mustWrite(t, l.store, c)
	meta := w.offer(l, f)
	w.s.Block("l", "f")
	w.fetch(f, l, meta)
	w.s.RunFor(20 * time.Millisecond) // the copy actor's syncs take time
	fs := f.stats
	dup, drop := fs.ChunksDuplicate.Load(), fs.Dropped.Load()
	last := f.copier.seq
	for _, e := range []*raftpb.Envelope{
		chunk("n3", last, &raftpb.SnapshotChunk{Index: 100, Term: 3, Data: c.data()[:64<<10]}),      // not the leader
		chunk("n1", last+1000, &raftpb.SnapshotChunk{Index: 100, Term: 3, Data: c.data()[:64<<10]}), // a seq never sent
		chunk("n1", last, &raftpb.SnapshotChunk{Index: 99, Term: 3, Data: c.data()[:64<<10]}),       // another snapshot
		chunk("n1", last, &raftpb.SnapshotChunk{Index: 100, Term: 3, Offset: 1, Data: []byte("x")}), // an offset not asked
		chunk("n1", last, &raftpb.SnapshotChunk{Index: 100, Term: 3, File: "a", Data: []byte("x")}), // a file not asked
	} {
		f.h.Send(f.copy, e)
	}
	w.s.RunFor(20 * time.Millisecond) // the copy actor's syncs take time
	if fs.ChunksDuplicate.Load() != dup+5 {
		t.Fatalf("%d chunks counted as not matching, want 5", fs.ChunksDuplicate.Load()-dup)
	}
	for _, e := range []*raftpb.Envelope{
		chunk("n1", last, &raftpb.SnapshotChunk{Index: 100, Term: 3, Data: c.data()[:64<<10+1]}), // more than asked
		chunk("n1", last, &raftpb.SnapshotChunk{Index: 100, Term: 3}),                            // nothing
	} {
		f.h.Send(f.copy, e)
	}
	w.s.RunFor(20 * time.Millisecond) // the copy actor's syncs take time
	if fs.Dropped.Load() != drop+2 || fs.BytesReceived.Load() != 0 {
		t.Fatalf("dropped %d, received %d bytes", fs.Dropped.Load()-drop, fs.BytesReceived.Load())
	}
	// A short answer is taken, and the rest asked for.
	f.h.Send(f.copy, chunk("n1", last, &raftpb.SnapshotChunk{Index: 100, Term: 3, Data: c.data()[:1000]}))
	w.s.RunFor(20 * time.Millisecond) // the copy actor's syncs take time
	if p, _ := fs.Progress(); p.Done != 1000 {
		t.Fatalf("after a short chunk, %d bytes written", p.Done)
	}
	w.s.Unblock("l", "f")
	wantFetched(t, w.report(f, reports+1, time.Minute), c)
	check(t, f.store, c)
}

// brief describes a chunk without its bytes.
func brief(ch *raftpb.SnapshotChunk) string {
	if ch == nil {
		return "nothing"
	}
	return fmt.Sprintf("chunk %d/%d %q @%d n=%d eof=%v missing=%v", ch.Index, ch.Term, ch.File, ch.Offset, len(ch.Data), ch.Eof, ch.Missing)
}
