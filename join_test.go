package asyncraft_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// TestJoinIdentityOptions: NodeOptions.JoinIdentity and RejoinTerm
// together are refused, naming both; empty Peers are refused without
// JoinIdentity and accepted with it, as is a joining node that Peers do
// not list.
func TestJoinIdentityOptions(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	founder := []asyncraft.Peer{{ID: "a", Addr: "local"}}
	for _, c := range []struct {
		name string
		opts asyncraft.NodeOptions
		want []string
	}{
		{"JoinIdentity and RejoinTerm", asyncraft.NodeOptions{Group: "g", ID: "j", JoinIdentity: 0xfeed, RejoinTerm: 3, Peers: founder}, []string{"JoinIdentity", "RejoinTerm", "exclusive"}},
		{"JoinIdentity and RejoinTerm, no peers", asyncraft.NodeOptions{Group: "g", ID: "j", JoinIdentity: 0xfeed, RejoinTerm: 3}, []string{"JoinIdentity", "RejoinTerm", "exclusive"}},
		{"no peers, no JoinIdentity", asyncraft.NodeOptions{Group: "g", ID: "j"}, []string{"Peers is empty"}},
		{"no peers, a RejoinTerm", asyncraft.NodeOptions{Group: "g", ID: "j", RejoinTerm: 3}, []string{"Peers is empty"}},
		{"not among Peers, no JoinIdentity", asyncraft.NodeOptions{Group: "g", ID: "j", Peers: founder}, []string{`ID "j" is not among Peers`}},
	} {
		c.opts.StateMachine = &counter{}
		n, err := host.StartNode(c.opts)
		if err == nil {
			n.Shutdown(context.Background())
			t.Errorf("%s: started, want an error saying %q", c.name, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	// A joining node may have no Peers at all, or Peers without itself.
	for i, peers := range [][]asyncraft.Peer{nil, founder} {
		id := fmt.Sprintf("j%d", i)
		n, err := host.StartNode(asyncraft.NodeOptions{Group: "g", ID: id, JoinIdentity: 0xfeed, Peers: peers, StateMachine: &counter{}})
		if err != nil {
			t.Fatalf("joining node %s with Peers %v refused: %v", id, peers, err)
		}
		if got := n.ClusterIdentity(); got != 0xfeed {
			t.Errorf("joining node %s: ClusterIdentity %016x, want the JoinIdentity %016x", id, got, 0xfeed)
		}
		if st := n.Status(); len(st.Configuration.Voters) != 0 || st.Role != asyncraft.Follower {
			t.Errorf("joining node %s before any leader: %v, configuration %v; want a follower without a configuration", id, st, st.Configuration)
		}
	}
}

// TestJoinIdentityStoredWithTheData: the JoinIdentity of a node's first
// start is part of its data's identity. Restarted with another
// JoinIdentity, or without one, the node is refused with
// ErrBootstrapMismatch, as is a founding member's data started with a
// JoinIdentity; restarted with the same one it starts, with that identity.
func TestJoinIdentityStoredWithTheData(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(o asyncraft.NodeOptions) (*asyncraft.Node, error) {
		o.Group, o.StateMachine = "g", &counter{}
		return host.StartNode(o)
	}
	stop := func(n *asyncraft.Node) {
		t.Helper()
		if err := n.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(what string, o asyncraft.NodeOptions, says string) {
		t.Helper()
		n, err := start(o)
		switch {
		case err == nil:
			stop(n)
			t.Errorf("%s: started, want ErrBootstrapMismatch", what)
		case !errors.Is(err, asyncraft.ErrBootstrapMismatch):
			t.Errorf("%s: %v, want ErrBootstrapMismatch", what, err)
		case !strings.Contains(err.Error(), says):
			t.Errorf("%s: error %q does not say %q", what, err, says)
		default:
			t.Logf("%s: refused: %v", what, err)
		}
	}

	// A founding member, and the group's identity, which a new node
	// joins with.
	founders := []asyncraft.Peer{{ID: "f", Addr: "local"}}
	f, err := start(asyncraft.NodeOptions{ID: "f", Peers: founders})
	if err != nil {
		t.Fatal(err)
	}
	id := f.ClusterIdentity()
	stop(f)
	other := id ^ 0x5a5a
	if other == 0 {
		other = 1
	}

	j, err := start(asyncraft.NodeOptions{ID: "j", JoinIdentity: id})
	if err != nil {
		t.Fatalf("join on fresh data: %v", err)
	}
	if got := j.ClusterIdentity(); got != id {
		t.Fatalf("joined node's ClusterIdentity %016x, want the group's %016x", got, id)
	}
	stop(j)

	refused("joined node restarted with another JoinIdentity", asyncraft.NodeOptions{ID: "j", JoinIdentity: other},
		fmt.Sprintf("joined the group of identity %016x, not %016x", id, other))
	refused("joined node restarted without JoinIdentity", asyncraft.NodeOptions{ID: "j", Peers: append(founders, asyncraft.Peer{ID: "j", Addr: "local"})},
		fmt.Sprintf("joined the group of identity %016x, and this start sets no JoinIdentity", id))
	refused("founding member restarted with a JoinIdentity", asyncraft.NodeOptions{ID: "f", Peers: founders, JoinIdentity: id},
		"founding member of its group, and this start sets JoinIdentity")
	refused("founding member restarted with a JoinIdentity and no peers", asyncraft.NodeOptions{ID: "f", JoinIdentity: id},
		"founding member of its group, and this start sets JoinIdentity")

	// The refusals left the data as it was: the right options start both.
	j, err = start(asyncraft.NodeOptions{ID: "j", JoinIdentity: id, Peers: founders})
	if err != nil {
		t.Fatalf("joined node restarted with its JoinIdentity: %v", err)
	}
	if got := j.ClusterIdentity(); got != id {
		t.Fatalf("restarted joined node's ClusterIdentity %016x, want %016x", got, id)
	}
	stop(j)
	f, err = start(asyncraft.NodeOptions{ID: "f", Peers: founders})
	if err != nil {
		t.Fatalf("founding member restarted as it was bootstrapped: %v", err)
	}
	if got := f.ClusterIdentity(); got != id {
		t.Fatalf("restarted founding member's ClusterIdentity %016x, want %016x", got, id)
	}
	stop(f)
}
