package snapshot

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// The executor alone in the simulator: a scripted FSM caller answers its
// Capture with the persister the test gives, and a probe stands in for
// the node.

type scriptedCaller struct {
	captures int
	answer   func(fsm.Capture) fsm.Captured
	hold     *fsm.Captured // set: answer only when the test releases it
	reply    actors.Ref
}

func (c *scriptedCaller) Receive(env actors.Env, msg any) {
	if m, ok := msg.(fsm.Capture); ok {
		c.captures++
		env.Send(m.Reply, c.answer(m))
	}
}

type probe struct{ msgs []any }

func (p *probe) Receive(_ actors.Env, msg any) {
	switch msg.(type) {
	case Saved, SaveFailed:
		p.msgs = append(p.msgs, msg)
	}
}

type persister struct {
	data     []byte
	files    map[string][]byte
	err      error
	panic    bool
	releases int
	sawMeta  fsm.SnapshotMeta
}

func (p *persister) Persist(s fsm.SnapshotSink) error {
	p.sawMeta = s.Meta()
	if p.panic {
		panic("persist boom")
	}
	for i := 0; i < len(p.data); i += 7 { // several writes, size unknown up front
		if _, err := s.Write(p.data[i:min(i+7, len(p.data))]); err != nil {
			return err
		}
	}
	for name, b := range p.files {
		w, err := s.AddFile(name)
		if err != nil {
			return err
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			return err
		}
	}
	return p.err
}

func (p *persister) Release() { p.releases++ }

type execWorld struct {
	s      *sim.Sim
	h      *sim.Host
	store  *Store
	caller *scriptedCaller
	node   *probe
	exec   actors.Ref
}

func newExecWorld(t *testing.T, answer func(fsm.Capture) fsm.Captured) *execWorld {
	t.Helper()
	st, err := Open(vfs.NewMem(), "/snaps", Options{Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	w := &execWorld{s: sim.New(sim.Config{Seed: 1}), store: st, caller: &scriptedCaller{answer: answer}, node: &probe{}}
	w.h = w.s.AddHost("h", sim.HostConfig{})
	fsmRef, _ := w.h.Spawn("fsm", w.caller)
	nodeRef, _ := w.h.Spawn("node", w.node)
	w.exec, _ = w.h.Spawn("snap", NewExecutor(ExecutorConfig{Store: st, FSMCaller: fsmRef, Node: nodeRef}), actors.Blocking())
	return w
}

func (w *execWorld) run(t *testing.T) {
	t.Helper()
	if !w.s.RunUntil(func() bool { return w.s.Pending() == 0 }, time.Minute) {
		t.Fatal("simulation did not go quiet")
	}
}

func meta(index, term uint64) fsm.SnapshotMeta {
	return fsm.SnapshotMeta{Index: index, Term: term, Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "h"}}}}
}

// A capture is persisted into the store with its data, files and meta, the
// persister released once, and the node told the snapshot's meta.
func TestExecutorSaves(t *testing.T) {
	p := &persister{data: bytes.Repeat([]byte("state!"), 50), files: map[string][]byte{"sst-1": []byte("table")}}
	w := newExecWorld(t, func(m fsm.Capture) fsm.Captured {
		return fsm.Captured{Meta: meta(42, 3), Persister: p}
	})
	w.h.Send(w.exec, Save{})
	w.run(t)
	if len(w.node.msgs) != 1 {
		t.Fatalf("node got %v", w.node.msgs)
	}
	saved, ok := w.node.msgs[0].(Saved)
	if !ok || saved.Meta.LastIndex != 42 || saved.Meta.LastTerm != 3 {
		t.Fatalf("node got %+v, want Saved of (42, 3)", w.node.msgs[0])
	}
	if p.releases != 1 || p.sawMeta.Index != 42 {
		t.Fatalf("persister released %d times, saw meta %+v", p.releases, p.sawMeta)
	}
	r, err := w.store.Open(42, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, p.data) {
		t.Fatalf("data read back: %d bytes, %v", len(got), err)
	}
	f, err := r.File("sst-1")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "table" {
		t.Fatalf("file read back: %q, %v", b, err)
	}
	f.Close()
	if c := r.Meta().Configuration; len(c.GetVoters()) != 1 || c.Voters[0].Id != "a" {
		t.Fatalf("configuration in the manifest: %v", c)
	}
}

// A snapshot that fails — refused at capture, failing or panicking in
// Persist — leaves nothing in the store, releases the persister once (if
// there is one) and tells the node why.
func TestExecutorFailuresLeaveNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		captured func(p *persister) fsm.Captured
		want     string
		releases int
	}{
		{"capture refused", func(*persister) fsm.Captured { return fsm.Captured{Meta: meta(5, 1), Err: errors.New("no way")} }, "no way", 0},
		{"persist fails", func(p *persister) fsm.Captured {
			p.data, p.err = []byte("partial"), errors.New("disk of the state machine gone")
			return fsm.Captured{Meta: meta(5, 1), Persister: p}
		}, "disk of the state machine gone", 1},
		{"persist panics", func(p *persister) fsm.Captured {
			p.panic = true
			return fsm.Captured{Meta: meta(5, 1), Persister: p}
		}, "Persist panicked", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &persister{}
			w := newExecWorld(t, func(fsm.Capture) fsm.Captured { return tc.captured(p) })
			w.h.Send(w.exec, Save{})
			w.run(t)
			if len(w.node.msgs) != 1 {
				t.Fatalf("node got %v", w.node.msgs)
			}
			f, ok := w.node.msgs[0].(SaveFailed)
			if !ok || !strings.Contains(f.Err.Error(), tc.want) {
				t.Fatalf("node got %+v, want SaveFailed with %q", w.node.msgs[0], tc.want)
			}
			if p.releases != tc.releases {
				t.Fatalf("persister released %d times, want %d", p.releases, tc.releases)
			}
			if l := w.store.List(); len(l) != 0 {
				t.Fatalf("store holds %v after a failed snapshot", l)
			}
			names, _ := w.store.fs.List("/snaps")
			if len(names) != 0 {
				t.Fatalf("store directory holds %v after a failed snapshot", names)
			}
		})
	}
}

// One snapshot at a time: a Save while one is being captured is refused
// with ErrBusy; once it is done the next one runs.
func TestExecutorOneAtATime(t *testing.T) {
	idx := uint64(0)
	w := newExecWorld(t, func(fsm.Capture) fsm.Captured {
		idx += 10
		return fsm.Captured{Meta: meta(idx, 1), Persister: &persister{data: []byte("x")}}
	})
	w.h.Send(w.exec, Save{})
	w.h.Send(w.exec, Save{}) // arrives before the capture's answer
	w.run(t)
	if len(w.node.msgs) != 2 {
		t.Fatalf("node got %v", w.node.msgs)
	}
	if f, ok := w.node.msgs[0].(SaveFailed); !ok || !errors.Is(f.Err, ErrBusy) {
		t.Fatalf("first report %+v, want ErrBusy for the second Save", w.node.msgs[0])
	}
	if s, ok := w.node.msgs[1].(Saved); !ok || s.Meta.LastIndex != 10 {
		t.Fatalf("second report %+v, want the first snapshot saved", w.node.msgs[1])
	}
	if w.caller.captures != 1 {
		t.Fatalf("%d captures asked, want 1", w.caller.captures)
	}
	w.h.Send(w.exec, Save{})
	w.run(t)
	if s, ok := w.node.msgs[2].(Saved); !ok || s.Meta.LastIndex != 20 {
		t.Fatalf("third report %+v, want the next snapshot saved", w.node.msgs[2])
	}
}
