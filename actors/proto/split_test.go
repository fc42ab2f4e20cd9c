package protoactor

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

// TestSplitBatch splits random batches and checks that every part is
// within the limit and the budget as the receiver measures them (its
// inspector accepts the part), and that the parts carry the envelopes in
// order, to the same targets, with the same types and bytes, but for those
// too large to send alone.
func TestSplitBatch(t *testing.T) {
	const limit, budget = 64 << 10, 256 << 10
	seed := testseed.For(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	in := &inspector{budget: budget, accept: acceptTypes(nil)}
	types := []string{stringValueType, "google.protobuf.ListValue"}
	for round := range 60 {
		b := &remote.MessageBatch{TypeNames: types}
		for i := range 1 + rng.IntN(10) {
			b.Targets = append(b.Targets, strings.Repeat("t", 1+rng.IntN(40))+string(rune('a'+i)))
		}
		type sent struct {
			typ, target string
			data        []byte
		}
		var want []sent
		fitsAlone := func(typeID int32, target string, data []byte) bool {
			one := &remote.MessageBatch{TypeNames: []string{types[typeID]}, Targets: []string{target},
				Envelopes: []*remote.MessageEnvelope{{MessageData: data}}}
			raw, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: one}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = in.inspect(raw)
			return len(raw) <= limit && err == nil
		}
		for range rng.IntN(30) {
			e := &remote.MessageEnvelope{Target: int32(rng.IntN(len(b.Targets)))}
			if rng.IntN(3) == 0 { // costly: empty list values
				e.TypeId = 1
				e.MessageData = repeatedEmpty(1, rng.IntN(3000))
			} else {
				e.MessageData = stringValue(strings.Repeat("x", rng.IntN(limit*6/5)))
			}
			b.Envelopes = append(b.Envelopes, e)
			if fitsAlone(e.TypeId, b.Targets[e.Target], e.MessageData) {
				want = append(want, sent{types[e.TypeId], b.Targets[e.Target], e.MessageData})
			}
		}
		dropped := 0
		parts := splitBatch(b, limit, budget, in.lookupString, func() { dropped++ })
		var got []sent
		for _, p := range parts {
			raw, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: p}})
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > limit {
				t.Fatalf("round %d: a part of %d bytes, over %d", round, len(raw), limit)
			}
			if _, err := in.inspect(raw); err != nil {
				t.Fatalf("round %d: the receiver refuses a part: %v", round, err)
			}
			if len(p.Envelopes) == 0 && len(b.Envelopes) > 0 {
				t.Fatalf("round %d: an empty part", round)
			}
			for _, e := range p.Envelopes {
				got = append(got, sent{p.TypeNames[e.TypeId], p.Targets[e.Target], e.MessageData})
			}
		}
		if dropped != len(b.Envelopes)-len(want) {
			t.Fatalf("round %d: %d dropped, want %d", round, dropped, len(b.Envelopes)-len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d envelopes sent, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i].typ != want[i].typ || got[i].target != want[i].target || !bytes.Equal(got[i].data, want[i].data) {
				t.Fatalf("round %d: envelope %d differs", round, i)
			}
		}
	}
}

func TestSplitBatchKeepsAFittingBatch(t *testing.T) {
	in := testInspector()
	b := &remote.MessageBatch{TypeNames: []string{stringValueType}, Targets: []string{"a"},
		Envelopes: []*remote.MessageEnvelope{{MessageData: stringValue("x")}}}
	parts := splitBatch(b, DefaultMaxMessageBytes, in.budget, in.lookupString, func() { t.Fatal("dropped") })
	if len(parts) != 1 || parts[0] != b {
		t.Fatalf("a small batch became %d parts", len(parts))
	}
}

func TestMemBudget(t *testing.T) {
	m := newMemBudget(10)
	ctx := context.Background()
	if err := m.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// A waiter for 5 queues; one for 1, behind it, waits too (first come,
	// first served: small requests do not starve large ones).
	got := make(chan int, 2)
	go func() { m.acquire(ctx, 5); got <- 5 }()
	waitQueued(t, m, 1)
	go func() { m.acquire(ctx, 1); got <- 1 }()
	waitQueued(t, m, 2)
	// A waiter that gives up leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- m.acquire(cctx, 3) }()
	waitQueued(t, m, 3)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled acquire succeeded")
	}
	m.release(6)
	if a, b := <-got, <-got; a+b != 6 {
		t.Fatalf("granted %d and %d", a, b)
	}
	m.release(6)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.free != 10 || len(m.waiters) != 0 {
		t.Fatalf("free %d, %d waiting; want 10 and 0", m.free, len(m.waiters))
	}
}

// waitQueued waits until n acquires wait on m.
func waitQueued(t *testing.T, m *memBudget, n int) {
	t.Helper()
	if !eventually(5*time.Second, time.Millisecond, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.waiters) == n
	}) {
		t.Fatalf("%d acquires never queued", n)
	}
}
