package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// fakeKV fakes the membership endpoints of a kvstore node: it records the
// requests and answers with the status and body set for each path.
type fakeKV struct {
	mu       sync.Mutex
	requests []string // "METHOD path body"
	answers  map[string]answer
}

type answer struct {
	code int
	body string
}

func newFakeKV(t *testing.T, answers map[string]answer) (*fakeKV, *httptest.Server) {
	f := &fakeKV{answers: answers}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(b)))
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			a = answer{404, `{"error":"no such endpoint","code":"ENOTFOUND"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(ts.Close)
	return f, ts
}

func (f *fakeKV) set(route string, a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[route] = a
}

func (f *fakeKV) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

const leaderConfig = `{"id":"n1","leader":"n1","term":4,"index":12,"committed":true,"joint":false,
"voters":[{"id":"n1","addr":"127.0.0.1:7001","http":"127.0.0.1:8001"},{"id":"n2","addr":"127.0.0.1:7002","priority":3}],
"learners":[{"id":"n4","addr":"127.0.0.1:7004"}],"promoting":["n4"],"cluster_identity":"0x00000000000000ff","change_index":15}`

func addr(ts *httptest.Server) string { return strings.TrimPrefix(ts.URL, "http://") }

func runAdmin(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Each command sends its request, and prints the configuration or the
// new leader.
func TestRemoteCommands(t *testing.T) {
	f, ts := newFakeKV(t, map[string]answer{
		"GET /membership":  {200, leaderConfig},
		"POST /membership": {200, leaderConfig},
		"POST /transfer":   {200, `{"leader":"n2","leader_http":"127.0.0.1:8002","term":5}`},
	})
	a := addr(ts)
	for _, c := range []struct {
		args []string
		req  string // the request the fake must get
		says []string
	}{
		{[]string{"members", "-http", a}, "GET /membership", []string{"configuration of index 12 (committed) on n1, term 4, leader \"n1\"; cluster identity 0x00000000000000ff",
			"voter    n1  127.0.0.1:7001  http 127.0.0.1:8001  leader", "voter    n2  127.0.0.1:7002  http -               priority 3",
			"learner  n4  127.0.0.1:7004  http -               promoted once caught up"}},
		{[]string{"members", "-http", a, "-local"}, "GET /membership?local=1", nil},
		{[]string{"members", "-http", a, "-json"}, "GET /membership", []string{`"cluster_identity":"0x00000000000000ff"`}},
		{[]string{"add-voter", "-http", a, "-id", "n4", "-addr", "127.0.0.1:7004"},
			`POST /membership?timeout=25s {"op":"add-voter","id":"n4","addr":"127.0.0.1:7004"}`, []string{"add-voter n4: done, committed at index 15", "voter "}},
		{[]string{"add-learner", "-http", a, "-id", "n4", "-addr", "127.0.0.1:7004", "-timeout", "5s"},
			`POST /membership?timeout=5s {"op":"add-learner","id":"n4","addr":"127.0.0.1:7004"}`, nil},
		{[]string{"add-learner", "-http", a, "-id", "n4", "-addr", "127.0.0.1:7004", "-promote"},
			`POST /membership?timeout=25s {"op":"add-learner-to-promote","id":"n4","addr":"127.0.0.1:7004"}`, nil},
		{[]string{"promote", "-http", a, "-id", "n4", "-if-index", "12"},
			`POST /membership?timeout=25s {"op":"promote","id":"n4","if_index":12}`, nil},
		{[]string{"promote", "-http", a, "-id", "n4", "-if-index", "0"},
			`POST /membership?timeout=25s {"op":"promote","id":"n4","if_index":0}`, nil},
		{[]string{"remove", "-http", a, "-id", "n2"}, `POST /membership?timeout=25s {"op":"remove","id":"n2"}`, nil},
		{[]string{"remove", "-http", a, "-id", "n4", "-learner"}, `POST /membership?timeout=25s {"op":"remove-learner","id":"n4"}`, nil},
		{[]string{"replace", "-http", a, "-old", "n2", "-id", "n5", "-addr", "127.0.0.1:7005"},
			`POST /membership?timeout=25s {"op":"replace","id":"n5","addr":"127.0.0.1:7005","old":"n2"}`, nil},
		{[]string{"set-priority", "-http", a, "-id", "n2", "-priority", "0"}, `POST /membership?timeout=25s {"op":"set-priority","id":"n2","priority":0}`, nil},
		{[]string{"set-priority", "-http", a, "-id", "n2", "-priority", "9", "-if-index", "12"},
			`POST /membership?timeout=25s {"op":"set-priority","id":"n2","priority":9,"if_index":12}`, nil},
		{[]string{"transfer", "-http", a}, "POST /transfer?timeout=25s", []string{"leadership transferred: n2 leads in term 5 (HTTP 127.0.0.1:8002)"}},
		{[]string{"transfer", "-http", a, "-to", "n2"}, "POST /transfer?timeout=25s&to=n2", nil},
	} {
		f.mu.Lock()
		f.requests = nil
		f.mu.Unlock()
		code, out, errOut := runAdmin(c.args...)
		if code != 0 {
			t.Errorf("%q: exit %d: %s", c.args, code, errOut)
			continue
		}
		if got := f.got(); len(got) != 1 || got[0] != c.req {
			t.Errorf("%q: requests %q, want %q", c.args, got, c.req)
		}
		for _, s := range c.says {
			if !strings.Contains(out, s) {
				t.Errorf("%q: output does not say %q:\n%s", c.args, s, out)
			}
		}
	}
}

// A node that does not lead names the leader's HTTP address: the command
// goes there.
func TestFollowsTheLeader(t *testing.T) {
	leader, lts := newFakeKV(t, map[string]answer{"POST /membership": {200, leaderConfig}})
	follower, fts := newFakeKV(t, map[string]answer{
		"POST /membership": {421, `{"error":"not the leader","code":"EPERM","leader":"n1","leader_http":"` + addr(lts) + `"}`},
	})
	code, _, errOut := runAdmin("remove", "-http", addr(fts), "-id", "n2")
	if code != 0 || len(follower.got()) != 1 || len(leader.got()) != 1 || !strings.Contains(errOut, "asking the leader n1") {
		t.Fatalf("exit %d, %q; follower got %q, leader %q", code, errOut, follower.got(), leader.got())
	}
	// A leader whose HTTP address is unknown: say so.
	_, fts2 := newFakeKV(t, map[string]answer{"POST /membership": {421, `{"error":"not the leader","code":"EPERM","leader":"n9"}`}})
	if code, _, errOut := runAdmin("remove", "-http", addr(fts2), "-id", "n2"); code != 1 || !strings.Contains(errOut, "the leader is n9, whose HTTP address") {
		t.Fatalf("leader without an HTTP address: exit %d, %q", code, errOut)
	}
	// Two nodes that name each other: the command gives up.
	loopA, la := newFakeKV(t, map[string]answer{})
	loopB, lb := newFakeKV(t, map[string]answer{})
	loopA.set("POST /transfer", answer{421, `{"error":"not the leader","code":"EPERM","leader":"b","leader_http":"` + addr(lb) + `"}`})
	loopB.set("POST /transfer", answer{421, `{"error":"not the leader","code":"EPERM","leader":"a","leader_http":"` + addr(la) + `"}`})
	if code, _, _ := runAdmin("transfer", "-http", addr(la)); code != 1 || len(loopA.got())+len(loopB.got()) != 4 {
		t.Fatalf("a loop of hints: exit %d, requests %q %q", code, loopA.got(), loopB.got())
	}
}

// Failures: the code and a hint on stderr, exit 1, or 3 when the outcome
// is unknown; bad usage exits 2 without a request.
func TestRemoteFailures(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		exit   int
		says   string
	}{
		{409, `{"error":"in progress","code":"EINPROGRESS"}`, 1, "another membership change is under way"},
		{409, `{"error":"n4 is a voter already","code":"EUNCHANGED"}`, 1, "nothing to do"},
		{412, `{"error":"if_index 3","code":"ECONFSTALE"}`, 1, "read it again"},
		{504, `{"error":"[n4] did not catch up","code":"ETIMEDOUT"}`, 1, "stay learners"},
		{504, `{"error":"context deadline exceeded","code":"EUNKNOWN"}`, 3, "the outcome is unknown"},
		{503, `{"error":"try again","code":"EAGAIN"}`, 1, "retry"},
		{503, `{"error":"not the leader; no leader known","code":"EPERM"}`, 1, "no leader is known"},
		{400, `{"error":"no voters","code":"EINVAL"}`, 1, "400 EINVAL: no voters"},
		{404, `not json`, 1, "is " /* the HTTP API of a kvstore node? */},
	} {
		_, ts := newFakeKV(t, map[string]answer{"POST /membership": {c.status, c.body}})
		code, _, errOut := runAdmin("add-voter", "-http", addr(ts), "-id", "n4", "-addr", "127.0.0.1:7004")
		if code != c.exit || !strings.Contains(errOut, c.says) {
			t.Errorf("%d %s: exit %d, %q; want %d saying %q", c.status, c.body, code, errOut, c.exit, c.says)
		}
	}

	// Nothing listens: a definite failure.
	ts := httptest.NewServer(http.NotFoundHandler())
	dead := addr(ts)
	ts.Close()
	if code, _, errOut := runAdmin("members", "-http", dead); code != 1 || !strings.Contains(errOut, dead) {
		t.Errorf("a dead node: exit %d, %q", code, errOut)
	}

	f, ts2 := newFakeKV(t, nil)
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"members"},
		{"members", "-http", "noport"},
		{"add-voter", "-http", addr(ts2), "-id", "n4"},
		{"add-voter", "-http", addr(ts2), "-addr", "127.0.0.1:7004"},
		{"add-voter", "-http", addr(ts2), "-id", "n4", "-addr", "noport"},
		{"replace", "-http", addr(ts2), "-id", "n4", "-addr", "127.0.0.1:7004"},
		{"remove", "-http", addr(ts2)},
		{"remove", "-http", addr(ts2), "-id", "n2", "extra"},
		{"transfer", "-http", addr(ts2), "-id", "n2"},
		{"transfer", "-http", addr(ts2), "-timeout", "0s"},
		{"set-priority", "-http", addr(ts2), "-id", "n2"},
		{"set-priority", "-http", addr(ts2), "-id", "n2", "-priority", "4294967296"},
	} {
		if code, _, errOut := runAdmin(args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, %q; want 2 with a message", args, code, errOut)
		}
	}
	if got := f.got(); len(got) != 0 {
		t.Fatalf("bad usage sent requests: %q", got)
	}
	if code, out, _ := runAdmin("help"); code != 0 || !strings.Contains(out, "add-voter") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

// A guard of index 0 is sent, not left out (the kvstore tells "if_index":0
// from no guard).
func TestChangeRequestJSON(t *testing.T) {
	zero := uint64(0)
	b, _ := json.Marshal(kvapi.MembershipRequest{Op: "remove", ID: "n2", IfIndex: &zero})
	if string(b) != `{"op":"remove","id":"n2","if_index":0}` {
		t.Fatalf("%s", b)
	}
}

// The commands against a real kvstore node (examples/kvstore, built by the
// test): a group of one, a learner added and removed, a transfer to the
// leader itself, and the refusals as the kvstore answers them.
func TestAgainstKVStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the kvstore example")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvstore")
	build := exec.Command(goBin, "build", "-o", bin, "./examples/kvstore")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/kvstore: %v\n%s", err, out)
	}
	raft, httpAddr := freeAddr(t), freeAddr(t)
	logPath := filepath.Join(dir, "n1.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	cmd := exec.Command(bin, "-id", "n1", "-addr", raft, "-http", httpAddr, "-data", filepath.Join(dir, "n1"),
		"-peers", "n1="+raft, "-peer-http", "n1="+httpAddr, "-election-timeout", "200ms", "-catch-up-timeout", "1s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	// Wait until it leads and has committed an entry of its term (a
	// change before that is refused with EAGAIN).
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, _ := runAdmin("members", "-http", httpAddr)
		if code == 0 && strings.Contains(out, `leader "n1"`) {
			if code, _, _ := runAdmin("transfer", "-http", httpAddr, "-to", "n1"); code == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kvstore does not lead: %s\n%s", out, logs())
		}
		select {
		case <-done:
			t.Fatalf("the kvstore exited: %s", logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	code, out, errOut := runAdmin("add-learner", "-http", httpAddr, "-id", "n2", "-addr", "127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "learner  n2  127.0.0.1:1") {
		t.Fatalf("add-learner: exit %d\n%s%s", code, out, errOut)
	}
	// n2 never catches up: the promotion fails after -catch-up-timeout.
	if code, _, errOut := runAdmin("promote", "-http", httpAddr, "-id", "n2"); code != 1 || !strings.Contains(errOut, "ETIMEDOUT") {
		t.Fatalf("promote a learner that cannot catch up: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runAdmin("add-learner", "-http", httpAddr, "-id", "n2", "-addr", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "EUNCHANGED") {
		t.Fatalf("add-learner twice: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runAdmin("remove", "-http", httpAddr, "-id", "n2", "-if-index", "0"); code != 1 || !strings.Contains(errOut, "ECONFSTALE") {
		t.Fatalf("remove with a stale -if-index: exit %d, %s", code, errOut)
	}
	if code, out, errOut := runAdmin("remove", "-http", httpAddr, "-id", "n2", "-learner"); code != 0 || strings.Contains(out, "learner  n2") {
		t.Fatalf("remove -learner: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runAdmin("members", "-http", httpAddr, "-json"); code != 0 || !strings.Contains(out, `"learners":[]`) || !strings.Contains(out, `"cluster_identity":"0x`) {
		t.Fatalf("members -json: exit %d, %s", code, out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
