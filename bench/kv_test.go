package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// memSink is a snapshot sink in memory.
type memSink struct {
	bytes.Buffer
	files map[string]*bytes.Buffer
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func (s *memSink) AddFile(name string) (io.WriteCloser, error) {
	if s.files == nil {
		s.files = map[string]*bytes.Buffer{}
	}
	b := &bytes.Buffer{}
	s.files[name] = b
	return nopCloser{b}, nil
}
func (s *memSink) Meta() fsm.SnapshotMeta { return fsm.SnapshotMeta{Index: 1, Term: 1} }

// memSource reads what a memSink holds.
type memSource struct {
	*bytes.Reader
	files map[string][]byte
}

func (s memSource) Meta() fsm.SnapshotMeta { return fsm.SnapshotMeta{Index: 1, Term: 1} }
func (s memSource) Files() []string {
	var out []string
	for n := range s.files {
		out = append(out, n)
	}
	return out
}
func (s memSource) OpenFile(name string) (io.ReadCloser, error) {
	b, ok := s.files[name]
	if !ok {
		return nil, errors.New("no such file")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func sourceOf(s *memSink) memSource {
	src := memSource{Reader: bytes.NewReader(s.Bytes()), files: map[string][]byte{}}
	for n, b := range s.files {
		src.files[n] = b.Bytes()
	}
	return src
}

// sliceIter is an fsm.Iterator over commands.
type sliceIter struct {
	cmds [][]byte
	i    int
}

func (it *sliceIter) Next() bool                                 { it.i++; return it.i <= len(it.cmds) }
func (it *sliceIter) Index() uint64                              { return uint64(it.i) }
func (it *sliceIter) Term() uint64                               { return 1 }
func (it *sliceIter) Data() []byte                               { return it.cmds[it.i-1] }
func (it *sliceIter) Done() closure.Closure                      { return nil }
func (it *sliceIter) SetResult(any)                              {}
func (it *sliceIter) SetErrorAndRollback(uint64, closure.Status) {}

func snapshotOf(t *testing.T, sm *kv) *memSink {
	t.Helper()
	p, err := sm.OnSnapshotSave(fsm.SnapshotMeta{Index: 1, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := p.Persist(sink); err != nil {
		t.Fatal(err)
	}
	p.Release()
	return sink
}

func TestKVSnapshotRoundTrip(t *testing.T) {
	sm := newKV()
	var cmds [][]byte
	for k := range uint64(300) {
		cmds = append(cmds, loadgen.EncodeCommand(k, []byte(fmt.Sprintf("value-%d", k))))
	}
	cmds = append(cmds, loadgen.EncodeCommand(7, nil), blobCommand(3*blobBlock+12345, 42), []byte{1, 2})
	sm.OnApply(&sliceIter{cmds: cmds})
	sink := snapshotOf(t, sm)
	if got := sm.snapBytes.Load(); got != int64(sink.Len())+3*blobBlock+12345 {
		t.Errorf("snapshot bytes %d, data %d", got, sink.Len())
	}
	if len(sink.files[blobFile].Bytes()) != 3*blobBlock+12345 {
		t.Fatalf("blob file of %d bytes", len(sink.files[blobFile].Bytes()))
	}

	back := newKV()
	if err := back.OnSnapshotLoad(sourceOf(sink)); err != nil {
		t.Fatal(err)
	}
	if back.m.Len() != 300 || back.blob != (blobSpec{3*blobBlock + 12345, 42}) {
		t.Fatalf("loaded %d keys, blob %+v", back.m.Len(), back.blob)
	}
	for k := range uint64(300) {
		v, _ := back.get(k)
		want := fmt.Sprintf("value-%d", k)
		if k == 7 {
			want = ""
		}
		if string(v) != want {
			t.Errorf("key %d = %q, want %q", k, v, want)
		}
	}

	// One byte of the blob changed: the load fails, the state stays.
	src := sourceOf(sink)
	src.files[blobFile][2*blobBlock+99] ^= 1
	other := newKV()
	if err := other.OnSnapshotLoad(src); err == nil {
		t.Error("a changed blob loaded")
	} else if other.m.Len() != 0 {
		t.Error("a failed load changed the state")
	}
	// A truncated data stream fails.
	short := sourceOf(sink)
	short.Reader = bytes.NewReader(sink.Bytes()[:sink.Len()-3])
	if err := newKV().OnSnapshotLoad(short); err == nil {
		t.Error("truncated data loaded")
	}
}

func FuzzDecodeKV(f *testing.F) {
	sm := newKV()
	sm.OnApply(&sliceIter{cmds: [][]byte{loadgen.EncodeCommand(1, []byte("a")), loadgen.EncodeCommand(2, []byte("bc"))}})
	p, _ := sm.OnSnapshotSave(fsm.SnapshotMeta{})
	sink := &memSink{}
	_ = p.Persist(sink)
	f.Add(sink.Bytes())
	f.Add([]byte(kvMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, blob, err := decodeKV(bytes.NewReader(b))
		if err != nil {
			return
		}
		if blob.size < 0 {
			t.Fatalf("negative blob %+v", blob)
		}
		// What decodes encodes to as many bytes.
		n := 32
		for _, v := range m {
			n += 12 + len(v)
		}
		if n > len(b) {
			t.Fatalf("decoded %d bytes of entries from %d", n, len(b))
		}
	})
}

func BenchmarkLoadKV(b *testing.B) {
	sm := newKV()
	var cmds [][]byte
	value := loadgen.ValueBytes(120)
	for k := range uint64(100_000) {
		cmds = append(cmds, loadgen.EncodeCommand(k, value))
	}
	sm.OnApply(&sliceIter{cmds: cmds})
	p, _ := sm.OnSnapshotSave(fsm.SnapshotMeta{})
	sink := &memSink{}
	if err := p.Persist(sink); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sink.Len()))
	for b.Loop() {
		if err := newKV().OnSnapshotLoad(sourceOf(sink)); err != nil {
			b.Fatal(err)
		}
	}
}
