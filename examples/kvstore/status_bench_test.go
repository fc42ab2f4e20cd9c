package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/asyncraft/asyncraft"
)

// filledStore returns a store of n keys with 100-byte values, and a
// handler of its API on a fake leader.
func filledStore(b *testing.B, n int) (*Store, http.Handler) {
	b.Helper()
	s := NewStore("n1", slog.New(slog.DiscardHandler))
	it := &iter{}
	value := strings.Repeat("v", 100)
	for i := range n {
		data, err := Command{Op: OpPut, Key: fmt.Sprintf("key-%08d", i), Value: value}.Encode()
		if err != nil {
			b.Fatal(err)
		}
		it.data = append(it.data, data)
	}
	s.OnApply(it)
	node := &fakeNode{status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader, Leader: "n1"}}
	return s, NewServer(node, s, nil).Handler()
}

// BenchmarkStatus: one GET /status, against stores of growing size. Its
// cost does not grow with the store.
func BenchmarkStatus(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			_, h := filledStore(b, n)
			req := httptest.NewRequest(http.MethodGet, "/status", nil)
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status: %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkWritesWithStatusPollers: puts applied one entry at a time
// (OnApply, as the node's FSM caller does) to a store of 100,000 keys,
// while 0 or 10 goroutines poll GET /status without pause. Reports
// writes/s and polls/s. When /status sorted and hashed the store under the
// state machine's lock, 10 pollers starved the writes.
func BenchmarkWritesWithStatusPollers(b *testing.B) {
	for _, pollers := range []int{0, 10} {
		b.Run(fmt.Sprintf("pollers=%d", pollers), func(b *testing.B) { benchWritesWithPollers(b, pollers) })
	}
}

func benchWritesWithPollers(b *testing.B, pollers int) {
	s, h := filledStore(b, 100_000)
	entries := make([][]byte, 1024)
	for i := range entries {
		data, err := Command{Op: OpPut, Key: fmt.Sprintf("key-%08d", i*97), Value: fmt.Sprintf("value %d", i)}.Encode()
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = data
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var polls sync.Map
	for p := range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			req := httptest.NewRequest(http.MethodGet, "/status", nil)
			for {
				select {
				case <-stop:
					polls.Store(p, n)
					return
				default:
				}
				h.ServeHTTP(httptest.NewRecorder(), req)
				n++
			}
		}()
	}
	b.ResetTimer()
	for i := range b.N {
		s.OnApply(&iter{data: entries[i%len(entries) : i%len(entries)+1]})
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	total := 0
	polls.Range(func(_, v any) bool { total += v.(int); return true })
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "polls/s")
}
