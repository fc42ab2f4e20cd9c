package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/chaos/proxy"
)

// The nemesis injects one fault at a time, from a seeded RNG: a quiet gap,
// a fault held for a while, its repair. The RNG draws the same number of
// values whatever the cluster does, so a seed replays the same schedule of
// fault kinds, choices and durations (but "the leader" is whoever leads at
// that moment, and the cluster's timing differs from run to run).
type nemesis struct {
	c   *cluster
	rng *rand.Rand
	tl  *timeline
	h   *history
	// kinds are the faults it draws from (-chaos.nemesis).
	kinds []faultKind
	// injected counts the faults injected (nemesis cycles), by kind.
	injected map[string]int
	// stats is what the install nemeses did, mstats the membership ones.
	stats  installStats
	mstats membershipStats
}

type faultKind struct {
	name   string
	weight int
	inject func(n *nemesis, stop <-chan struct{}) // injects, holds, heals
}

var faults = []faultKind{
	{"kill", 3, (*nemesis).kill},
	{"pause", 2, (*nemesis).pause},
	{"isolate", 2, (*nemesis).isolate},
	{"cut-pair", 1, (*nemesis).cutPair},
	{"cut-outbound", 1, (*nemesis).cutOutbound},
	{"cut-inbound", 1, (*nemesis).cutInbound},
	{"cut-random-one-way", 1, (*nemesis).cutRandom},
	{"isolate-and-kill", 1, (*nemesis).isolateAndKill},
	{"kill-all", 1, (*nemesis).killAll},
	{"long-outage", 2, (*nemesis).longOutage},
	{"kill-mid-install", 2, (*nemesis).killMidInstall},
	{"transfer", 1, (*nemesis).transfer},
	{"membership", 2, (*nemesis).membership},
}

// installFaults are the fault kinds that -chaos.nemesis=install selects.
var installFaults = []string{"long-outage", "kill-mid-install"}

// selectFaults returns the fault kinds -chaos.nemesis names: "all", or
// "install" (the install nemeses), or a comma-separated list of kinds.
func selectFaults(spec string) ([]faultKind, error) {
	switch spec {
	case "", "all":
		return faults, nil
	case "install":
		spec = strings.Join(installFaults, ",")
	}
	var out []faultKind
	for _, name := range strings.Split(spec, ",") {
		i := slices.IndexFunc(faults, func(f faultKind) bool { return f.name == strings.TrimSpace(name) })
		if i < 0 {
			var names []string
			for _, f := range faults {
				names = append(names, f.name)
			}
			return nil, fmt.Errorf("-chaos.nemesis: no fault kind %q (all, install, or a list of: %s)", name, strings.Join(names, ", "))
		}
		out = append(out, faults[i])
	}
	return out, nil
}

// ran reports whether a fault kind was injected.
func (n *nemesis) ran(kind string) bool { return n.injected[kind] > 0 }

// run injects faults until the deadline (or stop).
func (n *nemesis) run(stop <-chan struct{}, until time.Time) {
	if n.kinds == nil {
		n.kinds = faults
	}
	total := 0
	for _, f := range n.kinds {
		total += f.weight
	}
	for time.Now().Before(until) {
		if !sleep(stop, n.between(500*time.Millisecond, 2*time.Second)) {
			return
		}
		w := n.rng.IntN(total)
		for _, f := range n.kinds {
			if w < f.weight {
				if n.injected == nil {
					n.injected = map[string]int{}
				}
				n.injected[f.name]++
				f.inject(n, stop)
				break
			}
			w -= f.weight
		}
	}
}

// summary says how many faults of each kind were injected.
func (n *nemesis) summary() string {
	total := 0
	var parts []string
	for _, f := range faults {
		if k := n.injected[f.name]; k > 0 {
			total += k
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, k))
		}
	}
	return fmt.Sprintf("%d faults injected: %s", total, strings.Join(parts, " "))
}

// sleep waits d, or until stop is closed (false).
func sleep(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// victim picks a node: the leader (if there is one) half of the time,
// otherwise a random one. It draws two values whatever happens.
func (n *nemesis) victim() (int, string) {
	wantLeader := n.rng.IntN(2) == 0
	random := n.rng.IntN(len(n.c.nodes))
	if wantLeader {
		if l := n.c.leader(); l >= 0 {
			return l, n.c.nodes[l].id + " (the leader)"
		}
	}
	return random, n.c.nodes[random].id
}

// other picks a node other than i (one draw).
func (n *nemesis) other(i int) int {
	return (i + 1 + n.rng.IntN(len(n.c.nodes)-1)) % len(n.c.nodes)
}

func (n *nemesis) mode() proxy.Mode {
	if n.rng.IntN(2) == 0 {
		return proxy.Reset
	}
	return proxy.Blackhole
}

func (n *nemesis) restart(i int) {
	nd := n.c.nodes[i]
	if nd.isRunning() {
		return
	}
	if err := nd.start(); err != nil {
		n.h.problem("restart %s: %v", nd.id, err)
		return
	}
	if err := nd.waitServing(15 * time.Second); err != nil {
		n.h.problem("restart %s: %v", nd.id, err)
	}
}

func (n *nemesis) kill(stop <-chan struct{}) {
	i, who := n.victim()
	hold := n.between(500*time.Millisecond, 4*time.Second)
	n.tl.add("nemesis: kill -9 %s for %v", who, hold.Round(time.Millisecond))
	n.c.nodes[i].kill()
	sleep(stop, hold)
	n.tl.add("nemesis: restart %s", n.c.nodes[i].id)
	n.restart(i)
}

func (n *nemesis) pause(stop <-chan struct{}) {
	i, who := n.victim()
	hold := n.between(time.Second, 4*time.Second)
	if !n.c.nodes[i].pause() {
		return
	}
	n.tl.add("nemesis: SIGSTOP %s for %v", who, hold.Round(time.Millisecond))
	sleep(stop, hold)
	n.tl.add("nemesis: SIGCONT %s", n.c.nodes[i].id)
	n.c.nodes[i].resume()
}

// cut sets the given directed links to m, holds, and brings them back up.
func (n *nemesis) cut(stop <-chan struct{}, what string, links [][2]int, m proxy.Mode, hold time.Duration) {
	var names []string
	for _, l := range links {
		names = append(names, n.c.nodes[l[0]].id+"→"+n.c.nodes[l[1]].id)
		n.c.setLink(l[0], l[1], m)
	}
	n.tl.add("nemesis: %s: cut %s (%s) for %v", what, strings.Join(names, " "), m, hold.Round(time.Millisecond))
	sleep(stop, hold)
	for _, l := range links {
		n.c.setLink(l[0], l[1], proxy.Up)
	}
	n.tl.add("nemesis: %s: links up", what)
}

func (n *nemesis) isolate(stop <-chan struct{}) {
	i, who := n.victim()
	m, hold := n.mode(), n.between(2*time.Second, 6*time.Second)
	var links [][2]int
	for j := range n.c.nodes {
		if j != i {
			links = append(links, [2]int{i, j}, [2]int{j, i})
		}
	}
	n.cut(stop, "isolate "+who, links, m, hold)
}

func (n *nemesis) cutPair(stop <-chan struct{}) {
	i, who := n.victim()
	j := n.other(i)
	m, hold := n.mode(), n.between(2*time.Second, 6*time.Second)
	n.cut(stop, fmt.Sprintf("separate %s and %s", who, n.c.nodes[j].id), [][2]int{{i, j}, {j, i}}, m, hold)
}

func (n *nemesis) cutOutbound(stop <-chan struct{}) {
	i, who := n.victim()
	m, hold := n.mode(), n.between(2*time.Second, 6*time.Second)
	var links [][2]int
	for j := range n.c.nodes {
		if j != i {
			links = append(links, [2]int{i, j})
		}
	}
	n.cut(stop, who+" cannot send", links, m, hold)
}

func (n *nemesis) cutInbound(stop <-chan struct{}) {
	i, who := n.victim()
	m, hold := n.mode(), n.between(2*time.Second, 6*time.Second)
	var links [][2]int
	for j := range n.c.nodes {
		if j != i {
			links = append(links, [2]int{j, i})
		}
	}
	n.cut(stop, who+" cannot receive", links, m, hold)
}

func (n *nemesis) cutRandom(stop <-chan struct{}) {
	var links [][2]int
	for i := range n.c.nodes {
		for j := range n.c.nodes {
			if i != j && n.rng.Float64() < 0.4 {
				links = append(links, [2]int{i, j})
			}
		}
	}
	first := n.rng.IntN(len(n.c.nodes))
	if len(links) == 0 {
		links = append(links, [2]int{first, (first + 1) % len(n.c.nodes)})
	}
	m, hold := n.mode(), n.between(2*time.Second, 6*time.Second)
	n.cut(stop, "random one-way cuts", links, m, hold)
}

// isolateAndKill isolates one node and kills another: no quorum until
// the repair.
func (n *nemesis) isolateAndKill(stop <-chan struct{}) {
	i, who := n.victim()
	j := n.other(i)
	m, hold := n.mode(), n.between(time.Second, 4*time.Second)
	for k := range n.c.nodes {
		if k != i {
			n.c.setLink(i, k, m)
			n.c.setLink(k, i, m)
		}
	}
	n.tl.add("nemesis: isolate %s (%s) and kill -9 %s for %v", who, m, n.c.nodes[j].id, hold.Round(time.Millisecond))
	n.c.nodes[j].kill()
	sleep(stop, hold)
	n.c.healLinks()
	n.tl.add("nemesis: links up; restart %s", n.c.nodes[j].id)
	n.restart(j)
}

// killAll kills every node at once and restarts them all: only what
// each one made durable survives.
func (n *nemesis) killAll(stop <-chan struct{}) {
	hold := n.between(500*time.Millisecond, 2*time.Second)
	n.tl.add("nemesis: kill -9 every node for %v", hold.Round(time.Millisecond))
	for _, nd := range n.c.nodes {
		nd.kill()
	}
	sleep(stop, hold)
	n.tl.add("nemesis: restart every node")
	for _, nd := range n.c.nodes {
		if err := nd.start(); err != nil {
			n.h.problem("restart %s: %v", nd.id, err)
		}
	}
	for _, nd := range n.c.nodes {
		if err := nd.waitServing(15 * time.Second); err != nil {
			n.h.problem("restart %s: %v", nd.id, err)
		}
	}
}

// healAll repairs everything: links up, paused processes continued,
// stopped ones restarted.
func (n *nemesis) healAll() {
	n.c.healLinks()
	for i, nd := range n.c.nodes {
		nd.resume()
		n.restart(i)
	}
	n.tl.add("nemesis: healed everything")
}

func TestSelectFaults(t *testing.T) {
	names := func(fs []faultKind) string {
		var out []string
		for _, f := range fs {
			out = append(out, f.name)
		}
		return strings.Join(out, ",")
	}
	for spec, want := range map[string]string{
		"all":                    names(faults),
		"install":                "long-outage,kill-mid-install",
		"kill, kill-mid-install": "kill,kill-mid-install",
		"transfer,membership":    "transfer,membership",
	} {
		got, err := selectFaults(spec)
		if err != nil || names(got) != want {
			t.Errorf("selectFaults(%q) = %s, %v; want %s", spec, names(got), err, want)
		}
	}
	if _, err := selectFaults("kill,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("selectFaults(kill,nope): %v, want an error naming nope", err)
	}
}
