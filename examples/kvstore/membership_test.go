package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// membershipFake is a fakeNode that changes its membership: it records
// each change and transfer and answers with err.
type membershipFake struct {
	fakeNode
	changes   []string
	transfers []string
	index     uint64
	// block makes ChangeMembership wait for the context, as the library
	// does for a change that has not completed.
	blockChange bool
}

func (f *membershipFake) ChangeMembership(ctx context.Context, m asyncraft.MembershipChange) (uint64, error) {
	f.changes = append(f.changes, m.String())
	if f.blockChange {
		<-ctx.Done()
		return 0, fmt.Errorf("asyncraft: membership change (%s): %w; the change may still complete", m, ctx.Err())
	}
	if f.err != nil {
		return 0, f.err
	}
	return f.index, nil
}

func (f *membershipFake) TransferLeadership(_ context.Context, to string) error {
	f.transfers = append(f.transfers, to)
	return f.err
}

func (f *membershipFake) ClusterIdentity() uint64 { return 0xfeed }

var threeVoters = asyncraft.Configuration{Voters: []asyncraft.Peer{{ID: "n1", Addr: "a1:1"}, {ID: "n2", Addr: "a2:1"}, {ID: "n3", Addr: "a3:1"}}}

func leaderStatus(cfg asyncraft.Configuration, index uint64) asyncraft.Status {
	return asyncraft.Status{ID: "n1", Role: asyncraft.Leader, Leader: "n1", Term: 4, Commit: 20, Configuration: cfg, ConfigurationIndex: index}
}

func decodeMembership(t *testing.T, r reply) kvapi.MembershipReply {
	t.Helper()
	var m kvapi.MembershipReply
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("%d %s: %v", r.code, r.body, err)
	}
	return m
}

// Each op of POST /membership becomes the library's change of the same
// name; bad bodies are refused with 400 before anything is changed.
func TestMembershipRequests(t *testing.T) {
	node := &membershipFake{fakeNode: fakeNode{status: leaderStatus(threeVoters, 3)}, index: 9}
	ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), map[string]string{"n1": "h1:1", "n4": "h4:1"}).Handler())
	defer ts.Close()
	for _, c := range []struct{ body, change string }{
		{`{"op":"add-voter","id":"n4","addr":"a4:1"}`, "add voter n4@a4:1"},
		{`{"op":"add-learner","id":"n4","addr":"a4:1"}`, "add learner n4@a4:1"},
		{`{"op":"add-learner-to-promote","id":"n4","addr":"a4:1"}`, "add learner to promote n4@a4:1"},
		{`{"op":"promote","id":"n4"}`, "promote n4"},
		{`{"op":"remove","id":"n2"}`, "remove n2"},
		{`{"op":"remove-learner","id":"n4"}`, "remove learner n4"},
		{`{"op":"replace","old":"n2","id":"n4","addr":"a4:1"}`, "replace n2 by n4@a4:1"},
		{`{"op":"set-priority","id":"n2","priority":0}`, asyncraft.SetPriority("n2", 0).String()},
		{`{"op":"set-priority","id":"n2","priority":7}`, asyncraft.SetPriority("n2", 7).String()},
		{`{"op":"set","voters":[{"id":"n1","addr":"a1:1"}],"learners":[{"id":"n4","addr":"a4:1"}]}`, asyncraft.SetConfiguration(asyncraft.Configuration{Voters: []asyncraft.Peer{{ID: "n1", Addr: "a1:1"}}, Learners: []asyncraft.Peer{{ID: "n4", Addr: "a4:1"}}}).String()},
	} {
		node.changes = nil
		r := call(t, ts, "POST", "/membership", c.body)
		if r.code != 200 || len(node.changes) != 1 || !strings.HasPrefix(node.changes[0], c.change) {
			t.Errorf("%s: %d %s, changes %q; want 200 and %q", c.body, r.code, r.body, node.changes, c.change)
			continue
		}
		if m := decodeMembership(t, r); m.ChangeIndex != 9 || m.Index != 3 || len(m.Voters) != 3 || m.ClusterIdentity != "0x000000000000feed" || m.Voters[0].HTTP != "h1:1" {
			t.Errorf("%s: reply %+v", c.body, m)
		}
	}
	node.changes = nil
	for _, bad := range []string{
		``, `{}`, `nonsense`, `{"op":"add-voter"}`, `{"op":"add-voter","id":"n4"}`, `{"op":"add-voter","addr":"a4:1"}`,
		`{"op":"promote","id":"n4","addr":"a4:1"}`, `{"op":"remove"}`, `{"op":"replace","id":"n4","addr":"a4:1"}`,
		`{"op":"set"}`, `{"op":"set","learners":[{"id":"n4","addr":"a"}]}`, `{"op":"set","id":"n1","voters":[{"id":"n1","addr":"a"}]}`,
		`{"op":"set-priority","id":"n2"}`, `{"op":"set-priority","priority":3}`, `{"op":"remove","id":"n2","priority":3}`,
		`{"op":"set-priority","id":"n2","priority":-1}`,
		`{"op":"jump","id":"n4"}`, `{"op":"remove","id":"n2","typo":1}`, `{"op":"remove","id":"n2"}{"op":"remove","id":"n3"}`,
	} {
		if r := call(t, ts, "POST", "/membership", bad); r.code != 400 || r.err.Code != "EINVAL" {
			t.Errorf("body %q: %d %s, want 400 EINVAL", bad, r.code, r.body)
		}
	}
	for _, q := range []string{"?timeout=abc", "?timeout=-1s", "?timeout=1h"} {
		if r := call(t, ts, "POST", "/membership"+q, `{"op":"remove","id":"n2"}`); r.code != 400 {
			t.Errorf("%s: %d %s, want 400", q, r.code, r.body)
		}
		if r := call(t, ts, "POST", "/transfer"+q, ""); r.code != 400 {
			t.Errorf("transfer %s: %d %s, want 400", q, r.code, r.body)
		}
	}
	if len(node.changes) != 0 || len(node.transfers) != 0 {
		t.Fatalf("bad requests made changes %q, transfers %q", node.changes, node.transfers)
	}
	for _, m := range []string{"PUT", "DELETE"} {
		if r := call(t, ts, m, "/membership", ""); r.code != 405 {
			t.Errorf("%s /membership: %d", m, r.code)
		}
	}
	if r := call(t, ts, "GET", "/transfer", ""); r.code != 405 {
		t.Errorf("GET /transfer: %d", r.code)
	}
}

// The errors of a change and of a transfer, with their status codes.
func TestMembershipErrors(t *testing.T) {
	peerHTTP := map[string]string{"n2": "h2:1"}
	for _, c := range []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("%w: the configuration is joint", asyncraft.ErrChangeInProgress), 409, kvapi.CodeInProgress},
		{fmt.Errorf("%w: n4 is a voter already", asyncraft.ErrConfigurationUnchanged), 409, kvapi.CodeUnchanged},
		{fmt.Errorf("%w: expected ...", asyncraft.ErrConfigurationStale), 412, kvapi.CodeConfStale},
		{fmt.Errorf("%w: no voters", asyncraft.ErrInvalidConfiguration), 400, "EINVAL"},
		{closure.Newf(closure.ETIMEDOUT, "[n4] did not catch up").Err(), 504, "ETIMEDOUT"},
		{closure.Newf(closure.EUNKNOWN, "stepped down").Err(), 504, "EUNKNOWN"},
		{closure.Newf(closure.EBUSY, "a transfer is under way").Err(), 503, "EBUSY"},
		{closure.Newf(closure.EAGAIN, "no entry of its term").Err(), 503, "EAGAIN"},
		{closure.Newf(closure.EINVAL, "no other voter").Err(), 400, "EINVAL"},
		{closure.NotLeader("n2").Err(), 421, "EPERM"},
		{closure.NotLeader("").Err(), 503, "EPERM"},
		{errors.New("asyncraft: no membership change: the node failed: disk"), 500, "EINTERNAL"},
	} {
		node := &membershipFake{fakeNode: fakeNode{err: c.err, status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader}}}
		ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), peerHTTP).Handler())
		for _, path := range []string{"/membership", "/transfer?to=n2"} {
			r := call(t, ts, "POST", path, `{"op":"remove","id":"n3"}`)
			if r.code != c.code || r.err.Code != c.want {
				t.Errorf("%v: POST %s: %d %s, want %d %s", c.err, path, r.code, r.body, c.code, c.want)
			}
			if c.code == 421 && (r.err.Leader != "n2" || r.err.LeaderHTTP != "h2:1") {
				t.Errorf("%v: POST %s: no leader hint in %s", c.err, path, r.body)
			}
		}
		ts.Close()
	}

	// A change that outlasts the request's timeout: 504 EUNKNOWN.
	node := &membershipFake{fakeNode: fakeNode{status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader}}, blockChange: true}
	srv := NewServerWithTimeout(node, NewStore("n1", nil), nil, time.Minute)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	began := time.Now()
	r := call(t, ts, "POST", "/membership?timeout=100ms", `{"op":"remove","id":"n3"}`)
	if r.code != 504 || r.err.Code != "EUNKNOWN" || time.Since(began) > 30*time.Second {
		t.Fatalf("a change past ?timeout=100ms: %d %s after %v, want 504 EUNKNOWN", r.code, r.body, time.Since(began))
	}

	// A node that cannot change its membership.
	ts2 := httptest.NewServer(NewServer(&fakeNode{}, NewStore("n1", nil), nil).Handler())
	defer ts2.Close()
	for _, path := range []string{"/membership", "/transfer"} {
		if r := call(t, ts2, "POST", path, `{"op":"remove","id":"n3"}`); r.code != 501 {
			t.Errorf("POST %s on a node without membership: %d %s, want 501", path, r.code, r.body)
		}
	}
}

// GET /membership on the leader shows its configuration; elsewhere it
// answers 421 naming the leader, unless ?local=1.
func TestGetMembership(t *testing.T) {
	joint := asyncraft.Configuration{
		Voters:    []asyncraft.Peer{{ID: "n1", Addr: "a1:1"}, {ID: "n4", Addr: "a4:1"}},
		Learners:  []asyncraft.Peer{{ID: "n5", Addr: "a5:1"}},
		Promoting: []string{"n5"},
		OldVoters: []asyncraft.Peer{{ID: "n1", Addr: "a1:1"}, {ID: "n2", Addr: "a2:1"}},
	}
	st := leaderStatus(joint, 25) // commit 20: not committed yet
	node := &membershipFake{fakeNode: fakeNode{status: st}}
	ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), map[string]string{"n1": "h1:1", "n2": "h2:1"}).Handler())
	defer ts.Close()
	r := call(t, ts, "GET", "/membership", "")
	m := decodeMembership(t, r)
	want := kvapi.MembershipReply{ID: "n1", Leader: "n1", Term: 4, Index: 25, Committed: false, Joint: true,
		Voters:          []kvapi.MemberReply{{ID: "n1", Addr: "a1:1", HTTP: "h1:1"}, {ID: "n4", Addr: "a4:1"}},
		Learners:        []kvapi.MemberReply{{ID: "n5", Addr: "a5:1"}},
		Promoting:       []string{"n5"},
		OldVoters:       []kvapi.MemberReply{{ID: "n1", Addr: "a1:1", HTTP: "h1:1"}, {ID: "n2", Addr: "a2:1", HTTP: "h2:1"}},
		ClusterIdentity: "0x000000000000feed"}
	if r.code != 200 || fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("GET /membership: %d\n got %+v\nwant %+v", r.code, m, want)
	}
	if !strings.Contains(r.body, `"learners":[{`) || strings.Contains(r.body, "change_index") {
		t.Errorf("body %s", r.body)
	}

	node.status = asyncraft.Status{ID: "n3", Role: asyncraft.Follower, Leader: "n2", Configuration: threeVoters, ConfigurationIndex: 3, Commit: 3}
	if r := call(t, ts, "GET", "/membership", ""); r.code != 421 || r.err.Leader != "n2" || r.err.LeaderHTTP != "h2:1" {
		t.Fatalf("GET /membership on a follower: %d %s, want 421 naming n2", r.code, r.body)
	}
	r = call(t, ts, "GET", "/membership?local=1", "")
	if m := decodeMembership(t, r); r.code != 200 || m.ID != "n3" || !m.Committed || len(m.Voters) != 3 || m.Learners == nil || m.Joint {
		t.Fatalf("GET /membership?local=1 on a follower: %d %s", r.code, r.body)
	}
	if !strings.Contains(r.body, `"learners":[]`) {
		t.Errorf("no learners: want an empty list in %s", r.body)
	}
}

// With if_index, the change is computed from the configuration of that
// index and guarded by it (SetConfigurationIf); another index is refused
// with 412 before anything is asked of the node.
func TestMembershipIfIndex(t *testing.T) {
	node := &membershipFake{fakeNode: fakeNode{status: leaderStatus(threeVoters, 7)}, index: 12}
	ts := httptest.NewServer(NewServer(node, NewStore("n1", nil), nil).Handler())
	defer ts.Close()
	if r := call(t, ts, "POST", "/membership", `{"op":"remove","id":"n2","if_index":6}`); r.code != 412 || r.err.Code != kvapi.CodeConfStale || len(node.changes) != 0 {
		t.Fatalf("if_index 6 (in force: 7): %d %s, changes %q", r.code, r.body, node.changes)
	}
	r := call(t, ts, "POST", "/membership", `{"op":"remove","id":"n2","if_index":7}`)
	want := asyncraft.SetConfigurationIf(threeVoters, asyncraft.Configuration{Voters: []asyncraft.Peer{threeVoters.Voters[0], threeVoters.Voters[2]}}).String()
	if r.code != 200 || len(node.changes) != 1 || node.changes[0] != want {
		t.Fatalf("if_index 7: %d %s, changes %q", r.code, r.body, node.changes)
	}
	// Index 0, the bootstrap configuration, is a guard too.
	node.status.ConfigurationIndex = 0
	if r := call(t, ts, "POST", "/membership", `{"op":"add-learner","id":"n4","addr":"a4:1","if_index":0}`); r.code != 200 {
		t.Fatalf("if_index 0: %d %s", r.code, r.body)
	}
	// Refusals computed from the configuration.
	for body, code := range map[string]string{
		`{"op":"remove","id":"n9","if_index":0}`:                           kvapi.CodeUnchanged,
		`{"op":"add-voter","id":"n2","addr":"a2:1","if_index":0}`:          kvapi.CodeUnchanged,
		`{"op":"promote","id":"n2","if_index":0}`:                          "EINVAL",
		`{"op":"replace","old":"n9","id":"n4","addr":"a","if_index":0}`:    "EINVAL",
		`{"op":"add-learner","id":"n1","addr":"a1:1","if_index":0}`:        "EINVAL",
		`{"op":"remove-learner","id":"n1","if_index":0}`:                   "EINVAL",
		`{"op":"replace","old":"n1","id":"n2","addr":"a2:1","if_index":0}`: "EINVAL",
	} {
		if r := call(t, ts, "POST", "/membership", body); r.err.Code != code {
			t.Errorf("%s: %d %s, want %s", body, r.code, r.body, code)
		}
	}
	node.status.Role, node.status.Leader = asyncraft.Follower, "n2"
	if r := call(t, ts, "POST", "/membership", `{"op":"remove","id":"n2","if_index":0}`); r.code != 503 && r.code != 421 {
		t.Fatalf("if_index on a follower: %d %s", r.code, r.body)
	}
}

// targetFrom computes what the library's changes compute.
func TestTargetFrom(t *testing.T) {
	seven := uint32(7)
	cur := asyncraft.Configuration{
		Voters:    []asyncraft.Peer{{ID: "n1", Addr: "a1"}, {ID: "n2", Addr: "a2"}},
		Learners:  []asyncraft.Peer{{ID: "n3", Addr: "a3"}, {ID: "n5", Addr: "a5"}},
		Promoting: []string{"n5"},
	}
	for _, c := range []struct {
		req  kvapi.MembershipRequest
		want string
	}{
		{kvapi.MembershipRequest{Op: "add-voter", ID: "n4", Addr: "a4"}, "voters n1 n2 n4 learners n3 n5 promoting [n5]"},
		{kvapi.MembershipRequest{Op: "add-voter", ID: "n3", Addr: "b3"}, "voters n1 n2 n3 learners n5 promoting [n5]"},
		{kvapi.MembershipRequest{Op: "add-learner-to-promote", ID: "n4", Addr: "a4"}, "voters n1 n2 learners n3 n4 n5 promoting [n5 n4]"},
		{kvapi.MembershipRequest{Op: "promote", ID: "n5"}, "voters n1 n2 n5 learners n3 promoting []"},
		{kvapi.MembershipRequest{Op: "remove", ID: "n1"}, "voters n2 learners n3 n5 promoting [n5]"},
		{kvapi.MembershipRequest{Op: "remove-learner", ID: "n5"}, "voters n1 n2 learners n3 promoting []"},
		{kvapi.MembershipRequest{Op: "replace", Old: "n2", ID: "n3", Addr: "a3"}, "voters n1 n3 learners n5 promoting [n5]"},
		{kvapi.MembershipRequest{Op: "set-priority", ID: "n2", Priority: &seven}, "voters n1 n2 learners n3 n5 promoting [n5]"},
	} {
		got, err := targetFrom(c.req, cur)
		if err != nil {
			t.Errorf("%+v: %v", c.req, err)
			continue
		}
		ids := func(ps []asyncraft.Peer) string {
			var out []string
			for _, p := range ps {
				out = append(out, p.ID)
			}
			slices.Sort(out)
			return strings.Join(out, " ")
		}
		if s := fmt.Sprintf("voters %s learners %s promoting %v", ids(got.Voters), ids(got.Learners), got.Promoting); s != c.want {
			t.Errorf("%+v: %s, want %s", c.req, s, c.want)
		}
	}
	got, err := targetFrom(kvapi.MembershipRequest{Op: "set-priority", ID: "n3", Priority: &seven}, cur)
	if err != nil || got.Learners[0].Priority != 7 || cur.Learners[0].Priority != 0 {
		t.Errorf("set-priority of a learner: %+v, %v (and the configuration it came from: %+v)", got, err, cur)
	}
	for _, c := range []struct {
		id   string
		prio uint32
		want error
	}{{"n9", 7, asyncraft.ErrInvalidConfiguration}, {"n1", 0, asyncraft.ErrConfigurationUnchanged}} {
		if _, err := targetFrom(kvapi.MembershipRequest{Op: "set-priority", ID: c.id, Priority: &c.prio}, cur); !errors.Is(err, c.want) {
			t.Errorf("set-priority %s %d: %v, want %v", c.id, c.prio, err, c.want)
		}
	}
	joint := cur
	joint.OldVoters = cur.Voters[:1]
	if _, err := targetFrom(kvapi.MembershipRequest{Op: "remove", ID: "n2"}, joint); !errors.Is(err, asyncraft.ErrChangeInProgress) {
		t.Errorf("from a joint configuration: %v", err)
	}
}

func TestParseIdentity(t *testing.T) {
	for in, want := range map[string]uint64{"0x000000000000feed": 0xfeed, "0XFEED": 0xfeed, "65261": 0xfeed, "18446744073709551615": 1<<64 - 1} {
		if got, err := parseIdentity(in); err != nil || got != want {
			t.Errorf("parseIdentity(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "0x0", "feed", "0xfeedz", "-1", "18446744073709551616"} {
		if _, err := parseIdentity(bad); err == nil {
			t.Errorf("parseIdentity(%q) succeeded", bad)
		}
	}
	if s := formatIdentity(0xfeed); s != "0x000000000000feed" {
		t.Errorf("formatIdentity: %s", s)
	}
}

// -join-identity: -peers may then be empty or omit this node; it excludes
// -rejoin-term; -catch-up-timeout reaches the node's options.
func TestJoinFlags(t *testing.T) {
	base := []string{"-id", "n4", "-addr", "127.0.0.1:7004", "-http", "127.0.0.1:8004", "-data", "/tmp/x"}
	cfg, err := parseFlags(newFlagSet(), append(slices.Clone(base), "-join-identity", "0x000000000000feed"))
	if err != nil || cfg.joinIdentity != 0xfeed || len(cfg.peers) != 0 {
		t.Fatalf("join without -peers: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags(newFlagSet(), append(slices.Clone(base), "-join-identity", "65261", "-peers", "n1=127.0.0.1:7001", "-catch-up-timeout", "3s"))
	if err != nil || cfg.joinIdentity != 0xfeed || len(cfg.peers) != 1 || cfg.catchUpTimeout != 3*time.Second {
		t.Fatalf("join with -peers: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		append(slices.Clone(base), "-join-identity", "nope"),
		append(slices.Clone(base), "-join-identity", "0"),
		append(slices.Clone(base), "-join-identity", "0xfeed", "-rejoin-term", "3"),
		append(slices.Clone(base), "-peers", "n1=127.0.0.1:7001"), // not a member, not joining
		append(slices.Clone(base), "-join-identity", "0xfeed", "-catch-up-timeout", "-1s"),
	} {
		if _, err := parseFlags(newFlagSet(), bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

// The endpoints on a real one-node group (a host without a network): a
// learner added and removed, a promotion that fails with ETIMEDOUT because
// the learner never catches up, the guard, and transfers.
func TestMembershipSingleNode(t *testing.T) {
	ts, _, node := startSingle(t, "")
	identity := formatIdentity(node.ClusterIdentity())
	var st kvapi.StatusReply
	if err := json.Unmarshal([]byte(call(t, ts, "GET", "/status", "").body), &st); err != nil || st.ClusterIdentity != identity {
		t.Fatalf("GET /status: cluster identity %q, %v; want %s", st.ClusterIdentity, err, identity)
	}
	m := decodeMembership(t, call(t, ts, "GET", "/membership", ""))
	if m.Leader != "n1" || m.Index != 0 || !m.Committed || m.Joint || len(m.Voters) != 1 || m.Voters[0].ID != "n1" || len(m.Learners) != 0 || m.ClusterIdentity != identity {
		t.Fatalf("GET /membership: %+v", m)
	}

	r := call(t, ts, "POST", "/membership", `{"op":"add-learner","id":"n2","addr":"nowhere:1"}`)
	m = decodeMembership(t, r)
	if r.code != 200 || m.ChangeIndex == 0 || m.Index != m.ChangeIndex || len(m.Learners) != 1 || m.Learners[0] != (kvapi.MemberReply{ID: "n2", Addr: "nowhere:1"}) {
		t.Fatalf("add-learner: %d %s", r.code, r.body)
	}
	if r := call(t, ts, "POST", "/membership", `{"op":"add-learner","id":"n2","addr":"nowhere:1"}`); r.code != 409 || r.err.Code != kvapi.CodeUnchanged {
		t.Fatalf("add-learner again: %d %s, want 409 %s", r.code, r.body, kvapi.CodeUnchanged)
	}
	// n2 never answers: its promotion fails once the catch-up timeout
	// (20 election timeouts: 2 s) passes, and it stays a learner.
	began := time.Now()
	r = call(t, ts, "POST", "/membership?timeout=20s", `{"op":"promote","id":"n2"}`)
	if r.code != 504 || r.err.Code != "ETIMEDOUT" {
		t.Fatalf("promote a learner that never catches up: %d %s after %v, want 504 ETIMEDOUT", r.code, r.body, time.Since(began))
	}
	m = decodeMembership(t, call(t, ts, "GET", "/membership", ""))
	if len(m.Voters) != 1 || len(m.Learners) != 1 || m.Joint {
		t.Fatalf("after the failed promotion: %+v", m)
	}
	if r := call(t, ts, "POST", "/membership", fmt.Sprintf(`{"op":"remove-learner","id":"n2","if_index":%d}`, m.Index-1)); r.code != 412 || r.err.Code != kvapi.CodeConfStale {
		t.Fatalf("a stale if_index: %d %s", r.code, r.body)
	}
	r = call(t, ts, "POST", "/membership", fmt.Sprintf(`{"op":"remove-learner","id":"n2","if_index":%d}`, m.Index))
	if m2 := decodeMembership(t, r); r.code != 200 || len(m2.Learners) != 0 || m2.Index <= m.Index {
		t.Fatalf("remove-learner with if_index %d: %d %s", m.Index, r.code, r.body)
	}
	if r := call(t, ts, "POST", "/membership", `{"op":"remove","id":"n1"}`); r.code != 400 || r.err.Code != "EINVAL" {
		t.Fatalf("remove the last voter: %d %s, want 400 EINVAL", r.code, r.body)
	}
	r = call(t, ts, "POST", "/membership", `{"op":"set-priority","id":"n1","priority":3}`)
	if m := decodeMembership(t, r); r.code != 200 || m.Voters[0].Priority != 3 {
		t.Fatalf("set-priority: %d %s", r.code, r.body)
	}

	// Transfers: to itself succeeds at once; there is no other voter to
	// choose, and n9 is none.
	if r := call(t, ts, "POST", "/transfer?to=n1", ""); r.code != 200 || !strings.Contains(r.body, `"leader":"n1"`) {
		t.Fatalf("transfer to the leader itself: %d %s", r.code, r.body)
	}
	if r := call(t, ts, "POST", "/transfer", ""); r.code != 400 || r.err.Code != "EINVAL" {
		t.Fatalf("transfer to the most up-to-date voter of a group of one: %d %s", r.code, r.body)
	}
	if r := call(t, ts, "POST", "/transfer?to=n9", ""); r.code != 400 || r.err.Code != "EINVAL" {
		t.Fatalf("transfer to a non-member: %d %s", r.code, r.body)
	}
	// The store still serves writes.
	expect(t, call(t, ts, "PUT", "/kv/k", "v"), 204, "")
}

// A fourth process joins a group of three over loopback: started with
// -join-identity from a member's GET /status, added on the leader with
// POST /membership (a learner until caught up, then a voter), it applies
// what the others hold and new writes; the leadership is transferred to
// it, and from it a founder is removed while its process keeps running.
func TestJoinProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	c := newTestCluster(t, "-snapshot-entries", "20", "-snapshot-trailing", "5", "-wal-segment-bytes", "4096")
	n4 := &testProc{id: "n4", http: freeAddr(t), log: filepath.Join(c.dir, "n4.log")}
	n4raft := freeAddr(t)
	c.peerHTTP = append(c.peerHTTP, "n4="+n4.http)
	c.startAll(t)
	procs := map[string]*testProc{"n1": c.procs["n1"], "n2": c.procs["n2"], "n3": c.procs["n3"], "n4": n4}
	logs := func() string {
		out, _ := os.ReadFile(n4.log)
		return c.logs() + "--- n4:\n" + string(out)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	status := func(id string) (kvapi.StatusReply, bool) {
		var st kvapi.StatusReply
		return st, getJSON(client, "GET", "http://"+procs[id].http+"/status", "", &st) == 200
	}
	leader := func(ids ...string) string {
		var l string
		waitFor(t, 30*time.Second, "a leader", func() bool {
			for _, id := range ids {
				if st, ok := status(id); ok && st.Role == "leader" {
					l = id
					return true
				}
			}
			return false
		})
		return l
	}
	put := func(l string, from, n int) {
		t.Helper()
		for k := from; k < from+n; k++ {
			if code := getJSON(client, "PUT", fmt.Sprintf("http://%s/kv/k%d", procs[l].http, k), strings.Repeat("v", 200), nil); code != 204 {
				t.Fatalf("PUT k%d on %s: %d\n%s", k, l, code, logs())
			}
		}
	}
	converged := func(ids []string, keys int) {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("%v hold %d keys, the same", ids, keys), func() bool {
			digest := ""
			for _, id := range ids {
				st, ok := status(id)
				if !ok || st.Keys != keys || (digest != "" && st.Digest != digest) {
					return false
				}
				digest = st.Digest
			}
			return true
		})
	}
	l := leader(c.ids...)
	put(l, 0, 50) // 10 KB past two snapshots: the log is compacted, n4 is installed a snapshot
	st, _ := status(l)
	if st.ClusterIdentity == "" {
		t.Fatalf("GET /status shows no cluster identity: %+v", st)
	}

	// n4 joins with the identity, knowing only the founders' addresses.
	n4.start(t, []string{"-id", "n4", "-addr", n4raft, "-http", n4.http, "-data", filepath.Join(c.dir, "n4"),
		"-peers", strings.Join(c.peers, ","), "-peer-http", strings.Join(c.peerHTTP, ","),
		"-election-timeout", "300ms", "-join-identity", st.ClusterIdentity})
	waitFor(t, 15*time.Second, "n4 serves", func() bool { _, ok := status("n4"); return ok })
	var m kvapi.MembershipReply
	var e kvapi.APIError
	if code := getJSON(client, "POST", "http://"+procs[l].http+"/membership?timeout=25s", `{"op":"add-voter","id":"n4","addr":"`+n4raft+`"}`, &m); code != 200 {
		getJSON(client, "GET", "http://"+procs[l].http+"/membership", "", &e)
		t.Fatalf("add-voter n4: %d %+v\n%s", code, m, logs())
	}
	if len(m.Voters) != 4 || !slices.ContainsFunc(m.Voters, func(p kvapi.MemberReply) bool { return p.ID == "n4" && p.Addr == n4raft }) || m.Joint {
		t.Fatalf("after add-voter n4: %+v", m)
	}
	all := []string{"n1", "n2", "n3", "n4"}
	converged(all, 50)
	if st, _ := status("n4"); st.Metrics == nil || st.Metrics.InstallsDone == 0 || st.ClusterIdentity != m.ClusterIdentity {
		t.Fatalf("n4 caught up without an install, or with another identity: %+v", st)
	}

	// The leadership goes to n4, which then removes a founder.
	var tr kvapi.TransferReply
	if code := getJSON(client, "POST", "http://"+procs[l].http+"/transfer?to=n4", "", &tr); code != 200 || tr.Leader != "n4" || tr.LeaderHTTP != n4.http {
		t.Fatalf("transfer to n4: %d %+v\n%s", code, tr, logs())
	}
	if code := getJSON(client, "POST", "http://"+procs[l].http+"/membership", `{"op":"remove","id":"n1"}`, &e); code != 421 || e.LeaderHTTP != n4.http {
		t.Fatalf("a change on the old leader: %d %+v, want 421 naming n4", code, e)
	}
	// The new leader answers 503 EAGAIN until an entry of its term is
	// committed.
	code := 0
	waitFor(t, 10*time.Second, "n4 takes a change", func() bool {
		m = kvapi.MembershipReply{}
		code = getJSON(client, "POST", "http://"+n4.http+"/membership", `{"op":"remove","id":"n1"}`, &m)
		return code != 503
	})
	if code != 200 || len(m.Voters) != 3 || m.Leader != "n4" || slices.ContainsFunc(m.Voters, func(p kvapi.MemberReply) bool { return p.ID == "n1" }) {
		t.Fatalf("remove n1 on n4: %d %+v\n%s", code, m, logs())
	}
	put("n4", 50, 10)
	rest := []string{"n2", "n3", "n4"}
	converged(rest, 60)
	// n1 still runs, outside the group: it has stopped at its removal.
	if st, ok := status("n1"); !ok || st.Keys > 60 {
		t.Fatalf("n1 after its removal: %+v %v", st, ok)
	}
	for _, id := range all {
		procs[id].stop(t, logs)
	}
}
