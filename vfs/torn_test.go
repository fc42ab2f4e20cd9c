package vfs

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// oracleOp is a write or truncation as the test issued it, recorded
// independently of MemFS's own bookkeeping.
type oracleOp struct {
	trunc bool
	off   int64
	data  []byte
}

// oracleApply returns a fresh copy of buf with op applied.
func oracleApply(buf []byte, op oracleOp) []byte {
	out := slices.Clone(buf)
	if op.trunc {
		if op.off <= int64(len(out)) {
			return out[:op.off]
		}
		return append(out, make([]byte, op.off-int64(len(out)))...)
	}
	if len(op.data) == 0 {
		return out
	}
	if end := op.off + int64(len(op.data)); end > int64(len(out)) {
		out = append(out, make([]byte, end-int64(len(out)))...)
	}
	copy(out[op.off:], op.data)
	return out
}

// oracleFile tracks what a file's content may legitimately be after a
// torn crash: its durable content and the operations issued since.
type oracleFile struct {
	name    string
	durable []byte
	ops     []oracleOp
}

func (o *oracleFile) sync() {
	for _, op := range o.ops {
		o.durable = oracleApply(o.durable, op)
	}
	o.ops = nil
}

// outcome classifies got: "none" (no pending op survived), "all" (every op
// survived intact), "prefix" (a proper prefix survived intact), "torn" (only
// explainable by a torn last write) or "" (impossible).
func (o *oracleFile) outcome(got []byte) string {
	prefixes := [][]byte{o.durable}
	for _, op := range o.ops {
		prefixes = append(prefixes, oracleApply(prefixes[len(prefixes)-1], op))
	}
	switch {
	case bytes.Equal(got, prefixes[0]):
		return "none"
	case bytes.Equal(got, prefixes[len(prefixes)-1]):
		return "all"
	}
	for _, p := range prefixes {
		if bytes.Equal(got, p) {
			return "prefix"
		}
	}
	for k, op := range o.ops {
		if op.trunc {
			continue
		}
		for j := range len(op.data) {
			torn := oracleApply(prefixes[k], oracleOp{off: op.off, data: op.data[:j]})
			if bytes.Equal(got, torn) {
				return "torn"
			}
		}
	}
	return ""
}

// tornScenario builds a MemFS with files in various states of durability,
// driven by seed, and returns it with the oracles of the files whose names
// are durable.
func tornScenario(t *testing.T, seed uint64) (*MemFS, []*oracleFile) {
	r := rand.New(rand.NewPCG(seed, 1))
	m := newMemT(t)
	randBytes := func() []byte {
		b := make([]byte, 1+r.IntN(16))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return b
	}
	var oracles []*oracleFile
	for _, name := range []string{"/d/a", "/d/b", "/d/c"} {
		f := must[File](t)(m.Create(name))
		o := &oracleFile{name: name}
		o.ops = append(o.ops, oracleOp{trunc: true}) // Create's O_TRUNC
		var off int64                                // the handle's offset, tracked by the oracle
		if name == "/d/a" {
			// Some durable content to start from.
			init := randBytes()
			must[int](t)(f.Write(init))
			o.ops = append(o.ops, oracleOp{data: init})
			off = int64(len(init))
			check(t, f.Sync())
			o.sync()
		}
		for range r.IntN(8) {
			cur := o.durable
			for _, op := range o.ops {
				cur = oracleApply(cur, op)
			}
			switch r.IntN(10) {
			case 0, 1:
				sz := r.Int64N(int64(len(cur)) + 8)
				check(t, f.Truncate(sz))
				o.ops = append(o.ops, oracleOp{trunc: true, off: sz})
			case 2, 3, 4:
				p := randBytes()
				must[int](t)(f.Write(p))
				o.ops = append(o.ops, oracleOp{off: off, data: p})
				off += int64(len(p))
			case 5:
				if r.IntN(3) == 0 {
					check(t, f.Sync())
					o.sync()
				}
			default:
				p, at := randBytes(), r.Int64N(int64(len(cur))+8)
				must[int](t)(f.WriteAt(p, at))
				o.ops = append(o.ops, oracleOp{off: at, data: p})
			}
		}
		check(t, f.Close())
		oracles = append(oracles, o)
	}
	check(t, m.SyncDir("/d"))
	// Activity whose names never become durable: must vanish.
	check(t, m.WriteFile("/d/tmp", []byte("temporary")))
	check(t, m.Rename("/d/b", "/d/b-renamed"))
	return m, oracles
}

func TestCrashTornOracle(t *testing.T) {
	counts := map[string]int{}
	for seed := range uint64(400) {
		m, oracles := tornScenario(t, seed)
		m.CrashTorn(rand.New(rand.NewPCG(seed, 2)))
		if p := m.Paths(); !slices.Equal(p, []string{"/d/a", "/d/b", "/d/c"}) {
			t.Fatalf("seed %d: Paths after crash %q", seed, p)
		}
		for _, o := range oracles {
			got := must[[]byte](t)(m.ReadFile(o.name))
			kind := o.outcome(got)
			if kind == "" {
				t.Fatalf("seed %d: %s = %q is not durable content %q plus a (torn) prefix of %d pending ops",
					seed, o.name, got, o.durable, len(o.ops))
			}
			counts[kind]++
		}
		// The torn outcome is now durable.
		before := [][]byte{}
		for _, o := range oracles {
			before = append(before, must[[]byte](t)(m.ReadFile(o.name)))
		}
		m.Crash()
		for i, o := range oracles {
			if got := must[[]byte](t)(m.ReadFile(o.name)); !bytes.Equal(got, before[i]) {
				t.Fatalf("seed %d: %s changed by a second crash: %q -> %q", seed, o.name, before[i], got)
			}
		}
	}
	t.Logf("outcomes: %v", counts)
	for _, kind := range []string{"none", "all", "prefix", "torn"} {
		if counts[kind] == 0 {
			t.Errorf("no %q outcome in 400 seeds: %v", kind, counts)
		}
	}
}

// snapshot returns every current file with its content.
func snapshot(t *testing.T, m *MemFS) map[string]string {
	s := map[string]string{}
	for _, p := range m.Paths() {
		s[p] = string(must[[]byte](t)(m.ReadFile(p)))
	}
	return s
}

func TestCrashTornDeterministic(t *testing.T) {
	distinct := map[string]bool{}
	for seed := range uint64(50) {
		var results []map[string]string
		for range 2 {
			m, _ := tornScenario(t, seed)
			m.CrashTorn(rand.New(rand.NewPCG(seed, 99)))
			results = append(results, snapshot(t, m))
		}
		if !mapsEqual(results[0], results[1]) {
			t.Fatalf("seed %d: same seed, different results:\n%q\n%q", seed, results[0], results[1])
		}
		distinct[results[0]["/d/a"]] = true
	}
	if len(distinct) < 10 {
		t.Fatalf("only %d distinct outcomes over 50 seeds", len(distinct))
	}
	// A different crash seed on the same scenario eventually differs.
	base, _ := tornScenario(t, 7)
	base.CrashTorn(rand.New(rand.NewPCG(0, 0)))
	want := snapshot(t, base)
	for s := range uint64(50) {
		m, _ := tornScenario(t, 7)
		m.CrashTorn(rand.New(rand.NewPCG(s+1, 0)))
		if !mapsEqual(snapshot(t, m), want) {
			return
		}
	}
	t.Fatal("50 crash seeds gave identical results")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCrashTornHandles checks that a torn crash also kills handles and
// that a file with nothing pending is left alone.
func TestCrashTornHandles(t *testing.T) {
	m := newMemT(t)
	check(t, m.WriteFile("/d/f", []byte("stable")))
	m.SyncAll()
	f := must[File](t)(m.Open("/d/f"))
	m.CrashTorn(rand.New(rand.NewPCG(1, 2)))
	if _, err := f.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("Read on dead handle: %v", err)
	}
	if got := readMem(t, m, "/d/f"); got != "stable" {
		t.Fatalf("content %q", got)
	}
}
