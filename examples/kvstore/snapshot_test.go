package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/fsm"
)

// memSink and memSource stand in for the snapshot store.
type memSink struct {
	bytes.Buffer
	meta fsm.SnapshotMeta
}

func (s *memSink) AddFile(string) (io.WriteCloser, error) { return nil, errors.New("no files") }
func (s *memSink) Meta() fsm.SnapshotMeta                 { return s.meta }

type memSource struct {
	*bytes.Reader
	meta fsm.SnapshotMeta
}

func (s memSource) Meta() fsm.SnapshotMeta                 { return s.meta }
func (s memSource) Files() []string                        { return nil }
func (s memSource) OpenFile(string) (io.ReadCloser, error) { return nil, errors.New("no files") }

// applyCommands applies cmds at indexes from on, and returns the next.
func applyCommands(t *testing.T, s *Store, from uint64, cmds ...Command) uint64 {
	t.Helper()
	it := &iter{base: from - 1}
	for _, c := range cmds {
		it.data = append(it.data, mustEncode(t, c))
	}
	s.OnApply(it)
	return from + uint64(len(cmds))
}

// A snapshot holds the store as it was at the capture, though applies go
// on before it is persisted; loading it into another store gives the same
// keys, values, size and digest.
func TestStoreSnapshotRoundTrip(t *testing.T) {
	s := NewStore("n1", nil)
	var cmds []Command
	for i := 0; i < 500; i++ {
		cmds = append(cmds, Command{Op: OpPut, Key: fmt.Sprintf("k%03d", i), Value: strings.Repeat("v", i%17)})
	}
	cmds = append(cmds, Command{Op: OpAppend, Key: "k001", Value: "+more"}, Command{Op: OpDelete, Key: "k002"})
	next := applyCommands(t, s, 1, cmds...)
	want := s.Stats()
	meta := fsm.SnapshotMeta{Index: next - 1, Term: 2}
	p, err := s.OnSnapshotSave(meta)
	if err != nil {
		t.Fatal(err)
	}
	// Applies after the capture do not reach the snapshot.
	applyCommands(t, s, next, Command{Op: OpPut, Key: "late", Value: "x"}, Command{Op: OpDelete, Key: "k003"})
	sink := &memSink{meta: meta}
	if err := p.Persist(sink); err != nil {
		t.Fatal(err)
	}
	p.Release()
	loaded := NewStore("n2", nil)
	if err := loaded.OnSnapshotLoad(memSource{bytes.NewReader(sink.Bytes()), meta}); err != nil {
		t.Fatal(err)
	}
	if got := loaded.Stats(); got != want {
		t.Fatalf("loaded store %+v, the store at the capture %+v", got, want)
	}
	for _, k := range []string{"k001", "k003", "k499"} {
		v, _ := loaded.Get(k)
		if k == "k001" && v != "v+more" || k == "k003" && v != "vvv" {
			t.Fatalf("loaded %s = %q", k, v)
		}
	}
	if _, found := loaded.Get("late"); found {
		t.Fatal("a write applied after the capture is in the snapshot")
	}
	if loaded.applied != meta.Index {
		t.Fatalf("loaded store says applied %d, want %d", loaded.applied, meta.Index)
	}
}

// A snapshot that is not one of this store's is refused with an error
// (the node then enters its error state) and leaves the store as it was.
func TestStoreSnapshotLoadRefusesGarbage(t *testing.T) {
	s := NewStore("n1", nil)
	applyCommands(t, s, 1, Command{Op: OpPut, Key: "a", Value: "1"})
	meta := fsm.SnapshotMeta{Index: 1, Term: 1}
	p, _ := s.OnSnapshotSave(meta)
	sink := &memSink{meta: meta}
	if err := p.Persist(sink); err != nil {
		t.Fatal(err)
	}
	good := sink.Bytes()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-2],
		"trailing":  append(append([]byte(nil), good...), 0x01),
		"garbage":   []byte("not msgpack at all"),
	} {
		dst := NewStore("n2", nil)
		applyCommands(t, dst, 1, Command{Op: OpPut, Key: "mine", Value: "kept"})
		before := dst.Stats()
		if err := dst.OnSnapshotLoad(memSource{bytes.NewReader(b), meta}); err == nil {
			t.Fatalf("%s: loaded", name)
		}
		if dst.Stats() != before {
			t.Fatalf("%s: a refused snapshot changed the store", name)
		}
	}
}

// A capture at another index than the store's applied one is refused:
// the FSM caller never asks for that, so it would be a bug.
func TestStoreSnapshotAtTheAppliedIndexOnly(t *testing.T) {
	s := NewStore("n1", nil)
	applyCommands(t, s, 1, Command{Op: OpPut, Key: "a", Value: "1"})
	if _, err := s.OnSnapshotSave(fsm.SnapshotMeta{Index: 5}); err == nil {
		t.Fatal("captured at index 5 with 1 applied")
	}
}
