package main

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

type sink struct{ bytes.Buffer }

func (*sink) AddFile(string) (io.WriteCloser, error) { return nil, errors.New("no files") }
func (*sink) Meta() fsm.SnapshotMeta                 { return fsm.SnapshotMeta{} }

type source struct {
	*bytes.Reader
	index uint64
}

func (s source) Meta() fsm.SnapshotMeta               { return fsm.SnapshotMeta{Index: s.index} }
func (source) Files() []string                        { return nil }
func (source) OpenFile(string) (io.ReadCloser, error) { return nil, errors.New("no files") }

type oneEntry struct {
	data []byte
	done bool
}

func (it *oneEntry) Next() bool {
	if it.done {
		return false
	}
	it.done = true
	return true
}
func (it *oneEntry) Index() uint64                              { return 7 }
func (it *oneEntry) Term() uint64                               { return 1 }
func (it *oneEntry) Data() []byte                               { return it.data }
func (it *oneEntry) Done() closure.Closure                      { return nil }
func (it *oneEntry) SetResult(any)                              {}
func (it *oneEntry) SetErrorAndRollback(uint64, closure.Status) {}

// A snapshot holds the value at the capture, not what was applied after;
// loading it restores that value.
func TestCounterSnapshot(t *testing.T) {
	c := newCounter()
	c.OnApply(&oneEntry{data: increment(5)})
	p, err := c.OnSnapshotSave(fsm.SnapshotMeta{Index: 7})
	if err != nil {
		t.Fatal(err)
	}
	c.OnApply(&oneEntry{data: increment(100)}) // after the capture
	var s sink
	if err := p.Persist(&s); err != nil {
		t.Fatal(err)
	}
	p.Release()
	d := newCounter()
	if err := d.OnSnapshotLoad(source{bytes.NewReader(s.Bytes()), 7}); err != nil {
		t.Fatal(err)
	}
	if v, i := d.read(); v != 5 || i != 7 {
		t.Fatalf("loaded counter %d at %d, want 5 at 7", v, i)
	}
	if err := d.OnSnapshotLoad(source{bytes.NewReader([]byte{0xc1}), 9}); err == nil {
		t.Fatal("loaded garbage")
	}
}
