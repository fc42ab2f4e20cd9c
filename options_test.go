package asyncraft_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/logmgr"
)

func TestNodeOptionsAreValidated(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	peers := []asyncraft.Peer{{ID: "a", Addr: "local"}, {ID: "b", Addr: "local"}}
	good := func() asyncraft.NodeOptions {
		return asyncraft.NodeOptions{Group: "g", ID: "a", Peers: peers, StateMachine: &counter{}}
	}
	cases := []struct {
		name string
		mod  func(*asyncraft.NodeOptions)
		want string
	}{
		{"no group", func(o *asyncraft.NodeOptions) { o.Group = "" }, "Group is required"},
		{"slash in id", func(o *asyncraft.NodeOptions) { o.ID = "a/b" }, "contains '/'"},
		{"no state machine", func(o *asyncraft.NodeOptions) { o.StateMachine = nil }, "StateMachine is required"},
		{"no peers", func(o *asyncraft.NodeOptions) { o.Peers = nil }, "Peers is empty"},
		{"self not a peer", func(o *asyncraft.NodeOptions) { o.ID = "c" }, "not among Peers"},
		{"duplicate peer", func(o *asyncraft.NodeOptions) { o.Peers = append(o.Peers, peers[0]) }, "listed twice"},
		{"peer without address", func(o *asyncraft.NodeOptions) { o.Peers = []asyncraft.Peer{{ID: "a"}} }, "no address"},
		{"heartbeat below a tick", func(o *asyncraft.NodeOptions) { o.HeartbeatInterval = time.Millisecond }, "shorter than a tick"},
		{"election too short", func(o *asyncraft.NodeOptions) {
			o.ElectionTimeout = 100 * time.Millisecond
			o.HeartbeatInterval = 50 * time.Millisecond
		}, "at least 3×HeartbeatInterval"},
		{"batch above queue", func(o *asyncraft.NodeOptions) { o.ApplyBatch, o.MaxPendingTasks = 64, 32 }, "exceeds MaxPendingTasks"},
		{"half storage", func(o *asyncraft.NodeOptions) { o.LogStorage = logmgr.NewMemoryStorage() }, "both LogStorage and MetaStorage"},
	}
	for _, c := range cases {
		o := good()
		c.mod(&o)
		_, err := host.StartNode(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := host.StartNode(good()); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	if _, err := host.StartNode(good()); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("second start of the same node: %v", err)
	}
}

func TestHostOptionsAreValidated(t *testing.T) {
	if _, err := asyncraft.NewHost(asyncraft.HostOptions{}); err == nil || !strings.Contains(err.Error(), "Addr is required") {
		t.Fatalf("host without address: %v", err)
	}
	dir := t.TempDir()
	h, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "a", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if _, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "b", DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second host on one data directory: %v", err)
	}
}

func TestApplyWait(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	n, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}},
		StateMachine: &counter{}, ElectionTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Before the node leads, the answer is EPERM.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.ApplyWait(ctx, []byte("xx")); !errors.Is(err, closure.ErrNotLeader) {
		t.Fatalf("apply before election: %v", err)
	}
	waitFor(t, "leadership", 10*time.Second, func() bool { return n.Status().Role == asyncraft.Leader })
	v, err := n.ApplyWait(ctx, []byte("xx"))
	if err != nil || v.(int) != 2 {
		t.Fatalf("ApplyWait = %v, %v; want 2", v, err)
	}
	v, err = n.ApplyWait(ctx, []byte("yyy"))
	if err != nil || v.(int) != 5 {
		t.Fatalf("ApplyWait = %v, %v; want 5", v, err)
	}
	// A context that ends first: the outcome is unknown, and says so.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	_, err = n.ApplyWait(done, []byte("z"))
	if !errors.Is(err, closure.ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ApplyWait: %v", err)
	}
	if s := n.Status(); s.Role != asyncraft.Leader || s.Applied < 3 || s.Commit < s.Applied {
		t.Fatalf("status %v", s)
	}
}

func TestApplyAfterCloseStillCompletes(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "local"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}}, StateMachine: &counter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan closure.Status, 1)
	n.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) { got <- st })})
	select {
	case st := <-got:
		if st.Code != closure.ESHUTDOWN {
			t.Fatalf("apply after close: %v", st)
		}
	case <-ctx.Done():
		t.Fatal("the closure of an apply after Close never ran")
	}
}
