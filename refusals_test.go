package asyncraft_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
)

// TestOpenLoopRefusalsRunOnTheCaller: a producer that does not wait for
// its answers keeps calling Apply while the callback executor is stuck.
// Past MaxPendingCallbacks proposals and as many refusals queued for the
// executor, each further refusal runs on the caller's goroutine before
// Apply returns: the executor's queue stays bounded, and the producer is
// slowed by its own refusals. Every closure still runs exactly once.
func TestOpenLoopRefusalsRunOnTheCaller(t *testing.T) {
	const bound, calls = 16, 2000
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, MaxPendingCallbacks: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	n, err := host.StartNode(asyncraft.NodeOptions{Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}},
		StateMachine: &counter{}, ElectionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a leader", 10*time.Second, func() bool { return n.Status().Role == asyncraft.Leader && n.Status().Commit > 0 })

	// Hold the executor in a callback.
	running, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before host.Close, which waits for the executor
	n.Apply(asyncraft.Task{Data: []byte("block"), Done: closure.Func(func(closure.Status) {
		close(running)
		<-release
	})})
	<-running

	var ran [calls]atomic.Int32
	inline, busy := 0, atomic.Int32{}
	for i := range calls {
		n.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) {
			ran[i].Add(1)
			if st.Code == closure.EBUSY {
				busy.Add(1)
			}
		})})
		if ran[i].Load() == 1 {
			inline++ // completed before Apply returned: on this goroutine
		}
	}
	if inline < calls-3*bound {
		t.Fatalf("%d of %d refusals ran on the caller; the rest queued for a stuck executor (bound %d)", inline, calls, bound)
	}
	unblock()
	waitFor(t, "every closure", 10*time.Second, func() bool {
		for i := range ran {
			if ran[i].Load() == 0 {
				return false
			}
		}
		return true
	})
	for i := range ran {
		if r := ran[i].Load(); r != 1 {
			t.Fatalf("closure %d ran %d times", i, r)
		}
	}
	t.Logf("%d calls while the executor was stuck: %d refused on the caller, %d EBUSY in all", calls, inline, busy.Load())
}
