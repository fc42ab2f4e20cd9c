package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/fsm"
)

type nop struct{ fsm.Base }

func (nop) OnApply(it fsm.Iterator) {
	for it.Next() {
	}
}

// reset-peers on the data of a node of a group of three that lost the
// other two: refused without -unsafe and with bad voters; then it resets,
// and the node, started with its old options, elects itself alone.
func TestResetPeers(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peers := []asyncraft.Peer{{ID: "a", Addr: "local"}, {ID: "b", Addr: "local-b:1"}, {ID: "c", Addr: "local-c:1"}}
	start := func() (*asyncraft.Host, *asyncraft.Node) {
		t.Helper()
		h, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.StartNode(asyncraft.NodeOptions{Group: "g", ID: "a", Peers: peers, StateMachine: nop{}, ElectionTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return h, n
	}
	h, _ := start() // its first start stores its bootstrap record; b and c never run
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"reset-peers", "-data", dir, "-group", "g", "-id", "a", "-voters", "a=local"}, 2, "-unsafe"},
		{[]string{"reset-peers", "-data", dir, "-group", "g", "-id", "a", "-voters", "a", "-unsafe"}, 2, "not ID=ADDR"},
		{[]string{"reset-peers", "-data", dir, "-group", "g", "-id", "a", "-voters", "b=local-b:1", "-unsafe"}, 1, "not among the voters"},
		{[]string{"reset-peers", "-data", dir, "-group", "g"}, 2, "usage"},
	} {
		errOut.Reset()
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.says) {
			t.Errorf("%v: exit %d, %q; want %d saying %q", tc.args, code, errOut.String(), tc.code, tc.says)
		}
	}
	out.Reset()
	if code := run([]string{"reset-peers", "-data", dir, "-group", "g", "-id", "a", "-voters", "a=local", "-unsafe"}, &out, &errOut); code != 0 {
		t.Fatalf("reset-peers: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "configuration entry") {
		t.Fatalf("reset-peers said %q", out.String())
	}
	h, n := start()
	defer h.Close(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for n.Status().Role != asyncraft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("the reset node did not elect itself: %v", n.Status())
		}
		if err := n.ReadBarrier(ctx); err == nil {
			break
		}
	}
	cfg := n.Status().Configuration
	if len(cfg.Voters) != 1 || cfg.Voters[0].ID != "a" || cfg.Joint() {
		t.Fatalf("configuration after the reset: %v", cfg)
	}
	if !slices.ContainsFunc(cfg.Voters, func(p asyncraft.Peer) bool { return p.Addr == "local" }) {
		t.Fatalf("voter address: %v", cfg.Voters)
	}
}
