package asyncraft_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// TestManyGroupsOnOneHost runs 3 nodes of each of many groups on one host
// (a host runs one node per group it belongs to; here all three members of
// each group share the host) and checks that an idle group costs no
// goroutines: actors without messages hold none, and the host has one
// ticker for all its nodes.
func TestManyGroupsOnOneHost(t *testing.T) {
	// A slow tick leaves the host idle most of the time even when the
	// machine is loaded (go test runs packages in parallel), so that the
	// goroutines counted below are the ones idle groups keep.
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, TickInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	peers := []asyncraft.Peer{{ID: "a", Addr: "local"}, {ID: "b", Addr: "local"}, {ID: "c", Addr: "local"}}
	start := func(from, to int) []*asyncraft.Node {
		var nodes []*asyncraft.Node
		for g := from; g < to; g++ {
			for _, p := range peers {
				n, err := host.StartNode(asyncraft.NodeOptions{
					Group: fmt.Sprintf("g%03d", g), ID: p.ID, Peers: peers, StateMachine: &counter{},
					ElectionTimeout: time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, n)
			}
		}
		return nodes
	}
	settled := func(nodes []*asyncraft.Node) func() bool {
		return func() bool {
			leaders := 0
			for _, n := range nodes {
				if n.Status().Role == asyncraft.Leader {
					leaders++
				}
			}
			return leaders == len(nodes)/3
		}
	}
	// quiet measures goroutines once nothing but the ticker is running:
	// the minimum over samples spread across several ticks, to skip
	// momentary workers.
	quiet := func() int {
		lowest := runtime.NumGoroutine()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 100; i++ {
			<-tick.C
			lowest = min(lowest, runtime.NumGoroutine())
		}
		return lowest
	}
	first := start(0, 1)
	waitFor(t, "one group's leader", 10*time.Second, settled(first))
	one := quiet()
	more := start(1, 60)
	waitFor(t, "60 groups' leaders", 30*time.Second, settled(append(first, more...)))
	sixty := quiet()
	t.Logf("goroutines: %d with 1 group, %d with 60 groups (180 nodes)", one, sixty)
	if extra := sixty - one; extra > 20 {
		t.Fatalf("59 more idle groups cost %d goroutines", extra)
	}
	// And they all work: one proposal per group.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range append(first, more...) {
		if n.Status().Role == asyncraft.Leader {
			if _, err := n.ApplyWait(ctx, []byte("x")); err != nil {
				t.Fatalf("%s/%s: %v", n.Group(), n.ID(), err)
			}
		}
	}
}
