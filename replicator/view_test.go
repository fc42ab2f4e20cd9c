package replicator

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// expectView fails unless the view reads as want, LastContact aside (the
// tests check it on their own).
func (h *harness) expectView(what string, v *View, want PeerView) PeerView {
	h.t.Helper()
	got := v.Load()
	want.LastContact = got.LastContact
	if got != want {
		h.fatalf("%s: view\n  %+v\nwant\n  %+v", what, got, want)
	}
	return got
}

// expectContact fails unless the view's LastContact lies in [from, to].
func (h *harness) expectContact(what string, v *View, from, to time.Time) time.Time {
	h.t.Helper()
	c := v.Load().LastContact
	if c.Before(from) || c.After(to) {
		h.fatalf("%s: last contact %v, want in [%v, %v]", what, c, from, to)
	}
	return c
}

// injectAt injects e and returns the leader's clock before and after.
func (h *harness) injectAt(e *raftpb.Envelope) (from, to time.Time) {
	h.t.Helper()
	from = h.L.Now()
	h.inject(e)
	return from, h.L.Now()
}

// split sorts held replies into the heartbeat replies and the append
// replies.
func split(rs []*raftpb.Envelope) (hbs, apps []*raftpb.Envelope) {
	for _, r := range rs {
		if r.GetHeartbeatResponse() != nil {
			hbs = append(hbs, r)
		} else {
			apps = append(apps, r)
		}
	}
	return hbs, apps
}

// TestViewProbeToReplicate: the view shows a probe outstanding, the probe
// moving back on a rejection, and the switch to replicate with the match
// and next the accepted probe gives; LastContact is zero until a reply is
// accepted, then the time of the latest one (a duplicate does not count).
func TestViewProbeToReplicate(t *testing.T) {
	leader := mkEntries(fixed(8), run{1, 10})
	v := &View{}
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:5],
		cfg: Config{ResendTicks: 1000, View: v},
	})
	// Published at start, before the replicator has handled a message.
	h.expectView("at start", v, PeerView{Peer: testPeer, Term: 1, Next: 11, State: "probe"})
	h.f.hold = true
	h.run(2 * time.Millisecond)
	h.expectView("first probe outstanding", v, PeerView{Peer: testPeer, Term: 1, Next: 11, State: "probe", Inflight: 1})
	if c := v.Load().LastContact; !c.IsZero() {
		h.fatalf("last contact %v before any reply, want zero", c)
	}

	hbs, apps := split(h.f.take())
	if len(hbs) != 1 || len(apps) != 1 || appendResp(apps[0]).Success {
		h.fatalf("held %v %v, want a heartbeat reply and a rejection", hbs, apps)
	}
	from, to := h.injectAt(hbs[0])
	c1 := h.expectContact("heartbeat reply", v, from, to)
	h.expectView("heartbeat reply", v, PeerView{Peer: testPeer, Term: 1, Next: 11, State: "probe", Inflight: 1})

	from, to = h.injectAt(apps[0]) // the rejection: probe again after 5, with entries 6-10
	c2 := h.expectContact("rejection", v, from, to)
	if !c2.After(c1) {
		h.fatalf("last contact %v after a rejection, not after the earlier %v", c2, c1)
	}
	h.expectView("second probe outstanding", v, PeerView{Peer: testPeer, Term: 1, Next: 6, State: "probe", Inflight: 1, InflightBytes: 5 * 32})

	_, apps = split(h.f.take())
	if len(apps) != 1 || !appendResp(apps[0]).Success {
		h.fatalf("held %v, want the probe's success", apps)
	}
	from, to = h.injectAt(apps[0])
	c3 := h.expectContact("success", v, from, to)
	h.expectView("probe accepted", v, PeerView{Peer: testPeer, Term: 1, Match: 10, Next: 11, State: "replicate"})

	h.inject(apps[0]) // a duplicate: not contact
	if c := v.Load().LastContact; !c.Equal(c3) {
		h.fatalf("last contact moved from %v to %v on a duplicate reply", c3, c)
	}
}

// TestViewWindow: in replicate, the view counts the requests outstanding
// and their bytes, and drops them as acknowledgements come, with the match
// following the acknowledgements and next the requests sent. A reader on
// another goroutine meanwhile never sees Match >= Next (the match only
// rises here).
func TestViewWindow(t *testing.T) {
	v := &View{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if pv := v.Load(); pv.Peer != "" && (pv.Match >= pv.Next || pv.Term != 2) {
				t.Errorf("concurrent load %+v: want term 2 and match < next", pv)
				return
			}
			runtime.Gosched()
		}
	}()
	defer wg.Wait()
	defer close(stop)

	h, rs := heldWindowView(t, v) // three requests of 10 entries (32 bytes each) outstanding
	p := PeerView{Peer: testPeer, Term: 2, Match: 20, Next: 51, State: "replicate", Inflight: 3, InflightBytes: 960}
	h.expectView("three requests outstanding", v, p)

	h.inject(rs[0])
	p.Match, p.Inflight, p.InflightBytes = 30, 2, 640
	h.expectView("first acknowledged", v, p)

	h.inject(rs[2]) // answers the second too
	p.Match, p.Inflight, p.InflightBytes = 50, 0, 0
	h.expectView("all acknowledged", v, p)

	h.appendLeader(mkEntriesFrom(51, fixed(8), run{2, 5}), 0)
	h.run(2 * time.Millisecond)
	p.Next, p.Inflight, p.InflightBytes = 56, 1, 5*32
	h.expectView("more entries outstanding", v, p)

	h.f.hold = false
	h.F.Send(followerRef, release{})
	h.waitConverged(time.Second)
	p.Match, p.Inflight, p.InflightBytes = 55, 0, 0
	h.expectView("converged", v, p)
}

// TestViewReadFailures: while reads of the log fail, the view counts the
// failures in a row, one more at each retry; once a read works it shows 0
// again.
func TestViewReadFailures(t *testing.T) {
	leader := mkEntries(fixed(8), run{1, 30})
	lg := &flaky{fail: 3}
	v := &View{}
	h := newHarness(t, setup{
		seed: testseed.For(t), net: fifoNet, leader: leader, follower: leader[:20],
		cfg: Config{NextIndex: 21, HeartbeatTicks: 4, ResendTicks: 8, View: v},
		log: func(l *logmgr.Log) LogReader { lg.Log = l; return lg },
	})
	if n := v.Load().ReadFailures; n != 0 {
		h.fatalf("%d read failures before any read", n)
	}
	h.run(5 * time.Millisecond) // the first read fails
	var seen []int
	for i := 0; i < 20 && len(h.node.resumed) == 0; i++ {
		n := v.Load().ReadFailures
		if n != len(h.node.readFailed) {
			h.fatalf("view shows %d read failures, %d reported", n, len(h.node.readFailed))
		}
		if len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		h.tickN(1)
	}
	if want := []int{1, 2, 3}; !slices.Equal(seen, want) {
		h.fatalf("view showed %v read failures while reads failed, want %v", seen, want)
	}
	if len(h.node.resumed) != 1 {
		h.fatalf("reads did not resume")
	}
	if n := v.Load().ReadFailures; n != 0 {
		h.fatalf("view shows %d read failures after reads resumed, want 0", n)
	}
	h.waitConverged(time.Second)
	h.expectView("converged", v, PeerView{Peer: testPeer, Term: 1, Match: 30, Next: 31, State: "replicate"})
}

// TestViewPublishAllocatesNothing: publishing is on the replication path:
// it must not allocate, whatever changed.
func TestViewPublishAllocatesNothing(t *testing.T) {
	if (&View{}).Load() != (PeerView{State: "probe"}) {
		t.Fatalf("zero view reads as %+v", (&View{}).Load())
	}
	v := &View{}
	r := New(Config{PeerID: testPeer, Term: 4, View: v})
	allocs := testing.AllocsPerRun(100, func() {
		r.match++
		r.next = r.match + 1
		r.st ^= 1
		r.inBytes++
		r.contact++
		r.failures++
		r.publish()
	})
	if allocs != 0 {
		t.Fatalf("publish allocates %v times per call", allocs)
	}
	if pv := v.Load(); pv.Peer != testPeer || pv.Term != 4 || pv.Match != r.match || pv.Next != r.next || pv.InflightBytes != r.inBytes ||
		pv.LastContact.UnixNano() != r.contact || pv.ReadFailures != r.failures || pv.State != r.st.String() {
		t.Fatalf("view %+v does not show the replicator's state", pv)
	}
}
