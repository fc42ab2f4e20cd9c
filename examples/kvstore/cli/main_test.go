package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// fake is a kvstore node's HTTP API with canned behaviour.
type fake struct {
	mu       sync.Mutex
	requests []string
	handle   func(w http.ResponseWriter, r *http.Request)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI()+" "+string(body))
	f.mu.Unlock()
	f.handle(w, r)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func jsonReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func serve(t *testing.T, f *fake) string {
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestFollowsLeaderHint(t *testing.T) {
	leader := &fake{handle: func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			jsonReply(w, 200, map[string]string{"key": "k", "value": "v1"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}}
	leaderAddr := serve(t, leader)
	follower := &fake{handle: func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 421, kvapi.APIError{Error: "not the leader", Code: "EPERM", Leader: "n2", LeaderHTTP: leaderAddr})
	}}
	followerAddr := serve(t, follower)

	code, out, errs := runCLI("-servers", followerAddr, "put", "k", "v1")
	if code != exitOK || out != "OK\n" {
		t.Fatalf("put: %d %q %q", code, out, errs)
	}
	code, out, errs = runCLI("-servers", followerAddr, "get", "k")
	if code != exitOK || out != "v1\n" {
		t.Fatalf("get: %d %q %q", code, out, errs)
	}
	code, out, errs = runCLI("-servers", followerAddr, "append", "k", "x y")
	if code != exitOK {
		t.Fatalf("append: %d %q %q", code, out, errs)
	}
	if got := leader.requests[len(leader.requests)-1]; got != "POST /kv/k?append=1 x y" {
		t.Errorf("append sent %q", got)
	}
}

func TestRetriesDefiniteFailures(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	node := &fake{handle: func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch n {
		case 1:
			jsonReply(w, 503, kvapi.APIError{Error: "no leader", Code: "EPERM"})
		case 2:
			jsonReply(w, 503, kvapi.APIError{Error: "busy", Code: "EBUSY"})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}}
	addr := serve(t, node)
	// A refused connection is definite too: 127.0.0.1:1 has no listener.
	code, _, errs := runCLI("-servers", "127.0.0.1:1,"+addr, "del", "k")
	if code != exitOK || node.count() != 3 {
		t.Fatalf("del: exit %d after %d requests: %s", code, node.count(), errs)
	}
}

func TestUnknownWriteNotRetried(t *testing.T) {
	node := &fake{handle: func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 504, kvapi.APIError{Error: "timed out", Code: "EUNKNOWN"})
	}}
	addr := serve(t, node)
	code, _, errs := runCLI("-servers", addr, "put", "k", "v")
	if code != exitUnknown || node.count() != 1 || !strings.Contains(errs, "unknown") {
		t.Fatalf("put: exit %d after %d requests: %s", code, node.count(), errs)
	}
	// A read is retried (until -timeout).
	code, _, _ = runCLI("-servers", addr, "-timeout", "300ms", "get", "k")
	if code != exitFailed || node.count() < 3 {
		t.Fatalf("get: exit %d after %d requests", code, node.count())
	}
}

func TestNotFoundAndBadRequest(t *testing.T) {
	node := &fake{handle: func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			jsonReply(w, 404, kvapi.APIError{Error: "key not found", Code: "ENOTFOUND"})
			return
		}
		jsonReply(w, 400, kvapi.APIError{Error: "bad key", Code: "EINVAL"})
	}}
	addr := serve(t, node)
	if code, _, errs := runCLI("-servers", addr, "get", "k"); code != exitFailed || !strings.Contains(errs, "not found") {
		t.Errorf("get: %d %s", code, errs)
	}
	if code, _, errs := runCLI("-servers", addr, "put", "k", "v"); code != exitFailed || node.count() != 2 {
		t.Errorf("put: %d after %d requests: %s", code, node.count(), errs)
	}
	for _, args := range [][]string{{}, {"get"}, {"put", "k"}, {"frob", "k"}, {"-servers", "", "get", "k"}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
