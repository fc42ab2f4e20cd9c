package asyncraft_test

import (
	"context"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
)

// BenchmarkApply measures the proposal path on the production runtime —
// Apply, the node's drain and append, the log manager, commit, the FSM
// caller and the callback executor — on a single-node group with its log
// in memory, so that the disk and the network stay out of the figure.
// Clients keep 256 proposals of 128 bytes in flight (the tput workload's
// shape); ns/op is per proposal.
func BenchmarkApply(b *testing.B) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "local"})
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close(context.Background())
	n, err := host.StartNode(asyncraft.NodeOptions{
		Group: "bench", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}}, StateMachine: &counter{},
		ElectionTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	for n.Status().Role != asyncraft.Leader || n.Status().Commit == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		<-tick.C
	}
	tick.Stop()
	const inFlight = 256
	data := make([]byte, 128)
	done := make(chan closure.Status, inFlight)
	cb := closure.Func(func(st closure.Status) { done <- st })
	b.ReportAllocs()
	b.ResetTimer()
	issued := 0
	for ; issued < min(inFlight, b.N); issued++ {
		n.Apply(asyncraft.Task{Data: data, Done: cb})
	}
	for completed := 0; completed < b.N; completed++ {
		if st := <-done; !st.OK() {
			b.Fatalf("proposal failed: %v", st)
		}
		if issued < b.N {
			n.Apply(asyncraft.Task{Data: data, Done: cb})
			issued++
		}
	}
}
