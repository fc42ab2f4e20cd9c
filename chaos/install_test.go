package chaos

import (
	"fmt"
	"net/http"
	"time"
)

// The install nemeses make the leader send a follower a snapshot, and
// fault the install. Both begin alike: kill -9 a follower and keep it down
// until the leader's log no longer holds what comes after the follower's
// last entry (an outage), then restart it; the leader can only catch it up
// by installing its newest snapshot. "long-outage" then watches the
// follower catch up; "kill-mid-install" watches the leader's GET /status
// until it shows the follower in state "snapshot", and kills the receiver
// or the sender at a random point of the install.
//
// Installs must take long enough to be hit: TestChaos runs the kvstore
// with frequent snapshots, compaction on small WAL segments, a snapshot
// rate cap, and a ballast of large values that makes each snapshot a few
// MiB (see snapshotFlags and writeBallast).

const (
	// outageLimit bounds the wait for the leader's log to be compacted
	// past the follower that is down.
	outageLimit = 20 * time.Second
	// nudgeEvery is how often the nemesis asks the leader for a snapshot
	// during an outage, so that compaction comes sooner than
	// -snapshot-entries alone would bring it.
	nudgeEvery = time.Second
	// installWatchLimit bounds the wait for the leader to show an install
	// after the follower's restart; installPoll is the polling period.
	installWatchLimit = 10 * time.Second
	installPoll       = 50 * time.Millisecond
	// maxKillDelay bounds how far into an install (after the leader first
	// shows it) kill-mid-install kills. With the ballast and the rate cap
	// of TestChaos an install lasts about two seconds.
	maxKillDelay = 1500 * time.Millisecond
	// catchUpLimit bounds the wait for the restarted follower to catch
	// up, after which the nemesis reports and moves on (the final checks
	// judge the cluster).
	catchUpLimit = 20 * time.Second
)

// installStats is what the install nemeses did, for the summary and the
// final check.
type installStats struct {
	outages   int // outages begun (by either install nemesis)
	compacted int // of which the leader's log was compacted past the follower
	installed int // restarted followers seen installing a snapshot (InstallsDone > 0)
	fromLog   int // restarted followers seen catching up from the log, without one
	seen      int // installs the leader showed to kill-mid-install
	midKills  int // kills while the leader still showed the install
	receivers int // of which the receiver was killed
	senders   int // of which the leader (the sender) was killed
	lateKills int // kills after the install had ended (it outran the drawn delay)
	noInstall int // kill-mid-install runs that saw no install (no kill)
}

func (s installStats) String() string {
	return fmt.Sprintf("outages %d (compacted past the follower %d; the follower then installed %d, caught up from the log %d); "+
		"installs seen by kill-mid-install %d: killed mid-install %d (receiver %d, sender %d), after it ended %d; no install seen %d",
		s.outages, s.compacted, s.installed, s.fromLog, s.seen, s.midKills, s.receivers, s.senders, s.lateKills, s.noInstall)
}

// pollClient is the nemesis's HTTP client for GET /status and POST
// /snapshot: a short timeout, so that a paused or dead node holds nothing
// up.
var pollClient = &http.Client{Timeout: 300 * time.Millisecond}

// poll evaluates cond at once and then every interval until it holds
// (true), limit passes or stop is closed (false).
func poll(stop <-chan struct{}, limit, every time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-stop:
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// pickFollower picks a node that does not lead, if a leader is known, or
// any node (one draw).
func (n *nemesis) pickFollower() (int, string) {
	r := n.rng.IntN(len(n.c.nodes))
	if l := n.c.leader(); l >= 0 {
		f := (l + 1 + r%(len(n.c.nodes)-1)) % len(n.c.nodes)
		return f, n.c.nodes[f].id + " (a follower)"
	}
	return r, n.c.nodes[r].id
}

// outage is what an outage came to.
type outage struct {
	last      uint64 // the follower's last index before the kill (0: unknown)
	bound     uint64 // the highest last index of any node at the kill: the follower's can be no higher
	leader    string // the leader whose log was checked last
	first     uint64 // its first index then
	compacted bool   // first > bound
	took      time.Duration
}

func (o outage) String() string {
	if o.compacted {
		return fmt.Sprintf("after %v the leader %s's log starts at %d, past %d (the follower's last index was %d)",
			o.took.Round(time.Millisecond), o.leader, o.first, o.bound, o.last)
	}
	return fmt.Sprintf("NOT compacted past the follower within %v: leader %q's log starts at %d, the follower may have up to %d",
		o.took.Round(time.Millisecond), o.leader, o.first, o.bound)
}

// outage kills node i and keeps it down until the leader's log is
// compacted past it (its first index is above the last index of every
// node at the kill), or limit passes. Meanwhile it asks the leader for a
// snapshot every nudgeEvery.
func (n *nemesis) outage(stop <-chan struct{}, i int) outage {
	began := time.Now()
	var o outage
	if st, err := n.c.nodes[i].status(pollClient); err == nil {
		o.last, o.bound = st.LastIndex, st.LastIndex
	}
	n.c.nodes[i].kill()
	for j, nd := range n.c.nodes {
		if j != i {
			if st, err := nd.status(pollClient); err == nil {
				o.bound = max(o.bound, st.LastIndex)
			}
		}
	}
	n.stats.outages++
	var nudged time.Time
	o.compacted = poll(stop, outageLimit, 200*time.Millisecond, func() bool {
		l := n.c.leader()
		if l < 0 {
			return false
		}
		st, err := n.c.nodes[l].status(pollClient)
		if err != nil {
			return false
		}
		o.leader, o.first = st.ID, st.FirstIndex
		if st.FirstIndex > o.bound {
			return true
		}
		// A snapshot is asked for only if the leader applied something
		// since its newest one (one at the same index is refused).
		if time.Since(nudged) >= nudgeEvery && st.Applied > st.SnapshotIndex {
			nudged = time.Now()
			if err := n.c.nodes[l].snapshot(pollClient); err != nil {
				n.tl.add("nemesis: POST /snapshot to %s: %v", st.ID, err)
			}
		}
		return false
	})
	o.took = time.Since(began)
	if o.compacted {
		n.stats.compacted++
	}
	return o
}

// catchUp watches node i, just restarted, until it has applied what the
// leader had committed when the watch began, and says whether it took an
// install.
func (n *nemesis) catchUp(stop <-chan struct{}, i int) string {
	nd := n.c.nodes[i]
	began := time.Now()
	var target uint64
	var last statusReply
	installed, done := false, false
	poll(stop, catchUpLimit, 100*time.Millisecond, func() bool {
		if target == 0 {
			l := n.c.leader()
			if l < 0 || l == i {
				return false
			}
			st, err := n.c.nodes[l].status(pollClient)
			if err != nil {
				return false
			}
			target = st.Commit
		}
		st, err := nd.status(pollClient)
		if err != nil {
			return false
		}
		last = st
		installed = installed || st.Metrics != nil && st.Metrics.InstallsDone > 0
		done = st.Applied >= target
		return done
	})
	took := time.Since(began).Round(time.Millisecond)
	var m counters
	if last.Metrics != nil {
		m = counters(*last.Metrics)
	}
	if installed {
		n.stats.installed++
	}
	switch {
	case done && installed:
		return fmt.Sprintf("caught up to %d by an install in %v (its newest snapshot %d; this process: installs started %d done %d failed %d)",
			target, took, last.SnapshotIndex, m.InstallsStarted, m.InstallsDone, m.InstallFailures)
	case done:
		n.stats.fromLog++
		return fmt.Sprintf("caught up to %d from the log, without an install, in %v (first index %d)", target, took, last.FirstIndex)
	default:
		return fmt.Sprintf("had not caught up to %d after %v (applied %d; this process: installs started %d done %d failed %d); moving on",
			target, took, last.Applied, m.InstallsStarted, m.InstallsDone, m.InstallFailures)
	}
}

// longOutage keeps a follower down until the leader's log is compacted
// past it, restarts it and watches it catch up by an install.
func (n *nemesis) longOutage(stop <-chan struct{}) {
	i, who := n.pickFollower()
	nd := n.c.nodes[i]
	n.tl.add("nemesis: long outage: kill -9 %s until the leader's log is compacted past it", who)
	o := n.outage(stop, i)
	n.tl.add("nemesis: long outage: %s; restart %s", o, nd.id)
	n.restart(i)
	n.tl.add("nemesis: long outage: %s %s", nd.id, n.catchUp(stop, i))
}

// install is what watchInstall saw of an install.
type install struct {
	leader, receiver int
	index            uint64        // the snapshot's index (0: not yet offered when last seen)
	shown            time.Duration // how long the leader showed the install before the kill point
	ongoing          bool          // the leader still showed it at the kill point
}

// watchInstall polls the leader's GET /status every installPoll until it
// shows a follower in state "snapshot", then until delay has passed or
// the install has ended. It reports false if no install showed within
// installWatchLimit.
func (n *nemesis) watchInstall(stop <-chan struct{}, delay time.Duration) (install, bool) {
	var in install
	var seenAt time.Time
	leader := -1
	seen := poll(stop, installWatchLimit+delay, installPoll, func() bool {
		if leader < 0 {
			leader = n.c.leader()
		}
		if leader < 0 {
			return false
		}
		st, err := n.c.nodes[leader].status(pollClient)
		if err != nil || st.Role != "leader" {
			if !seenAt.IsZero() {
				in.shown = time.Since(seenAt)
				return true // the leader lost its leadership, or stopped answering: the install is over
			}
			leader = -1
			return false
		}
		p, ok := st.installing()
		switch {
		case seenAt.IsZero() && !ok:
			return false
		case seenAt.IsZero():
			seenAt = time.Now()
			in.leader, in.receiver = leader, n.c.index(p.ID)
			if in.receiver < 0 {
				if !n.c.retired[p.ID] { // a node replaced by the membership nemesis may linger
					n.h.problem("the leader %s installs a snapshot on %q, which is no member", st.ID, p.ID)
				}
				seenAt = time.Time{}
				return false
			}
		}
		in.ongoing = ok
		if ok {
			in.index = max(in.index, p.Snapshot)
		}
		in.shown = time.Since(seenAt)
		return !ok || in.shown >= delay
	})
	return in, seen && !seenAt.IsZero()
}

// killMidInstall makes the leader install a snapshot on a follower (as
// longOutage does) and kills the receiver or, half the time, the sender
// while the install goes on, restarts it after 0.5–3 s and watches the
// follower catch up.
func (n *nemesis) killMidInstall(stop <-chan struct{}) {
	i, who := n.pickFollower()
	sender := n.rng.IntN(2) == 0
	delay := time.Duration(n.rng.Int64N(int64(maxKillDelay)))
	hold := n.between(500*time.Millisecond, 3*time.Second)
	nd := n.c.nodes[i]
	role := "receiver"
	if sender {
		role = "sender"
	}
	n.tl.add("nemesis: kill mid-install: kill -9 %s until an install is needed; then kill the %s %v into the install, for %v",
		who, role, delay.Round(time.Millisecond), hold.Round(time.Millisecond))
	o := n.outage(stop, i)
	n.tl.add("nemesis: kill mid-install: %s; restart %s", o, nd.id)
	n.restart(i)
	in, ok := n.watchInstall(stop, delay)
	if !ok {
		n.stats.noInstall++
		n.tl.add("nemesis: kill mid-install: the leader showed no install within %v; %s %s", installWatchLimit, nd.id, n.catchUp(stop, i))
		return
	}
	n.stats.seen++
	victim := in.receiver
	if sender {
		victim = in.leader
	}
	what := "mid-install"
	if in.ongoing {
		n.stats.midKills++
		if sender {
			n.stats.senders++
		} else {
			n.stats.receivers++
		}
	} else {
		n.stats.lateKills++
		what = "AFTER the install ended"
	}
	n.tl.add("nemesis: kill mid-install: the leader %s installed snapshot %d on %s for %v; kill -9 %s (the %s) %s",
		n.c.nodes[in.leader].id, in.index, n.c.nodes[in.receiver].id, in.shown.Round(time.Millisecond), n.c.nodes[victim].id, role, what)
	n.c.nodes[victim].kill()
	sleep(stop, hold)
	n.tl.add("nemesis: kill mid-install: restart %s", n.c.nodes[victim].id)
	n.restart(victim)
	n.tl.add("nemesis: kill mid-install: %s %s", n.c.nodes[in.receiver].id, n.catchUp(stop, in.receiver))
}

// index returns the index of the node with the given id, or -1.
func (c *cluster) index(id string) int {
	for i, nd := range c.nodes {
		if nd.id == id {
			return i
		}
	}
	return -1
}
