package logmgr

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// TestManagerRandomCrash sends random appends, suffix truncations and
// hard-state saves to a Manager at random moments, crashes the host (clean
// or torn) at a random moment, and checks what the disk kept against what
// the node was told:
//
//   - every Stable report describes a state the log passed through, in
//     order;
//   - the recovered log is a state at or after the last one reported
//     stable (a record prefix of the operations sent, never anything else);
//   - the recovered hard state is the last one reported saved or a later
//     one;
//   - a new Manager over the recovered storage carries on.
//
// A host crash in the simulator falls between two Receives, when the disk
// writer has synced all it wrote; so in a third of the runs the disk also
// loses power inside the n-th fsync of the log (an injector crashes the
// MemFS there), tearing the writes of the batch in flight. The manager then
// reports Failed, and the host crash follows.
func TestManagerRandomCrash(t *testing.T) {
	seed := testseed.For(t)
	for _, st := range mgrStorages {
		t.Run(st.name, func(t *testing.T) {
			repaired := 0
			for iter := range uint64(90) {
				if runManagerCrash(t, seed, iter, st.open) {
					repaired++
				}
			}
			t.Logf("%d of 90 recoveries cut a torn tail", repaired)
		})
	}
}

// runManagerCrash runs one scenario and reports whether recovery had to cut
// a torn tail.
func runManagerCrash(t *testing.T, seed, iter uint64, open diskOpener) bool {
	rng := rand.New(rand.NewPCG(seed, iter))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d iter %d: %s", seed, iter, fmt.Sprintf(format, args...))
	}
	torn := rng.IntN(2) == 0
	r := newMgrRigOn(t, seed^iter, sim.HostConfig{TornCrash: torn}, open, func(c *Config) {
		c.MaxBatchEntries = 1 + rng.IntN(20)
	})

	disk := r.h.Disk()
	midCrash, syncs, nth := rng.IntN(3) == 0, 0, 1+rng.IntN(8)
	if midCrash {
		crashRand := rand.New(rand.NewPCG(seed^iter, 0xc4a5))
		disk.SetInjector(func(op vfs.Op, name string) error {
			if op != vfs.OpSync || !isLogFile(name) {
				return nil
			}
			if syncs++; syncs != nth {
				return nil
			}
			if torn {
				disk.CrashTorn(crashRand)
			} else {
				disk.Crash()
			}
			return vfs.ErrnoError(op, name, syscall.EIO)
		})
	}

	// states[k] is the log after k records; a truncation that removes
	// nothing writes no record.
	states := []oracle{nil}
	var saved []*raftpb.HardState
	term := uint64(1)
	at := time.Duration(0)
	for range 20 + rng.IntN(60) {
		cur := states[len(states)-1]
		var msg any
		switch n := rng.IntN(10); {
		case n < 6:
			es := randEnts(rng, uint64(len(cur))+1, 1+rng.IntN(6), term)
			for _, e := range es {
				cur = cur.append([]*raftpb.Entry{e})
				states = append(states, cur)
			}
			msg = Append{Entries: es}
		case n < 8:
			from := 1 + rng.Uint64N(uint64(len(cur))+1)
			if from <= uint64(len(cur)) {
				states = append(states, cur.truncate(from))
			}
			term++
			msg = TruncateSuffix{From: from}
		default:
			hs := &raftpb.HardState{Term: term + uint64(len(saved))*100, Vote: fmt.Sprint("n", len(saved))}
			saved = append(saved, hs)
			msg = SaveHardState{HardState: hs}
		}
		at += time.Duration(rng.IntN(400)) * time.Microsecond
		r.s.At(at, func() { r.send(msg) })
	}
	if midCrash {
		r.s.RunFor(at + 100*time.Millisecond) // until the disk crashes
	} else {
		r.s.RunFor(time.Duration(rng.Int64N(int64(at + 2*time.Millisecond))))
	}
	msgs := r.probe.msgs

	// Stable reports follow the states in order.
	k := 0
	for _, m := range msgs {
		st, ok := m.(Stable)
		if !ok {
			continue
		}
		for k < len(states) && (uint64(len(states[k])) != st.Index || states[k].lastTerm() != st.Term) {
			k++
		}
		if k == len(states) {
			fail("%v matches no state of the log at or after the previous report", st)
		}
	}
	savedAt := -1
	for _, m := range msgs {
		if hs, ok := m.(HardStateSaved); ok {
			j := indexOfHS(saved, hs.HardState)
			if j < savedAt {
				fail("HardStateSaved %v after a later one", hs.HardState)
			}
			savedAt = j
		}
	}
	for _, m := range msgs {
		if f, ok := m.(Failed); ok && !(midCrash && syncs >= nth) {
			fail("Failed: %v", f.Err)
		}
	}

	disk.SetInjector(nil)
	s, hs := r.crashAndReopen()
	got, err := s.Entries(1, s.LastIndex()+1, ^uint64(0))
	if err != nil {
		fail("read recovered log: %v", err)
	}
	found := false
	for j := k; j < len(states) && !found; j++ {
		found = diffEntries(got, states[j]) == nil
	}
	if !found {
		fail("recovered log %s (torn %v) is no state at or after the last stable one %s", summary(got), torn, summary(states[k]))
	}
	if j := indexOfHS(saved, hs); j < savedAt || (j < 0 && !proto.Equal(hs, &raftpb.HardState{})) {
		fail("recovered hard state %v; last reported saved %d, want it or a later one", hs, savedAt)
	}

	// A new manager over the recovered storage carries on.
	r.stats = &Stats{}
	r.probe.msgs = nil
	r.log = s
	if r.node, err = r.h.Spawn("node", r.probe); err != nil {
		t.Fatal(err)
	}
	if r.mgr, err = r.h.Spawn("logmgr", NewManager(Config{Storage: s, Meta: r.meta, Node: r.node})); err != nil {
		t.Fatal(err)
	}
	next := s.LastIndex() + 1
	r.send(Append{Entries: ents(next, next+3, term+1)})
	r.runUntil("Stable after restart", r.lastStableIs(next+2, term+1))
	want := oracle(got).append(ents(next, next+3, term+1))
	if err := checkStorage(s, want); err != nil {
		fail("after restart: %v", err)
	}
	return r.repaired > 0
}

func indexOfHS(saved []*raftpb.HardState, hs *raftpb.HardState) int {
	for i, s := range saved {
		if proto.Equal(s, hs) {
			return i
		}
	}
	return -1
}
