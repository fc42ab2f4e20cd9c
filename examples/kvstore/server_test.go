package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
	"github.com/asyncraft/asyncraft/snapshot"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, limit)
		case <-tick.C:
		}
	}
}

// startLocal starts a node on a host without a network (Local; its address is "local"),
// in a group whose members are peers (all but id never start). dataDir ""
// keeps the log in memory.
func startLocal(t *testing.T, id string, peers []asyncraft.Peer, dataDir string) (*asyncraft.Host, *asyncraft.Node, *Store) {
	t.Helper()
	cfg := config{id: id, peers: peers, electionTimeout: 100 * time.Millisecond}
	host, node, store, err := startNode(cfg, asyncraft.HostOptions{Local: true, DataDir: dataDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		host.Close(ctx)
	})
	return host, node, store
}

// startSingle starts a one-node group, waits until it leads, and serves
// its API.
func startSingle(t *testing.T, dataDir string) (*httptest.Server, *asyncraft.Host, *asyncraft.Node) {
	t.Helper()
	return startSingleWith(t, dataDir, nil)
}

// startSingleWith is startSingle with the API server set up by setup.
func startSingleWith(t *testing.T, dataDir string, setup func(*Server)) (*httptest.Server, *asyncraft.Host, *asyncraft.Node) {
	t.Helper()
	host, node, store := startLocal(t, "n1", []asyncraft.Peer{{ID: "n1", Addr: "local"}}, dataDir)
	// Leading is not enough to serve reads: a new leader answers EAGAIN
	// until an entry of its term has committed.
	waitFor(t, 10*time.Second, "n1 leads and serves reads", func() bool {
		if node.Status().Role != asyncraft.Leader {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return node.ReadBarrier(ctx) == nil
	})
	api := NewServer(node, store, map[string]string{"n1": "127.0.0.1:1"})
	if setup != nil {
		setup(api)
	}
	ts := httptest.NewServer(api.Handler())
	t.Cleanup(ts.Close)
	return ts, host, node
}

type reply struct {
	code int
	body string
	err  kvapi.APIError
}

func call(t *testing.T, ts *httptest.Server, method, path, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{code: resp.StatusCode, body: string(b)}
	if r.code >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error with Content-Type %q", method, path, ct)
		}
		if err := json.Unmarshal(b, &r.err); err != nil || r.err.Code == "" || r.err.Error == "" {
			t.Errorf("%s %s: error body %q is not an kvapi.APIError", method, path, b)
		}
	}
	return r
}

func expect(t *testing.T, r reply, code int, body string) {
	t.Helper()
	if r.code != code || (body != "" && strings.TrimSpace(r.body) != body) {
		t.Fatalf("got %d %s, want %d %s", r.code, r.body, code, body)
	}
}

func TestAPISingleNode(t *testing.T) {
	ts, _, _ := startSingle(t, "")

	expect(t, call(t, ts, "GET", "/kv/a", ""), 404, "")
	expect(t, call(t, ts, "PUT", "/kv/a", "hello"), 204, "")
	expect(t, call(t, ts, "GET", "/kv/a", ""), 200, `{"key":"a","value":"hello"}`)
	expect(t, call(t, ts, "POST", "/kv/a?append=1", ", world"), 204, "")
	expect(t, call(t, ts, "GET", "/kv/a", ""), 200, `{"key":"a","value":"hello, world"}`)
	expect(t, call(t, ts, "POST", "/kv/new?append=true", "x"), 204, "")
	expect(t, call(t, ts, "GET", "/kv/new", ""), 200, `{"key":"new","value":"x"}`)
	expect(t, call(t, ts, "PUT", "/kv/empty", ""), 204, "")
	expect(t, call(t, ts, "GET", "/kv/empty", ""), 200, `{"key":"empty","value":""}`)
	expect(t, call(t, ts, "DELETE", "/kv/a", ""), 204, "")
	expect(t, call(t, ts, "DELETE", "/kv/a", ""), 204, "")
	expect(t, call(t, ts, "GET", "/kv/a", ""), 404, "")
	// Keys are path segments, unescaped, and may contain slashes.
	expect(t, call(t, ts, "PUT", "/kv/dir/sub%20key", "v"), 204, "")
	expect(t, call(t, ts, "GET", "/kv/dir/sub%20key", ""), 200, `{"key":"dir/sub key","value":"v"}`)

	r := call(t, ts, "GET", "/status", "")
	var st kvapi.StatusReply
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.code != 200 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	if st.ID != "n1" || st.Role != "leader" || st.Leader != "n1" || st.LeaderHTTP != "127.0.0.1:1" || st.Keys != 3 || st.Applied == 0 || st.Digest == "" {
		t.Errorf("status: %+v", st)
	}
}

func TestAPIBadInput(t *testing.T) {
	ts, _, _ := startSingle(t, "")
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/kv/", "", 400},
		{"PUT", "/kv/", "v", 400},
		{"GET", "/kv/%ff", "", 400},
		{"PUT", "/kv/k", "\xff\xfe", 400},
		{"PUT", "/kv/" + strings.Repeat("k", maxKeyBytes+1), "v", 400},
		{"POST", "/kv/k", "v", 400},
		{"POST", "/kv/k?append=yes", "v", 400},
		{"PATCH", "/kv/k", "v", 405},
		{"POST", "/status", "", 405},
		{"PUT", "/kv/k", strings.Repeat("v", DefaultMaxValueBytes+1), 413},
		{"GET", "/nowhere", "", 404},
		{"GET", "/", "", 404},
	} {
		r := call(t, ts, c.method, c.path, c.body)
		if r.code != c.code {
			t.Errorf("%s %.40s: got %d %s, want %d", c.method, c.path, r.code, r.body, c.code)
		}
	}
	// The node still serves.
	expect(t, call(t, ts, "PUT", "/kv/k", "v"), 204, "")
	expect(t, call(t, ts, "GET", "/kv/k", ""), 200, `{"key":"k","value":"v"}`)
}

// A node of a three-node group whose peers never start has no leader: it
// answers 503 EPERM without a leader.
func TestAPINoLeader(t *testing.T) {
	peers := []asyncraft.Peer{{ID: "n1", Addr: "local"}, {ID: "n2", Addr: "nowhere2"}, {ID: "n3", Addr: "nowhere3"}}
	_, node, store := startLocal(t, "n1", peers, "")
	ts := httptest.NewServer(NewServer(node, store, nil).Handler())
	defer ts.Close()
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		r := call(t, ts, m, "/kv/k", "v")
		if r.code != 503 || r.err.Code != "EPERM" || r.err.Leader != "" {
			t.Errorf("%s: got %d %s, want 503 EPERM without a leader", m, r.code, r.body)
		}
	}
}

// The log is durable: a restarted node replays it into a new store.
func TestAPIRestart(t *testing.T) {
	dir := t.TempDir()
	ts, host, _ := startSingle(t, dir)
	expect(t, call(t, ts, "PUT", "/kv/a", "1"), 204, "")
	expect(t, call(t, ts, "POST", "/kv/a?append=1", "2"), 204, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ts2, _, _ := startSingle(t, dir)
	expect(t, call(t, ts2, "GET", "/kv/a", ""), 200, `{"key":"a","value":"12"}`)
}

// fakeNode answers every command with a fixed error (or waits for the
// context, like ApplyWait, when block is set).
type fakeNode struct {
	err     error
	block   bool
	status  asyncraft.Status
	snapErr error
}

func (f *fakeNode) ApplyWait(ctx context.Context, data []byte) (any, error) {
	if _, err := DecodeCommand(data); err != nil {
		return nil, fmt.Errorf("fake: bad command: %w", err)
	}
	if f.block {
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %w", closure.ErrUnknownOutcome, ctx.Err())
	}
	return nil, f.err
}

func (f *fakeNode) ReadBarrier(ctx context.Context, _ ...asyncraft.ReadMode) error {
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func (f *fakeNode) Status() asyncraft.Status { return f.status }

func (f *fakeNode) Snapshot(context.Context) (uint64, error) {
	if f.snapErr != nil {
		return 0, f.snapErr
	}
	return f.status.Applied, nil
}

func TestErrorMapping(t *testing.T) {
	peerHTTP := map[string]string{"n1": "127.0.0.1:8001", "n2": "127.0.0.1:8002"}
	for _, c := range []struct {
		st         closure.Status
		statusLead string
		code       int
		wantCode   string
		leader     string
		leaderHTTP string
	}{
		{st: closure.NotLeader("n2"), code: 421, wantCode: "EPERM", leader: "n2", leaderHTTP: "127.0.0.1:8002"},
		{st: closure.NotLeader("n9"), code: 421, wantCode: "EPERM", leader: "n9"}, // no HTTP address known
		{st: closure.NotLeader(""), code: 503, wantCode: "EPERM"},
		{st: closure.NotLeader(""), statusLead: "n1", code: 421, wantCode: "EPERM", leader: "n1", leaderHTTP: "127.0.0.1:8001"},
		{st: closure.Newf(closure.EBUSY, "full"), code: 503, wantCode: "EBUSY"},
		{st: closure.Newf(closure.EAGAIN, "x"), code: 503, wantCode: "EAGAIN"},
		{st: closure.Newf(closure.ESHUTDOWN, "x"), code: 503, wantCode: "ESHUTDOWN"},
		{st: closure.Newf(closure.ESTALE, "x"), code: 503, wantCode: "ESTALE"},
		{st: closure.Newf(closure.ENEWLEADER, "x"), code: 503, wantCode: "ENEWLEADER"},
		{st: closure.Newf(closure.EUNKNOWN, "x"), code: 504, wantCode: "EUNKNOWN"},
		{st: closure.Newf(closure.ETIMEDOUT, "x"), code: 504, wantCode: "EUNKNOWN"},
		{st: closure.Newf(closure.EINVAL, "too big"), code: 400, wantCode: "EINVAL"},
		{st: closure.Newf(closure.EIO, "disk"), code: 500, wantCode: "EIO"},
		{st: closure.Newf(closure.EINTERNAL, "bug"), code: 500, wantCode: "EINTERNAL"},
	} {
		node := &fakeNode{err: c.st.Err(), status: asyncraft.Status{Leader: c.statusLead}}
		ts := httptest.NewServer(NewServer(node, NewStore("n3", nil), peerHTTP).Handler())
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			r := call(t, ts, m, "/kv/k", "v")
			code, want := c.code, c.wantCode
			if m == "GET" && c.st.Code == closure.ETIMEDOUT {
				code, want = 503, "ETIMEDOUT" // a read has no effect: just retry
			}
			if r.code != code || r.err.Code != want || r.err.Leader != c.leader || r.err.LeaderHTTP != c.leaderHTTP {
				t.Errorf("%v %s: got %d %+v, want %d %s leader %q %q", c.st, m, r.code, r.err, code, want, c.leader, c.leaderHTTP)
			}
		}
		ts.Close()
	}
}

func TestTimeoutIsUnknown(t *testing.T) {
	srv := NewServerWithTimeout(&fakeNode{block: true}, NewStore("n1", nil), nil, 50*time.Millisecond)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	r := call(t, ts, "PUT", "/kv/k", "v")
	if r.code != 504 || r.err.Code != "EUNKNOWN" {
		t.Fatalf("got %d %s, want 504 EUNKNOWN", r.code, r.body)
	}
}

func TestParseFlags(t *testing.T) {
	good := []string{"-id", "n1", "-addr", "127.0.0.1:7001", "-http", "127.0.0.1:8001", "-data", "/tmp/x",
		"-peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002", "-peer-http", "n1=127.0.0.1:8001,n2=127.0.0.1:8002"}
	cfg, err := parseFlags(newFlagSet(), good)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.peers) != 2 || cfg.peers[1] != (asyncraft.Peer{ID: "n2", Addr: "127.0.0.1:7002"}) || cfg.peerHTTP["n2"] != "127.0.0.1:8002" {
		t.Errorf("parsed %+v", cfg)
	}
	for _, bad := range [][]string{
		{},
		{"-id", "n1"},
		{"-id", "n3", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1=a:1"},
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1=a:1,n1=a:2"},
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1"},
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1=noport"},
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1=a:1", "-timeout", "0s"},
		{"-id", "n1", "-addr", "a:1", "-http", "b:2", "-data", "d", "-peers", "n1=a:1", "extra"},
	} {
		if _, err := parseFlags(newFlagSet(), bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// With stale reads a GET is answered from the local state, even on a node
// that has no leader.
func TestAPIStaleReads(t *testing.T) {
	peers := []asyncraft.Peer{{ID: "n1", Addr: "local"}, {ID: "n2", Addr: "nowhere2"}, {ID: "n3", Addr: "nowhere3"}}
	_, node, store := startLocal(t, "n1", peers, "")
	srv := NewServer(node, store, nil)
	srv.staleReads = true
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	expect(t, call(t, ts, "GET", "/kv/k", ""), 404, "")
	store.OnApply(&iter{data: [][]byte{mustEncode(t, Command{Op: OpPut, Key: "k", Value: "v"})}})
	expect(t, call(t, ts, "GET", "/kv/k", ""), 200, `{"key":"k","value":"v"}`)
	if r := call(t, ts, "PUT", "/kv/k", "w"); r.code != 503 {
		t.Errorf("PUT without a leader: got %d %s, want 503", r.code, r.body)
	}
}

// GET /status on the leader shows its view of each follower, so an
// operator sees which one lags and why.
func TestStatusShowsPeers(t *testing.T) {
	contact := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	node := &fakeNode{status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader, Leader: "n1", LastIndex: 90, Peers: []asyncraft.PeerStatus{
		{Peer: "n2", Match: 90, Next: 91, State: "replicate", LastContact: contact},
		{Peer: "n3", Match: 12, Next: 40, State: "probe", Inflight: 1, InflightBytes: 300, ReadFailures: 2},
	}}}
	ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), nil).Handler())
	defer ts.Close()
	var st kvapi.StatusReply
	if err := json.Unmarshal([]byte(call(t, ts, "GET", "/status", "").body), &st); err != nil {
		t.Fatal(err)
	}
	want := []kvapi.PeerReply{
		{ID: "n2", Match: 90, Next: 91, State: "replicate", LastContact: contact},
		{ID: "n3", Match: 12, Next: 40, State: "probe", Inflight: 1, InflightBytes: 300, ReadFailures: 2},
	}
	if !reflect.DeepEqual(st.Peers, want) {
		t.Fatalf("status peers %+v, want %+v", st.Peers, want)
	}
	if st.Metrics != nil {
		t.Fatalf("a node without metrics: status shows %+v", st.Metrics)
	}
}

// GET /status shows what the chaos test's install nemeses watch: the
// log's first index and the newest snapshot's, a follower being installed
// (state "snapshot" and the snapshot's index), and the install counters.
func TestStatusShowsSnapshotsAndInstalls(t *testing.T) {
	node := &metricsFakeNode{fakeNode: fakeNode{status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader, Leader: "n1",
		FirstIndex: 301, SnapshotIndex: 400, LastIndex: 450, Peers: []asyncraft.PeerStatus{
			{Peer: "n2", Match: 450, Next: 451, State: "replicate"},
			{Peer: "n3", Match: 0, Next: 401, State: "snapshot", Snapshot: 400},
		}}}}
	m := &node.metrics
	m.Snapshots.Store(4)
	m.SnapshotFailures.Store(1)
	m.InstallsStarted.Store(3)
	m.InstallsDone.Store(2)
	m.InstallFailures.Store(1)
	m.SnapshotsSent.Store(5)
	ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), nil).Handler())
	defer ts.Close()
	var st kvapi.StatusReply
	if err := json.Unmarshal([]byte(call(t, ts, "GET", "/status", "").body), &st); err != nil {
		t.Fatal(err)
	}
	if st.FirstIndex != 301 || st.SnapshotIndex != 400 || st.LastIndex != 450 {
		t.Errorf("indexes: first %d snapshot %d last %d, want 301 400 450", st.FirstIndex, st.SnapshotIndex, st.LastIndex)
	}
	if p := st.Peers[1]; p.State != "snapshot" || p.Snapshot != 400 {
		t.Errorf("the follower being installed: %+v", p)
	}
	want := kvapi.MetricsReply{Snapshots: 4, SnapshotFailures: 1, InstallsStarted: 3, InstallsDone: 2, InstallFailures: 1, SnapshotsSent: 5}
	if st.Metrics == nil || *st.Metrics != want {
		t.Fatalf("metrics %+v, want %+v", st.Metrics, want)
	}
}

// metricsFakeNode is a fakeNode with metrics, like *asyncraft.Node.
type metricsFakeNode struct {
	fakeNode
	metrics asyncraft.Metrics
}

func (f *metricsFakeNode) Metrics() *asyncraft.Metrics { return &f.metrics }

// POST /snapshot answers the snapshot's index, 409 while one is being
// taken or when nothing was applied since the newest, 501 on a node
// without a data directory; other methods are refused.
func TestSnapshotEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		body string
	}{
		{"taken", nil, 200, `{"index":42}`},
		{"busy", fmt.Errorf("no snapshot: %w", snapshot.ErrBusy), 409, `"code":"EBUSY"`},
		{"nothing new", fmt.Errorf("%w: snapshot (index 42, term 2)", snapshot.ErrExists), 409, `"code":"EEXIST"`},
		{"no data directory", asyncraft.ErrNoSnapshots, 501, `"code":"EINVAL"`},
		{"failed", errors.New("disk full"), 500, `"code":"EIO"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := &fakeNode{status: asyncraft.Status{Applied: 42}, snapErr: tc.err}
			ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), nil).Handler())
			defer ts.Close()
			r := call(t, ts, "POST", "/snapshot", "")
			if r.code != tc.code || !strings.Contains(r.body, tc.body) {
				t.Fatalf("POST /snapshot: %d %s, want %d with %s", r.code, r.body, tc.code, tc.body)
			}
		})
	}
	ts := httptest.NewServer(NewServer(&fakeNode{}, NewStore("n1", nil), nil).Handler())
	defer ts.Close()
	if r := call(t, ts, "GET", "/snapshot", ""); r.code != 405 {
		t.Fatalf("GET /snapshot: %d", r.code)
	}
}
