package asyncraft_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// counter is a state machine that sums the increments it applies. It is
// called from the FSM caller only; the mutex serves the test's reads.
type counter struct {
	fsm.Base
	mu      sync.Mutex
	applied int
	sum     int
}

func (c *counter) OnApply(it fsm.Iterator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for it.Next() {
		c.applied++
		c.sum += len(it.Data())
		it.SetResult(c.sum)
	}
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		<-tick.C
	}
}

func TestProtoRuntimeThreeNodes(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, DataDir: t.TempDir(), WALSegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	peers := []asyncraft.Peer{{ID: "n1", Addr: "local"}, {ID: "n2", Addr: "local"}, {ID: "n3", Addr: "local"}}
	nodes := map[string]*asyncraft.Node{}
	sms := map[string]*counter{}
	for _, p := range peers {
		sms[p.ID] = &counter{}
		n, err := host.StartNode(asyncraft.NodeOptions{
			Group: "g", ID: p.ID, Peers: peers, StateMachine: sms[p.ID],
			ElectionTimeout: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes[p.ID] = n
	}
	var leader *asyncraft.Node
	waitFor(t, "a leader", 10*time.Second, func() bool {
		for _, n := range nodes {
			if s := n.Status(); s.Role == asyncraft.Leader {
				leader = n
				return true
			}
		}
		return false
	})

	const total = 10000
	var (
		mu    sync.Mutex
		codes = map[closure.Code]int{}
		runs  = make([]int, total)
		done  = make(chan struct{})
	)
	sem := make(chan struct{}, 256)
	for i := 0; i < total; i++ {
		sem <- struct{}{}
		i := i
		leader.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) {
			<-sem
			mu.Lock()
			codes[st.Code]++
			runs[i]++
			n := 0
			for _, c := range codes {
				n += c
			}
			mu.Unlock()
			if n == total {
				close(done)
			}
		})})
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("timed out: %v; leader %v", codes, leader.Status())
	}
	mu.Lock()
	for i, r := range runs {
		if r != 1 {
			t.Fatalf("closure %d ran %d times", i, r)
		}
	}
	if codes[closure.OK] != total {
		t.Fatalf("outcomes %v", codes)
	}
	mu.Unlock()
	for id, sm := range sms {
		waitFor(t, fmt.Sprintf("%s to apply everything", id), 10*time.Second, func() bool { return sm.count() == total })
	}
	st := leader.LogStats()
	t.Logf("leader wrote %d entries in %d batches (max %d)", st.Entries.Load(), st.Writes.Load(), st.MaxBatch.Load())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if s := n.Status(); s.Role != asyncraft.Shutdown {
			t.Fatalf("after Close: %v", s)
		}
	}
	if host.Executor().Panics() != 0 {
		t.Fatal("a callback panicked")
	}
}
