package asyncraft_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// discardLog is an in-memory LogStorage that forgets entries as soon as
// they are appended, keeping only the last index and its term. It serves a
// one-member group that never reads its storage: the node's log view keeps
// every entry not yet applied.
type discardLog struct{ *logmgr.MemoryStorage }

func (d discardLog) Append(ents []*raftpb.Entry) error {
	if err := d.MemoryStorage.Append(ents); err != nil {
		return err
	}
	return d.MemoryStorage.TruncatePrefix(ents[len(ents)-1].Index + 1)
}

// BenchmarkApply measures the proposal path end to end on one node of a
// one-member group (production runtime, no network, no disk): Apply, the
// queue, the node's drain and append, the log manager, the commit, the FSM
// caller and the callback executor. Up to 1024 proposals are in flight;
// each op is one command applied and its closure run. The storage forgets
// entries once appended (discardLog), as a disk would hold them outside
// the heap: the heap holds only what the pipeline does.
//
// The caller either reuses one buffer for every command ("reuse") or
// allocates and fills a fresh one per command ("fresh", like a caller
// that marshals each command); Apply copies it ("copy", the default) or
// takes it (Task.NoCopy). reuse/nocopy is the unsafe pre-copy baseline.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{16, 256, 4 << 10, 64 << 10} {
		for _, fresh := range []bool{false, true} {
			for _, noCopy := range []bool{false, true} {
				name := fmt.Sprintf("%dB/%s/%s", size, map[bool]string{false: "reuse", true: "fresh"}[fresh],
					map[bool]string{false: "copy", true: "nocopy"}[noCopy])
				b.Run(name, func(b *testing.B) { benchApply(b, size, fresh, noCopy) })
			}
		}
	}
}

func benchApply(b *testing.B, size int, fresh, noCopy bool) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close(context.Background())
	node, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}},
		StateMachine: &counter{}, ElectionTimeout: 100 * time.Millisecond,
		LogStorage: discardLog{logmgr.NewMemoryStorage()}, MetaStorage: logmgr.NewMemoryMeta(),
		// The storage forgets what it is given, so no entry may leave the
		// cache before it is applied: the default 32 MiB would spill the
		// 64 KiB commands and the FSM caller find them gone.
		MaxLogCacheBytes: 1 << 30,
		// And 1024 commands of 64 KiB in flight exceed the default budget.
		MaxPendingBytes: 1 << 30,
	})
	if err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); node.Status().Role != asyncraft.Leader; <-tick.C {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
	}
	window := make(chan struct{}, 1024)
	failed := make(chan closure.Status, 1)
	done := closure.Func(func(st closure.Status) {
		if !st.OK() {
			select {
			case failed <- st:
			default:
			}
		}
		<-window
	})
	data := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if fresh {
			data = make([]byte, size)
			data[0], data[size-1] = byte(i), byte(i) // a marshaller writes it
		}
		window <- struct{}{}
		node.Apply(asyncraft.Task{Data: data, Done: done, NoCopy: noCopy})
	}
	for i := 0; i < cap(window); i++ {
		window <- struct{}{}
	}
	b.StopTimer()
	select {
	case st := <-failed:
		b.Fatalf("a proposal failed: %v", st)
	default:
	}
}

// BenchmarkApplyInFlight256 measures the proposal path on the production runtime —
// Apply, the node's drain and append, the log manager, commit, the FSM
// caller and the callback executor — on a single-node group with its log
// in memory, so that the disk and the network stay out of the figure.
// Clients keep 256 proposals of 128 bytes in flight (the tput workload's
// shape); ns/op is per proposal.
func BenchmarkApplyInFlight256(b *testing.B) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
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
