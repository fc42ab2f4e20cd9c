package asyncraft_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
)

// logLines returns the lines of logs that contain every one of parts.
func logLines(logs *bytes.Buffer, parts ...string) []string {
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// waitLog runs c until logs hold a line with every one of parts.
func waitLog(t *testing.T, c *cluster.Cluster, logs *bytes.Buffer, limit time.Duration, parts ...string) string {
	t.Helper()
	var found []string
	if !c.Sim.RunUntil(func() bool { found = logLines(logs, parts...); return len(found) > 0 }, limit) {
		t.Fatalf("no log line with %q within %v:%s\n%s", parts, limit, c.Describe(), logs.String())
	}
	t.Logf("logged: %s", found[0])
	return found[0]
}

// TestForeignIdentityDroppedCountedAndLogged: envelopes that carry another
// cluster identity than the node's — or none — are dropped before any
// handler sees them, counted in Metrics.Foreign and Dropped, and logged at
// WARN naming the sender, both identities, at most once per interval.
func TestForeignIdentityDroppedCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	victim := followerOf(c, l)
	node := c.Node(victim)
	term := node.Status().Term
	id := node.ClusterIdentity()
	if id == 0 || id != c.Node(l).ClusterIdentity() {
		t.Fatalf("identities %x (%s) and %x (%s): want equal and not 0", id, victim, c.Node(l).ClusterIdentity(), l)
	}
	dropped, foreign := node.Metrics().Dropped.Load(), node.Metrics().Foreign.Load()
	// Vote requests from a member, which the victim would grant (or at
	// least move to their term for) if it accepted them.
	to := actors.Ref{Host: victim, Name: "g/" + victim + "/node"}
	for i, ident := range []uint64{id + 1, 0, id ^ 0xff00} {
		c.Sim.Host(l).Send(to, &raftpb.Envelope{Group: "g", From: l, To: victim, Term: term + 5 + uint64(i), Cluster: ident,
			Body: &raftpb.Envelope_VoteRequest{VoteRequest: &raftpb.VoteRequest{LastLogIndex: 1 << 40, LastLogTerm: term + 5}}})
	}
	c.Sim.RunFor(time.Second)
	if got := node.Metrics().Foreign.Load() - foreign; got != 3 {
		t.Fatalf("Foreign counted %d, want 3", got)
	}
	if got := node.Metrics().Dropped.Load() - dropped; got != 3 {
		t.Fatalf("Dropped counted %d, want 3", got)
	}
	if st := node.Status(); st.Term != term {
		t.Fatalf("the victim moved to term %d (was %d): a foreign envelope was acted on", st.Term, term)
	}
	lines := logLines(&logs, "another cluster identity", "id="+victim, "from="+l)
	if len(lines) != 1 {
		t.Fatalf("want exactly one (rate-limited) warning naming the sender, got %d:\n%s", len(lines), logs.String())
	}
	t.Logf("logged: %s", lines[0])
	runLoad(t, c, l, "after-", 50)
	noPanics(t, c)
}

// TestOtherClusterIDIsolatedAndSaysSo: a member started with another
// ClusterID than the rest (and so another identity) can neither disturb
// the group nor join it; both sides say why in their logs, and the group
// of the other two goes on.
func TestOtherClusterIDIsolatedAndSaysSo(t *testing.T) {
	var logs bytes.Buffer
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.ClusterID = "blue"
			if o.ID == "n3" {
				o.ClusterID = "green"
			}
		}})
	waitLog(t, c, &logs, 30*time.Second, "another cluster identity", "id=n3", "from=n")
	waitLog(t, c, &logs, 30*time.Second, "another cluster identity", "from=n3")
	waitLog(t, c, &logs, 30*time.Second, "no peer answered", "id=n3")
	var l string
	for _, id := range []string{"n1", "n2"} {
		if c.Node(id).Status().Role == asyncraft.Leader {
			l = id
		}
	}
	if l == "" {
		t.Fatalf("n1 and n2 elected no leader:%s", c.Describe())
	}
	runLoad(t, c, l, "a", 50)
	if s := c.Node("n3"); s.Status().LastIndex != 0 || s.Status().Role == asyncraft.Leader || s.Metrics().Foreign.Load() == 0 {
		t.Fatalf("n3 took part: %v, foreign %d", s.Status(), s.Metrics().Foreign.Load())
	}
	noPanics(t, c)
}

// TestWrongPeerIDSaysSo: the node on host n3 is started as "n4" (its Peers
// name n1, n2 and n4). Its peers do not know it, and what they send to n3
// reaches no one: it would stay a pre-candidate forever. Its peers log
// that a node not among their Peers is writing to them, naming it and its
// host; it logs that no peer answers its elections, with its
// configuration.
func TestWrongPeerIDSaysSo(t *testing.T) {
	var logs bytes.Buffer
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			if o.ID == "n3" {
				o.ID = "n4"
				o.Peers = []asyncraft.Peer{{ID: "n1", Addr: "n1"}, {ID: "n2", Addr: "n2"}, {ID: "n4", Addr: "n3"}}
			}
		}})
	waitLog(t, c, &logs, 30*time.Second, "not a member of this node's configuration", "from=n4", `"from host"=n3`, "peers=", "n3@n3")
	line := waitLog(t, c, &logs, 30*time.Second, "no peer answered", "id=n4", "host=n3", "n1@n1, n2@n2, n4@n3")
	if strings.Contains(line, "replies go to") {
		t.Fatalf("n4 is listed at its own host; no note about replies expected: %s", line)
	}
	if c.Node("n3").Status().Role == asyncraft.Leader || c.Node("n1").Metrics().Dropped.Load()+c.Node("n2").Metrics().Dropped.Load() == 0 {
		t.Fatalf("%s; dropped n1 %d n2 %d", c.Describe(), c.Node("n1").Metrics().Dropped.Load(), c.Node("n2").Metrics().Dropped.Load())
	}
	noPanics(t, c)
}

// TestDuplicateIDSaysSo: a fourth host runs a second "n1" with the same
// Peers as the others. Its peers reply to n1 where they list it — the other
// host — so it hears nothing: it says that no peer answers and that
// replies go to the address listed for its id, and the voters it asks say
// that a candidate n1 claims another host than the one they list.
func TestDuplicateIDSaysSo(t *testing.T) {
	var logs bytes.Buffer
	peers := []asyncraft.Peer{{ID: "n1", Addr: "n1"}, {ID: "n2", Addr: "n2"}, {ID: "n3", Addr: "n3"}}
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Nodes: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.Peers = peers
			if o.ID == "n4" {
				o.ID = "n1"
			}
		}})
	line := waitLog(t, c, &logs, 30*time.Second, "no peer answered", "id=n1", "host=n4", `"replies go to"=n1`)
	if !strings.Contains(line, "two nodes share the id") {
		t.Fatalf("the warning does not say two nodes may share the id: %s", line)
	}
	waitLog(t, c, &logs, 30*time.Second, "a candidate's host is not where this node lists it", "candidate=n1", `"its host"=n4`, `"listed at"=n1`)
	// The three real members carry on.
	o := cluster.NewOutcomes()
	var l string
	if !c.Sim.RunUntil(func() bool {
		for _, id := range []string{"n1", "n2", "n3"} {
			if c.Node(id).Status().Role == asyncraft.Leader {
				l = id
			}
		}
		return l != ""
	}, 10*time.Second) {
		t.Fatalf("no leader among n1..n3:%s", c.Describe())
	}
	c.Load(l, "x", 20, 5, o)
	if !c.Sim.RunUntil(func() bool { return o.Completed() == 20 }, 10*time.Second) || o.ByCode[closure.OK] != 20 {
		t.Fatalf("outcomes %v:%s", o.ByCode, c.Describe())
	}
	noPanics(t, c)
}
