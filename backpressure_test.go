package asyncraft_test

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/vfs"
)

// meter is a state machine that keeps nothing but a count and a digest of
// what it applied (index and data), so that large or many commands cost
// the test no memory. Each entry costs it syncs syncs of a file on its
// host's simulated disk: that is what makes it slow in virtual time.
type meter struct {
	fsm.Base
	disk    *vfs.MemFS
	file    vfs.File
	syncs   int
	applied int
	digest  uint64
}

func (m *meter) OnApply(it fsm.Iterator) {
	for it.Next() {
		for i := 0; i < m.syncs; i++ {
			if m.file == nil {
				f, err := m.disk.OpenReadWrite("/meter")
				if err != nil {
					panic(err)
				}
				m.file = f
			}
			m.file.Sync()
		}
		h := fnv.New64a()
		h.Write(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, m.digest), it.Index()))
		h.Write(it.Data())
		m.digest = h.Sum64()
		m.applied++
		it.SetResult(it.Index())
	}
}

// meters makes a cluster's state machines meters, reachable by node id
// once the cluster exists (see wire).
type meters map[string]*meter

func (ms meters) new(id string, _ int) fsm.StateMachine {
	m := &meter{}
	ms[id] = m
	return m
}

// wire gives each meter its host's disk and syncs per entry.
func (ms meters) wire(c *cluster.Cluster, syncs int) {
	for id, m := range ms {
		m.disk, m.syncs = c.Sim.Host(id).Disk(), syncs
	}
}

// sameApplied checks that every node applied the same entries.
func (ms meters) sameApplied(t *testing.T, c *cluster.Cluster, want int) {
	t.Helper()
	first := ms[c.IDs[0]]
	for _, id := range c.IDs {
		if m := ms[id]; m.applied != want || m.digest != first.digest {
			t.Fatalf("%s applied %d entries (digest %x), want %d (digest %x)", id, m.applied, m.digest, want, first.digest)
		}
	}
}

// TestSlowStateMachineBoundsBacklogAndMemory: every state machine applies
// about 2,000 entries a second (one 500 µs sync each) and one follower's
// about 500, while proposers offer 20,000 a second. The leader's
// committed-but-unapplied backlog stays under MaxPendingTasks, the
// proposals it holds under its budget, and the surplus is refused with
// EBUSY at once. The slow follower falls further and further behind —
// thousands of entries, megabytes — yet its log cache stays within
// MaxLogCacheBytes plus what is not yet committed: the rest of its
// backlog is read back from its WAL, and it applies the same entries.
//
// Mechanisms: without the budget and the leader's hold on proposals, the
// leader's backlog and held proposals grow past MaxPendingTasks; without
// the log cache's spill, the slow follower's cache grows with its
// backlog.
func TestSlowStateMachineBoundsBacklogAndMemory(t *testing.T) {
	const (
		maxTasks = 500
		cacheCap = 512 << 10
		size     = 1024
	)
	ms := meters{}
	c := cluster.New(cluster.Options{
		Seed: testseed.For(t),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.MaxPendingTasks = maxTasks
			o.MaxLogCacheBytes = cacheCap
		},
		NewStateMachine: ms.new,
		Host: func(_ string, cfg *sim.HostConfig) {
			cfg.Disk = sim.DiskConfig{SyncMin: 500 * time.Microsecond, SyncMax: 500 * time.Microsecond, PerByte: time.Nanosecond}
		},
	})
	ms.wire(c, 1)
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	slow := c.IDs[0]
	if slow == l {
		slow = c.IDs[1]
	}
	ms[slow].syncs = 4
	// What a node may hold in its cache besides MaxLogCacheBytes: entries
	// not yet committed or not yet durable there, at most the leader's
	// proposals (MaxPendingTasks of them).
	const cacheBound = cacheCap + maxTasks*(size+24)

	data := make([]byte, size)
	o := cluster.NewOutcomes()
	doubles := closure.DoubleRuns()
	var maxBacklog, maxProposals int
	maxCached := map[string]uint64{}
	var slowBacklog uint64
	for step := 0; step < 4000; step++ { // 4 s, 20 proposals a millisecond
		for i := 0; i < 20; i++ {
			c.Node(l).Apply(asyncraft.Task{Data: data, Done: o.Closure()})
		}
		c.Sim.RunFor(time.Millisecond)
		s := c.Node(l).Status()
		maxBacklog = max(maxBacklog, int(s.Commit-s.Applied))
		maxProposals = max(maxProposals, s.Proposals)
		for _, id := range c.IDs {
			maxCached[id] = max(maxCached[id], c.Node(id).Status().CachedBytes)
		}
		fs := c.Node(slow).Status()
		slowBacklog = max(slowBacklog, fs.Commit-fs.Applied)
	}
	t.Logf("leader %s: backlog ≤ %d, proposals ≤ %d; slow follower %s: backlog ≤ %d entries; cache peaks %v; outcomes %v",
		l, maxBacklog, maxProposals, slow, slowBacklog, maxCached, o.ByCode)
	if maxBacklog > maxTasks+1 || maxProposals > maxTasks {
		t.Errorf("the leader's committed-unapplied backlog reached %d entries and it held %d proposals: want at most %d", maxBacklog, maxProposals, maxTasks)
	}
	if slowBacklog*(size+24) < 3*cacheBound {
		t.Errorf("the slow follower fell only %d entries behind: the test needs a backlog well beyond its cache bound", slowBacklog)
	}
	for id, b := range maxCached {
		if b > cacheBound {
			t.Errorf("%s held %d bytes of log in memory, want at most %d", id, b, cacheBound)
		}
	}
	if !c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() }, time.Minute) {
		t.Fatalf("%d of %d proposals completed: %v%s", o.Completed(), o.Issued(), o.ByCode, c.Describe())
	}
	if o.Double != 0 || closure.DoubleRuns() != doubles {
		t.Fatalf("closures ran twice: %d", o.Double)
	}
	if o.ByCode[closure.EBUSY] == 0 || o.ByCode[closure.OK]+o.ByCode[closure.EBUSY] != o.Issued() {
		t.Fatalf("outcomes %v of %d: want OK and EBUSY only, some of each", o.ByCode, o.Issued())
	}
	waitApplied(t, c, c.Node(l).Status().Commit, time.Minute)
	ms.sameApplied(t, c, o.ByCode[closure.OK])
	noPanics(t, c)
}

// TestLargeProposalsByteCapKeepsLeader: 100 clients propose commands of 64
// to 256 KiB, 16 MiB in flight at once, to a leader whose disk writes
// 25 MB/s and which may hold 8 MiB of proposals. The byte cap answers
// EBUSY (the count cap, 8192, is never near), the proposals held stay
// under 8 MiB, nobody campaigns and the term does not change, and every
// closure runs exactly once.
//
// Mechanism: without the byte cap, the leader holds every client's
// command and refuses none.
func TestLargeProposalsByteCapKeepsLeader(t *testing.T) {
	const maxBytes = 8 << 20
	seed := testseed.For(t)
	ms := meters{}
	c := cluster.New(cluster.Options{
		Seed: seed,
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.MaxPendingBytes = maxBytes
		},
		HostOptions:     func(_ string, o *asyncraft.HostOptions) { o.WALSegmentSize = 8 << 20 },
		NewStateMachine: ms.new,
		Host: func(_ string, cfg *sim.HostConfig) {
			cfg.Disk = sim.DiskConfig{SyncMin: 200 * time.Microsecond, SyncMax: time.Millisecond, PerByte: 40 * time.Nanosecond}
		},
	})
	ms.wire(c, 0)
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	term := c.Node(l).Status().Term
	campaigns := campaignsOf(c)
	values := largeValues(true)
	r := rand.New(rand.NewPCG(seed, 2))
	o := cluster.NewOutcomes()
	doubles := closure.DoubleRuns()
	stop := false
	var issue func()
	issue = func() {
		if stop {
			return
		}
		inner := o.Closure()
		c.Node(l).Apply(asyncraft.Task{Data: values[r.IntN(len(values))], Done: closure.Func(func(st closure.Status) {
			inner.Run(st)
			if st.Code == closure.EBUSY {
				c.Sim.At(time.Millisecond, issue) // back off, then retry
			} else {
				issue()
			}
		})})
	}
	for i := 0; i < 100; i++ {
		issue()
	}
	var maxHeld int64
	var maxCached uint64
	for step := 0; step < 1000; step++ { // 1 s
		c.Sim.RunFor(time.Millisecond)
		s := c.Node(l).Status()
		if s.Role != asyncraft.Leader || s.Term != term {
			t.Fatalf("at %v the leader %s lost its place: %v", c.Sim.Now(), l, s)
		}
		maxHeld = max(maxHeld, s.ProposalBytes)
		maxCached = max(maxCached, s.CachedBytes)
	}
	stop = true
	t.Logf("held ≤ %d bytes of proposals, log cache ≤ %d bytes; outcomes %v", maxHeld, maxCached, o.ByCode)
	if maxHeld > maxBytes {
		t.Errorf("the leader held %d bytes of proposals, over MaxPendingBytes %d", maxHeld, maxBytes)
	}
	if !c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() }, time.Minute) {
		t.Fatalf("%d of %d proposals completed: %v%s", o.Completed(), o.Issued(), o.ByCode, c.Describe())
	}
	if o.Double != 0 || closure.DoubleRuns() != doubles {
		t.Fatalf("closures ran twice: %d", o.Double)
	}
	if o.ByCode[closure.EBUSY] == 0 || o.ByCode[closure.OK] == 0 || o.ByCode[closure.OK]+o.ByCode[closure.EBUSY] != o.Issued() {
		t.Fatalf("outcomes %v of %d: want OK and EBUSY only, some of each", o.ByCode, o.Issued())
	}
	for _, id := range c.IDs {
		m := c.Node(id).Metrics()
		if s := c.Node(id).Status(); s.Term != term || m.PreVotes.Load()+m.Elections.Load() != campaigns[id] {
			t.Fatalf("%s campaigned or changed term under load: %v", id, s)
		}
	}
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	ms.sameApplied(t, c, o.ByCode[closure.OK])
	noPanics(t, c)
}

// TestCallbackBacklogBounded: every callback costs the leader's host a 1 ms
// sync on its callback executor, so the executor runs at most 1,000 a
// second, and 1,000 clients propose in a closed loop. The host may owe at
// most 100 callbacks: it never owes more (so no more can pile up in front
// of the executor), the rest are refused with EBUSY naming
// MaxPendingCallbacks, and every closure runs exactly once.
//
// Mechanism: without the host's callback slots, the node's own budget
// (8192 proposals) lets all 1,000 clients' proposals in, and the host
// owes 1,000 callbacks.
func TestCallbackBacklogBounded(t *testing.T) {
	const maxCallbacks = 100
	c := cluster.New(cluster.Options{
		Seed:        testseed.For(t),
		HostOptions: func(_ string, o *asyncraft.HostOptions) { o.MaxPendingCallbacks = maxCallbacks },
	})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Sim.Host(l).SetDisk(sim.DiskConfig{SyncMin: time.Millisecond, SyncMax: time.Millisecond})
	disk := c.Sim.Host(l).Disk()
	f, err := disk.OpenReadWrite("/callbacks")
	if err != nil {
		t.Fatal(err)
	}
	o := cluster.NewOutcomes()
	doubles := closure.DoubleRuns()
	stop := false
	busyMsg := ""
	var issue func()
	issue = func() {
		if stop {
			return
		}
		inner := o.Closure()
		c.Node(l).Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) {
			f.Sync() // a slow callback, on the executor
			inner.Run(st)
			if st.Code == closure.EBUSY {
				busyMsg = st.String()
				c.Sim.At(time.Millisecond, issue)
			} else {
				issue()
			}
		})})
	}
	for i := 0; i < 1000; i++ {
		issue()
	}
	h := c.Host(l)
	maxOwed := 0
	for step := 0; step < 2000; step++ { // 2 s
		c.Sim.RunFor(time.Millisecond)
		maxOwed = max(maxOwed, h.PendingCallbacks())
	}
	stop = true
	t.Logf("the host owed at most %d callbacks; outcomes %v", maxOwed, o.ByCode)
	if maxOwed > maxCallbacks {
		t.Errorf("the host owed %d callbacks, over MaxPendingCallbacks %d", maxOwed, maxCallbacks)
	}
	if !c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() }, time.Minute) {
		t.Fatalf("%d of %d proposals completed: %v%s", o.Completed(), o.Issued(), o.ByCode, c.Describe())
	}
	if o.Double != 0 || closure.DoubleRuns() != doubles {
		t.Fatalf("closures ran twice: %d", o.Double)
	}
	if o.ByCode[closure.EBUSY] == 0 || o.ByCode[closure.OK] == 0 || o.ByCode[closure.OK]+o.ByCode[closure.EBUSY] != o.Issued() {
		t.Fatalf("outcomes %v of %d: want OK and EBUSY only, some of each", o.ByCode, o.Issued())
	}
	if !strings.Contains(busyMsg, "MaxPendingCallbacks") {
		t.Fatalf("EBUSY said %q, want the callback bound named", busyMsg)
	}
	if got := h.PendingCallbacks(); got != 0 {
		t.Fatalf("the host still owes %d callbacks after every closure ran", got)
	}
	noPanics(t, c)
}

// TestEveryFateGivesItsShareBack: proposals that end every way — applied,
// refused by a follower (EPERM), with a stale ExpectedTerm (ESTALE), too
// large (EINVAL), queued or in flight at shutdown (ESHUTDOWN, EUNKNOWN) —
// and reads, all give back their share of the node's budget and of the
// host's callback slots once their closures have run.
func TestEveryFateGivesItsShareBack(t *testing.T) {
	c, l := newGroup(t)
	var f string
	for _, id := range c.IDs {
		if id != l {
			f = id
			break
		}
	}
	o := cluster.NewOutcomes()
	term := c.Node(l).Status().Term
	for i := 0; i < 200; i++ {
		c.Node(l).Apply(asyncraft.Task{Data: []byte("ok"), Done: o.Closure()})
		c.Node(l).Apply(asyncraft.Task{Data: []byte("stale"), ExpectedTerm: term + 1, Done: o.Closure()})
		c.Node(f).Apply(asyncraft.Task{Data: []byte("follower"), Done: o.Closure()})
		c.Node(l).Read(asyncraft.ReadRequest{Done: func(closure.Status, uint64, []byte) {}})
	}
	c.Node(l).Apply(asyncraft.Task{Data: make([]byte, 8<<20), Done: o.Closure()})
	if !c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() }, 10*time.Second) {
		t.Fatalf("%d of %d completed: %v", o.Completed(), o.Issued(), o.ByCode)
	}
	for i := 0; i < 300; i++ {
		c.Node(l).Apply(asyncraft.Task{Data: []byte("late"), Done: o.Closure()})
	}
	c.Sim.RunFor(300 * time.Microsecond) // some appended, none committed yet
	n, h := c.Node(l), c.Host(l)
	if err := c.Shutdown(l, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() && h.PendingCallbacks() == 0 }, 10*time.Second)
	if o.Double != 0 || o.Completed() != o.Issued() {
		t.Fatalf("%d of %d completed, %d twice: %v", o.Completed(), o.Issued(), o.Double, o.ByCode)
	}
	for _, code := range []closure.Code{closure.OK, closure.ESTALE, closure.EPERM, closure.EINVAL} {
		if o.ByCode[code] == 0 {
			t.Fatalf("no proposal ended with %v: %v", code, o.ByCode)
		}
	}
	for _, x := range []struct {
		id string
		n  *asyncraft.Node
		h  *asyncraft.Host
	}{{l, n, h}, {f, c.Node(f), c.Host(f)}} {
		if s := x.n.Status(); s.Proposals != 0 || s.ProposalBytes != 0 || x.h.PendingCallbacks() != 0 {
			t.Fatalf("%s: %d proposals of %d bytes still counted, the host owes %d callbacks, after every closure ran (%v)",
				x.id, s.Proposals, s.ProposalBytes, x.h.PendingCallbacks(), o.ByCode)
		}
	}
	noPanics(t, c)
}

// TestHeartbeatsGetThroughBusyLinks: the links carry 20 MB/s and deliver
// in order, so a heartbeat waits behind whatever AppendEntries its link
// already carries — as on the one connection between two hosts. 300
// clients keep 64 to 256 KiB commands coming (48 MiB wanted at once,
// 32 MiB allowed) for 3 s, more than the links can carry. Nobody
// campaigns, the term does not change, and every closure runs exactly
// once.
//
// Mechanisms, each enough alone here: a follower takes every
// AppendEntries, not only heartbeats, as word from its leader (and the
// leader every reply as contact, for check-quorum); and the replicator's
// window (MaxInflightBytes, 8 MiB) bounds what a heartbeat can wait
// behind on a link to 0.4 s of this one. With both gone — only heartbeats
// resetting a follower's election timer, and the former 32 MiB window
// (1.6 s of this link) — the followers campaign.
func TestHeartbeatsGetThroughBusyLinks(t *testing.T) {
	seed := testseed.For(t)
	ms := meters{}
	net := sim.DefaultNet
	net.Bandwidth = 20e6
	c := cluster.New(cluster.Options{
		Seed:            seed,
		Net:             net,
		HostOptions:     func(_ string, o *asyncraft.HostOptions) { o.WALSegmentSize = 8 << 20 },
		NewStateMachine: ms.new,
	})
	ms.wire(c, 0)
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	term := c.Node(l).Status().Term
	campaigns := campaignsOf(c)
	values := largeValues(false)
	r := rand.New(rand.NewPCG(seed, 2))
	o := cluster.NewOutcomes()
	doubles := closure.DoubleRuns()
	stop := false
	var issue func()
	issue = func() {
		if stop || c.Node(l) == nil {
			return
		}
		inner := o.Closure()
		c.Node(l).Apply(asyncraft.Task{Data: values[r.IntN(len(values))], Done: closure.Func(func(st closure.Status) {
			inner.Run(st)
			if st.Code == closure.EBUSY {
				c.Sim.At(10*time.Millisecond, issue) // back off, then retry
			} else {
				issue()
			}
		})})
	}
	for i := 0; i < 300; i++ {
		issue()
	}
	lost := ""
	for step := 0; step < 3000 && lost == ""; step++ { // 3 s
		c.Sim.RunFor(time.Millisecond)
		for _, id := range c.IDs {
			m := c.Node(id).Metrics()
			if s := c.Node(id).Status(); s.Term != term || m.PreVotes.Load()+m.Elections.Load() != campaigns[id] {
				lost = fmt.Sprintf("at %v %s campaigned or changed term: %v", c.Sim.Now(), id, s)
			}
		}
	}
	stop = true
	t.Logf("outcomes %v; leader %v", o.ByCode, c.Node(l).Status())
	if lost != "" {
		t.Fatal(lost)
	}
	if !c.Sim.RunUntil(func() bool { return o.Completed() == o.Issued() }, time.Minute) {
		t.Fatalf("%d of %d proposals completed: %v%s", o.Completed(), o.Issued(), o.ByCode, c.Describe())
	}
	if o.Double != 0 || closure.DoubleRuns() != doubles {
		t.Fatalf("closures ran twice: %d", o.Double)
	}
	if o.ByCode[closure.OK] == 0 || o.ByCode[closure.OK]+o.ByCode[closure.EBUSY] != o.Issued() {
		t.Fatalf("outcomes %v of %d: want OK and EBUSY only", o.ByCode, o.Issued())
	}
	noPanics(t, c)
}

// TestNewLeaderHoldsProposalsBehindItsBacklog: both followers' state
// machines apply 500 entries a second while the leader's applies 2,000, so
// they fall thousands of entries behind. The leader crashes and a follower
// takes over with that backlog committed and unapplied. New proposals stay
// queued — the log does not grow past the new leader's no-op — until its
// state machine is within MaxPendingTasks of its commit index; then they
// are appended and applied, each closure once.
//
// Mechanism: without the leader's hold on proposals (holdProposals), they
// are appended at once behind the backlog.
func TestNewLeaderHoldsProposalsBehindItsBacklog(t *testing.T) {
	const maxTasks = 500
	ms := meters{}
	c := cluster.New(cluster.Options{
		Seed:            testseed.For(t),
		Node:            func(o *asyncraft.NodeOptions, _ *sim.Host) { o.MaxPendingTasks = maxTasks },
		NewStateMachine: ms.new,
		Host: func(_ string, cfg *sim.HostConfig) {
			cfg.Disk = sim.DiskConfig{SyncMin: 500 * time.Microsecond, SyncMax: 500 * time.Microsecond, PerByte: time.Nanosecond}
		},
	})
	ms.wire(c, 4)
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ms[l].syncs = 1
	o := cluster.NewOutcomes()
	for step := 0; step < 4000; step++ {
		for i := 0; i < 5; i++ {
			c.Node(l).Apply(asyncraft.Task{Data: []byte("before"), Done: o.Closure()})
		}
		c.Sim.RunFor(time.Millisecond)
	}
	c.Crash(l)
	nl, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Sim.RunUntil(func() bool { s := c.Node(nl).Status(); return s.Commit == s.LastIndex }, 5*time.Second)
	// (Status.Applied already shows the end of the apply pass under way:
	// the simulator runs a pass at once and charges its time after.)
	noop := c.Node(nl).Status().LastIndex
	after := cluster.NewOutcomes()
	for i := 0; i < 100; i++ {
		c.Node(nl).Apply(asyncraft.Task{Data: []byte("after"), Done: after.Closure()})
	}
	c.Sim.RunFor(50 * time.Millisecond)
	if s := c.Node(nl).Status(); s.LastIndex != noop || s.PendingTasks != 100 {
		t.Fatalf("the new leader appended up to %d (its no-op is %d) and holds %d proposals queued, want 100", s.LastIndex, noop, s.PendingTasks)
	}
	held := c.Sim.Now()
	c.Sim.RunUntil(func() bool { return c.Node(nl).Status().LastIndex > noop }, time.Minute)
	t.Logf("the new leader held its proposals for %v, until its state machine caught up", c.Sim.Now()-held)
	if !c.Sim.RunUntil(func() bool { return after.Completed() == 100 }, time.Minute) {
		t.Fatalf("%d of 100 proposals completed: %v%s", after.Completed(), after.ByCode, c.Describe())
	}
	if after.ByCode[closure.OK] != 100 || after.Double != 0 {
		t.Fatalf("outcomes %v, %d twice", after.ByCode, after.Double)
	}
	noPanics(t, c)
}

// campaignsOf counts every member's pre-votes and elections so far.
func campaignsOf(c *cluster.Cluster) map[string]uint64 {
	campaigns := map[string]uint64{}
	for _, id := range c.IDs {
		m := c.Node(id).Metrics()
		campaigns[id] = m.PreVotes.Load() + m.Elections.Load()
	}
	return campaigns
}

// largeValues are commands of 64, 128, 192 and 256 KiB, shared by every
// proposal; filled, their bytes differ from one command to the next.
func largeValues(filled bool) [][]byte {
	values := make([][]byte, 4)
	for i := range values {
		values[i] = make([]byte, (i+1)<<16)
		if !filled {
			continue
		}
		for j := range values[i] {
			values[i][j] = byte(i + j)
		}
	}
	return values
}
