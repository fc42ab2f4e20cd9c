package sim_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
)

// pinger sends numbered envelopes to a peer on every timer tick and counts
// what it receives; the randomness it draws reaches its messages, so a
// nondeterministic runtime would show in the trace.
type pinger struct {
	peer     actors.Ref
	sent     int
	got      []uint64
	started  bool
	stopped  bool
	interval time.Duration
}

type tick struct{}

func (p *pinger) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		p.started = true
		env.After(p.interval, tick{})
	case tick:
		p.sent++
		env.Send(p.peer, &raftpb.Envelope{From: env.Self().Host, Seq: uint64(p.sent), Term: env.Rand().Uint64N(100)})
		env.After(p.interval+time.Duration(env.Rand().IntN(1000))*time.Microsecond, tick{})
	case *raftpb.Envelope:
		p.got = append(p.got, m.Seq)
	case actors.Stopped:
		p.stopped = true
	}
}

func world(seed uint64, net sim.NetConfig) (*sim.Sim, *pinger, *pinger) {
	s := sim.New(sim.Config{Seed: seed, Net: net})
	a, b := s.AddHost("a", sim.HostConfig{Drift: 1e-4}), s.AddHost("b", sim.HostConfig{Drift: -1e-4})
	pa := &pinger{peer: actors.Ref{Host: "b", Name: "p"}, interval: 10 * time.Millisecond}
	pb := &pinger{peer: actors.Ref{Host: "a", Name: "p"}, interval: 7 * time.Millisecond}
	if _, err := a.Spawn("p", pa); err != nil {
		panic(err)
	}
	if _, err := b.Spawn("p", pb); err != nil {
		panic(err)
	}
	return s, pa, pb
}

var faulty = sim.NetConfig{
	MinLatency: 100 * time.Microsecond, MaxLatency: 2 * time.Millisecond,
	Drop: 0.1, Duplicate: 0.1, Reorder: 0.2, ReorderDelay: 20 * time.Millisecond,
	Spike: 0.01, SpikeDelay: 200 * time.Millisecond,
}

func TestSameSeedSameTrace(t *testing.T) {
	seed := testseed.For(t)
	run := func(seed uint64) (string, uint64) {
		s, _, _ := world(seed, faulty)
		s.At(300*time.Millisecond, func() { s.Host("a").Crash() })
		s.At(500*time.Millisecond, func() {
			h := s.Host("a")
			h.Restart()
			h.Spawn("p", &pinger{peer: actors.Ref{Host: "b", Name: "p"}, interval: 5 * time.Millisecond})
		})
		s.At(700*time.Millisecond, func() { s.Block("a", "b") })
		s.At(800*time.Millisecond, func() { s.Heal(); s.Host("b").Pause(50 * time.Millisecond) })
		s.RunFor(2 * time.Second)
		return s.TraceHash(), s.Events()
	}
	h1, e1 := run(seed)
	h2, e2 := run(seed)
	if h1 != h2 || e1 != e2 {
		t.Fatalf("seed %d: trace %s (%d events) then %s (%d events)", seed, h1, e1, h2, e2)
	}
	h3, _ := run(seed + 1)
	if h3 == h1 {
		t.Fatalf("seeds %d and %d gave the same trace %s: the hash does not see the run", seed, seed+1, h1)
	}
}

func TestNetworkFaults(t *testing.T) {
	seed := testseed.For(t)
	s, pa, pb := world(seed, faulty)
	s.RunFor(10 * time.Second)
	if s.Dropped() == 0 {
		t.Fatal("no drops with a 10% drop rate")
	}
	dups, reordered := 0, 0
	seen := map[uint64]bool{}
	for i, v := range pb.got {
		if seen[v] {
			dups++
		}
		seen[v] = true
		if i > 0 && v < pb.got[i-1] {
			reordered++
		}
	}
	if dups == 0 || reordered == 0 {
		t.Fatalf("dups %d reordered %d: faults not simulated", dups, reordered)
	}
	if len(pb.got) < pa.sent/2 || len(pb.got) > 2*pa.sent {
		t.Fatalf("sent %d, received %d", pa.sent, len(pb.got))
	}
}

func TestPartitionIsOneWay(t *testing.T) {
	s, pa, pb := world(1, sim.NetConfig{})
	s.Block("a", "b")
	s.RunFor(time.Second)
	if len(pb.got) != 0 {
		t.Fatalf("b heard a through a cut link: %d messages", len(pb.got))
	}
	if len(pa.got) == 0 {
		t.Fatal("a did not hear b; the cut should be one-way")
	}
	s.Unblock("a", "b")
	s.RunFor(time.Second)
	if len(pb.got) == 0 {
		t.Fatal("b did not hear a after the link was restored")
	}
}

func TestPartitionGroups(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1})
	for _, n := range []string{"a", "b", "c", "d"} {
		s.AddHost(n, sim.HostConfig{})
	}
	s.Partition([]string{"a", "b"}, []string{"c"})
	want := map[[2]string]bool{{"a", "c"}: true, {"c", "a"}: true, {"b", "c"}: true, {"c", "b"}: true}
	for _, x := range []string{"a", "b", "c", "d"} {
		for _, y := range []string{"a", "b", "c", "d"} {
			if got := s.Blocked(x, y); got != want[[2]string{x, y}] {
				t.Errorf("blocked(%s,%s)=%v", x, y, got)
			}
		}
	}
	s.Heal()
	if s.Blocked("a", "c") {
		t.Fatal("heal left a cut")
	}
}

func TestCrashLosesActorsAndUnsyncedData(t *testing.T) {
	s := sim.New(sim.Config{Seed: 3})
	h := s.AddHost("h", sim.HostConfig{})
	p := &pinger{peer: actors.Ref{Host: "h", Name: "nobody"}, interval: time.Millisecond}
	if _, err := h.Spawn("p", p); err != nil {
		t.Fatal(err)
	}
	d := h.Disk()
	if err := d.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := d.Create("/d/f")
	f.Write([]byte("synced"))
	f.Sync()
	d.SyncDir("/d")
	f.Write([]byte("-lost"))
	s.RunFor(100 * time.Millisecond)
	sent := p.sent
	h.Crash()
	s.RunFor(100 * time.Millisecond)
	if p.sent != sent || p.stopped {
		t.Fatalf("crashed actor kept running (sent %d→%d) or got Stopped (%v)", sent, p.sent, p.stopped)
	}
	if got, _ := d.ReadFile("/d/f"); string(got) != "synced" {
		t.Fatalf("after crash the file holds %q", got)
	}
	if _, err := h.Spawn("p", &pinger{}); err == nil {
		t.Fatal("spawn on a crashed host succeeded")
	}
	h.Restart()
	p2 := &pinger{peer: actors.Ref{Host: "h", Name: "nobody"}, interval: time.Millisecond}
	if _, err := h.Spawn("p", p2); err != nil {
		t.Fatal(err)
	}
	s.RunFor(100 * time.Millisecond)
	if p2.sent == 0 {
		t.Fatal("restarted actor did not run")
	}
}

func TestDiskCostsVirtualTime(t *testing.T) {
	s := sim.New(sim.Config{Seed: 5})
	h := s.AddHost("h", sim.HostConfig{Disk: sim.DiskConfig{SyncMin: 10 * time.Millisecond, SyncMax: 10 * time.Millisecond}})
	disk := h.Disk()
	var arrivals []time.Duration
	probe, _ := h.Spawn("probe", actors.ActorFunc(func(env actors.Env, msg any) {
		if _, ok := msg.(string); ok {
			arrivals = append(arrivals, s.Now())
		}
	}))
	writer, _ := h.Spawn("w", actors.ActorFunc(func(env actors.Env, msg any) {
		if _, ok := msg.(int); !ok {
			return
		}
		f, err := disk.OpenReadWrite("/x")
		if err != nil {
			panic(err)
		}
		f.Write([]byte("x"))
		f.Sync()
		f.Close()
		env.Send(probe, "done")
	}))
	s.RunFor(time.Millisecond)
	start := s.Now()
	for i := 0; i < 3; i++ {
		h.Send(writer, i)
	}
	s.RunFor(time.Second)
	if len(arrivals) != 3 {
		t.Fatalf("got %d reports", len(arrivals))
	}
	for i, at := range arrivals {
		want := start + time.Duration(i+1)*10*time.Millisecond
		if at < want || at > want+time.Millisecond {
			t.Errorf("report %d at %v, want ≈%v (syncs serialize on the writer)", i, at-start, want-start)
		}
	}
}

func TestClockDriftAndTimers(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1})
	fast := s.AddHost("fast", sim.HostConfig{Drift: 0.01})
	slow := s.AddHost("slow", sim.HostConfig{Drift: -0.01})
	s.RunFor(100 * time.Second)
	df := fast.Now().Sub(sim.Epoch)
	ds := slow.Now().Sub(sim.Epoch)
	if df < 100900*time.Millisecond || df > 101100*time.Millisecond || ds < 98900*time.Millisecond || ds > 99100*time.Millisecond {
		t.Fatalf("after 100s: fast clock %v, slow clock %v", df, ds)
	}
	// A timer of 1s on the fast clock fires after ~0.99s of virtual time.
	var firedAt time.Duration
	fast.Spawn("t", actors.ActorFunc(func(env actors.Env, msg any) {
		switch msg.(type) {
		case actors.Started:
			env.After(time.Second, "fire")
		case string:
			firedAt = s.Now()
		}
	}))
	begin := s.Now()
	s.RunFor(2 * time.Second)
	if got := firedAt - begin; got < 985*time.Millisecond || got > 995*time.Millisecond {
		t.Fatalf("1s timer on a 1%% fast clock fired after %v", got)
	}
	fast.SetClock(-time.Hour, 0)
	if d := fast.Now().Sub(sim.Epoch); d > 100*time.Second-time.Hour+10*time.Second {
		t.Fatalf("step back did not apply: %v", d)
	}
}

func TestStoppedTimerDoesNotFire(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1})
	h := s.AddHost("h", sim.HostConfig{})
	var got []string
	h.Spawn("t", actors.ActorFunc(func(env actors.Env, msg any) {
		switch m := msg.(type) {
		case actors.Started:
			tm := env.After(10*time.Millisecond, "cancelled")
			env.After(20*time.Millisecond, "sentinel")
			if !tm.Stop() {
				t.Error("Stop of a pending timer returned false")
			}
		case string:
			got = append(got, m)
		}
	}))
	s.RunFor(time.Second)
	if len(got) != 1 || got[0] != "sentinel" {
		t.Fatalf("got %v", got)
	}
}

func TestStopDeliversStoppedChildrenFirst(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1})
	h := s.AddHost("h", sim.HostConfig{})
	var order []string
	mk := func(name string) actors.Actor {
		return actors.ActorFunc(func(env actors.Env, msg any) {
			switch msg.(type) {
			case actors.Started:
				order = append(order, "start "+name)
				if name == "parent" {
					env.Spawn("child", mkChild(&order))
				}
			case actors.Stopped:
				order = append(order, "stop "+name)
			}
		})
	}
	ref, _ := h.Spawn("parent", mk("parent"))
	s.RunFor(time.Millisecond)
	if got := h.Actors(); len(got) != 2 || got[1] != "parent/child" {
		t.Fatalf("actors %v", got)
	}
	h.Stop(ref)
	s.RunFor(time.Millisecond)
	want := "start parent,start child,stop child,stop parent"
	if got := strings.Join(order, ","); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if len(h.Actors()) != 0 {
		t.Fatalf("actors left: %v", h.Actors())
	}
}

func mkChild(order *[]string) actors.Actor {
	return actors.ActorFunc(func(env actors.Env, msg any) {
		switch msg.(type) {
		case actors.Started:
			*order = append(*order, "start child")
		case actors.Stopped:
			*order = append(*order, "stop child")
		}
	})
}

func TestPanicHandler(t *testing.T) {
	var caught []string
	s := sim.New(sim.Config{Seed: 1, OnPanic: func(ref actors.Ref, v any, _ []byte) {
		caught = append(caught, fmt.Sprintf("%v %v", ref, v))
	}})
	h := s.AddHost("h", sim.HostConfig{})
	ref, _ := h.Spawn("bad", actors.ActorFunc(func(env actors.Env, msg any) {
		if msg == "boom" {
			panic("boom")
		}
	}))
	h.Send(ref, "boom")
	h.Send(ref, "boom")
	s.RunFor(time.Millisecond)
	if len(caught) != 1 || caught[0] != "h:bad boom" {
		t.Fatalf("caught %v", caught)
	}
	if len(h.Actors()) != 0 {
		t.Fatal("panicking actor still alive")
	}
}

func TestPauseDelaysEverything(t *testing.T) {
	s, pa, _ := world(1, sim.NetConfig{})
	s.RunFor(time.Second)
	before := pa.sent
	s.Host("a").Pause(time.Second)
	s.RunFor(999 * time.Millisecond)
	if pa.sent != before {
		t.Fatalf("paused host sent %d messages", pa.sent-before)
	}
	s.RunFor(time.Second)
	if pa.sent == before {
		t.Fatal("host did not resume")
	}
}

func TestTraceWriter(t *testing.T) {
	var buf bytes.Buffer
	s := sim.New(sim.Config{Seed: 1, Trace: &buf})
	h := s.AddHost("h", sim.HostConfig{})
	h.Spawn("x", actors.ActorFunc(func(actors.Env, any) {}))
	s.RunFor(time.Millisecond)
	if !strings.Contains(buf.String(), "h:x") || !strings.Contains(buf.String(), "actors.Started") {
		t.Fatalf("trace: %q", buf.String())
	}
}

func TestLinksAreFIFOWithoutReorderFaults(t *testing.T) {
	seed := testseed.For(t)
	s, pa, pb := world(seed, sim.NetConfig{MinLatency: 100 * time.Microsecond, MaxLatency: 20 * time.Millisecond, Spike: 0.05, SpikeDelay: 50 * time.Millisecond})
	s.RunFor(10 * time.Second)
	for _, p := range []*pinger{pa, pb} {
		for i := 1; i < len(p.got); i++ {
			if p.got[i] <= p.got[i-1] {
				t.Fatalf("seed %d: message %d arrived after %d on one link", seed, p.got[i], p.got[i-1])
			}
		}
		if len(p.got) < 100 {
			t.Fatalf("only %d messages", len(p.got))
		}
	}
}
