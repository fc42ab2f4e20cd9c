package node

import (
	"fmt"
	"strings"

	"github.com/asyncraft/asyncraft/raftpb"
)

// Which envelopes a node accepts, and what it says about the others.
//
// A node acts only on envelopes for its group and id, from another member
// of its configuration, carrying its cluster identity (identity.go). It
// drops the rest and counts them (Metrics.Dropped; Metrics.Foreign for
// another identity). A misconfigured node — wrong peer ids, another
// ClusterID, two nodes started with one id — would otherwise sit as a
// pre-candidate forever with nothing in the logs, so drops are also logged,
// at WARN, at most once per kind every warnEvery election timeouts (with
// the count held back meanwhile):
//
//   - on the receiving side: a message from a node not among Peers (its id,
//     its host's address when it says — vote requests carry it — and this
//     node's Peers), or of another cluster identity (both identities and
//     this node's bootstrap record);
//   - on the sending side: unansweredElections elections in a row that no
//     peer answered at all (this node's id, address, Peers and identity;
//     and, if Peers lists this node at another address than its host's,
//     that the replies go there — where another host may run the same id);
//   - a vote request whose candidate says its host is not where this node
//     lists it: once per candidate and address, as two nodes may share
//     the id (or the list names a proxy).
//
// What two nodes with one id look like: the peers list the id at one
// address, so every reply goes to the node there; the other one hears
// nothing and, after unansweredElections elections, says so — naming the
// address its replies go to if its own host is elsewhere — and the voters
// it asks log that a candidate of that id claims another host. Nothing is
// detected while the two stay silent (an idle duplicate follower), and the
// identity cannot tell them apart: they share it.

const (
	// unansweredElections is how many elections in a row no peer answers
	// before a node warns.
	unansweredElections = 3
	// warnEvery is the least time between two warnings of one kind, in
	// election timeouts.
	warnEvery = 10
)

// diagnostics is the node actor's record of what it warned about and of
// whether its peers answer its elections.
type diagnostics struct {
	misaddressed, unknown, foreign, unanswered, wiped warnLimit
	// heard: an envelope from a peer was accepted since the latest
	// election started; silent counts the elections in a row before it
	// that no peer answered.
	heard     bool
	elections int
	silent    int
	// claimed holds the (candidate, address) pairs already warned about.
	claimed map[string]bool
}

// warnLimit lets one warning through every interval of ticks and counts
// those it holds back.
type warnLimit struct {
	next int64
	held int
}

// allow reports whether a warning may be logged at tick now, and how many
// it held back since the last one.
func (w *warnLimit) allow(now int64, every int) (bool, int) {
	if now < w.next {
		w.held++
		return false, 0
	}
	held := w.held
	w.next, w.held = now+int64(every), 0
	return true, held
}

func (a *Actor) warnInterval() int { return warnEvery * a.cfg.Ticks.Election }

// admit decides whether the node acts on e; it counts and reports what it
// drops.
func (a *Actor) admit(e *raftpb.Envelope) bool {
	d := &a.diag
	// Besides the members, a node hears its leader when that leader is
	// not (or no longer) in its configuration: a leader that removed
	// itself leads until its C_new commits, and a node whose log is
	// behind its leader's may not list it yet. Terms keep this safe; only
	// a leader's requests, and the answers of the leader this node
	// follows, are admitted, so a former member cannot disturb the group
	// by campaigning.
	if addr := leaderAddr(e); addr != "" && !a.tr.isKnown(e.From) && e.Cluster == a.cfg.Cluster &&
		e.Group == a.cfg.Group && e.To == a.cfg.ID && e.From != a.cfg.ID {
		a.tr.learn(e.From, addr)
	}
	member := a.tr.isMember(e.From) || (a.tr.isKnown(e.From) && fromLeader(e)) || a.fromItsLeader(e) || a.candidateAhead(e)
	switch {
	case e.Group != a.cfg.Group || e.To != a.cfg.ID || e.From == a.cfg.ID:
		a.sh.Metrics.Dropped.Add(1)
		if ok, held := d.misaddressed.allow(a.tickCount, a.warnInterval()); ok {
			a.logger.Warn("asyncraft: dropped a message not meant for this node (another group or id, or from itself)",
				"message", e.TraceString(), "held back", held)
		}
		return false
	case !member:
		a.sh.Metrics.Dropped.Add(1)
		if ok, held := d.unknown.allow(a.tickCount, a.warnInterval()); ok {
			from := "unknown (only vote requests say)"
			if addr := candidateAddr(e); addr != "" {
				from = addr
			}
			a.logger.Warn("asyncraft: dropped a message from a node that is not a member of this node's configuration: either its id is wrong, it was removed from the group, or this node's configuration is (a new node's Peers must list the members, as every member must at bootstrap)",
				"from", e.From, "from host", from, "message", e.TraceString(), "peers", a.describePeers(), "held back", held)
		}
		return false
	case e.Cluster != a.cfg.Cluster:
		a.sh.Metrics.Dropped.Add(1)
		a.sh.Metrics.Foreign.Add(1)
		if ok, held := d.foreign.allow(a.tickCount, a.warnInterval()); ok {
			why := "the sender was started with another ClusterID, group or set of voter ids than this node, or belongs to another cluster"
			if e.Cluster == 0 {
				why = "the sender sent no identity: it runs a version of asyncraft that predates it"
			}
			a.logger.Warn("asyncraft: dropped a message of another cluster identity: "+why,
				"from", e.From, "their identity", fmt.Sprintf("%016x", e.Cluster), "this identity", fmt.Sprintf("%016x", a.cfg.Cluster),
				"bootstrap", DescribeBootstrap(a.cfg.Boot), "message", e.TraceString(), "held back", held)
		}
		return false
	}
	d.heard = true
	if addr := candidateAddr(e); addr != "" && addr != a.tr.addr(e.From) {
		a.claimedAddr(e.From, addr)
	}
	return true
}

// candidateAhead reports whether e is a (pre-)vote request, of this
// node's cluster, from a candidate outside its configuration whose log is
// ahead of this node's: the candidate may hold a configuration this node
// has not received (one that added it), and need this node's vote (the
// candidate counts only its own voters). Its address, which the request
// gives, is learned for the answer. A former member, whose log stopped at
// its removal, is not admitted this way; nor is one whose log equals this
// node's, whose configuration then leaves it out as this node's does.
func (a *Actor) candidateAhead(e *raftpb.Envelope) bool {
	var req *raftpb.VoteRequest
	switch b := e.Body.(type) {
	case *raftpb.Envelope_PreVoteRequest:
		req = b.PreVoteRequest
	case *raftpb.Envelope_VoteRequest:
		req = b.VoteRequest
	default:
		return false
	}
	if e.Cluster != a.cfg.Cluster || e.Group != a.cfg.Group || e.To != a.cfg.ID || e.From == a.cfg.ID || req.CandidateAddr == "" {
		return false
	}
	last, lastTerm := a.log.Last()
	if req.LastLogTerm < lastTerm || (req.LastLogTerm == lastTerm && req.LastLogIndex <= last) {
		return false // not ahead: it has no configuration this node lacks
	}
	if !a.tr.isKnown(e.From) {
		a.tr.learn(e.From, req.CandidateAddr)
	}
	return true
}

// fromItsLeader reports whether e is an answer to this node's read-index
// request from the leader it follows. A node whose configuration does not
// list its leader yet (one that joined, being installed its first
// snapshot) learned of it from its requests, and must also hear its
// answers. Only answers: the leader's other messages are requests, which
// fromLeader admits, and a former leader's vote requests must stay out
// (TestHarnessLeaderOutsideTheConfiguration). Group, addressee and
// cluster identity are checked as for any envelope.
func (a *Actor) fromItsLeader(e *raftpb.Envelope) bool {
	_, answer := e.Body.(*raftpb.Envelope_ReadIndexResponse)
	return answer && a.leader != "" && e.From == a.leader
}

// fromLeader reports whether e is a request only a leader sends.
func fromLeader(e *raftpb.Envelope) bool {
	switch e.Body.(type) {
	case *raftpb.Envelope_AppendRequest, *raftpb.Envelope_HeartbeatRequest, *raftpb.Envelope_InstallSnapshotRequest:
		return true
	}
	return false
}

// leaderAddr is the host address a leader's probe or install request
// gives.
func leaderAddr(e *raftpb.Envelope) string {
	switch b := e.Body.(type) {
	case *raftpb.Envelope_AppendRequest:
		return b.AppendRequest.LeaderAddr
	case *raftpb.Envelope_InstallSnapshotRequest:
		return b.InstallSnapshotRequest.LeaderAddr
	}
	return ""
}

// candidateAddr is the host address a vote request's candidate gives.
func candidateAddr(e *raftpb.Envelope) string {
	switch b := e.Body.(type) {
	case *raftpb.Envelope_PreVoteRequest:
		return b.PreVoteRequest.CandidateAddr
	case *raftpb.Envelope_VoteRequest:
		return b.VoteRequest.CandidateAddr
	}
	return ""
}

// claimedAddr warns, once per candidate and address, that a candidate's
// host is not where this node lists it.
func (a *Actor) claimedAddr(id, addr string) {
	d := &a.diag
	key := id + "@" + addr
	if d.claimed[key] {
		return
	}
	if d.claimed == nil || len(d.claimed) >= 64 {
		d.claimed = map[string]bool{}
	}
	d.claimed[key] = true
	a.logger.Warn("asyncraft: a candidate's host is not where this node lists it: two nodes may be running with its id (this node's replies go to the listed address only), or the list names a proxy",
		"candidate", id, "its host", addr, "listed at", a.tr.addr(id))
}

// noteElection is called as the node starts an election: it counts the
// elections in a row that no peer answered and warns when they are
// unansweredElections or more.
func (a *Actor) noteElection() {
	d := &a.diag
	if a.tr.alone() {
		return
	}
	if d.elections > 0 {
		if d.heard {
			d.silent = 0
		} else {
			d.silent++
		}
	}
	d.elections++
	d.heard = false
	if d.silent < unansweredElections {
		return
	}
	ok, _ := d.unanswered.allow(a.tickCount, a.warnInterval())
	if !ok {
		return
	}
	args := []any{"elections", d.silent, "host", a.cfg.Addr, "peers", a.describePeers(),
		"identity", fmt.Sprintf("%016x", a.cfg.Cluster), "bootstrap", DescribeBootstrap(a.cfg.Boot)}
	if listed := a.tr.addr(a.cfg.ID); listed != a.cfg.Addr {
		args = append(args, "replies go to", listed,
			"note", "Peers lists this node at another address than its host's: its peers reply there; if another host runs id "+a.cfg.ID+" there, two nodes share the id")
	}
	a.logger.Warn("asyncraft: no peer answered this node's last elections: check that the peers run and are reachable at the listed addresses, and that they list this node with the same id, group, ClusterID and voters (their logs say why they drop its messages)", args...)
}

// describePeers renders the configuration: n1@a1, n2@a2.
func (a *Actor) describePeers() string {
	ids := a.tr.voters()
	s := make([]string, 0, len(ids))
	for _, id := range ids {
		s = append(s, id+"@"+a.tr.addr(id))
	}
	return strings.Join(s, ", ")
}

// DescribeBootstrap renders a record for messages: cluster "x" node g/n1,
// voters n1@a1, n2@a2.
func DescribeBootstrap(b *raftpb.Bootstrap) string {
	voters := make([]string, 0, len(b.GetConfiguration().GetVoters()))
	for _, p := range b.GetConfiguration().GetVoters() {
		voters = append(voters, p.Id+"@"+p.Addr)
	}
	if b.GetIdentity() != 0 {
		return fmt.Sprintf("cluster %q node %s/%s, joined the group of identity %016x", b.ClusterId, b.Group, b.Id, b.Identity)
	}
	return fmt.Sprintf("cluster %q node %s/%s, voters %s", b.ClusterId, b.Group, b.Id, strings.Join(voters, ", "))
}
