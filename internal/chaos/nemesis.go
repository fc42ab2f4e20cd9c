package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/raftpb"
)

// The nemesis injects faults from outside the actors, on its own random
// stream: every few seconds of virtual time it picks one of the enabled
// fault kinds and applies it for a while. Network cuts do not overlap (one
// partition at a time); crashes, pauses and clock changes come on top.

// faultyNet is the network during a message-fault window.
var faultyNet = sim.NetConfig{
	MinLatency: 100 * time.Microsecond, MaxLatency: 2 * time.Millisecond,
	Drop: 0.05, Duplicate: 0.05, Reorder: 0.05, ReorderDelay: 50 * time.Millisecond,
	Spike: 0.01, SpikeDelay: 300 * time.Millisecond,
}

type nemesis struct {
	r         *run
	rnd       *rand.Rand
	kinds     []Nemesis
	cutGen    int // generation of the current network cut; 0 if none
	netFaulty bool
	end       time.Duration
	actions   int
	over      bool // heal ran: pending callbacks do nothing
	// installDown: a crash of installCrash is in flight.
	installDown bool
}

func newNemesis(r *run) *nemesis {
	n := &nemesis{r: r, rnd: rand.New(rand.NewPCG(r.cfg.Seed, 0x6e656d))}
	for _, k := range []Nemesis{Partitions, Asymmetric, MessageFaults, Crashes, ClockDrift, Pauses, Restarts, Membership} {
		if r.cfg.Nemeses&k != 0 {
			n.kinds = append(n.kinds, k)
		}
	}
	if r.cfg.Nemeses&InstallCrashes != 0 {
		r.watch(n.installCrash)
	}
	return n
}

// installCrash crashes, now and then, the receiver or the sender of a
// snapshot chunk as it leaves, and restarts it after a while: one chunk in
// 8, at most one such crash in flight at a time.
func (n *nemesis) installCrash(from, to actors.Ref, msg any) {
	e, ok := msg.(*raftpb.Envelope)
	if !ok || e.GetSnapshotChunk() == nil || n.installDown || n.r.c.Sim.Now() >= n.end || n.rnd.IntN(8) != 0 {
		return
	}
	id, role := e.To, "receiver"
	if n.rnd.IntN(2) == 0 {
		id, role = e.From, "sender"
	}
	n.installDown = true
	n.actions++
	n.at(0, func() { // not inside the send
		if n.r.c.Node(id) == nil {
			n.installDown = false
			return
		}
		n.say("crash %s mid-install (the %s)", id, role)
		n.r.crash(id)
		n.at(n.between(100*time.Millisecond, 4*time.Second), func() {
			n.installDown = false
			if n.r.c.Node(id) == nil {
				n.say("restart %s", id)
				n.r.restart(id)
			}
		})
	})
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rnd.Int64N(int64(hi-lo)))
}

func (n *nemesis) say(format string, args ...any) {
	if w := n.r.cfg.Trace; w != nil {
		fmt.Fprintf(w, "%12.6fs nemesis %s\n", n.r.c.Sim.Now().Seconds(), fmt.Sprintf(format, args...))
	}
}

// start schedules the first action; actions stop at end.
func (n *nemesis) start(end time.Duration) {
	n.end = end
	if len(n.kinds) == 0 {
		return
	}
	n.at(n.between(time.Second, 3*time.Second), n.act)
}

// at schedules fn unless the nemesis is over by then.
func (n *nemesis) at(d time.Duration, fn func()) {
	n.r.c.Sim.At(d, func() {
		if !n.over {
			fn()
		}
	})
}

func (n *nemesis) act() {
	s := n.r.c.Sim
	if s.Now() >= n.end {
		return
	}
	n.actions++
	switch k := n.kinds[n.rnd.IntN(len(n.kinds))]; k {
	case Partitions:
		n.partition()
	case Asymmetric:
		n.asymmetric()
	case MessageFaults:
		n.messageFaults()
	case Crashes:
		n.crash()
	case ClockDrift:
		n.drift()
	case Pauses:
		n.pause()
	case Restarts:
		n.restarts()
	case Membership:
		n.membership()
	}
	n.at(n.between(500*time.Millisecond, 4*time.Second), n.act)
}

// pick returns a node: the leader half of the time (if any), else any.
func (n *nemesis) pick() string {
	if l := n.r.c.Leader(); l != "" && n.rnd.IntN(2) == 0 {
		return l
	}
	ids := n.r.c.IDs
	return ids[n.rnd.IntN(len(ids))]
}

func (n *nemesis) shuffled() []string {
	ids := slices.Clone(n.r.c.IDs)
	n.rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

// composeCut reports whether a new cut may be made now: when none is in
// place, or half the time on top of the one in place (cuts then add up,
// and the latest one's healing heals them all).
func (n *nemesis) composeCut() bool {
	return n.cutGen == 0 || n.rnd.IntN(2) == 0
}

func (n *nemesis) partition() {
	if !n.composeCut() {
		return
	}
	s := n.r.c.Sim
	ids := n.shuffled()
	var what string
	switch n.rnd.IntN(4) {
	case 0: // random halves
		k := 1 + n.rnd.IntN(len(ids)-1)
		s.Partition(ids[:k], ids[k:])
		what = fmt.Sprintf("halves %v | %v", ids[:k], ids[k:])
	case 1: // majority ring: node i talks to its ring neighbours only
		m := len(ids)/2 + 1 // a majority, itself included
		for i, a := range ids {
			for j, b := range ids {
				d := (j - i + len(ids)) % len(ids)
				if a != b && d > (m-1)/2 && len(ids)-d > m/2 {
					s.Block(a, b)
				}
			}
		}
		what = fmt.Sprintf("majority ring %v", ids)
	case 2: // bridge: two halves joined by one node
		mid := len(ids) / 2
		left, right := ids[:mid], ids[mid+1:]
		s.Partition(left, right)
		what = fmt.Sprintf("bridge %v - %s - %v", left, ids[mid], right)
	default:
		l := n.pick()
		s.Isolate(l)
		what = "isolate " + l
	}
	n.cut(what)
}

func (n *nemesis) asymmetric() {
	if !n.composeCut() {
		return
	}
	s := n.r.c.Sim
	x := n.pick()
	out := n.rnd.IntN(2) == 0
	for _, y := range n.r.c.IDs {
		if y == x {
			continue
		}
		if out {
			s.Block(x, y) // x hears the others, nobody hears x
		} else {
			s.Block(y, x) // x is heard, but hears nobody
		}
	}
	if out {
		n.cut(x + " cannot be heard")
	} else {
		n.cut(x + " cannot hear")
	}
}

// cut records a network cut and schedules its healing.
func (n *nemesis) cut(what string) {
	n.cutGen++
	gen := n.cutGen
	n.say("cut: %s", what)
	n.at(n.between(500*time.Millisecond, 6*time.Second), func() {
		if n.cutGen == gen {
			n.r.c.Sim.Heal()
			n.cutGen = 0
			n.say("heal network")
		}
	})
}

func (n *nemesis) messageFaults() {
	if n.netFaulty {
		return
	}
	n.netFaulty = true
	n.r.c.Sim.SetNet(faultyNet)
	n.say("message faults on")
	n.at(n.between(time.Second, 6*time.Second), func() {
		n.r.c.Sim.SetNet(sim.NetConfig{})
		n.netFaulty = false
		n.say("message faults off")
	})
}

func (n *nemesis) crash() {
	switch p := n.rnd.IntN(8); {
	case p == 0:
		n.powerLoss()
		return
	case p < 3: // several at once
		for _, id := range n.shuffled()[:1+n.rnd.IntN(len(n.r.c.IDs))] {
			n.crashOne(id, n.between(200*time.Millisecond, 5*time.Second))
		}
	default:
		n.crashOne(n.pick(), n.between(200*time.Millisecond, 5*time.Second))
	}
}

// powerLoss crashes every node at the same instant and brings them back
// one by one, seconds apart, so the first ones back may elect a leader
// before the others (the old leader among them) return.
func (n *nemesis) powerLoss() {
	n.say("power loss")
	after := time.Duration(0)
	for _, id := range n.shuffled() {
		after += n.between(10*time.Millisecond, 3*time.Second)
		n.crashOne(id, after)
	}
}

func (n *nemesis) crashOne(id string, down time.Duration) {
	if n.r.c.Node(id) == nil {
		return
	}
	n.r.crash(id)
	n.say("crash %s", id)
	n.at(down, func() {
		if n.r.c.Node(id) == nil {
			n.say("restart %s", id)
			n.r.restart(id)
		}
	})
}

// restarts crashes nodes and restarts them within an election timeout,
// half the time at once. A quarter of the time it restarts several nodes
// in a row; a quarter of the time one node, with (half the time) a cut
// around the leader made at the same instant; and half the time it stages
// a leader's isolation around the restarts (stagedRestarts).
func (n *nemesis) restarts() {
	switch n.rnd.IntN(4) {
	case 0:
		ids := n.shuffled()
		ids = ids[:2+n.rnd.IntN(len(ids)-1)]
		n.say("restarts in a row: %v", ids)
		after := time.Duration(0)
		for _, id := range ids {
			down := n.quick()
			if after == 0 {
				n.crashOne(id, down)
			} else {
				n.at(after, func() { n.crashOne(id, down) })
			}
			after += n.between(time.Millisecond, n.r.cfg.ElectionTimeout)
		}
	case 1:
		leader := n.r.c.Leader()
		id := n.pick()
		n.crashOne(id, n.quick())
		if leader != "" && leader != id && n.rnd.IntN(2) == 0 {
			n.cutLeader(leader)
		}
	default:
		n.stagedRestarts()
	}
}

// quick is how long a quickly restarted node stays down: nothing half the
// time, else up to an election timeout.
func (n *nemesis) quick() time.Duration {
	if n.rnd.IntN(2) == 0 {
		return 0
	}
	return n.between(time.Millisecond, n.r.cfg.ElectionTimeout)
}

// stagedRestarts heals the network, cuts the leader off from a minority of
// its followers (one way or both), and within one and a half election timeouts restarts some
// of the followers that still hear it and cuts the leader off at the same
// instant. The cut-off followers campaign once they stop hearing the
// leader; the restarted ones must not help them while the leader may still
// rely on what they acknowledged before they crashed.
func (n *nemesis) stagedRestarts() {
	leader := n.r.c.Leader()
	if leader == "" {
		n.crashOne(n.pick(), n.quick())
		return
	}
	var followers []string
	for _, id := range n.shuffled() {
		if id != leader {
			followers = append(followers, id)
		}
	}
	k := 1 + n.rnd.IntN(max(1, len(followers)/2))
	away, near := followers[:k], followers[k:]
	both := n.rnd.IntN(2) == 0
	s := n.r.c.Sim
	s.Heal() // the stage starts from a whole network
	for _, x := range away {
		s.Block(leader, x)
		if both {
			s.Block(x, leader)
		}
	}
	if both {
		n.cut(fmt.Sprintf("staged: %s and %v cut apart", leader, away))
	} else {
		n.cut(fmt.Sprintf("staged: %v cannot hear %s", away, leader))
	}
	n.at(n.between(0, n.r.cfg.ElectionTimeout*3/2), func() {
		for _, id := range near[:1+n.rnd.IntN(len(near))] {
			n.crashOne(id, n.quick())
		}
		n.cutLeader(leader)
	})
}

// cutLeader cuts the leader off, on top of any cut in place: isolated,
// deaf or mute.
func (n *nemesis) cutLeader(leader string) {
	s := n.r.c.Sim
	switch n.rnd.IntN(3) {
	case 0:
		s.Isolate(leader)
		n.cut("isolate " + leader)
	case 1:
		for _, y := range n.r.c.IDs {
			if y != leader {
				s.Block(y, leader)
			}
		}
		n.cut(leader + " cannot hear")
	default:
		for _, y := range n.r.c.IDs {
			if y != leader {
				s.Block(leader, y)
			}
		}
		n.cut(leader + " cannot be heard")
	}
}

func (n *nemesis) drift() {
	id := n.r.c.IDs[n.rnd.IntN(len(n.r.c.IDs))]
	d := (2*n.rnd.Float64() - 1) * n.r.cfg.MaxDrift
	n.r.c.Sim.Host(id).SetClock(0, d)
	n.say("clock of %s drifts %+.0f ppm", id, d*1e6)
}

func (n *nemesis) pause() {
	id := n.pick()
	d := n.between(200*time.Millisecond, 5*time.Second)
	n.r.c.Sim.Host(id).Pause(d)
	n.r.paused[id] += d // a transfer on it may take that much longer
	n.r.pausedUntil[id] = max(n.r.pausedUntil[id], n.r.c.Sim.Now()+d)
	n.say("pause %s for %v", id, d)
}

// heal ends every fault: links restored, network clean, crashed nodes
// restarted. Clocks keep their (bounded) drift; pauses end by themselves.
func (n *nemesis) heal() {
	n.over = true
	n.r.c.Sim.Heal()
	n.cutGen = 0
	n.r.c.Sim.SetNet(sim.NetConfig{})
	n.netFaulty = false
	for _, id := range n.r.c.IDs {
		if n.r.c.Node(id) == nil {
			n.r.restart(id)
		}
	}
	n.say("heal everything")
}
