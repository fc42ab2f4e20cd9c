package fsm_test

import (
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"io"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
)

// snapSM is a recSM whose OnSnapshotSave is scripted.
type snapSM struct {
	*recSM
	save func(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error)
}

func (s snapSM) OnSnapshotSave(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	s.events = append(s.events, "save")
	return s.save(meta)
}

type nopPersister struct{ applied uint64 }

func (nopPersister) Persist(fsm.SnapshotSink) error { return nil }
func (nopPersister) Release()                       {}

// snapWorld is a world whose state machine supports snapshots; captures
// are answered to the node probe.
func snapWorld(t *testing.T, save func(fsm.SnapshotMeta) (fsm.SnapshotPersister, error)) (*world, *recSM) {
	sm := &recSM{}
	w := newWorld(t, 3, sm, func(c *fsm.Config) { c.StateMachine = snapSM{sm, save} })
	return w, sm
}

var probeRef = actors.Ref{Host: "h1", Name: "node"}

func captured(t *testing.T, w *world) []fsm.Captured {
	t.Helper()
	var out []fsm.Captured
	for _, m := range w.node.msgs {
		if c, ok := m.(fsm.Captured); ok {
			out = append(out, c)
		}
	}
	return out
}

// A capture sees the state as applied so far — its index, the term of
// the entry there and the configuration in force there — between two
// applies; entries committed after it are applied after it.
func TestCaptureBetweenApplies(t *testing.T) {
	var seen []uint64
	boot := &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "ha"}}}
	sm := &recSM{}
	w := newWorld(t, 3, sm, func(c *fsm.Config) {
		c.StateMachine = snapSM{sm, func(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
			seen = append(seen, meta.Index)
			return nopPersister{meta.Index}, nil
		}}
		c.Configuration = boot
	})
	w.normal(1, 2) // 1-2
	w.normal(3, 2) // 3-4
	grown := &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "ha"}, {Id: "b", Addr: "hb"}}}
	w.config(3, grown)                   // 5
	w.normal(3, 1)                       // 6
	w.send(fsm.Capture{Reply: probeRef}) // nothing applied yet
	w.run()
	w.commit(4)
	w.run()
	w.send(fsm.Capture{Reply: probeRef})
	w.commit(6)
	w.run()
	w.send(fsm.Capture{Reply: probeRef})
	w.run()
	c := captured(t, w)
	if len(c) != 3 || c[0].Err == nil || !strings.Contains(c[0].Err.Error(), "nothing is applied") {
		t.Fatalf("captures %+v: want a refusal before any apply, then two", c)
	}
	if m := c[1].Meta; c[1].Err != nil || m.Index != 4 || m.Term != 3 || !proto.Equal(m.Configuration, boot) || c[1].Persister != (nopPersister{4}) {
		t.Fatalf("capture %+v, want index 4 of term 3 with the bootstrap configuration and the persister", c[1])
	}
	if m := c[2].Meta; c[2].Err != nil || m.Index != 6 || !proto.Equal(m.Configuration, grown) {
		t.Fatalf("capture %+v, want index 6 with the configuration of entry 5", c[2])
	}
	if want := []string{"apply[1-4]", "save", "config", "apply[6-6]", "save"}; strings.Join(sm.events, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	if len(seen) != 2 || seen[0] != 4 || seen[1] != 6 {
		t.Fatalf("OnSnapshotSave saw %v", seen)
	}
}

// A node that joined a group captures nothing until it has applied a
// configuration entry: a snapshot must record the configuration at its
// index, and such a node does not know the one before its first entry.
func TestCaptureNeedsAConfiguration(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 3, sm, func(c *fsm.Config) {
		c.StateMachine = snapSM{sm, func(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
			return nopPersister{meta.Index}, nil
		}}
		c.Configuration = nil
	})
	w.normal(1, 2) // 1-2
	conf := &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "ha"}, {Id: "j", Addr: "hj"}}}
	w.config(1, conf) // 3
	w.commit(2)
	w.run()
	w.send(fsm.Capture{Reply: probeRef})
	w.run()
	w.commit(3)
	w.run()
	w.send(fsm.Capture{Reply: probeRef})
	w.run()
	c := captured(t, w)
	if len(c) != 2 || c[0].Err == nil || !strings.Contains(c[0].Err.Error(), "configuration at the applied index is not known") {
		t.Fatalf("captures %+v: want a refusal before the configuration entry is applied", c)
	}
	if c[1].Err != nil || c[1].Meta.Index != 3 || !proto.Equal(c[1].Meta.Configuration, conf) {
		t.Fatalf("capture %+v, want index 3 with the entry's configuration", c[1])
	}
}

// The state machine's refusal reaches the executor as it is; a persister
// of nil without an error is refused; neither harms the node.
func TestCaptureRefused(t *testing.T) {
	errNo := errors.New("not now")
	for _, tc := range []struct {
		name string
		p    fsm.SnapshotPersister
		err  error
		want string
	}{
		{"error", nil, errNo, "not now"},
		{"nil persister", nil, nil, "neither a persister nor an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := snapWorld(t, func(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) { return tc.p, tc.err })
			w.normal(1, 1)
			w.commit(1)
			w.run()
			w.send(fsm.Capture{Reply: probeRef})
			w.run()
			c := captured(t, w)
			if len(c) != 1 || c[0].Err == nil || !strings.Contains(c[0].Err.Error(), tc.want) || c[0].Persister != nil {
				t.Fatalf("captures %+v, want one failing with %q", c, tc.want)
			}
			if f := w.node.failed(); len(f) != 0 {
				t.Fatalf("the node failed: %v", f)
			}
		})
	}
}

// A panic in OnSnapshotSave is the state machine's failure, as in any
// callback, and the executor still gets an answer.
func TestCapturePanicFailsTheNode(t *testing.T) {
	w, _ := snapWorld(t, func(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) { panic("boom") })
	w.normal(1, 1)
	w.commit(1)
	w.run()
	w.send(fsm.Capture{Reply: probeRef})
	w.run()
	if c := captured(t, w); len(c) != 1 || c[0].Err == nil || !strings.Contains(c[0].Err.Error(), "panicked") {
		t.Fatalf("captures %+v, want one failing with the panic", c)
	}
	if f := w.node.failed(); len(f) != 1 || f[0].Applied != 1 {
		t.Fatalf("node failures %+v, want one at applied 1", f)
	}
}

// A capture asked during shutdown is answered with a refusal.
func TestCaptureAtShutdown(t *testing.T) {
	w, sm := snapWorld(t, func(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) { return nopPersister{}, nil })
	w.normal(1, 1)
	w.commit(1)
	w.run()
	w.send(fsm.Shutdown{})
	w.send(fsm.Capture{Reply: probeRef})
	w.run()
	if c := captured(t, w); len(c) != 1 || c[0].Err == nil || !strings.Contains(c[0].Err.Error(), "shutting down") {
		t.Fatalf("captures %+v, want a refusal", c)
	}
	for _, e := range sm.events {
		if e == "save" {
			t.Fatal("OnSnapshotSave ran after shutdown")
		}
	}
}

// loadSM is a recSM whose OnSnapshotLoad is scripted.
type loadSM struct {
	*recSM
	load func(src fsm.SnapshotSource) error
}

func (s loadSM) OnSnapshotLoad(src fsm.SnapshotSource) error {
	s.events = append(s.events, fmt.Sprintf("load[%d]", src.Meta().Index))
	return s.load(src)
}

type fakeSource struct {
	io.Reader
	meta fsm.SnapshotMeta
}

func (s fakeSource) Meta() fsm.SnapshotMeta               { return s.meta }
func (fakeSource) Files() []string                        { return nil }
func (fakeSource) OpenFile(string) (io.ReadCloser, error) { return nil, errors.New("no files") }
func opener(meta fsm.SnapshotMeta, closeErr error, closed *int) func() (fsm.SnapshotSource, func() error, error) {
	return func() (fsm.SnapshotSource, func() error, error) {
		return fakeSource{strings.NewReader("state"), meta}, func() error { *closed++; return closeErr }, nil
	}
}

// An installed snapshot replaces the state after the entries applied
// before it: the applied index jumps to its index, tasks at or below it
// (the node's and the caller's own) complete with EUNKNOWN, and entries
// after it apply from there.
func TestLoadInstalledSnapshot(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 3, sm, func(c *fsm.Config) { c.StateMachine = loadSM{sm, func(fsm.SnapshotSource) error { return nil }} })
	w.normal(1, 2)           // 1-2
	held := w.tasksFor(2, 2) // committed with its entry, not applied before the load
	w.commit(1)
	w.commit(2, held...)
	meta := fsm.SnapshotMeta{Index: 10, Term: 3}
	given := w.task(5, 2) // the node's task at or below the snapshot
	closed := 0
	w.send(fsm.Load{Meta: meta, Open: opener(meta, nil, &closed), Tasks: []*fsm.Task{given}})
	w.run()
	if closed != 1 {
		t.Fatalf("the snapshot was closed %d times, want once", closed)
	}
	w.expect(given, closure.EUNKNOWN, nil)
	if w.node.lastApplied() != 10 {
		t.Fatalf("applied %d after the load, want 10", w.node.lastApplied())
	}
	for len(w.log.ents) < 10 {
		w.noop(3)
	}
	first, _ := w.normal(3, 2) // 11-12
	w.commit(12, w.tasksFor(first, first+1)...)
	w.run()
	if w.node.lastApplied() != 12 {
		t.Fatalf("applied %d, want 12", w.node.lastApplied())
	}
	if got := strings.Join(sm.events, " "); !strings.Contains(got, "load[10] apply[11-12]") {
		t.Fatalf("events %q: want the load, then entries 11-12", got)
	}
	// The task committed before the load but not applied yet was in the
	// caller's hands: covered by the snapshot too.
	w.expect(held[0], closure.EUNKNOWN, nil)
}

// A failed load (an error from the state machine, or a mismatch found
// when the rest of the snapshot is checked) puts the node in error.
func TestLoadFailureFailsTheNode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		loadErr  error
		closeErr error
	}{
		{"state machine", errors.New("cannot"), nil},
		{"checksum", nil, errors.New("snapshot: corrupt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := &recSM{}
			w := newWorld(t, 3, sm, func(c *fsm.Config) { c.StateMachine = loadSM{sm, func(fsm.SnapshotSource) error { return tc.loadErr }} })
			meta := fsm.SnapshotMeta{Index: 10, Term: 3}
			closed := 0
			w.send(fsm.Load{Meta: meta, Open: opener(meta, tc.closeErr, &closed)})
			w.run()
			if f := w.node.failed(); len(f) != 1 || f[0].Applied != 0 {
				t.Fatalf("node failures %+v, want one at applied 0", f)
			}
			if closed != 1 {
				t.Fatalf("closed %d times", closed)
			}
		})
	}
}
