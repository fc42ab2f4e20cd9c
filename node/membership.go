package node

import (
	"fmt"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// The configuration: which members vote and which learn, and where they
// are. A node uses the newest configuration in its log, from the moment
// its entry is appended (not committed): the history (confchange.History)
// holds them by index, so that a truncation of the log's suffix rolls the
// configuration back, an installed snapshot replaces it with the one the
// snapshot carries, and compaction forgets the old ones.

// Configuration is a group's membership as a node sees it: voters and
// learners, each sorted by id. During a joint change (C_old,new) OldVoters
// and OldLearners hold the outgoing configuration, and every decision
// needs a majority of OldVoters as well as one of Voters.
type Configuration struct {
	Voters, Learners       []Peer
	OldVoters, OldLearners []Peer
	// Promoting lists the learners (of Learners) that the leader makes
	// voters once they have caught up (asyncraft.AddLearnerToPromote).
	Promoting []string
}

// Joint reports whether c is a joint configuration.
func (c Configuration) Joint() bool { return len(c.OldVoters) > 0 }

func (c Configuration) String() string { return c.Internal().String() }

// ConfigurationOf converts the internal form.
func ConfigurationOf(c confchange.Config) Configuration {
	conv := func(ps []confchange.Peer) []Peer {
		if len(ps) == 0 {
			return nil
		}
		out := make([]Peer, len(ps))
		for i, p := range ps {
			out[i] = Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority}
		}
		return out
	}
	out := Configuration{Voters: conv(c.Voters), Learners: conv(c.Learners), OldVoters: conv(c.OldVoters), OldLearners: conv(c.OldLearners)}
	for _, p := range c.Learners {
		if p.Promote {
			out.Promoting = append(out.Promoting, p.ID)
		}
	}
	return out
}

// Internal converts to the internal form (sorted).
func (c Configuration) Internal() confchange.Config {
	conv := func(ps []Peer) []confchange.Peer {
		if len(ps) == 0 {
			return nil
		}
		out := make([]confchange.Peer, len(ps))
		for i, p := range ps {
			out[i] = confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority}
		}
		return out
	}
	out := confchange.Config{Voters: conv(c.Voters), Learners: conv(c.Learners), OldVoters: conv(c.OldVoters), OldLearners: conv(c.OldLearners)}
	for i, p := range out.Learners {
		out.Learners[i].Promote = slices.Contains(c.Promoting, p.ID)
	}
	return confchange.Normalize(out)
}

// publishedConf is what Status shows of the configuration.
type publishedConf struct {
	cfg   Configuration
	index uint64
}

// BuildHistory is the configuration history a node starts with: base in
// force from baseIndex (its snapshot's configuration at the snapshot's
// index, or the bootstrap configuration at 0), then every configuration
// entry of the log after baseIndex. It reads the log's entries after
// baseIndex once (the tail a restart replays anyway).
func BuildHistory(l *logmgr.Log, base confchange.Config, baseIndex uint64) (confchange.History, error) {
	var h confchange.History
	h.Reset(baseIndex, base)
	const chunk = 4 << 20
	last := l.LastIndex()
	for lo := max(baseIndex+1, l.FirstIndex()); lo <= last; {
		ents, err := l.Entries(lo, last+1, chunk)
		if err != nil {
			return h, fmt.Errorf("read the log's configuration entries from %d: %w", lo, err)
		}
		if len(ents) == 0 {
			return h, fmt.Errorf("read the log's configuration entries: no entry at %d (last %d)", lo, last)
		}
		for _, e := range ents {
			if e.Type != raftpb.EntryType_ENTRY_TYPE_CONFIG {
				continue
			}
			c, err := confchange.Decode(e.Data)
			if err != nil {
				return h, fmt.Errorf("log entry %d: %w", e.Index, err)
			}
			if err := h.Append(e.Index, c); err != nil {
				return h, err
			}
		}
		lo = ents[len(ents)-1].Index + 1
	}
	return h, nil
}

// configAt is a configuration entry of a write, decoded.
type configAt struct {
	index uint64
	cfg   confchange.Config
}

// decodeConfigs decodes the configuration entries of ents, before
// writeLog writes any of them: a damaged one fails the write (and the
// node) before it reaches the storage, where it would stop every later
// start of the node.
func decodeConfigs(ents []*raftpb.Entry) ([]configAt, error) {
	var out []configAt
	for _, e := range ents {
		if e.Type != raftpb.EntryType_ENTRY_TYPE_CONFIG {
			continue
		}
		c, err := confchange.Decode(e.Data)
		if err != nil {
			return nil, fmt.Errorf("configuration entry %d of term %d: %w", e.Index, e.Term, err)
		}
		out = append(out, configAt{e.Index, c})
	}
	return out, nil
}

// logConfigs records, after writeLog changed the log from index from on
// (truncated if truncated), the configuration entries it wrote, and puts
// the newest configuration in force if that changed.
func (a *Actor) logConfigs(env actors.Env, from uint64, confs []configAt, truncated bool) {
	changed := len(confs) > 0
	if truncated {
		before := a.confs.Len()
		a.confs.Truncate(from)
		changed = changed || a.confs.Len() != before
	}
	for _, c := range confs {
		if err := a.confs.Append(c.index, c.cfg); err != nil {
			a.fail(env, err, closure.EINTERNAL)
			return
		}
	}
	if changed {
		a.configChanged(env)
	}
}

// configChanged puts the newest configuration of the history in force:
// the tracker's members and, on a leader, its replicators.
func (a *Actor) configChanged(env actors.Env) {
	cfg, idx, _ := a.confs.Latest()
	old := a.tr.cfg
	if p := a.sh.conf.Load(); p != nil && p.index == idx && old.Equal(cfg) {
		return // nothing changed (a snapshot carrying the same configuration)
	}
	a.tr.setConfig(cfg)
	a.forgetIncarnations(env, false)
	a.publishConfig()
	a.sh.Metrics.ConfigChanges.Add(1)
	a.logger.Info("asyncraft: configuration in force", "index", idx, "configuration", cfg.String(), "was", old.String())
	if !a.tr.leading() {
		return
	}
	gone, err := a.tr.syncReplicators(a.spawnReplicator(env), env.Stop)
	for _, id := range gone {
		delete(a.snap.sending, id)
		if p := a.sh.readErr.Load(); p != nil && p.peer == id {
			a.sh.readErr.Store(nil)
		}
		if p := a.sh.lostErr.Load(); p != nil && p.peer == id {
			a.sh.lostErr.Store(nil)
		}
	}
	views := a.tr.views()
	a.sh.peers.Store(&views)
	if err != nil {
		a.fail(env, err, closure.EINTERNAL)
		return
	}
	// A voter's replicator reports its incarnation again (replicator.
	// Voters): one that was a learner until now was not recorded.
	a.relayIncarnations(env)
	a.toReplicators(env, replicator.Update{Commit: a.commit})
	a.maybeCommit(env) // the quorum changed: what it holds may be committed now
}

// publishConfig makes the configuration in force visible to Status.
func (a *Actor) publishConfig() {
	cfg, idx, _ := a.confs.Latest()
	a.sh.conf.Store(&publishedConf{cfg: ConfigurationOf(cfg), index: idx})
}

// spawnReplicator returns the function that starts the replicator of a
// peer for this leadership.
func (a *Actor) spawnReplicator(env actors.Env) func(id string, view *replicator.View) (actors.Ref, error) {
	return func(id string, view *replicator.View) (actors.Ref, error) {
		ref, err := env.Spawn(replicatorChild(id, a.term), replicator.New(replicator.Config{
			Group:            a.cfg.Group,
			LeaderID:         a.cfg.ID,
			LeaderAddr:       a.cfg.Addr,
			PeerID:           id,
			Term:             a.term,
			Peer:             a.peerRef(id),
			Node:             env.Self(),
			Log:              a.log,
			NextIndex:        a.log.LastIndex() + 1,
			Commit:           a.commit,
			MaxInflightMsgs:  a.cfg.MaxInflightMsgs,
			MaxInflightBytes: a.cfg.MaxInflightBytes,
			MaxBytesPerRPC:   a.cfg.MaxBytesPerRPC,
			HeartbeatTicks:   a.cfg.Ticks.Heartbeat,
			Logger:           a.logger,
			Cluster:          a.cfg.Cluster,
			Incarnation:      a.incarnation(),
			Rejoined:         a.rejoined(),
			MemberSince:      a.memberSince(),
			Voters:           a.relayed(),
			Foreign:          &a.sh.Metrics.Foreign,
			View:             view,
			Copier:           a.copierOrZero(),
			PeerCopier:       a.copyRef(id),
		}))
		if err != nil {
			return ref, fmt.Errorf("spawn replicator for %s: %w", id, err)
		}
		return ref, nil
	}
}

// snapshotConfig puts in force the configuration of a snapshot installed
// up to idx (the log now starts after it). A snapshot without one (of a
// version that did not record it) leaves the configuration as it was.
func (a *Actor) snapshotConfig(env actors.Env, idx uint64, c *raftpb.Configuration) {
	if len(c.GetVoters()) == 0 {
		a.logger.Warn("asyncraft: the installed snapshot records no configuration; keeping this node's", "index", idx)
		a.confs.Truncate(idx + 1)
		a.configChanged(env)
		return
	}
	cfg := confchange.FromProto(c)
	a.confs.Reset(idx, cfg)
	a.configChanged(env)
	a.forgetIncarnations(env, true) // a member may have been re-added meanwhile
}

// Errors of a membership change (Node.ChangePeers).
var (
	// ErrChangeInProgress: another change is under way (a joint
	// configuration, or a configuration entry not committed yet); retry
	// once it completes.
	ErrChangeInProgress = confchange.ErrInProgress
	// ErrConfigurationStale: a guarded change expected a configuration
	// that is no longer the one in force.
	ErrConfigurationStale = confchange.ErrStale
	// ErrConfigurationUnchanged: the change leads to the configuration in
	// force.
	ErrConfigurationUnchanged = confchange.ErrUnchanged
	// ErrInvalidConfiguration: the target is not a valid configuration.
	ErrInvalidConfiguration = confchange.ErrInvalid
)

// changing is the membership change this leader accepted and has not
// seen through: it waits for the entry at index (C_old,new, then C_new) to
// commit.
type changing struct {
	index uint64 // 0: no entry of this change to wait for
	done  func(uint64, error)
	// Catching up (target set): the change makes voters of nodes that
	// are not voters yet. They are learners first; once every one of
	// catching is within CatchUpLag entries of the leader, the change of
	// voters toward target begins. ticks counts the ticks since one of
	// them last made progress (Ticks.CatchUp bounds it); seen holds the
	// match each had then.
	target   *confchange.Config
	catching []string
	ticks    int
	seen     map[string]uint64
}

// catchUpProgress reports whether a node of c.catching made progress
// since the last tick: its match rose, or a snapshot is being installed
// on it (an install of a large state holds the match still for as long
// as it takes).
func (a *Actor) catchUpProgress(c *changing) bool {
	progress := false
	if c.seen == nil {
		c.seen = map[string]uint64{}
	}
	for _, id := range c.catching {
		p := a.tr.peer(id)
		if p == nil {
			continue
		}
		if p.match > c.seen[id] {
			c.seen[id] = p.match
			progress = true
		}
		if _, ok := a.snap.sending[id]; ok {
			progress = true
		}
	}
	return progress
}

// onChangeConfig starts a membership change on the leader: it appends
// C_old,new (or, for a change of learners or addresses only, the new
// configuration itself). One change at a time: none may start while the
// configuration is joint or its entry is not committed, nor before the
// leader committed an entry of its own term (until then the configuration
// in force may not be the newest committed one's successor).
func (a *Actor) onChangeConfig(env actors.Env, m ChangeConfig) {
	refuse := func(err error) {
		a.changeDone(m.Done, 0, err)
	}
	cur, curIdx, _ := a.confs.Latest()
	switch {
	case a.failed != nil:
		refuse(fmt.Errorf("asyncraft: no membership change: the node failed: %w", a.failed))
		return
	case a.role != Leader:
		refuse(closure.NotLeader(a.leader).Err())
		return
	case a.commit < a.termStart:
		refuse(closure.Newf(closure.EAGAIN, "the leader has not committed an entry of its term %d yet; retry", a.term).Err())
		return
	case a.transfer != nil:
		refuse(closure.Newf(closure.EBUSY, "a leadership transfer to %s is under way; retry once it ends", a.transfer.to).Err())
		return
	case a.change != nil || cur.Joint() || curIdx > a.commit:
		refuse(fmt.Errorf("%w: the configuration in force (entry %d, commit index %d) is %v; retry once the change completes", ErrChangeInProgress, curIdx, a.commit, cur))
		return
	}
	target, err := m.Change(cur)
	if err != nil {
		refuse(err)
		return
	}
	next, err := confchange.Next(cur, target, m.Expect)
	if err != nil {
		refuse(err)
		return
	}
	if catching := newVoters(cur, target); len(catching) > 0 {
		// New voters catch up as learners first.
		stage := confchange.Target(cur)
		for _, p := range target.Voters {
			if slices.Contains(catching, p.ID) && !cur.IsLearner(p.ID) {
				stage.Learners = append(stage.Learners, confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority})
			}
		}
		stage = confchange.Normalize(stage)
		c := &changing{done: m.Done, target: &target, catching: catching}
		if !stage.Equal(cur) {
			c.index = a.appendConfig(env, stage)
			if a.failed != nil {
				refuse(fmt.Errorf("asyncraft: no membership change: the node failed: %w", a.failed))
				return
			}
		}
		a.change = c
		a.logger.Info("asyncraft: membership change started; new voters catch up as learners first", "catching up", catching, "target", target.String(), "from", cur.String())
		a.advanceCatchUp(env)
		return
	}
	idx := a.appendConfig(env, next)
	if a.failed != nil {
		refuse(fmt.Errorf("asyncraft: no membership change: the node failed: %w", a.failed))
		return
	}
	a.change = &changing{index: idx, done: m.Done}
	a.logger.Info("asyncraft: membership change started", "index", idx, "entry", next.String(), "from", cur.String())
}

// appendConfig appends a configuration entry stating c (a leader's) and
// returns its index.
func (a *Actor) appendConfig(env actors.Env, c confchange.Config) uint64 {
	cur, _, _ := a.confs.Latest()
	index := a.log.LastIndex() + 1
	e := &raftpb.Entry{Index: index, Term: a.term, Type: raftpb.EntryType_ENTRY_TYPE_CONFIG, Data: confchange.Encode(confchange.Stamp(cur, c, index))}
	a.writeLog(env, []*raftpb.Entry{e})
	a.toReplicators(env, replicator.Update{Commit: a.commit})
	return e.Index
}

// advanceMembership is called on a leader whose commit index rose: a
// committed joint configuration is followed by C_new at once; a committed
// C_new completes the change under way, and a leader that is no longer a
// voter steps down.
func (a *Actor) advanceMembership(env actors.Env) {
	cur, idx, _ := a.confs.Latest()
	if idx == 0 || idx > a.commit {
		return
	}
	if cur.Joint() {
		next, err := confchange.Leave(cur)
		if err != nil {
			a.fail(env, err, closure.EINTERNAL)
			return
		}
		at := a.appendConfig(env, next)
		if a.change != nil {
			a.change.index = at
		}
		a.logger.Info("asyncraft: joint configuration committed; leaving it", "joint", idx, "index", at, "configuration", next.String())
		return
	}
	if c := a.change; c != nil && c.target == nil && c.index <= a.commit {
		a.change = nil
		a.sh.Metrics.MembershipChanges.Add(1)
		a.logger.Info("asyncraft: membership change complete", "index", idx, "configuration", cur.String())
		a.changeDone(c.done, idx, nil)
	}
	if !cur.IsVoter(a.cfg.ID) {
		a.logger.Info("asyncraft: this leader is not a voter of the committed configuration; stepping down", "index", idx, "configuration", cur.String())
		a.becomeFollower(env, a.term, "")
	}
}

// newVoters returns the voters of target that are not voters of cur,
// sorted.
func newVoters(cur, target confchange.Config) []string {
	var out []string
	for _, p := range target.Voters {
		if !cur.IsVoter(p.ID) {
			out = append(out, p.ID)
		}
	}
	slices.Sort(out)
	return out
}

// caughtUpPeer reports whether the leader's record of id shows its log
// within CatchUpLag entries of the leader's, by an acknowledgement of
// this term (a peer that never answered has caught up with nothing,
// however short the log).
func (a *Actor) caughtUpPeer(id string) bool {
	p := a.tr.peer(id)
	return p != nil && p.match > 0 && p.match+a.cfg.CatchUpLag >= a.log.LastIndex()
}

// advanceCatchUp moves membership on when learners catch up (a leader's,
// on progress, commit and tick): the change under way begins its change
// of voters once its new voters have caught up; with no change under
// way, a learner marked for promotion that has caught up is promoted.
func (a *Actor) advanceCatchUp(env actors.Env) {
	if a.role != Leader || a.failed != nil {
		return
	}
	cur, idx, _ := a.confs.Latest()
	if cur.Joint() || idx > a.commit {
		return // an entry of the change under way is not committed yet
	}
	if c := a.change; c != nil {
		if c.target == nil {
			return
		}
		for _, id := range c.catching {
			if !a.caughtUpPeer(id) {
				return
			}
		}
		next, err := confchange.Next(cur, *c.target, nil)
		if err != nil {
			a.change = nil
			a.sh.Metrics.MembershipFailures.Add(1)
			a.changeDone(c.done, 0, err)
			return
		}
		c.target = nil
		c.index = a.appendConfig(env, next)
		a.logger.Info("asyncraft: new voters caught up; changing the voters", "index", c.index, "entry", next.String())
		return
	}
	if a.transfer != nil || a.commit < a.termStart {
		return
	}
	for _, p := range cur.Learners {
		if !p.Promote || !a.caughtUpPeer(p.ID) {
			continue
		}
		target, err := confchange.Promote(cur, p.ID)
		var next confchange.Config
		if err == nil {
			next, err = confchange.Next(cur, target, nil)
		}
		if err != nil {
			a.logger.Warn("asyncraft: cannot promote a learner marked for promotion", "learner", p.ID, "err", err)
			return
		}
		a.change = &changing{index: a.appendConfig(env, next)}
		a.logger.Info("asyncraft: promoting a learner that caught up", "learner", p.ID, "index", a.change.index)
		return
	}
}

// membershipTick counts a tick of a change whose new voters are catching
// up; at Ticks.CatchUp the change fails with ETIMEDOUT, the nodes staying
// learners.
func (a *Actor) membershipTick(env actors.Env) {
	c := a.change
	if c == nil || c.target == nil {
		a.advanceCatchUp(env)
		return
	}
	c.ticks++
	if a.catchUpProgress(c) {
		c.ticks = 0
	}
	if c.ticks < a.cfg.Ticks.CatchUp {
		a.advanceCatchUp(env)
		return
	}
	var behind []string
	for _, id := range c.catching {
		if !a.caughtUpPeer(id) {
			behind = append(behind, id)
		}
	}
	a.change = nil
	a.sh.Metrics.MembershipFailures.Add(1)
	a.logger.Warn("asyncraft: new voters did not catch up in time; the change failed and they stay learners", "behind", behind)
	a.changeDone(c.done, 0, closure.Newf(closure.ETIMEDOUT, "%v did not catch up (to within %d entries of the leader's log) and made no progress for %d ticks; they stay learners: remove them (RemoveLearner) or try again", behind, a.cfg.CatchUpLag, a.cfg.Ticks.CatchUp).Err())
}

// abandonChange fails the change under way when this node stops leading:
// the group may still complete it (its entry may be committed), so the
// outcome is unknown.
func (a *Actor) abandonChange(why string) {
	c := a.change
	if c == nil {
		return
	}
	a.change = nil
	a.sh.Metrics.MembershipFailures.Add(1)
	a.changeDone(c.done, 0, closure.Newf(closure.EUNKNOWN, "%s before the membership change completed (entry %d); the group may still complete it: check Status.Configuration", why, c.index).Err())
}

// changeDone completes a ChangeConfig on the callback executor.
func (a *Actor) changeDone(done func(uint64, error), index uint64, err error) {
	if done == nil {
		return
	}
	a.completions = append(a.completions, closure.Completion{Closure: closure.Func(func(closure.Status) { done(index, err) })})
}
