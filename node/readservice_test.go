package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Unit tests of the read service (readservice.go), without a cluster: each
// builds a readService literal, feeds it times and indexes, and runs the
// completions it puts in out, as the host's executor would.

// probe is one read and what its closure received.
type probe struct {
	name  string
	task  *ReadTask
	runs  int
	st    closure.Status
	index uint64
}

// rsHarness owns a readService and the batch it completes into.
type rsHarness struct {
	t      *testing.T
	out    closure.Batch
	s      *readService
	probes map[*closure.Guard]*probe
}

func newHarness(t *testing.T, s readService) *rsHarness {
	t.Helper()
	h := &rsHarness{t: t, s: &s, probes: map[*closure.Guard]*probe{}}
	h.s.out = &h.out
	return h
}

// read makes a ReadTask of mode whose closure records into its probe.
func (h *rsHarness) read(name string, mode ReadMode) *probe {
	p := &probe{name: name}
	p.task = &ReadTask{Mode: mode, Fn: func(st closure.Status, index uint64, ctx []byte) {
		p.runs++
		p.st, p.index = st, index
		if string(ctx) != name {
			h.t.Errorf("read %s: got context %q", name, ctx)
		}
	}, Context: []byte(name)}
	p.task.Init(p.task)
	h.probes[&p.task.Guard] = p
	return p
}

func (h *rsHarness) reads(mode ReadMode, names ...string) []*probe {
	ps := make([]*probe, len(names))
	for i, n := range names {
		ps[i] = h.read(n, mode)
	}
	return ps
}

func tasks(ps ...*probe) []*ReadTask {
	ts := make([]*ReadTask, len(ps))
	for i, p := range ps {
		ts[i] = p.task
	}
	return ts
}

// run runs the completions held in out, in order, and returns the reads
// they completed; each read must complete at most once.
func (h *rsHarness) run() []*probe {
	h.t.Helper()
	var done []*probe
	for _, c := range h.out {
		g, ok := c.Closure.(*closure.Guard)
		if !ok {
			h.t.Fatalf("completion of a %T, not a read's Guard", c.Closure)
		}
		p := h.probes[g]
		if p == nil {
			h.t.Fatalf("completion of an unknown read")
		}
		if g.Ran() {
			h.t.Fatalf("read %s completed twice", p.name)
		}
		c.Closure.Run(c.Status)
		if p.runs != 1 {
			h.t.Fatalf("read %s ran %d times", p.name, p.runs)
		}
		done = append(done, p)
	}
	h.out = h.out[:0]
	return done
}

// expectDone runs the completions and checks that exactly want completed,
// in that order, with code (and, for OK, index).
func (h *rsHarness) expectDone(what string, code closure.Code, index uint64, want ...*probe) {
	h.t.Helper()
	done := h.run()
	if names(done) != names(want) {
		h.t.Fatalf("%s: completed %s, want %s", what, names(done), names(want))
	}
	for _, p := range done {
		if p.st.Code != code {
			h.t.Errorf("%s: read %s completed with %v, want %v", what, p.name, p.st, code)
		}
		if code == closure.OK && p.index != index {
			h.t.Errorf("%s: read %s got index %d, want %d", what, p.name, p.index, index)
		}
	}
}

// expectNone checks that no read completed.
func (h *rsHarness) expectNone(what string) {
	h.t.Helper()
	if done := h.run(); len(done) > 0 {
		h.t.Fatalf("%s: completed %s, want none (first with %v)", what, names(done), done[0].st)
	}
}

func names(ps []*probe) string {
	s := "["
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.name
	}
	return s + "]"
}

// takeAnswers copies the answers owed (the service reuses their array).
func (h *rsHarness) takeAnswers() []readAnswer { return slices.Clone(h.s.takeAnswers()) }

func (h *rsHarness) expectAnswers(what string, want ...readAnswer) {
	h.t.Helper()
	got := h.takeAnswers()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Fatalf("%s: answers %+v, want %+v", what, got, want)
	}
}

func ok(to string, batch, index uint64) readAnswer {
	return readAnswer{to: to, batch: batch, ok: true, index: index, code: closure.OK}
}

func TestReadServiceLeadBeforeTermCommitted(t *testing.T) {
	// A new leader's commit index may lag what earlier leaders committed
	// until an entry of its own term commits: every read is refused, in
	// every mode, lease or not; from commit == termStart on they are not.
	for _, commit := range []uint64{4, 5} {
		for _, m := range []ReadMode{ReadDefault, ReadSafe, ReadLease} {
			t.Run(fmt.Sprintf("commit%d/%v", commit, m), func(t *testing.T) {
				h := newHarness(t, readService{mode: ReadLease, lease: 50, leaseUntil: 1000})
				ps := h.reads(m, "a", "b")
				h.s.lead(tasks(ps...), 100, commit, commit, 5)
				if commit < 5 {
					h.expectDone("lead", closure.EAGAIN, 0, ps...)
					if len(h.s.waiting)+len(h.s.applying) != 0 {
						t.Fatalf("refused reads kept: waiting %d, applying %d", len(h.s.waiting), len(h.s.applying))
					}
					return
				}
				done := h.run()
				for _, p := range done {
					if p.st.Code != closure.OK {
						t.Fatalf("read %s refused with %v at commit == termStart", p.name, p.st)
					}
				}
				if len(done)+len(h.s.waiting) != len(ps) {
					t.Fatalf("completed %d and waiting %d of %d reads", len(done), len(h.s.waiting), len(ps))
				}
			})
		}
	}
}

func TestReadServiceLeadSafe(t *testing.T) {
	// Safe reads take the commit index, wait for a quorum round answered
	// at or after their registration, then for the apply of their index.
	cases := []struct {
		name    string
		svc     ReadMode // the node's default
		mode    ReadMode
		applied uint64
	}{
		{"safe/applied", ReadLease, ReadSafe, 10},
		{"safe/behind", ReadLease, ReadSafe, 7},
		{"default-safe/applied", ReadSafe, ReadDefault, 10},
		{"default-safe/behind", ReadSafe, ReadDefault, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A valid lease must not matter to a safe read.
			h := newHarness(t, readService{mode: c.svc, lease: 50, leaseUntil: 1000})
			const commit, termStart = 10, 6
			early := h.reads(c.mode, "e1", "e2")
			h.s.lead(tasks(early...), 100, commit, c.applied, termStart)
			h.expectNone("lead")
			late := h.reads(c.mode, "l1")
			h.s.lead(tasks(late...), 130, commit+2, c.applied, termStart)
			h.expectNone("lead late")
			if got := len(h.s.waiting); got != 3 {
				t.Fatalf("%d reads waiting for a round, want 3", got)
			}

			h.s.confirm(99, 200, c.applied) // answered before they registered
			h.expectNone("confirm(99)")

			h.s.confirm(100, 200, c.applied) // registered at q: confirmed
			if c.applied >= commit {
				h.expectDone("confirm(100)", closure.OK, commit, early...)
			} else {
				h.expectNone("confirm(100) before apply")
				h.s.applied(commit - 1)
				h.expectNone("applied(commit-1)")
				h.s.applied(commit)
				h.expectDone("applied(commit)", closure.OK, commit, early...)
			}
			if len(h.s.waiting) != 1 || h.s.waiting[0] != late[0].task {
				t.Fatalf("the read registered after q is not the one left waiting")
			}
			h.s.confirm(130, 200, commit+2)
			h.expectDone("confirm(130)", closure.OK, commit+2, late...)
			h.s.checkInvariants(commit+2, true)
		})
	}
}

func TestReadServiceLeadLease(t *testing.T) {
	const commit, termStart = 20, 10
	cases := []struct {
		name       string
		svc, mode  ReadMode
		leaseUntil uint64
		applied    uint64
		// outcome
		atOnce   bool   // completes in lead, with index = applied
		applyFor uint64 // else, if non-zero: waits for the apply of this index
		// else waits for a round
	}{
		{"valid/applied-term", ReadSafe, ReadLease, 101, 15, true, 0},
		{"valid/applied-termStart", ReadSafe, ReadLease, 101, termStart, true, 0},
		{"default-lease/valid", ReadLease, ReadDefault, 101, 18, true, 0},
		{"valid/applied-before-term", ReadSafe, ReadLease, 101, termStart - 1, false, commit},
		{"expired/at-now", ReadSafe, ReadLease, 100, 15, false, 0},
		{"expired/before-now", ReadSafe, ReadLease, 50, 15, false, 0},
		{"default-lease/expired", ReadLease, ReadDefault, 100, 15, false, 0},
		{"none", ReadSafe, ReadLease, 0, 15, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{mode: c.svc, lease: 50, leaseUntil: c.leaseUntil})
			ps := h.reads(c.mode, "a", "b", "c")
			h.s.lead(tasks(ps...), 100, commit, c.applied, termStart)
			switch {
			case c.atOnce:
				h.expectDone("lead", closure.OK, c.applied, ps...)
				if len(h.s.waiting)+len(h.s.applying) != 0 {
					t.Fatal("a wait-free read was also kept")
				}
			case c.applyFor != 0:
				h.expectNone("lead")
				if len(h.s.waiting) != 0 {
					t.Fatal("a read under a valid lease waits for a round")
				}
				h.s.applied(c.applyFor - 1)
				h.expectNone("applied(commit-1)")
				h.s.applied(c.applyFor)
				h.expectDone("applied(commit)", closure.OK, c.applyFor, ps...)
			default:
				h.expectNone("lead")
				if len(h.s.waiting) != len(ps) || len(h.s.applying) != 0 {
					t.Fatalf("waiting %d, applying %d: want every read waiting for a round", len(h.s.waiting), len(h.s.applying))
				}
				if !h.s.roundNeeded(0) {
					t.Fatal("no round asked for reads without a lease")
				}
				h.s.confirm(100, 150, commit)
				h.expectDone("confirm", closure.OK, commit, ps...)
			}
		})
	}
}

func TestReadServiceLeaseValid(t *testing.T) {
	s := readService{leaseUntil: 100}
	for _, c := range []struct {
		now  uint64
		want bool
	}{{0, true}, {99, true}, {100, false}, {101, false}} {
		if got := s.leaseValid(c.now); got != c.want {
			t.Errorf("leaseUntil 100: leaseValid(%d) = %v, want %v", c.now, got, c.want)
		}
	}
	if (&readService{}).leaseValid(0) {
		t.Error("no lease is valid at 0")
	}
}

func TestReadServiceConfirmLease(t *testing.T) {
	cases := []struct {
		name        string
		lease, from uint64 // lease length, leaseUntil before
		q, now      uint64
		want        uint64 // leaseUntil after
	}{
		{"first", 50, 0, 100, 120, 150},
		{"extends", 50, 140, 100, 120, 150},
		{"q just before now", 50, 0, 119, 120, 169},
		{"q at now", 50, 0, 120, 120, 0},
		{"q after now", 50, 0, 121, 120, 0},
		{"no later than the lease", 50, 150, 100, 120, 150},
		{"never shortens", 50, 200, 100, 120, 200},
		{"stickiness off", 0, 0, 100, 120, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{lease: c.lease, leaseUntil: c.from})
			changed := h.s.confirm(c.q, c.now, 0)
			if h.s.leaseUntil != c.want {
				t.Fatalf("leaseUntil %d, want %d", h.s.leaseUntil, c.want)
			}
			if changed != (c.want != c.from) {
				t.Fatalf("confirm reported leaseChanged=%v, lease %d -> %d", changed, c.from, c.want)
			}
		})
	}
}

func TestReadServiceConfirmedLeaseServesLeaseReads(t *testing.T) {
	// The lease confirm grants is the one lead and serve use, up to its
	// end exclusive.
	h := newHarness(t, readService{mode: ReadLease, lease: 50})
	h.s.confirm(100, 120, 0) // lease until 150
	a := h.read("a", ReadLease)
	h.s.lead(tasks(a), 149, 30, 30, 1)
	h.expectDone("lead at 149", closure.OK, 30, a)
	b := h.read("b", ReadLease)
	h.s.lead(tasks(b), 150, 30, 30, 1)
	h.expectNone("lead at 150")
	h.s.serve("n2", 1, true, 149, 30)
	h.s.serve("n2", 2, true, 150, 31)
	h.expectAnswers("serve", ok("n2", 1, 30))
	if len(h.s.remote) != 1 || h.s.remote[0].batch != 2 {
		t.Fatalf("remote %+v, want batch 2 waiting", h.s.remote)
	}
}

func TestReadServiceRoundNeeded(t *testing.T) {
	type step struct {
		local  uint64 // register a local safe read at this time (0: none)
		remote uint64 // register a follower's safe batch at this time (0: none)
		sent   uint64 // then a round is sent at this time (0: none)
	}
	cases := []struct {
		name  string
		steps []step
		q     uint64
		want  bool
	}{
		{"no reads", nil, 0, false},
		{"no reads, answered round", []step{{sent: 50}}, 60, false},
		{"local after no round", []step{{local: 100}}, 0, true},
		{"remote after no round", []step{{remote: 100}}, 0, true},
		{"local after the round", []step{{sent: 50}, {local: 100}}, 40, true},
		{"remote after the round", []step{{sent: 50}, {remote: 100}}, 40, true},
		{"round in flight", []step{{local: 100, sent: 110}}, 105, false},
		{"round in flight, remote", []step{{remote: 100, sent: 110}}, 105, false},
		{"round sent at registration", []step{{local: 100, sent: 100}}, 99, false},
		{"round answered", []step{{local: 100, sent: 110}}, 110, true},
		{"round answered later", []step{{remote: 100, sent: 110}}, 130, true},
		{"newer reads wait for the round in flight", []step{{local: 100, sent: 110}, {local: 120}}, 105, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{mode: ReadSafe})
			batch := uint64(0)
			for i, st := range c.steps {
				if st.local != 0 {
					h.s.lead(tasks(h.read(fmt.Sprint("r", i), ReadSafe)), st.local, 5, 5, 1)
				}
				if st.remote != 0 {
					batch++
					h.s.serve("n2", batch, false, st.remote, 5)
				}
				if st.sent != 0 {
					h.s.roundSent(st.sent)
				}
			}
			h.expectNone("registration")
			if got := h.s.roundNeeded(c.q); got != c.want {
				t.Fatalf("roundNeeded(%d) = %v, want %v", c.q, got, c.want)
			}
		})
	}
}

func TestReadServiceServe(t *testing.T) {
	t.Run("lease batch, valid lease", func(t *testing.T) {
		h := newHarness(t, readService{lease: 50, leaseUntil: 200})
		h.s.serve("n2", 7, true, 150, 42)
		h.expectAnswers("serve", ok("n2", 7, 42))
		if len(h.s.remote) != 0 {
			t.Fatal("an answered batch is also kept")
		}
	})
	for _, c := range []struct {
		name       string
		lease      bool
		leaseUntil uint64
	}{
		{"lease batch, expired lease", true, 150},
		{"lease batch, no lease", true, 0},
		{"safe batch, valid lease", false, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{lease: 50, leaseUntil: c.leaseUntil})
			h.s.serve("n2", 1, c.lease, 150, 40)
			h.s.serve("n3", 9, c.lease, 160, 41)
			h.s.serve("n2", 2, c.lease, 170, 43)
			h.expectAnswers("serve")
			h.s.confirm(149, 300, 0)
			h.expectAnswers("confirm(149)")
			h.s.confirm(160, 300, 0)
			h.expectAnswers("confirm(160)", ok("n2", 1, 40), ok("n3", 9, 41))
			h.s.confirm(170, 300, 0)
			h.expectAnswers("confirm(170)", ok("n2", 2, 43))
			if len(h.s.remote) != 0 {
				t.Fatalf("remote %+v after every batch was answered", h.s.remote)
			}
			h.expectNone("serve") // no local read is involved
		})
	}
	t.Run("refuse", func(t *testing.T) {
		h := newHarness(t, readService{})
		h.s.refuse("n2", 3, closure.EAGAIN)
		h.s.refuse("n3", 4, closure.EINVAL)
		h.expectAnswers("refuse",
			readAnswer{to: "n2", batch: 3, code: closure.EAGAIN},
			readAnswer{to: "n3", batch: 4, code: closure.EINVAL})
		h.expectAnswers("again")
	})
}

func TestReadServiceForward(t *testing.T) {
	type sent struct {
		batch uint64
		lease bool
	}
	cases := []struct {
		name  string
		svc   ReadMode
		modes []ReadMode
		want  []sent
		// the reads of each batch, by position in modes
		members [][]int
	}{
		{"empty", ReadSafe, nil, nil, nil},
		{"safe only", ReadSafe, []ReadMode{ReadSafe, ReadDefault}, []sent{{1, false}}, [][]int{{0, 1}}},
		{"lease only", ReadSafe, []ReadMode{ReadLease, ReadLease}, []sent{{1, true}}, [][]int{{0, 1}}},
		{"mixed, default safe", ReadSafe,
			[]ReadMode{ReadLease, ReadSafe, ReadDefault, ReadLease, ReadSafe},
			[]sent{{1, false}, {2, true}}, [][]int{{1, 2, 4}, {0, 3}}},
		{"mixed, default lease", ReadLease,
			[]ReadMode{ReadLease, ReadSafe, ReadDefault, ReadLease, ReadSafe},
			[]sent{{1, false}, {2, true}}, [][]int{{1, 4}, {0, 2, 3}}},
		{"default lease only", ReadLease, []ReadMode{ReadDefault}, []sent{{1, true}}, [][]int{{0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{mode: c.svc, timeout: 5})
			var ps []*probe
			for i, m := range c.modes {
				ps = append(ps, h.read(fmt.Sprint("r", i), m))
			}
			h.s.arrived(tasks(ps...), 10)
			var got []sent
			h.s.forward(tasks(ps...), func(batch uint64, lease bool) { got = append(got, sent{batch, lease}) })
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("sent %v, want %v", got, c.want)
			}
			if len(h.s.forwarded) != len(c.want) {
				t.Fatalf("%d batches held, want %d", len(h.s.forwarded), len(c.want))
			}
			for i, f := range h.s.forwarded {
				if f.batch != c.want[i].batch {
					t.Errorf("batch %d held as %d", c.want[i].batch, f.batch)
				}
				var want []*ReadTask
				for _, j := range c.members[i] {
					want = append(want, ps[j].task)
				}
				if !slices.Equal(f.tasks, want) {
					t.Errorf("batch %d holds the wrong reads", f.batch)
				}
				if f.expire != 15 {
					t.Errorf("batch %d expires at %d, want 15", f.batch, f.expire)
				}
			}
			h.expectNone("forward")

			// The next forward continues the ids.
			more := h.read("more", ReadSafe)
			var next []sent
			h.s.forward(tasks(more), func(batch uint64, lease bool) { next = append(next, sent{batch, lease}) })
			if len(next) != 1 || next[0].batch != uint64(len(c.want))+1 || next[0].lease {
				t.Fatalf("next forward sent %v, want batch %d", next, len(c.want)+1)
			}
			h.s.checkInvariants(0, false)
		})
	}
}

func TestReadServiceAnswered(t *testing.T) {
	const leader = "n1"
	cases := []struct {
		name    string
		lag     uint64
		applied uint64
		success bool
		index   uint64
		failure closure.Code // the leader's code
		code    closure.Code // outcome once applied reaches the index
		waits   bool         // waits for the apply first
	}{
		{"ok, applied", 0, 30, true, 30, closure.OK, closure.OK, false},
		{"ok, behind", 0, 10, true, 30, closure.OK, closure.OK, true},
		{"ok, within lag", 20, 10, true, 30, closure.OK, closure.OK, true},
		{"ok, beyond lag", 19, 10, true, 30, closure.OK, closure.EAGAIN, false},
		{"not leader", 0, 10, false, 0, closure.EPERM, closure.EPERM, false},
		{"cannot yet", 0, 10, false, 0, closure.EAGAIN, closure.EAGAIN, false},
		{"lease refused", 0, 10, false, 0, closure.EINVAL, closure.EINVAL, false},
		{"failure without a code", 0, 10, false, 30, closure.OK, closure.EINTERNAL, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{mode: ReadSafe, lag: c.lag, timeout: 5})
			ps := h.reads(ReadSafe, "a", "b")
			other := h.read("other", ReadLease)
			h.s.forward(tasks(append(ps, other)...), func(uint64, bool) {})
			answer := func(batch uint64) *raftpb.ReadIndexResponse {
				return &raftpb.ReadIndexResponse{Batch: batch, Success: c.success, Index: c.index, Code: int32(c.failure)}
			}
			resp := answer(1)
			h.s.answered(answer(0), c.applied, leader) // never sent
			h.s.answered(answer(3), c.applied, leader) // not yet sent
			h.expectNone("unknown batch")
			if len(h.s.forwarded) != 2 {
				t.Fatalf("%d batches held after unknown answers, want 2", len(h.s.forwarded))
			}

			h.s.answered(resp, c.applied, leader)
			if c.waits {
				h.expectNone("answered")
				h.s.applied(resp.Index - 1)
				h.expectNone("applied(index-1)")
				h.s.applied(resp.Index)
			}
			h.expectDone("answered", c.code, resp.Index, ps...)
			if c.code == closure.EPERM && ps[0].st.Leader != leader {
				t.Errorf("refusal names leader %q, want %q", ps[0].st.Leader, leader)
			}

			// A duplicate answer completes nothing; the other batch is
			// still held.
			h.s.answered(answer(1), resp.Index, leader)
			h.expectNone("duplicate")
			if len(h.s.forwarded) != 1 || h.s.forwarded[0].tasks[0] != other.task {
				t.Fatal("the other batch was not kept")
			}
			h.s.answered(&raftpb.ReadIndexResponse{Batch: 2, Success: true, Index: 3}, 3, leader)
			h.expectDone("other", closure.OK, 3, other)
			h.s.checkInvariants(3, false)
		})
	}
}

func TestReadServiceExpire(t *testing.T) {
	// Reads arrive at tick 10 with a 5-tick timeout: their deadline is 15,
	// and they time out only at a tick strictly after it.
	const arrival, timeout = 10, 5
	setups := []struct {
		name string
		hold func(h *rsHarness, ts []*ReadTask)
		held func(s *readService) int
	}{
		{"waiting", func(h *rsHarness, ts []*ReadTask) {
			h.s.lead(ts, 100, 20, 20, 1)
		}, func(s *readService) int { return len(s.waiting) }},
		{"forwarded", func(h *rsHarness, ts []*ReadTask) {
			h.s.forward(ts, func(uint64, bool) {})
		}, func(s *readService) int {
			n := 0
			for _, f := range s.forwarded {
				n += len(f.tasks)
			}
			return n
		}},
		{"applying", func(h *rsHarness, ts []*ReadTask) {
			h.s.lead(ts, 100, 20, 10, 1)
			h.s.confirm(100, 200, 10)
		}, func(s *readService) int { return len(s.applying) }},
	}
	for _, c := range setups {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, readService{mode: ReadSafe, timeout: timeout})
			old := h.reads(ReadSafe, "o1", "o2")
			h.s.arrived(tasks(old...), arrival)
			c.hold(h, tasks(old...))
			young := h.reads(ReadSafe, "y1")
			h.s.arrived(tasks(young...), arrival+1)
			c.hold(h, tasks(young...))
			h.expectNone("hold")
			if n := c.held(h.s); n != 3 {
				t.Fatalf("%d reads held, want 3", n)
			}
			h.s.expire(arrival + timeout)
			h.expectNone("expire at the deadline")
			h.s.expire(arrival + timeout + 1)
			h.expectDone("expire after the deadline", closure.ETIMEDOUT, 0, old...)
			if n := c.held(h.s); n != 1 {
				t.Fatalf("%d reads held after the first expired, want 1", n)
			}
			h.s.expire(arrival + timeout + 2)
			h.expectDone("expire after the young deadline", closure.ETIMEDOUT, 0, young...)
			if n := c.held(h.s); n != 0 {
				t.Fatalf("%d reads held after all expired", n)
			}
		})
	}
}

func TestReadServiceStopLeading(t *testing.T) {
	h := newHarness(t, readService{mode: ReadSafe, lease: 50})
	h.s.confirm(100, 120, 0) // lease until 150
	applying := h.read("applying", ReadLease)
	h.s.lead(tasks(applying), 110, 30, 5, 10) // valid lease, not yet applied the term's start
	waiting := h.reads(ReadSafe, "w1", "w2")
	h.s.lead(tasks(waiting...), 115, 30, 5, 10)
	h.s.serve("n2", 4, false, 116, 30)
	h.s.serve("n3", 8, true, 200, 30) // lease expired: waits
	h.s.roundSent(117)
	h.expectNone("lead")
	h.expectAnswers("serve")

	h.s.stopLeading()
	h.expectDone("stopLeading", closure.EPERM, 0, waiting...)
	h.expectAnswers("stopLeading",
		readAnswer{to: "n2", batch: 4, code: closure.EPERM},
		readAnswer{to: "n3", batch: 8, code: closure.EPERM})
	if h.s.leaseValid(120) || h.s.leaseUntil != 0 || h.s.beatAt != 0 {
		t.Fatalf("lease until %d, round at %d after stopLeading", h.s.leaseUntil, h.s.beatAt)
	}
	if h.s.roundNeeded(1000) {
		t.Fatal("a round asked for after stopLeading")
	}
	h.s.checkInvariants(5, false)

	// The read with an index still completes once it is applied.
	h.s.applied(29)
	h.expectNone("applied(29)")
	h.s.applied(30)
	h.expectDone("applied(30)", closure.OK, 30, applying)
}

func TestReadServiceFailAll(t *testing.T) {
	h := newHarness(t, readService{mode: ReadSafe, lease: 50, leaseUntil: 150})
	applying := h.read("applying", ReadLease)
	h.s.lead(tasks(applying), 110, 30, 5, 10)
	waiting := h.read("waiting", ReadSafe)
	h.s.lead(tasks(waiting), 115, 30, 5, 10)
	fwdSafe, fwdLease := h.read("fwd-safe", ReadSafe), h.read("fwd-lease", ReadLease)
	h.s.forward(tasks(fwdLease, fwdSafe), func(uint64, bool) {})
	h.s.serve("n2", 4, false, 116, 30)
	h.expectNone("setup")

	h.s.failAll(closure.Newf(closure.ESHUTDOWN, "shutdown"))
	h.expectDone("failAll", closure.ESHUTDOWN, 0, waiting, applying, fwdSafe, fwdLease)
	if len(h.s.waiting)+len(h.s.applying)+len(h.s.remote)+len(h.s.forwarded) != 0 {
		t.Fatal("reads held after failAll")
	}
	h.s.applied(100)
	h.s.expire(1000)
	h.expectNone("after failAll")
}

// violates reports whether f reported an invariant violation: with the
// invariants tag (or -race) by panicking, otherwise by counting it.
func violates(t *testing.T, f func()) (violated bool) {
	t.Helper()
	before := invariants.Violations()
	defer func() {
		if r := recover(); r != nil {
			if !invariants.Enabled {
				panic(r)
			}
			violated = true
			return
		}
		if !invariants.Enabled {
			violated = invariants.Violations() > before
		}
	}()
	f()
	return false
}

func TestReadServiceCheckInvariants(t *testing.T) {
	task := func(index, regAt uint64) *ReadTask { return &ReadTask{index: index, regAt: regAt} }
	cases := []struct {
		name    string
		s       readService
		applied uint64
		leader  bool
		want    bool
	}{
		{"empty follower", readService{}, 0, false, false},
		{"leader in order", readService{
			waiting:    []*ReadTask{task(5, 10), task(5, 10), task(6, 11)},
			remote:     []remoteRead{{regAt: 10}, {regAt: 12}},
			applying:   []*ReadTask{task(8, 0)},
			forwarded:  []*forwarded{{batch: 1}, {batch: 3}},
			leaseUntil: 100,
		}, 7, true, false},
		{"follower applying and forwarding", readService{
			applying:  []*ReadTask{task(8, 0)},
			forwarded: []*forwarded{{batch: 2}},
		}, 7, false, false},
		{"waiting out of order", readService{waiting: []*ReadTask{task(5, 11), task(5, 10)}}, 0, true, true},
		{"remote out of order", readService{remote: []remoteRead{{regAt: 12}, {regAt: 10}}}, 0, true, true},
		{"forwarded out of order", readService{forwarded: []*forwarded{{batch: 3}, {batch: 2}}}, 0, false, true},
		{"forwarded twice", readService{forwarded: []*forwarded{{batch: 2}, {batch: 2}}}, 0, false, true},
		{"applying read applied", readService{applying: []*ReadTask{task(8, 0), task(7, 0)}}, 7, true, true},
		{"follower with waiting reads", readService{waiting: []*ReadTask{task(5, 10)}}, 0, false, true},
		{"follower with remote batches", readService{remote: []remoteRead{{regAt: 10}}}, 0, false, true},
		{"follower with a lease", readService{leaseUntil: 1}, 0, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := violates(t, func() { c.s.checkInvariants(c.applied, c.leader) }); got != c.want {
				t.Fatalf("violation %v, want %v", got, c.want)
			}
		})
	}
}
