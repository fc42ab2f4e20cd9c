package node

// Membership on a follower, in the harness of harness_test.go: the
// configuration in force follows the log (appended, truncated), a node
// hears a leader its configuration does not list when the leader says
// where it is, and a damaged configuration entry fails the node.

import (
	"reflect"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/raftpb"
)

// addPeer adds a fake peer the node under test does not know of: id on
// a new host, with its node actor and the replies-to refs of its
// replicators, as newWorld makes b and c.
func (w *world) addPeer(id, hostName string) *fakePeer {
	w.t.Helper()
	host := w.s.AddHost(hostName, sim.HostConfig{})
	fp := &fakePeer{id: id, host: host, ref: actors.Ref{Host: hostName, Name: ActorName(hGroup, id)}}
	w.peers[id] = fp
	w.spawn(host, fp.ref.Name, &peerActor{p: fp, sim: w.s})
	for term := uint64(1); term <= hMaxTerm; term++ {
		w.spawn(host, fp.replicatorRefOf(term).Name, &peerActor{p: fp, sim: w.s})
	}
	return fp
}

// configEntry is a configuration entry stating c.
func configEntry(index, term uint64, c confchange.Config) *raftpb.Entry {
	return &raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryType_ENTRY_TYPE_CONFIG, Data: confchange.Encode(c)}
}

// cpeers is the peers ids, each on the host named by its id in capitals
// (the harness's convention: a on A, b on B).
func cpeers(ids ...string) []confchange.Peer {
	out := make([]confchange.Peer, len(ids))
	for i, id := range ids {
		out[i] = confchange.Peer{ID: id, Addr: strings.ToUpper(id)}
	}
	return out
}

// hBootConf is the harness's bootstrap configuration: voters a, b, c.
func hBootConf() confchange.Config {
	return confchange.Normalize(confchange.Config{Voters: cpeers("a", "b", "c")})
}

// wantConf fails unless the node publishes cfg, of the entry at index,
// as its configuration in force.
func (w *world) wantConf(cfg confchange.Config, index uint64, when string) {
	w.t.Helper()
	st := w.sh.Status()
	if want := ConfigurationOf(cfg); !reflect.DeepEqual(st.Configuration, want) || st.ConfigurationIndex != index {
		w.fatalf("%s: Status shows configuration %v (%+v) at %d, want %v (%+v) at %d",
			when, st.Configuration, st.Configuration, st.ConfigurationIndex, want, want, index)
	}
}

// TestHarnessConfigurationFollowsTheLog: a follower puts a configuration
// entry in force as soon as it appends it — before it is durable, before
// it is committed — and a new leader's conflicting entries that truncate
// it roll the configuration back to the one before (here the bootstrap
// one, index 0). Each change is counted in Metrics.ConfigChanges and
// reaches the tracker, not Status alone.
func TestHarnessConfigurationFollowsTheLog(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		w.addPeer("d", "D")
		boot := hBootConf()
		w.wantConf(boot, 0, "at start")
		changes := w.sh.Metrics.ConfigChanges.Load()

		// Leader b of term 2: 1@2, then at 2 the joint configuration that
		// adds d as a voter.
		joint := confchange.Normalize(confchange.Config{Voters: cpeers("a", "b", "c", "d"), OldVoters: cpeers("a", "b", "c")})
		w.fromPeer("b", 2, appendRequest(0, 0, 0, append(ents(1, 2, 1), configEntry(2, 2, joint))))
		if st := w.sh.Status(); st.LastIndex != 2 || st.Commit != 0 || st.Leader != "b" {
			w.fatalf("status last %d commit %d leader %q, want 2, 0, b", st.LastIndex, st.Commit, st.Leader)
		}
		w.wantConf(joint, 2, "a configuration entry appended (not durable, not committed)")
		if got := w.sh.Metrics.ConfigChanges.Load() - changes; got != 1 {
			w.fatalf("ConfigChanges rose by %d on one configuration entry, want 1", got)
		}
		if !w.node.tr.isVoter("d") || !w.node.tr.isMember("d") {
			w.fatalf("the tracker does not count d as a voter of the configuration in force")
		}

		// Leader c of term 3 holds 1@2 but 2@3, 3@3: the entry at 2 is
		// truncated, and with it the joint configuration.
		w.fromPeer("c", 3, appendRequest(1, 2, 0, ents(2, 3, 2)))
		if st := w.sh.Status(); st.LastIndex != 3 || st.Term != 3 || st.Leader != "c" {
			w.fatalf("status last %d term %d leader %q, want 3, 3, c", st.LastIndex, st.Term, st.Leader)
		}
		if term, err := w.log.Term(2); err != nil || term != 3 {
			w.fatalf("log entry 2: term %d (%v), want 3", term, err)
		}
		w.wantConf(boot, 0, "the configuration entry truncated")
		if got := w.sh.Metrics.ConfigChanges.Load() - changes; got != 2 {
			w.fatalf("ConfigChanges rose by %d after an entry and its roll-back, want 2", got)
		}
		if w.node.tr.isMember("d") || w.node.tr.isVoter("d") {
			w.fatalf("the tracker still counts d as a member after the roll-back")
		}

		// The same write may truncate a configuration entry and append
		// another: the new one is in force, counted once.
		learner := confchange.Normalize(confchange.Config{Voters: cpeers("a", "b", "c"), Learners: cpeers("d")})
		w.fromPeer("c", 3, appendRequest(3, 3, 0, []*raftpb.Entry{configEntry(4, 3, learner)}))
		w.wantConf(learner, 4, "a learner added")
		b2 := w.sh.Metrics.ConfigChanges.Load()
		// Leader b of term 4 holds 1@2, 2@3, 3@4, 4@4 (a normal entry at
		// 4), 5@4 (a configuration entry removing c).
		w.saveHardState()
		noC := confchange.Normalize(confchange.Config{Voters: cpeers("a", "b")})
		w.fromPeer("b", 4, appendRequest(2, 3, 0, append(ents(3, 4, 2), configEntry(5, 4, noC))))
		w.wantConf(noC, 5, "a configuration entry truncated and another appended in one write")
		if got := w.sh.Metrics.ConfigChanges.Load() - b2; got != 1 {
			w.fatalf("ConfigChanges rose by %d on one write that truncated a configuration entry and appended another, want 1", got)
		}
		if !w.node.tr.isKnown("c") || w.node.tr.isMember("c") {
			w.fatalf("c, removed: member %v known %v; want a known former member", w.node.tr.isMember("c"), w.node.tr.isKnown("c"))
		}
	})
}

// TestHarnessLeaderOutsideTheConfiguration: a node drops the messages of
// a node its configuration does not list — a heartbeat of d, which it
// has never heard of — but admits an append from it that says where its
// host is (AppendRequest.LeaderAddr), follows it as leader, and answers
// its replicator at that host; d's heartbeats are admitted from then on.
// Vote requests from a non-member are dropped even though its address is
// known now: a leader is heard, a candidate is not.
func TestHarnessLeaderOutsideTheConfiguration(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		d := w.addPeer("d", "D")
		repl := d.replicatorRefOf(3)
		heartbeat := func() *raftpb.Envelope {
			return &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}}
		}

		dropped := w.sh.Metrics.Dropped.Load()
		w.fromPeer("d", 3, heartbeat())
		if got := w.sh.Metrics.Dropped.Load() - dropped; got != 1 {
			w.fatalf("a heartbeat from unknown d: Dropped rose by %d, want 1", got)
		}
		if len(d.got) != 0 {
			w.fatalf("d got an answer to a heartbeat the node should drop: %v", d.got)
		}
		if st := w.sh.Status(); st.Term != 2 || st.Leader != "" {
			w.fatalf("a dropped heartbeat moved the node to term %d leader %q", st.Term, st.Leader)
		}
		// An append without LeaderAddr is dropped as well.
		w.fromPeer("d", 3, appendRequest(0, 0, 0, ents(1, 3, 1)))
		if got := w.sh.Metrics.Dropped.Load() - dropped; got != 2 || len(d.got) != 0 || w.sh.Status().LastIndex != 0 {
			w.fatalf("an append from unknown d without its address: Dropped rose by %d, d got %v, last index %d; want 2, nothing, 0",
				got, d.got, w.sh.Status().LastIndex)
		}

		// With its address: admitted, followed, and answered there.
		req := appendRequest(0, 0, 0, ents(1, 3, 2))
		req.GetAppendRequest().LeaderAddr = "D"
		seq := w.fromPeer("d", 3, req)
		if got := w.sh.Metrics.Dropped.Load() - dropped; got != 2 {
			w.fatalf("an append from d with its address was dropped (Dropped rose by %d, want 2 in all)", got)
		}
		if st := w.sh.Status(); st.Term != 3 || st.Leader != "d" || st.LastIndex != 2 {
			w.fatalf("status term %d leader %q last %d, want 3, d, 2", st.Term, st.Leader, st.LastIndex)
		}
		if st := w.sh.Status(); st.Configuration.String() != ConfigurationOf(hBootConf()).String() {
			w.fatalf("a leader outside the configuration changed it: %v", st.Configuration)
		}
		w.saveHardState() // term 3
		w.stable(2, 3)
		r := got[*raftpb.Envelope_AppendResponse](d, repl)
		if len(r) != 1 || !r[0].GetAppendResponse().Success || r[0].GetAppendResponse().MatchIndex != 2 || r[0].Seq != seq || r[0].Term != 3 {
			w.fatalf("want d's replicator at D (%v) answered success match 2 seq %d, got %v (all d got: %v)", repl, seq, r, d.got)
		}
		if f := fsmGot[fsm.StartFollowing](w); len(f) != 1 || f[0].Change.Leader != "d" {
			w.fatalf("the FSM caller got %v, want StartFollowing d", f)
		}

		// Known now: its heartbeats are admitted and answered.
		hbSeq := w.fromPeer("d", 3, heartbeat())
		hb := got[*raftpb.Envelope_HeartbeatResponse](d, repl)
		if len(hb) != 1 || hb[0].Seq != hbSeq || hb[0].Term != 3 {
			w.fatalf("want d's heartbeat answered at %v (seq %d), got %v", repl, hbSeq, hb)
		}

		// But it is no member: its vote requests are dropped although its
		// address is known, and nobody answers them. (Its log, as the
		// requests give it, is behind this node's: 5@2 against 2@3; the
		// same request from member b is answered, with a refusal.)
		dropped = w.sh.Metrics.Dropped.Load()
		before := len(w.wire)
		w.fromPeer("d", 4, voteRequest(5, 2, "D"))
		w.fromPeer("d", 4, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: 5, LastLogTerm: 2, CandidateAddr: "D"}}})
		if got := w.sh.Metrics.Dropped.Load() - dropped; got != 2 {
			w.fatalf("vote requests from non-member d: Dropped rose by %d, want 2", got)
		}
		if len(w.wire) != before {
			w.fatalf("the node answered a non-member's vote requests: %s", w.describeWire())
		}
		if st := w.sh.Status(); st.Term != 3 || st.Leader != "d" || len(w.saves()) != 1 {
			w.fatalf("a non-member's vote requests moved the node to term %d leader %q (%d saves)", st.Term, st.Leader, len(w.saves()))
		}
		b := w.peers["b"]
		w.fromPeer("b", 4, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: 5, LastLogTerm: 2, CandidateAddr: "B"}}})
		if r := got[*raftpb.Envelope_PreVoteResponse](b, b.ref); len(r) != 1 || r[0].GetPreVoteResponse().Granted {
			w.fatalf("member b's pre-vote request, the same as d's: want one refusal, got %v", r)
		}
	})
}

// TestHarnessRemovedMemberLeads: a member a configuration entry removed
// stays known to the node (its address kept): it cannot campaign — its
// vote requests are dropped — but as a leader of a later term it is
// followed and answered, its heartbeats (which do not say where it is)
// as well as its appends. (A leader that removed itself leads until its
// C_new commits.)
func TestHarnessRemovedMemberLeads(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		c := w.peers["c"]
		noC := confchange.Normalize(confchange.Config{Voters: cpeers("a", "b")})
		w.fromPeer("b", 2, appendRequest(0, 0, 0, append(ents(1, 2, 1), configEntry(2, 2, noC))))
		w.wantConf(noC, 2, "c removed")
		if w.node.tr.isMember("c") || w.node.tr.addr("c") != "C" {
			w.fatalf("removed c: member %v at %q, want a non-member whose address C is kept", w.node.tr.isMember("c"), w.node.tr.addr("c"))
		}
		// Once the lease b's append gave is over, a member's vote request
		// would be answered (with a refusal, its log being behind); c's
		// is dropped.
		w.tick(2 * hTicks.Election)
		// The node campaigns in the meantime (b does not answer): it is
		// a pre-candidate now. Whatever it is, c is not heard.
		dropped := w.sh.Metrics.Dropped.Load()
		term := w.sh.Status().Term
		nGot := len(c.got)
		w.fromPeer("c", term+1, voteRequest(5, 1, "C"))
		w.fromPeer("c", term+1, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: 5, LastLogTerm: 1, CandidateAddr: "C"}}})
		if got := w.sh.Metrics.Dropped.Load() - dropped; got != 2 {
			w.fatalf("vote requests from removed c: Dropped rose by %d, want 2", got)
		}
		if len(c.got) != nGot || w.sh.Status().Term != term {
			w.fatalf("removed c's vote requests were answered (%v) or moved the node from term %d to %d", c.got[nGot:], term, w.sh.Status().Term)
		}
		// The same pre-vote request from member b is answered.
		b := w.peers["b"]
		w.fromPeer("b", term+1, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: 5, LastLogTerm: 1, CandidateAddr: "B"}}})
		if r := got[*raftpb.Envelope_PreVoteResponse](b, b.ref); len(r) != 1 || r[0].GetPreVoteResponse().Granted {
			w.fatalf("member b's pre-vote request, the same as c's: want one refusal, got %v", r)
		}

		// c leads a later term. Its heartbeats say nothing of its host,
		// yet they are heard: the node kept c's address.
		lt := w.sh.Status().Term + 1
		hbSeq := w.fromPeer("c", lt, &raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}})
		if st := w.sh.Status(); st.Term != lt || st.Leader != "c" || st.Role != Follower {
			w.fatalf("a heartbeat of removed c in term %d: status %v term %d leader %q, want a follower of c", lt, st.Role, st.Term, st.Leader)
		}
		for w.answered < len(w.saves()) {
			w.saveHardState()
		}
		if hb := got[*raftpb.Envelope_HeartbeatResponse](c, c.replicatorRefOf(lt)); len(hb) != 1 || hb[0].Seq != hbSeq {
			w.fatalf("want removed leader c's heartbeat answered at %v (seq %d), got %v", c.replicatorRefOf(lt), hbSeq, hb)
		}
		// Its appends (which say where it is) are followed and answered.
		req := appendRequest(2, 2, 0, ents(3, lt, 1))
		req.GetAppendRequest().LeaderAddr = "C"
		seq := w.fromPeer("c", lt, req)
		if st := w.sh.Status(); st.Term != lt || st.Leader != "c" || st.LastIndex != 3 || st.Role != Follower {
			w.fatalf("status %v term %d leader %q last %d, want follower of c in term %d with 3 entries", st.Role, st.Term, st.Leader, st.LastIndex, lt)
		}
		for w.answered < len(w.saves()) {
			w.saveHardState()
		}
		w.stable(3, lt)
		r := got[*raftpb.Envelope_AppendResponse](c, c.replicatorRefOf(lt))
		if len(r) != 1 || !r[0].GetAppendResponse().Success || r[0].GetAppendResponse().MatchIndex != 3 || r[0].Seq != seq {
			w.fatalf("want removed leader c answered at %v with success match 3 seq %d, got %v", c.replicatorRefOf(lt), seq, r)
		}
		w.wantConf(noC, 2, "after following removed c")
	})
}

// TestHarnessDamagedConfigurationEntry: a configuration entry whose data
// is not a configuration fails the node — role Errored, Status.Err naming
// the entry — instead of panicking, before any entry of that write reaches
// the log; the append is not acknowledged, and the state machine is told.
func TestHarnessDamagedConfigurationEntry(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 2})
		b := w.peers["b"]
		bad := &raftpb.Entry{Index: 2, Term: 2, Type: raftpb.EntryType_ENTRY_TYPE_CONFIG, Data: []byte("not a configuration")}
		w.fromPeer("b", 2, appendRequest(0, 0, 0, append(ents(1, 2, 1), bad)))
		st := w.sh.Status()
		if st.Role != Errored || st.Err == nil {
			w.fatalf("after a damaged configuration entry: role %v err %v, want Errored with an error", st.Role, st.Err)
		}
		if msg := st.Err.Error(); !strings.Contains(msg, "configuration entry 2 of term 2") {
			w.fatalf("the error %q does not name the entry (configuration entry 2 of term 2)", msg)
		}
		w.wantConf(hBootConf(), 0, "a damaged entry refused")
		if ne := fsmGot[fsm.NodeError](w); len(ne) != 1 {
			w.fatalf("the FSM caller got %d NodeError, want 1", len(ne))
		}
		w.stable(2, 2)
		if r := got[*raftpb.Envelope_AppendResponse](b, b.replicatorRefOf(2)); len(r) != 0 {
			w.fatalf("a failed node acknowledged the damaged entry: %v", r)
		}
		// Nothing of the write reached the log: a damaged entry stored
		// would stop every later start of the node.
		if st.LastIndex != 0 || len(w.appends()) != 0 {
			w.fatalf("the write with the damaged entry reached the log: last %d, appends %v", st.LastIndex, w.appends())
		}
		// A valid entry after the damaged one changes nothing: the node
		// stays failed.
		w.fromPeer("b", 2, appendRequest(0, 0, 0, []*raftpb.Entry{configEntry(1, 2, hBootConf())}))
		if st := w.sh.Status(); st.Role != Errored || st.LastIndex != 0 {
			w.fatalf("a failed node went on: role %v last %d", st.Role, st.LastIndex)
		}
	})
}
