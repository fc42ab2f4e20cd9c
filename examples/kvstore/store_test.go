package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

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
		{Op: OpAppend, Key: "k", Value: "v", Limits: DefaultLimits},
		{Op: OpPut, Key: "k", Value: "v", Limits: Limits{MaxStoreBytes: 1 << 40}},
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

// iter is an fsm.Iterator over a fixed run of entries, at indexes from
// base+1.
type iter struct {
	data    [][]byte
	i       int
	results []any
	base    uint64
}

func (it *iter) Next() bool {
	if it.i >= len(it.data) {
		return false
	}
	it.i++
	it.results = append(it.results, nil)
	return true
}
func (it *iter) Index() uint64                              { return it.base + uint64(it.i) }
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
	if st := s.Stats(); st.Applied != 9 || st.Keys != 1 || st.Bytes != entrySize(1, 1) {
		t.Errorf("Stats: %+v, want applied 9, 1 key, %d bytes", st, entrySize(1, 1))
	}

	// Two stores that applied the same entries have the same digest; a
	// different map has another.
	s2 := NewStore("n2", slog.New(slog.DiscardHandler))
	s2.OnApply(&iter{data: it.data})
	d1, d2 := s.Stats().Digest, s2.Stats().Digest
	if d1 != d2 {
		t.Errorf("digests differ for the same entries: %x, %x", d1, d2)
	}
	s2.OnApply(&iter{data: [][]byte{mustEncode(t, Command{Op: OpPut, Key: "b", Value: "w"})}})
	if d3 := s2.Stats().Digest; d3 == d1 {
		t.Errorf("digest unchanged after a put")
	}
}

// A put or an append beyond its limits is refused, identically wherever
// it is applied, and leaves the key as it was.
func TestStoreLimits(t *testing.T) {
	lim := Limits{MaxKeyBytes: 4, MaxValueBytes: 10, MaxStoreBytes: 2*entryOverhead + 20}
	cmd := func(op Op, key, value string) Command { return Command{Op: op, Key: key, Value: value, Limits: lim} }
	steps := []struct {
		c       Command
		refused error // nil: applied
		value   string
	}{
		{cmd(OpPut, "a", "12345678"), nil, "12345678"},
		{cmd(OpAppend, "a", "9"), nil, "123456789"},
		{cmd(OpAppend, "a", "ab"), ErrValueTooLarge, "123456789"}, // 11 > 10
		{cmd(OpPut, "a", "12345678901"), ErrValueTooLarge, "123456789"},
		{cmd(OpPut, "kkkkk", "v"), ErrKeyTooLarge, ""},
		{cmd(OpPut, "b", "1234567"), nil, "1234567"}, // 2×64 + 1+9 + 1+7 = 146 ≤ 148
		{cmd(OpAppend, "b", "89"), nil, "123456789"}, // 148
		{cmd(OpPut, "c", ""), ErrStoreFull, ""},      // one more key: 213 > 148
		{cmd(OpAppend, "b", "0"), ErrStoreFull, "123456789"},
		{cmd(OpPut, "b", "1"), nil, "1"}, // shrinks
		{cmd(OpDelete, "a", ""), nil, ""},
		{cmd(OpPut, "c", "x"), nil, "x"},
		// A command without limits (written before they existed) has none.
		{Command{Op: OpAppend, Key: "c", Value: strings.Repeat("y", 100)}, nil, "x" + strings.Repeat("y", 100)},
		// Over a limit, a put that does not grow the store is applied; one
		// that grows it is not.
		{cmd(OpPut, "c", "z"), nil, "z"},
		{cmd(OpAppend, "c", "z"), nil, "zz"},
	}
	stores := []*Store{NewStore("n1", slog.New(slog.DiscardHandler)), NewStore("n2", slog.New(slog.DiscardHandler))}
	for i, st := range steps {
		for _, s := range stores {
			it := &iter{data: [][]byte{mustEncode(t, st.c)}}
			s.OnApply(it)
			res := it.results[0].(Result)
			if !errors.Is(res.Refused, st.refused) || (st.refused == nil) != (res.Refused == nil) {
				t.Fatalf("step %d %+v on %s: refused %v, want %v", i, st.c, s.id, res.Refused, st.refused)
			}
			if v, _ := s.Get(st.c.Key); v != st.value || (st.c.Op != OpDelete && res.Value != st.value) {
				t.Fatalf("step %d %+v on %s: value %q (result %q), want %q", i, st.c, s.id, v, res.Value, st.value)
			}
			// A refused command left the store as it was: Check, the
			// leader's test before proposing, refuses it too.
			if st.refused != nil {
				if err := s.Check(lim, st.c.Key, st.c.Op == OpAppend, len(st.c.Value)); !errors.Is(err, st.refused) {
					t.Fatalf("step %d: Check after a refusal: %v, want %v", i, err, st.refused)
				}
			}
		}
	}
	if a, b := stores[0].Stats(), stores[1].Stats(); a != b {
		t.Fatalf("stores differ: %+v, %+v", a, b)
	}
}

var flagSeed = flag.Uint64("kvstore.seed", 0, "seed of the randomized store test (0: a new one)")

// fullStats computes a store's statistics from scratch, from its map: the
// oracle of the statistics OnApply maintains.
func fullStats(m map[string]string) (keys int, bytes int64, digest uint64) {
	for k, v := range m {
		bytes += int64(len(k) + len(v) + entryOverhead)
		digest += entryDigest(k, fnvString(fnvString(fnvOffset, k), v))
	}
	return len(m), bytes, digest
}

// A random run of commands against a dumb model: after each one, the
// store's value, refusal and incrementally maintained statistics match the
// model's, recomputed from scratch.
func TestStoreAgainstModel(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -kvstore.seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	lim := Limits{MaxKeyBytes: 3, MaxValueBytes: 40, MaxStoreBytes: 600}
	s := NewStore("n1", slog.New(slog.DiscardHandler))
	model := map[string]string{}
	keys := []string{"a", "b", "c", "dd", "ee", "fff", "gggg"} // gggg is over MaxKeyBytes
	ops := []Op{OpGet, OpPut, OpPut, OpAppend, OpAppend, OpAppend, OpDelete}
	refusals := map[error]int{}
	for i := range 5000 {
		c := Command{Op: ops[rng.IntN(len(ops))], Key: keys[rng.IntN(len(keys))], Limits: lim}
		if c.Op == OpPut || c.Op == OpAppend {
			c.Value = strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(25))
			if rng.IntN(10) == 0 {
				c.Limits = Limits{} // an entry from before the limits
			}
		}
		// The model's decision, from scratch.
		old, found := model[c.Key]
		var want error
		if c.Op == OpPut || c.Op == OpAppend {
			next := c.Value
			if c.Op == OpAppend {
				next = old + c.Value
			}
			_, total, _ := fullStats(model)
			after := maps.Clone(model)
			after[c.Key] = next
			_, grown, _ := fullStats(after)
			switch {
			case c.MaxKeyBytes > 0 && len(c.Key) > int(c.MaxKeyBytes):
				want = ErrKeyTooLarge
			case c.MaxValueBytes > 0 && len(next) > int(c.MaxValueBytes):
				want = ErrValueTooLarge
			case c.MaxStoreBytes > 0 && grown > c.MaxStoreBytes && grown > total:
				want = ErrStoreFull
			default:
				model = after
			}
			if want != nil {
				if err := s.Check(c.Limits, c.Key, c.Op == OpAppend, len(c.Value)); !errors.Is(err, want) {
					t.Fatalf("seed %d, op %d %+v: Check %v, want %v", seed, i, c, err, want)
				}
			}
		} else if c.Op == OpDelete {
			delete(model, c.Key)
		}
		it := &iter{data: [][]byte{mustEncode(t, c)}}
		s.OnApply(it)
		res := it.results[0].(Result)
		if !errors.Is(res.Refused, want) || (want == nil) != (res.Refused == nil) {
			t.Fatalf("seed %d, op %d %+v: refused %v, want %v", seed, i, c, res.Refused, want)
		}
		refusals[want]++
		if c.Op == OpGet && (res.Value != old || res.Found != found) {
			t.Fatalf("seed %d, op %d %+v: got %q %v, want %q %v", seed, i, c, res.Value, res.Found, old, found)
		}
		if v, ok := s.Get(c.Key); v != model[c.Key] || ok != hasKey(model, c.Key) {
			t.Fatalf("seed %d, op %d %+v: store has %q %v, model %q", seed, i, c, v, ok, model[c.Key])
		}
		keys, bytes, digest := fullStats(model)
		if st := s.Stats(); st.Keys != keys || st.Bytes != bytes || st.Digest != digest {
			t.Fatalf("seed %d, op %d %+v: keys %d bytes %d digest %x, recomputed %d %d %x", seed, i, c, st.Keys, st.Bytes, st.Digest, keys, bytes, digest)
		}
	}
	// The run exercised every refusal.
	for _, e := range []error{ErrKeyTooLarge, ErrValueTooLarge, ErrStoreFull} {
		if refusals[e] == 0 {
			t.Errorf("seed %d: no %v in the run", seed, e)
		}
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// The digest depends on the map only: not on the order of the writes, nor
// on how a value was built; and it tells keys from values.
func TestDigestIsOfTheMap(t *testing.T) {
	apply := func(cs ...Command) Stats {
		s := NewStore("n", slog.New(slog.DiscardHandler))
		it := &iter{}
		for _, c := range cs {
			it.data = append(it.data, mustEncode(t, c))
		}
		s.OnApply(it)
		return s.Stats()
	}
	a := apply(Command{Op: OpPut, Key: "x", Value: "1"}, Command{Op: OpPut, Key: "y", Value: "23"})
	b := apply(Command{Op: OpAppend, Key: "y", Value: "2"}, Command{Op: OpPut, Key: "z", Value: "0"},
		Command{Op: OpAppend, Key: "x", Value: "1"}, Command{Op: OpAppend, Key: "y", Value: "3"}, Command{Op: OpDelete, Key: "z"})
	if a.Digest != b.Digest || a.Keys != b.Keys || a.Bytes != b.Bytes {
		t.Errorf("same map, other stats: %+v, %+v", a, b)
	}
	if c := apply(Command{Op: OpPut, Key: "ab", Value: "c"}); c.Digest == apply(Command{Op: OpPut, Key: "a", Value: "bc"}).Digest {
		t.Errorf("ab=c and a=bc have the same digest")
	}
	if e := apply(); e.Digest != 0 || e.Keys != 0 || e.Bytes != 0 {
		t.Errorf("empty store: %+v", e)
	}
}

// TestStatsReadsRunningTotals: Stats (and so GET /status) reads totals the
// store keeps up to date on every write; it does not walk the map, which
// under the state machine's lock would stall writes on a large store. The
// entries are changed behind the store's back: a Stats that recomputed
// anything from the map would report the change.
func TestStatsReadsRunningTotals(t *testing.T) {
	s := NewStore("n", slog.New(slog.DiscardHandler))
	it := &iter{}
	for i := range 1000 {
		it.data = append(it.data, mustEncode(t, Command{Op: OpPut, Key: fmt.Sprintf("k%d", i), Value: "v"}))
	}
	s.OnApply(it)
	before := s.Stats()
	if before.Keys != 1000 || before.Digest == 0 || before.Bytes == 0 {
		t.Fatalf("stats of 1000 keys: %+v", before)
	}
	for k := range s.data {
		s.data[k] = entry{}
	}
	if got := s.Stats(); got != before {
		t.Fatalf("Stats changed with the map alone (%+v, was %+v): it reads the map, not the running totals", got, before)
	}
}
