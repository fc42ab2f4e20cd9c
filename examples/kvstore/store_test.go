package main

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
)

func TestCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		{Op: OpGet, Key: "k"},
		{Op: OpPut, Key: "k", Value: "v"},
		{Op: OpPut, Key: "k", Value: ""},
		{Op: OpAppend, Key: "clé/with spaces", Value: "ünïcödé\x00\n"},
		{Op: OpDelete, Key: strings.Repeat("k", maxKeyBytes)},
		{Op: OpPut, Key: "big", Value: strings.Repeat("x", 100_000)},
	}
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", c, err)
		}
		if got != c {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestEncodeRejectsInvalidCommands(t *testing.T) {
	for _, c := range []Command{
		{Op: "", Key: "k"},
		{Op: "inc", Key: "k"},
		{Op: OpPut, Key: ""},
		{Op: OpPut, Key: strings.Repeat("k", maxKeyBytes+1)},
		{Op: OpGet, Key: "\xff"},
	} {
		if _, err := c.Encode(); err == nil {
			t.Errorf("Encode(%+v) succeeded", c)
		}
	}
}

func TestDecodeGarbage(t *testing.T) {
	valid, err := Command{Op: OpAppend, Key: "key", Value: "value"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{nil, {}, {0xc1}, {0xff, 0xff}, []byte("not msgpack"), {0x81, 0xa2, 'o', 'p', 0x01}}
	for i := 1; i < len(valid); i++ {
		inputs = append(inputs, valid[:i]) // every truncation
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		inputs = append(inputs, b)
		// And the valid encoding with one byte flipped.
		m := append([]byte(nil), valid...)
		m[rng.IntN(len(m))] ^= byte(1 + rng.UintN(255))
		inputs = append(inputs, m)
	}
	for _, in := range inputs {
		c, err := DecodeCommand(in) // must not panic
		if err == nil && c.validate() != nil {
			t.Fatalf("DecodeCommand(%x) = %+v without error, but it is invalid", in, c)
		}
	}
}

// iter is an fsm.Iterator over a fixed run of entries.
type iter struct {
	data    [][]byte
	i       int
	results []any
}

func (it *iter) Next() bool {
	if it.i >= len(it.data) {
		return false
	}
	it.i++
	it.results = append(it.results, nil)
	return true
}
func (it *iter) Index() uint64                              { return uint64(it.i) }
func (it *iter) Term() uint64                               { return 1 }
func (it *iter) Data() []byte                               { return it.data[it.i-1] }
func (it *iter) Done() closure.Closure                      { return nil }
func (it *iter) SetResult(v any)                            { it.results[it.i-1] = v }
func (it *iter) SetErrorAndRollback(uint64, closure.Status) {}
func mustEncode(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreApply(t *testing.T) {
	s := NewStore("n1", slog.New(slog.DiscardHandler))
	it := &iter{data: [][]byte{
		mustEncode(t, Command{Op: OpGet, Key: "a"}),
		mustEncode(t, Command{Op: OpPut, Key: "a", Value: "x"}),
		mustEncode(t, Command{Op: OpAppend, Key: "a", Value: "y"}),
		[]byte("garbage"), // skipped, with an error result
		mustEncode(t, Command{Op: OpAppend, Key: "b", Value: "z"}),
		mustEncode(t, Command{Op: OpGet, Key: "a"}),
		mustEncode(t, Command{Op: OpDelete, Key: "a"}),
		mustEncode(t, Command{Op: OpDelete, Key: "a"}),
		mustEncode(t, Command{Op: OpGet, Key: "a"}),
	}}
	s.OnApply(it)
	want := []Result{
		{Index: 1},
		{Value: "x", Found: true, Index: 2},
		{Value: "xy", Found: true, Index: 3},
		{Index: 4, Err: "set below"},
		{Value: "z", Found: true, Index: 5},
		{Value: "xy", Found: true, Index: 6},
		{Found: true, Index: 7},
		{Found: false, Index: 8},
		{Index: 9},
	}
	for i, w := range want {
		got, ok := it.results[i].(Result)
		if !ok {
			t.Fatalf("entry %d: result %#v", i+1, it.results[i])
		}
		if w.Err != "" {
			if got.Err == "" || got.Index != w.Index {
				t.Errorf("entry %d: got %+v, want an error result", i+1, got)
			}
			continue
		}
		if got != w {
			t.Errorf("entry %d: got %+v, want %+v", i+1, got, w)
		}
	}
	applied, keys, _ := s.Snapshot()
	if applied != 9 || keys != 1 {
		t.Errorf("Snapshot: applied %d keys %d, want 9 and 1", applied, keys)
	}

	// Two stores that applied the same entries have the same digest; a
	// different map has another.
	s2 := NewStore("n2", slog.New(slog.DiscardHandler))
	s2.OnApply(&iter{data: it.data})
	_, _, d1 := s.Snapshot()
	_, _, d2 := s2.Snapshot()
	if d1 != d2 {
		t.Errorf("digests differ for the same entries: %s, %s", d1, d2)
	}
	s2.OnApply(&iter{data: [][]byte{mustEncode(t, Command{Op: OpPut, Key: "b", Value: "w"})}})
	if _, _, d3 := s2.Snapshot(); d3 == d1 {
		t.Errorf("digest unchanged after a put")
	}
}
