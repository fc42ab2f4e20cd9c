package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// The membership nemeses drive the kvstore's membership API
// (examples/kvstore/membership.go) on the leader while the clients run:
//
//   - "transfer": POST /transfer to the leader, to a random other node or
//     to the most up-to-date one ("to" empty), and the outcome.
//   - "membership": remove a random node that does not lead, keep it out
//     for 0.5–3 s while its process runs on with its data, and add it
//     back: by add-voter (a learner until caught up, then a voter), as a
//     learner then promoted, or as a learner marked for promotion that the
//     leader promotes by itself. One time in four it replaces the node
//     instead: kill -9, wipe its data directory, start it as a new node
//     under a new id with -join-identity, and replace the old id by the
//     new one in one change.
//
// One cycle in four, the leader is killed with -9 at a random point of the
// change that adds the node back (5 ms to 1.5 s into it, log-uniform: a
// change takes milliseconds, or seconds when the node needs an install
// first), and restarted 0.5–2 s later: the change's outcome is then
// unknown, and a new leader must finish what it left (a joint
// configuration, a learner catching up or marked for promotion). With two
// voters left after the removal, the group has no quorum until the
// restart.
//
// Each cycle starts and ends with the group as it must be: the three
// nodes' current ids as voters and nothing else (ensureMembers repairs
// what a failed change left), and the final heal does the same.

const (
	// changeTimeout is the ?timeout= of a change: long enough for a new
	// voter to catch up by an install, and for one that makes no progress
	// to fail with ETIMEDOUT first (the kvstore's -catch-up-timeout,
	// catchUpFlag).
	changeTimeout = 20 * time.Second
	// transferTimeout is the ?timeout= of a transfer: one ends within an
	// election timeout, done or ETIMEDOUT.
	transferTimeout = 10 * time.Second
	// membersLimit bounds ensureMembers within a cycle; healMembersLimit
	// at the final heal.
	membersLimit     = 30 * time.Second
	healMembersLimit = 60 * time.Second
)

// catchUpFlag is the kvstore's -catch-up-timeout in TestChaos: shorter
// than changeTimeout, so that a new voter that makes no progress fails
// its change with ETIMEDOUT rather than outlasting the request (one that
// catches up slowly may outlast it: EUNKNOWN, and ensureMembers sees to
// the rest).
var catchUpFlag = []string{"-catch-up-timeout", "15s"}

// changeClient makes the membership requests: they wait for a change.
var changeClient = &http.Client{Timeout: changeTimeout + 5*time.Second}

// membershipReply is the kvstore's GET /membership (and the answer to a
// POST that succeeded), with the test's helpers.
type membershipReply kvapi.MembershipReply

func (m membershipReply) ids(ms []kvapi.MemberReply) []string {
	var out []string
	for _, p := range ms {
		out = append(out, p.ID)
	}
	sort.Strings(out)
	return out
}

func (m membershipReply) isVoter(id string) bool {
	return slices.ContainsFunc(m.Voters, func(p kvapi.MemberReply) bool { return p.ID == id })
}

func (m membershipReply) isLearner(id string) bool {
	return slices.ContainsFunc(m.Learners, func(p kvapi.MemberReply) bool { return p.ID == id })
}

func (m membershipReply) String() string {
	s := fmt.Sprintf("index %d voters %v", m.Index, m.ids(m.Voters))
	if len(m.Learners) > 0 {
		s += fmt.Sprintf(" learners %v", m.ids(m.Learners))
	}
	if len(m.Promoting) > 0 {
		s += fmt.Sprintf(" promoting %v", m.Promoting)
	}
	if m.Joint {
		s += " (joint)"
	}
	if !m.Committed {
		s += " (not committed)"
	}
	return s
}

// changeRequest is the body of POST /membership, with the test's String.
type changeRequest kvapi.MembershipRequest

func (r changeRequest) String() string {
	switch {
	case r.Old != "":
		return fmt.Sprintf("%s %s by %s", r.Op, r.Old, r.ID)
	case r.Addr != "":
		return fmt.Sprintf("%s %s@%s", r.Op, r.ID, r.Addr)
	}
	return r.Op + " " + r.ID
}

// answer is what a membership request came to.
type answer struct {
	status int    // HTTP status (0: no answer)
	code   string // the error's code ("" on success)
	err    string // the error, or the transport's
	via    string // the node that answered
	took   time.Duration
}

func (a answer) ok() bool { return a.status == http.StatusOK }

func (a answer) String() string {
	if a.ok() {
		return fmt.Sprintf("done by %s in %v", a.via, a.took.Round(time.Millisecond))
	}
	if a.status == 0 {
		return fmt.Sprintf("no answer from %s after %v: %s", a.via, a.took.Round(time.Millisecond), a.err)
	}
	return fmt.Sprintf("%d %s from %s after %v: %.200s", a.status, a.code, a.via, a.took.Round(time.Millisecond), a.err)
}

// describe is an answer and, if it succeeded, the configuration it gave.
func describe(a answer, m membershipReply) string {
	if !a.ok() {
		return a.String()
	}
	return a.String() + "; " + m.String()
}

// outcome names an answer for the statistics.
func (a answer) outcome() string {
	switch {
	case a.ok():
		return "ok"
	case a.status == 0:
		return "no answer"
	}
	return a.code
}

// request sends a membership request to node i (with follow, following
// one 421 to the leader it names: a change refused there was not made)
// and decodes a 200 answer into v.
func (c *cluster) request(i int, method, path string, body any, v any, follow bool) answer {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	addr := c.nodes[i].httpAddr
	began := time.Now()
	for hop := 0; ; hop++ {
		a := answer{via: addr}
		req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+addr+path, bytes.NewReader(b))
		resp, err := changeClient.Do(req)
		a.took = time.Since(began)
		if err != nil {
			a.err = err.Error()
			return a
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.status = resp.StatusCode
		if err != nil {
			a.status, a.err = 0, err.Error()
			return a
		}
		if a.ok() {
			if v != nil {
				if err := json.Unmarshal(rb, v); err != nil {
					a.status, a.code, a.err = 0, "", fmt.Sprintf("200 with %q: %v", rb, err)
				}
			}
			return a
		}
		var e kvapi.APIError
		json.Unmarshal(rb, &e)
		a.code, a.err = e.Code, e.Error
		if follow && a.status == http.StatusMisdirectedRequest && e.LeaderHTTP != "" && hop == 0 {
			addr = e.LeaderHTTP
			continue
		}
		return a
	}
}

// membershipOf reads the configuration of the leader, asking node i.
func (c *cluster) membershipOf(i int) (membershipReply, answer) {
	var m membershipReply
	a := c.request(i, http.MethodGet, "/membership", nil, &m, true)
	return m, a
}

// wantIDs are the ids the group must have as voters: each node's current
// one.
func (c *cluster) wantIDs() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.id)
	}
	sort.Strings(out)
	return out
}

// membershipStats is what the membership nemeses did.
type membershipStats struct {
	transfers map[string]int // by outcome
	// longestTransfer is the longest a transfer request took.
	longestTransfer time.Duration
	cycles          int            // membership cycles begun
	crashes         int            // leaders killed during a change
	skipped         int            // cycles that found no leader or could not begin
	removed         int            // nodes removed
	readded         map[string]int // nodes added back, by how
	replaced        int            // nodes replaced by a new one
	changes         map[string]int // membership requests, by op and outcome
	repairs         int            // changes ensureMembers made
}

func (s *membershipStats) readd(way string) {
	if s.readded == nil {
		s.readded = map[string]int{}
	}
	s.readded[way]++
}

func (s *membershipStats) count(req changeRequest, a answer) {
	if s.changes == nil {
		s.changes = map[string]int{}
	}
	s.changes[req.Op+" "+a.outcome()]++
}

func (s membershipStats) String() string {
	list := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
		return strings.Join(parts, " ")
	}
	transfers := "none"
	if len(s.transfers) > 0 {
		transfers = fmt.Sprintf("%s (longest %v)", list(s.transfers), s.longestTransfer.Round(time.Millisecond))
	}
	return fmt.Sprintf("transfers: %s; membership cycles %d (skipped %d): removed %d, added back %d (%s), replaced %d, leaders killed mid-change %d; requests: %s; repairs %d",
		transfers, s.cycles, s.skipped, s.removed, sumOf(s.readded), list(s.readded),
		s.replaced, s.crashes, list(s.changes), s.repairs)
}

func sumOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// change runs one membership request on the leader (asking node i) and
// records it.
func (n *nemesis) change(i int, req changeRequest) (membershipReply, answer) {
	var m membershipReply
	a := n.c.request(i, http.MethodPost, "/membership?timeout="+changeTimeout.String(), req, &m, true)
	n.mstats.count(req, a)
	// 500: a node in error. (A 400 may follow a race with the leader,
	// which promotes a learner marked for it by itself: the timeline and
	// the counts show it.)
	if a.status >= 500 && a.status != http.StatusServiceUnavailable && a.status != http.StatusGatewayTimeout {
		n.h.problem("membership: %s: %s", req, a)
	}
	return m, a
}

// transfer hands the leadership to a random other node, or to the most
// up-to-date one, and records the outcome.
func (n *nemesis) transfer(stop <-chan struct{}) {
	anyone := n.rng.IntN(3) == 0
	r := n.rng.IntN(len(n.c.nodes) - 1)
	if n.mstats.transfers == nil {
		n.mstats.transfers = map[string]int{}
	}
	l := n.c.leader()
	if l < 0 {
		n.tl.add("nemesis: transfer: no leader")
		n.mstats.transfers["no leader"]++
		return
	}
	to, who := "", "the most up-to-date node"
	if !anyone {
		to = n.c.nodes[(l+1+r)%len(n.c.nodes)].id
		who = to
	}
	n.tl.add("nemesis: transfer: the leadership of %s to %s", n.c.nodes[l].id, who)
	q := url.Values{"timeout": {transferTimeout.String()}}
	if to != "" {
		q.Set("to", to)
	}
	var tr struct {
		Leader string `json:"leader"`
		Term   uint64 `json:"term"`
	}
	a := n.c.request(l, http.MethodPost, "/transfer?"+q.Encode(), nil, &tr, false)
	n.mstats.transfers[a.outcome()]++
	n.mstats.longestTransfer = max(n.mstats.longestTransfer, a.took)
	switch {
	case a.ok():
		n.tl.add("nemesis: transfer: %s; %s leads in term %d", a, tr.Leader, tr.Term)
		if to != "" && tr.Leader != to {
			n.tl.add("nemesis: transfer: the old leader names %s, not %s, as the leader", tr.Leader, to)
		}
	case a.status == 0 || a.took >= transferTimeout || a.status >= 500 && a.status != http.StatusServiceUnavailable && a.status != http.StatusGatewayTimeout:
		// A transfer ends within an election timeout: done, ETIMEDOUT,
		// or EPERM when another node won the election.
		n.h.problem("transfer to %s: %s", who, a)
		n.tl.add("nemesis: transfer: %s", a)
	default:
		n.tl.add("nemesis: transfer: %s", a)
	}
}

// Ways of adding a removed node back, drawn by the membership nemesis.
var readdWays = []string{"add-voter", "learner-then-promote", "learner-to-promote", "replace"}

// membership removes a node that does not lead and adds it back (or
// replaces it by a new node), then checks that the group is as it must be.
func (n *nemesis) membership(stop <-chan struct{}) {
	way := readdWays[n.rng.IntN(len(readdWays))]
	r := n.rng.IntN(len(n.c.nodes) - 1)
	hold := n.between(500*time.Millisecond, 3*time.Second)
	var k crash
	k.on = n.rng.IntN(4) == 0
	// Log-uniform in [5 ms, 1.5 s): a change takes milliseconds, or
	// seconds when the node needs an install first.
	k.after = time.Duration(float64(5*time.Millisecond) * math.Pow(300, n.rng.Float64()))
	k.hold = n.between(500*time.Millisecond, 2*time.Second)
	n.mstats.cycles++
	if err := n.ensureMembers(stop, membersLimit); err != nil {
		n.mstats.skipped++
		n.tl.add("nemesis: membership: the group is not as it must be: %v; no cycle", err)
		return
	}
	l := n.c.leader()
	if l < 0 {
		n.mstats.skipped++
		n.tl.add("nemesis: membership: no leader")
		return
	}
	v := (l + 1 + r) % len(n.c.nodes)
	if way == "replace" {
		n.replace(stop, v, k)
	} else {
		n.removeAndAddBack(stop, l, v, way, hold, k)
	}
	if err := n.ensureMembers(stop, membersLimit); err != nil {
		n.tl.add("nemesis: membership: after the cycle: %v", err)
		return
	}
	m, _ := n.c.membershipOf(l)
	n.tl.add("nemesis: membership: the group is back to %s", m)
}

// crash is the kill of the leader a membership cycle may draw.
type crash struct {
	on          bool
	after, hold time.Duration
}

// arm kills the current leader after k.after, and restarts it k.hold
// later, unless the returned function is called before the kill; that
// function waits for the restart. Off, or without a leader other than v,
// it does nothing.
func (n *nemesis) arm(stop <-chan struct{}, k crash, v int, what string) func() {
	l := n.c.leader()
	if !k.on || l < 0 || l == v {
		return func() {}
	}
	cancel, done := make(chan struct{}), make(chan bool, 1)
	go func() {
		t := time.NewTimer(k.after)
		defer t.Stop()
		select {
		case <-cancel:
			n.tl.add("nemesis: membership: %s ended before the kill of the leader %v into it", what, k.after.Round(time.Millisecond))
			done <- false
			return
		case <-t.C:
		}
		n.tl.add("nemesis: membership: kill -9 the leader %s %v into %s, for %v", n.c.nodes[l].id, k.after.Round(time.Millisecond), what, k.hold.Round(time.Millisecond))
		n.c.nodes[l].kill()
		sleep(stop, k.hold)
		n.tl.add("nemesis: membership: restart %s", n.c.nodes[l].id)
		n.restart(l)
		done <- true
	}()
	return func() {
		close(cancel)
		if <-done {
			n.mstats.crashes++
		}
	}
}

// removeAndAddBack removes node v (its process runs on), holds, and adds
// it back the given way (killing the leader meanwhile if k says so).
func (n *nemesis) removeAndAddBack(stop <-chan struct{}, l, v int, way string, hold time.Duration, k crash) {
	nd := n.c.nodes[v]
	n.tl.add("nemesis: membership: remove %s for %v, then add it back (%s)", nd.id, hold.Round(time.Millisecond), way)
	req := changeRequest{Op: "remove", ID: nd.id}
	m, a := n.change(l, req)
	n.tl.add("nemesis: membership: %s: %s", req, a)
	if !a.ok() {
		return // ensureMembers sees to the rest
	}
	n.mstats.removed++
	n.tl.add("nemesis: membership: the group is %s; %s keeps running outside it", m, nd.id)
	sleep(stop, hold)
	addr := n.c.peerAddr(l, v)
	defer n.arm(stop, k, v, "adding "+nd.id+" back")()
	readd := func(req changeRequest) bool {
		l := n.c.leader()
		if l < 0 {
			l = v // it names the leader, if it knows it
		}
		m, a := n.change(l, req)
		n.tl.add("nemesis: membership: %s: %s", req, describe(a, m))
		return a.ok()
	}
	switch way {
	case "add-voter":
		if readd(changeRequest{Op: "add-voter", ID: nd.id, Addr: addr}) {
			n.mstats.readd(way)
		}
	case "learner-then-promote":
		if readd(changeRequest{Op: "add-learner", ID: nd.id, Addr: addr}) &&
			readd(changeRequest{Op: "promote", ID: nd.id}) {
			n.mstats.readd(way)
		}
	case "learner-to-promote":
		if !readd(changeRequest{Op: "add-learner-to-promote", ID: nd.id, Addr: addr}) {
			return
		}
		// The leader promotes it once it has caught up.
		began := time.Now()
		var last membershipReply
		if poll(stop, changeTimeout, 100*time.Millisecond, func() bool {
			l := n.c.leader()
			if l < 0 {
				return false
			}
			m, a := n.c.membershipOf(l)
			last = m
			return a.ok() && m.isVoter(nd.id) && !m.Joint && m.Committed
		}) {
			n.mstats.readd(way)
			n.tl.add("nemesis: membership: the leader promoted %s after %v", nd.id, time.Since(began).Round(time.Millisecond))
		} else {
			n.tl.add("nemesis: membership: %s not promoted within %v: %s", nd.id, changeTimeout, last)
		}
	}
}

// replace kills node v, wipes its data and starts it as a new node (a new
// id, -join-identity), then replaces the old id by the new one (killing
// the leader meanwhile if k says so).
func (n *nemesis) replace(stop <-chan struct{}, v int, k crash) {
	nd := n.c.nodes[v]
	old := nd.id
	identity := ""
	for i := range n.c.nodes {
		if i == v {
			continue
		}
		if st, err := n.c.nodes[i].status(pollClient); err == nil && st.ClusterIdentity != "" {
			identity = st.ClusterIdentity
			break
		}
	}
	if identity == "" {
		n.mstats.skipped++
		n.tl.add("nemesis: membership: replace %s: no node tells the cluster identity", old)
		return
	}
	nd.generation++
	fresh := fmt.Sprintf("%sr%d", baseID(old), nd.generation)
	n.tl.add("nemesis: membership: replace %s: kill -9, wipe %s, start it as %s joining %s", old, nd.data, fresh, identity)
	nd.kill()
	if err := os.RemoveAll(nd.data); err != nil {
		n.h.problem("replace %s: wipe %s: %v", old, nd.data, err)
		return
	}
	// The slot's process is a new node from now on; the other nodes keep
	// their flags (-peers is part of their identity).
	if n.c.retired == nil {
		n.c.retired = map[string]bool{}
	}
	n.c.retired[old] = true
	nd.id = fresh
	nd.args = append(n.c.nodeArgs(v, n.c.peerList(v)), "-join-identity", identity)
	n.restart(v)
	l := n.c.leader()
	if l < 0 {
		n.tl.add("nemesis: membership: replace %s: no leader", old)
		return
	}
	req := changeRequest{Op: "replace", Old: old, ID: fresh, Addr: n.c.peerAddr(l, v)}
	done := n.arm(stop, k, v, req.String())
	m, a := n.change(l, req)
	done()
	n.tl.add("nemesis: membership: %s: %s", req, describe(a, m))
	if a.ok() {
		n.mstats.replaced++
	}
}

// baseID is the slot's first id: n2 for n2r3.
func baseID(id string) string {
	if i := strings.IndexByte(id, 'r'); i > 0 {
		return id[:i]
	}
	return id
}

// ensureMembers makes the group's configuration the nodes' current ids as
// voters and nothing else, one change at a time (replace a voter that
// should not be there by a node that should, promote a learner that
// should vote, add a missing one, remove what is left), retrying what
// fails, until limit.
func (n *nemesis) ensureMembers(stop <-chan struct{}, limit time.Duration) error {
	want := n.c.wantIDs()
	var last string
	var m membershipReply
	done := poll(stop, limit, 200*time.Millisecond, func() bool {
		l := n.c.leader()
		if l < 0 {
			last = "no leader"
			return false
		}
		var a answer
		m, a = n.c.membershipOf(l)
		if !a.ok() {
			last = "GET /membership: " + a.String()
			return false
		}
		last = m.String()
		if m.Joint || !m.Committed {
			return false // a change under way: wait
		}
		var missing, extraVoters, extraLearners []string
		for _, id := range want {
			if !m.isVoter(id) {
				missing = append(missing, id)
			}
		}
		for _, p := range m.Voters {
			if !slices.Contains(want, p.ID) {
				extraVoters = append(extraVoters, p.ID)
			}
		}
		for _, p := range m.Learners {
			if !slices.Contains(want, p.ID) {
				extraLearners = append(extraLearners, p.ID)
			}
		}
		var req changeRequest
		switch {
		case len(missing) == 0 && len(extraVoters) == 0 && len(extraLearners) == 0:
			return true
		case len(missing) > 0 && len(extraVoters) > 0:
			// One change, which keeps three voters (a learner of the new
			// id is promoted).
			req = changeRequest{Op: "replace", Old: extraVoters[0], ID: missing[0], Addr: n.c.peerAddr(l, n.c.index(missing[0]))}
		case len(missing) > 0 && m.isLearner(missing[0]):
			req = changeRequest{Op: "promote", ID: missing[0]}
		case len(missing) > 0:
			req = changeRequest{Op: "add-voter", ID: missing[0], Addr: n.c.peerAddr(l, n.c.index(missing[0]))}
		case len(extraVoters) > 0:
			req = changeRequest{Op: "remove", ID: extraVoters[0]}
		default:
			req = changeRequest{Op: "remove", ID: extraLearners[0]}
		}
		n.mstats.repairs++
		m2, a := n.change(l, req)
		n.tl.add("nemesis: membership: repair: %s: %s", req, describe(a, m2))
		return false // read it again
	})
	if !done {
		return fmt.Errorf("the configuration is not %v as voters within %v; last: %s", want, limit, last)
	}
	return nil
}
