package vfs

import (
	"math/rand/v2"
	"testing"
	"time"
)

// timedDisk stands for the simulator: the present, and an actor whose
// syncs each cost cost, charged as they happen, so the actor's clock runs
// ahead of the present while it is busy.
type timedDisk struct {
	present, charge time.Duration
}

func newTimed(cost time.Duration) (*MemFS, *timedDisk) {
	m, d := NewMem(), &timedDisk{}
	m.SetClock(func() time.Duration { return d.present + d.charge }, func() time.Duration { return d.present })
	m.SetObserver(func(op Op, _ string, _ int) {
		if op == OpSync || op == OpSyncDir {
			d.charge += cost
		}
	})
	return m, d
}

// With clocks, a sync is durable only once its completion time has
// passed: a crash in between loses it.
func TestTimedSyncDurableOnlyWhenComplete(t *testing.T) {
	for _, crashAt := range []time.Duration{4, 5, 9, 10, 14, 15, 200} {
		m, d := newTimed(5)
		if err := m.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := m.Create("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SyncDir("/d"); err != nil { // completes at 5
			t.Fatal(err)
		}
		f.Write([]byte("first"))
		if err := f.Sync(); err != nil { // completes at 10
			t.Fatal(err)
		}
		f.Write([]byte("-second"))
		if err := f.Sync(); err != nil { // completes at 15
			t.Fatal(err)
		}
		d.present, d.charge = crashAt, 0
		m.Crash()
		got, err := m.ReadFile("/d/f")
		switch {
		case crashAt < 5:
			if err == nil {
				t.Fatalf("crash at %d: the file's name survived an incomplete SyncDir (%q)", crashAt, got)
			}
		case crashAt < 10:
			if err != nil || string(got) != "" {
				t.Fatalf("crash at %d: got %q, %v; want an empty file", crashAt, got, err)
			}
		case crashAt < 15:
			if err != nil || string(got) != "first" {
				t.Fatalf("crash at %d: got %q, %v; want the first sync only", crashAt, got, err)
			}
		default:
			if err != nil || string(got) != "first-second" {
				t.Fatalf("crash at %d: got %q, %v; want both syncs", crashAt, got, err)
			}
		}
	}
}

// Syncs complete by the present are promoted as later ones are issued, so
// pending writes do not pile up; the torn crash then only sees what is
// still in flight.
func TestTimedSyncPromotesCompletedOnes(t *testing.T) {
	m, d := newTimed(1)
	f, _ := m.Create("/f")
	m.SyncDir("/")
	for i := 0; i < 100; i++ {
		f.Write([]byte{'x'})
		f.Sync()
		d.present, d.charge = d.present+d.charge, 0 // the actor's turn ends
	}
	m.mu.Lock()
	pending, inflight := len(m.fileAt("/f").pending), len(m.inflight)
	m.mu.Unlock()
	if pending > 1 || inflight > 1 {
		t.Fatalf("%d writes pending and %d syncs in flight after 100 completed syncs", pending, inflight)
	}
	m.Crash()
	if got, _ := m.ReadFile("/f"); len(got) < 99 {
		t.Fatalf("kept %d bytes of 100 synced", len(got))
	}
}

// With clocks, a torn crash lands only writes issued by the time of the
// crash: a file renamed away and synced, then rewritten by an actor busy
// into the future, must not show the rewrite under its old, durable name.
// This is the order a recycled WAL segment goes through.
func TestTimedTornCrashLandsOnlyIssuedWrites(t *testing.T) {
	for seed := range uint64(50) {
		m, d := newTimed(5)
		f, _ := m.Create("/old")
		f.Write([]byte("old-header"))
		f.Sync()
		m.SyncDir("/") // the name "old" and its content complete at 10
		d.present, d.charge = 10, 0
		if err := m.Rename("/old", "/recycled"); err != nil {
			t.Fatal(err)
		}
		m.SyncDir("/")              // completes at 15
		f.WriteAt([]byte("NEW"), 0) // issued at 15
		d.present = 12              // the crash comes first
		m.CrashTorn(rand.New(rand.NewPCG(seed, 1)))
		got, err := m.ReadFile("/old")
		if err != nil {
			t.Fatalf("seed %d: the durable name is gone: %v", seed, err)
		}
		if string(got) != "old-header" {
			t.Fatalf("seed %d: /old holds %q, a write issued after the crash", seed, got)
		}
	}
}
