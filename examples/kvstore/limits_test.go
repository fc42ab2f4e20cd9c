package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// testLimits leave room for two keys of one byte, one with a value of 10
// bytes (the most) and the other of 9.
var testLimits = Limits{MaxKeyBytes: 4, MaxValueBytes: 10, MaxStoreBytes: entrySize(1, 10) + entrySize(1, 9)}

// checkRefusals drives a server with testLimits: an append beyond the
// value limit is refused with 413, a put that would fill the store with
// 507, and the refused commands leave the store as it was.
func checkRefusals(t *testing.T, ts *httptest.Server) {
	t.Helper()
	expect(t, call(t, ts, "PUT", "/kv/a", "12345678"), 204, "")
	expect(t, call(t, ts, "POST", "/kv/a?append=1", "90"), 204, "") // 10 bytes: at the limit
	r := call(t, ts, "POST", "/kv/a?append=1", "x")
	if r.code != 413 || r.err.Code != "EINVAL" || !strings.Contains(r.err.Error, "11 bytes, over the limit of 10") {
		t.Fatalf("append beyond the value limit: got %d %s, want 413 EINVAL", r.code, r.body)
	}
	expect(t, call(t, ts, "GET", "/kv/a", ""), 200, `{"key":"a","value":"1234567890"}`)

	expect(t, call(t, ts, "PUT", "/kv/b", "123456789"), 204, "")
	r = call(t, ts, "PUT", "/kv/c", "")
	if r.code != 507 || r.err.Code != "ENOSPC" || !strings.Contains(r.err.Error, "store full") {
		t.Fatalf("put beyond the store limit: got %d %s, want 507 ENOSPC", r.code, r.body)
	}
	r = call(t, ts, "POST", "/kv/b?append=1", "0!")
	if r.code != 413 {
		t.Fatalf("append beyond both limits: got %d %s, want 413", r.code, r.body)
	}
	r = call(t, ts, "POST", "/kv/b?append=1", "0")
	if r.code != 507 {
		t.Fatalf("append beyond the store limit: got %d %s, want 507", r.code, r.body)
	}
	expect(t, call(t, ts, "GET", "/kv/b", ""), 200, `{"key":"b","value":"123456789"}`)
	expect(t, call(t, ts, "GET", "/kv/c", ""), 404, "")
	if r := call(t, ts, "PUT", "/kv/kkkkk", "v"); r.code != 400 {
		t.Fatalf("put of a key beyond the key limit: got %d %s, want 400", r.code, r.body)
	}
	// Deleting makes room.
	expect(t, call(t, ts, "DELETE", "/kv/b", ""), 204, "")
	expect(t, call(t, ts, "PUT", "/kv/c", "v"), 204, "")

	var st kvapi.StatusReply
	if err := json.Unmarshal([]byte(call(t, ts, "GET", "/status", "").body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Keys != 2 || st.Bytes != entrySize(1, 10)+entrySize(1, 1) || st.MaxBytes != testLimits.MaxStoreBytes {
		t.Fatalf("status: %+v", st)
	}
}

// On a leader, the refusals come before proposing: the log does not grow.
func TestAPILimitsOnTheLeader(t *testing.T) {
	ts, _, node := startSingleWith(t, "", func(s *Server) { s.limits = testLimits })
	expect(t, call(t, ts, "PUT", "/kv/a", "1234567890"), 204, "")
	last := node.Status().LastIndex
	if r := call(t, ts, "POST", "/kv/a?append=1", "x"); r.code != 413 {
		t.Fatalf("append beyond the value limit: got %d %s, want 413", r.code, r.body)
	}
	if now := node.Status().LastIndex; now != last {
		t.Fatalf("the refused append was proposed: last index %d, then %d", last, now)
	}
	expect(t, call(t, ts, "DELETE", "/kv/a", ""), 204, "")
	checkRefusals(t, ts)
}

// applyNode applies each command to its store at once, as a node that is
// not the leader (so the server proposes without checking first): the
// refusals then come from OnApply, with the limits the entry carries.
type applyNode struct {
	store *Store
	index uint64
}

func (n *applyNode) ApplyWait(ctx context.Context, data []byte) (any, error) {
	it := &iter{data: [][]byte{data}}
	n.store.OnApply(it)
	return it.results[0], nil
}

func (n *applyNode) ReadBarrier(context.Context, ...asyncraft.ReadMode) error { return nil }
func (n *applyNode) Snapshot(context.Context) (uint64, error)                 { return 0, asyncraft.ErrNoSnapshots }

func (n *applyNode) Status() asyncraft.Status {
	return asyncraft.Status{ID: "n1", Role: asyncraft.Follower}
}

func TestAPILimitsOnApply(t *testing.T) {
	store := NewStore("n1", slog.New(slog.DiscardHandler))
	api := NewServer(&applyNode{store: store}, store, nil)
	api.limits = testLimits
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()
	checkRefusals(t, ts)
}
