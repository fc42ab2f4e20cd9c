package snapshot

import (
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors/sim"
)

func TestThrottleReserve(t *testing.T) {
	t0 := sim.Epoch
	if _, err := NewThrottle(-1, 0); err == nil {
		t.Fatal("a negative rate accepted")
	}
	if _, err := NewThrottle(1, -1); err == nil {
		t.Fatal("a negative burst accepted")
	}
	var none *Throttle
	if d := none.Reserve(t0, 1<<30); d != 0 {
		t.Fatalf("a nil throttle waits %v", d)
	}
	unlimited, _ := NewThrottle(0, 0)
	if d := unlimited.Reserve(t0, 1<<30); d != 0 {
		t.Fatalf("rate 0 waits %v", d)
	}

	th, _ := NewThrottle(1000, 500) // 1000 B/s, 500 B of burst
	steps := []struct {
		at   time.Duration
		n    int
		want time.Duration
	}{
		{0, 500, 0},                      // the burst
		{0, 100, 100 * time.Millisecond}, // in debt: wait for 100 B
		{0, 100, 200 * time.Millisecond}, // behind the first debt
		{time.Second, 100, 0},            // 1000 B accrued, 200 owed: 500 (the burst) left, minus 100
		{time.Second, 500, 100 * time.Millisecond},
		{500 * time.Millisecond, 10, 110 * time.Millisecond}, // a clock going back: no time passed
		{10 * time.Hour, 500, 0},                             // capped at the burst
		{10 * time.Hour, 1, time.Millisecond},
	}
	for i, s := range steps {
		if got := th.Reserve(t0.Add(s.at), s.n); got != s.want {
			t.Fatalf("step %d: Reserve(%v, %d) = %v, want %v", i, s.at, s.n, got, s.want)
		}
	}
}

// Reservations from many goroutines add up: the last one waits for all
// the bytes reserved, whatever the interleaving (run with -race).
func TestThrottleConcurrent(t *testing.T) {
	th, _ := NewThrottle(1<<20, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var longest time.Duration
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				d := th.Reserve(sim.Epoch, 1024)
				mu.Lock()
				longest = max(longest, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	owed := float64(800*1024 - 1)
	want := time.Duration(owed / (1 << 20) * float64(time.Second))
	if longest < want || longest > want+time.Microsecond {
		t.Fatalf("the last reservation waits %v, want %v", longest, want)
	}
}

// A transfer of N bytes from a leader throttled at R takes at least
// (N - burst) / R of virtual time, and not much more; two transfers from
// one host, in two groups, share R.
func TestCopyThrottled(t *testing.T) {
	const rate, chunk = 2 << 20, 64 << 10
	// newTune returns the options of a world whose hosts share one
	// throttle (only the leaders' serve).
	newTune := func() func(*CopyConfig) {
		th, err := NewThrottle(rate, chunk)
		if err != nil {
			t.Fatal(err)
		}
		return func(c *CopyConfig) { c.Throttle, c.MaxChunkSize, c.FetchTimeout = th, chunk, 2*time.Second }
	}
	seconds := func(n uint64) time.Duration { return time.Duration(float64(n) / rate * float64(time.Second)) }

	t.Run("one", func(t *testing.T) {
		r := randFor(t, 10)
		w := newCopyWorld(t, 10, newTune())
		l := w.start(w.host("l"), "n1", 2)
		f := w.start(w.host("f"), "n2", 2)
		c := bigContent(100, 3, 3<<20, r)
		mustWrite(t, l.store, c)
		meta := w.offer(l, f)
		start := w.s.Now()
		w.fetch(f, l, meta)
		wantFetched(t, w.report(f, 1, time.Minute), c)
		took, n := w.s.Now()-start, c.total()
		t.Logf("%d bytes at %d B/s took %v", n, rate, took)
		if took < seconds(n-chunk) || took > seconds(n)+200*time.Millisecond {
			t.Fatalf("%d bytes at %d B/s took %v, want about %v", n, rate, took, seconds(n))
		}
		if l.stats.Throttled.Load() == 0 || f.stats.ChunksRefetched.Load() != 0 {
			t.Fatalf("throttled %d chunks, refetched %d", l.stats.Throttled.Load(), f.stats.ChunksRefetched.Load())
		}
	})

	t.Run("two share", func(t *testing.T) {
		r := randFor(t, 11)
		w := newCopyWorld(t, 11, newTune())
		lh, fh := w.host("l"), w.host("f")
		var took [2]time.Duration
		var total uint64
		var fs [2]*member
		start := w.s.Now()
		for i, g := range []string{"g1", "g2"} {
			l := w.startIn(lh, g, "n1", 2)
			f := w.startIn(fh, g, "n2", 2)
			c := bigContent(100, 3, 2<<20, r)
			mustWrite(t, l.store, c)
			l.h.Send(l.copy, Offer{Peer: f.id, To: f.copy, Reply: l.recAt, Term: 7})
			w.runUntil("offered", func() bool { return l.rec.count() > 0 }, time.Second)
			w.fetch(f, l, l.rec.msgs[0].(Offered).Meta)
			fs[i] = f
			total += c.total()
		}
		for i, f := range fs {
			if _, ok := w.report(f, 1, time.Minute).(Fetched); !ok {
				t.Fatalf("group %d: %+v", i, f.rec.msgs[0])
			}
			took[i] = w.s.Now() - start
		}
		first, last := min(took[0], took[1]), max(took[0], took[1])
		t.Logf("two transfers of %d bytes in all took %v and %v", total, took[0], took[1])

		if last < seconds(total-chunk) || first < seconds(total*3/4) || last > seconds(total)+200*time.Millisecond {
			t.Fatalf("two transfers of %d bytes in all at %d B/s took %v and %v: the rate was not shared", total, rate, took[0], took[1])
		}
	})
}
