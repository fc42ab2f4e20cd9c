package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The membership workloads (asyncraft only, by name only, like the
// snapshot workloads; their reports are printed with theirs):
//
// member-add: a 3-member group holding Spec.StateBytes (1 GiB, prepared
// as for install, so that a new member can only catch up by an install)
// gets a 4th voter while one client proposes through the leader (lat1's
// load).
//
//  1. install's step 1: 20,000 commands, a small snapshot, the blob,
//     20,000 more, the large snapshot; the leader's log compacted past
//     entry 1. The members keep the default CatchUpTimeout (20 election
//     timeouts): it bounds a stall of the new voter, and an install under
//     way is progress, so an install of 1 GiB is not cut short.
//  2. lat1's load on the leader: warm-up, then the "before" window
//     (Spec.Measure), RSS sampled every 100 ms.
//  3. A 4th member process (n4) is spawned on an empty data directory
//     and started with NodeOptions.JoinIdentity = the leader's
//     ClusterIdentity and Peers = the 3 members (its address book); then
//     the leader runs ChangeMembership(AddVoter(n4)): n4 a learner, the
//     install, the promotion (joint, then C_new). The "during" window
//     runs from n4's spawn until the change returned; then an "after"
//     window as long as "before".
//
// transfer: a 3-member group (no large state) under lat1's load through
// whichever member leads, and Spec.Transfers leadership transfers, one
// every Spec.TransferEvery, each to the member after the leader in id
// order (n1 → n2 → n3 → n1 …).
//
//  1. A Follow load (Spec.Follow, Spec.Timeline) in every member
//     process: one client each, proposing through its own node while it
//     leads, waiting while it does not. One client writes at a time, and
//     the load moves with the leadership as a client that retries on the
//     new leader would. Every cut carries the time of each completion
//     and each refusal.
//  2. Warm-up, then the "before" window (Spec.Measure, steady state).
//  3. Each transfer: a cut, Node.TransferLeadership on the leader
//     ("transfer"), a window of transferAround after the call returned
//     (the window "around" the transfer), a cut; the group settles on
//     its leader; the rest of the interval is steady state again.
//
// It reports, per transfer, the call's duration, the longest gap between
// successive successful writes (of any process) that overlaps the
// transfer (from its start to the first write that succeeded after it
// returned), and the refusals from its start to transferAround after it
// returned (EBUSY while the leader hands over, EPERM once it has
// stepped down, by kind; each refused attempt is retried 1 ms later);
// lat1 in steady state and around the transfers; and the members'
// TransfersStarted/Done/Failed.

// The kinds of the membership workloads (Spec.Kind).
const (
	kindMemberAdd = "member-add"
	kindTransfer  = "transfer"
)

// membershipFamily is their Sweep: selected by name only.
const membershipFamily = "membership"

// transferAround is how long after a transfer returned its window lasts.
const transferAround = time.Second

// MemberAddReport is one member-add's figures.
type MemberAddReport struct {
	Leader string `json:"leader"`
	Member string `json:"member"`
	// Identity: the group's cluster identity (hex), the new member's
	// JoinIdentity.
	Identity string `json:"identity"`
	// The leader's snapshot, as for install.
	SnapshotIndex   uint64  `json:"snapshot_index"`
	SnapshotMiB     float64 `json:"snapshot_mib"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	FirstIndex      uint64  `json:"first_index"`
	// Seconds from the new member's spawn: its host up, StartNode
	// returned, the change sent to the leader, the new member a learner
	// in the leader's configuration, its install begun and done, the
	// leader's configuration joint, and the change returned. Polled every
	// 50 ms (Ready, Started, ChangeSent and Done are exact).
	Ready          float64 `json:"ready"`
	Started        float64 `json:"started"`
	ChangeSent     float64 `json:"change_sent"`
	Learner        float64 `json:"learner,omitempty"`
	InstallStarted float64 `json:"install_started,omitempty"`
	InstallDone    float64 `json:"install_done,omitempty"`
	Joint          float64 `json:"joint,omitempty"`
	Done           float64 `json:"done"`
	// ChangeSeconds: the ChangeMembership call, as the leader's process
	// timed it; ChangeIndex: the index of its last entry.
	ChangeSeconds float64 `json:"change_seconds"`
	ChangeIndex   uint64  `json:"change_index"`
	// The install: MiB the new member received and the leader sent,
	// MiB/s from its start to done, failed fetches.
	ReceivedMiB float64 `json:"received_mib"`
	SentMiB     float64 `json:"sent_mib"`
	MiBps       float64 `json:"mib_per_sec"`
	Failures    uint64  `json:"install_failures,omitempty"`
	// RSS (MiB): the leader's steady state (median in "before") and peak
	// during the change (VmHWM reset at the spawn, and the samples); the
	// new member's peak (its process's VmHWM) and steady state after
	// (median in "after"); a follower's steady state (median in
	// "before"), the reference for a member.
	LeaderSteadyMiB   float64 `json:"leader_steady_mib"`
	LeaderPeakMiB     float64 `json:"leader_peak_mib"`
	MemberPeakMiB     float64 `json:"member_peak_mib"`
	MemberAfterMiB    float64 `json:"member_after_mib"`
	FollowerSteadyMiB float64 `json:"follower_steady_mib"`
	// The configuration at the end, on the leader, and the voters the new
	// member sees.
	Voters       []string `json:"voters"`
	Learners     []string `json:"learners,omitempty"`
	JointAtEnd   bool     `json:"joint_at_end,omitempty"`
	MemberVoters []string `json:"member_voters"`
	// lat1 through the leader before, during (spawn to the change's
	// return) and after.
	Before latency `json:"before"`
	During latency `json:"during"`
	After  latency `json:"after"`
}

// TransferReport is one transfer run's figures.
type TransferReport struct {
	Transfers []TransferFigures `json:"transfers"`
	// lat1 in steady state ("before" and the rest of every interval) and
	// in the windows around the transfers, every member's client merged.
	Steady latency `json:"steady"`
	Around latency `json:"around"`
	// SteadyGapMs: the longest gap between successive successful writes
	// in the "before" window, for reference.
	SteadyGapMs float64 `json:"steady_gap_ms"`
	// The members' counters, summed (each leader counts its own).
	TransfersStarted uint64 `json:"transfers_started"`
	TransfersDone    uint64 `json:"transfers_done"`
	TransfersFailed  uint64 `json:"transfers_failed"`
	// Refused: every refusal of the run, by kind.
	Refused map[string]uint64 `json:"refused,omitempty"`
}

// TransferFigures is one transfer.
type TransferFigures struct {
	// From: the leader that handed over; To: the target; Leader: the
	// settled leader afterwards; Term: its term.
	From   string `json:"from"`
	To     string `json:"to"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	// CallMs: the TransferLeadership call, as the leader's process timed
	// it; Err: its error.
	CallMs float64 `json:"call_ms"`
	Err    string  `json:"err,omitempty"`
	// ETMs: the old leader's election timeout, the bound on a transfer.
	ETMs float64 `json:"et_ms"`
	// GapMs: the longest gap between successive successful writes that
	// overlaps the transfer (from its start to the first write that
	// succeeded after it returned: transferGap); GapFromMs and GapToMs its
	// ends, from the transfer's start. Resumed: a write succeeded after
	// the gap.
	GapMs     float64 `json:"gap_ms"`
	GapFromMs float64 `json:"gap_from_ms"`
	GapToMs   float64 `json:"gap_to_ms"`
	Resumed   bool    `json:"resumed"`
	// Refused: the refusals in the window, by kind; RefusedMs: from the
	// first to the last.
	Refused   map[string]int `json:"refused,omitempty"`
	RefusedMs float64        `json:"refused_ms"`
	// Around: lat1 in the window (from the cut before the call to
	// transferAround after it returned).
	Around latency `json:"around"`
}

// membershipSpecs are the membership workloads of the registry.
func membershipSpecs() []Spec {
	add := base("member-add", 1, time.Second, 10*time.Second)
	add.Kind, add.Sweep, add.StateBytes = kindMemberAdd, membershipFamily, 1<<30
	add.Node = &loadgen.NodeConfig{SnapshotTrailingEntries: 1000, WALSegmentSize: 1 << 20}
	tr := base("transfer", 1, time.Second, 5*time.Second)
	tr.Kind, tr.Sweep = kindTransfer, membershipFamily
	tr.Transfers, tr.TransferEvery = 10, 3*time.Second
	tr.Follow, tr.Timeline = true, true
	tr.Node = &loadgen.NodeConfig{}
	return []Spec{add, tr}
}

// describeMembership describes a membership workload ("" for the others).
func describeMembership(s Spec) string {
	switch s.Kind {
	case kindMemberAdd:
		return fmt.Sprintf("a 4th voter added (JoinIdentity, AddVoter) to a group holding %.0f MiB, caught up by install; lat1 through the leader before/during/after (%v windows): "+
			"time to add, install, RSS of the leader and the new member, lat1 p99", float64(s.StateBytes)/(1<<20), s.Measure)
	case kindTransfer:
		return fmt.Sprintf("%d leadership transfers, one every %v, under lat1 through whichever member leads (%v steady window first): "+
			"call time, write gap and refusals per transfer, lat1 p99 steady vs around", s.Transfers, s.TransferEvery, s.Measure)
	}
	return ""
}

// takePending removes and returns p's first pending event among wants.
func (c *cluster) takePending(p *proc, wants ...string) (event, bool) {
	for i, t := range c.pending {
		if t.p == p && slices.Contains(wants, t.ev.Ev) {
			c.pending = slices.Delete(c.pending, i, i+1)
			return t.ev, true
		}
	}
	return event{}, false
}

func (o *orchestrator) memberAdd(ctx context.Context, spec Spec, r *RepResult, desc string) error {
	rep := &MemberAddReport{}
	r.MemberAdd = rep
	c, stop, err := o.startRun(ctx, spec, r)
	if err != nil {
		return err
	}
	defer stop()
	leaders := r.Leaders
	lp, others := leaderProc(c, leaders)
	if len(others) < 2 {
		return fmt.Errorf("member-add needs 3 members, not %d", len(c.procs))
	}
	op := others[0]
	rep.Leader, r.LeaderName = lp.name, lp.name

	// 1. The state, as for install.
	st, err := o.prepareLargeState(ctx, c, lp, spec, uint64(r.Rep), desc)
	if err != nil {
		return err
	}
	rep.SnapshotIndex, rep.SnapshotSeconds, rep.FirstIndex, rep.SnapshotMiB = st.SnapshotIndex, st.SnapshotSeconds, st.FirstIndex, st.SnapshotMiB
	ln, err := c.nodeOf(ctx, lp)
	if err != nil {
		return err
	}
	if ln.Identity == 0 {
		return fmt.Errorf("member %s reports no cluster identity", lp.name)
	}
	rep.Identity = fmt.Sprintf("%016x", ln.Identity)

	// 2. lat1 before.
	probe := spec
	probe.Clients = 1
	if err := lp.send(command{Op: "load", Spec: &probe, Drive: []string{groupName(0)}}); err != nil {
		return err
	}
	if _, err := c.await(ctx, lp, "loading", 10*time.Second); err != nil {
		return err
	}
	if err := sleepCtx(ctx, spec.Warmup); err != nil {
		return err
	}
	if _, err := c.cut(ctx, lp, "cut", o.stall); err != nil {
		return err
	}
	var lrss, orss []float64
	if err := sampleUntil(ctx, time.Now().Add(spec.Measure), func() {
		lrss, orss = append(lrss, rssMiB(lp)), append(orss, rssMiB(op))
	}); err != nil {
		return err
	}
	before, err := c.cut(ctx, lp, "cut", o.stall)
	if err != nil {
		return err
	}
	rep.LeaderSteadyMiB, rep.FollowerSteadyMiB = median(lrss), median(orss)

	// 3. The new member, and the change.
	name := fmt.Sprintf("n%d", len(c.procs)+1)
	rep.Member = name
	o.ui.logf("%s: starting %s on an empty data directory (JoinIdentity %s) and adding it as a voter", desc, name, rep.Identity)
	_ = resetPeakRSS(lp.pid)
	spawned := time.Now()
	since := func() float64 { return time.Since(spawned).Seconds() }
	np, err := c.spawn(o.cfg.exes[spec.System], name, []string{name}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	ev, err := c.await(ctx, np, "ready", o.cfg.startTimeout)
	if err != nil {
		return err
	}
	rep.Ready = since()
	np.addr, np.version = ev.Addr, ev.Version
	join := loadgen.NodeConfig{}
	if spec.Node != nil {
		join = *spec.Node
	}
	join.JoinIdentity, join.RejoinTerm = ln.Identity, 0
	if err := np.send(c.startCommand(o.cfg, &join)); err != nil {
		return err
	}
	if _, err := c.await(ctx, np, "started", 5*time.Minute); err != nil {
		return err
	}
	rep.Started = since()
	limit := defaultChangeTimeout
	if spec.Node != nil && spec.Node.CatchUpTimeout > 0 {
		limit = spec.Node.CatchUpTimeout + 5*time.Minute
	}
	change := loadgen.MemberChange{Op: "add-voter", ID: name, Addr: np.addr, Timeout: limit}
	if err := lp.send(command{Op: "change", Group: groupName(0), Change: &change}); err != nil {
		return err
	}
	rep.ChangeSent = since()
	peak := 0.0
	var outcome *loadgen.Outcome
	deadline := time.Now().Add(limit + time.Minute)
	for outcome == nil {
		peak = max(peak, rssMiB(lp))
		n, err := c.nodeOf(ctx, np)
		if err != nil {
			return err
		}
		rep.Failures = n.InstallFailures
		if rep.InstallStarted == 0 && n.InstallsStarted > 0 {
			rep.InstallStarted = since()
		}
		if rep.InstallDone == 0 && n.InstallsDone > 0 {
			rep.InstallDone = since()
			rep.ReceivedMiB = mib(n.SnapBytesReceived)
		}
		l, err := c.nodeOf(ctx, lp)
		if err != nil {
			return err
		}
		if rep.Learner == 0 && slices.Contains(l.Learners, name) {
			rep.Learner = since()
		}
		if rep.Joint == 0 && l.Joint {
			rep.Joint = since()
		}
		if rep.InstallDone > 0 && rep.SentMiB == 0 {
			rep.SentMiB = mib(l.SnapBytesSent)
		}
		if ev, ok := c.takePending(lp, "changed", "error"); ok {
			if ev.Ev == "error" || ev.Outcome == nil {
				return fmt.Errorf("the change on %s: %s", lp.name, ev.Err)
			}
			outcome = ev.Outcome
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("adding %s did not end within %v (installs started %d, done %d, failed %d, received %.0f MiB; leader's voters %v, learners %v)",
				name, limit+time.Minute, n.InstallsStarted, n.InstallsDone, n.InstallFailures, mib(n.SnapBytesReceived), l.Voters, l.Learners)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	rep.Done = since()
	rep.ChangeSeconds, rep.ChangeIndex = outcome.Seconds(), outcome.Index
	during, err := c.cut(ctx, lp, "cut", o.stall)
	if err != nil {
		return err
	}
	rep.LeaderPeakMiB = max(peak, peakMiB(lp))
	rep.MemberPeakMiB = peakMiB(np)
	if d := rep.InstallDone - rep.InstallStarted; d > 0 && rep.InstallStarted > 0 {
		rep.MiBps = rep.ReceivedMiB / d
	}
	if outcome.Err != "" {
		return fmt.Errorf("AddVoter(%s) failed after %.1f s: %s", name, outcome.Seconds(), outcome.Err)
	}
	if rep.ReceivedMiB == 0 { // the install ended between two polls
		if n, err := c.nodeOf(ctx, np); err == nil {
			rep.ReceivedMiB = mib(n.SnapBytesReceived)
		}
	}
	l, err := c.nodeOf(ctx, lp)
	if err != nil {
		return err
	}
	if rep.SentMiB == 0 {
		rep.SentMiB = mib(l.SnapBytesSent)
	}
	rep.Voters, rep.Learners, rep.JointAtEnd = l.Voters, l.Learners, l.Joint
	n, err := c.waitFor(ctx, np, 30*time.Second, "seeing itself a voter", func(n nodeStatus) bool {
		return !n.Joint && slices.Contains(n.Voters, name)
	})
	if err != nil {
		return err
	}
	rep.MemberVoters = n.Voters

	// lat1 after, as long as before.
	if rep.MemberAfterMiB, err = o.afterWindow(ctx, c, lp, np, spec, before, during, [3]*latency{&rep.Before, &rep.During, &rep.After}, rep.LeaderPeakMiB, r); err != nil {
		return err
	}
	if len(rep.Voters) != 4 || rep.JointAtEnd || len(rep.Learners) > 0 {
		return fmt.Errorf("the configuration after the change is voters %v, learners %v (joint: %v), not 4 voters", rep.Voters, rep.Learners, rep.JointAtEnd)
	}
	return nil
}

// cutAll cuts the background load of every process in ps at once (the
// command to all, then the answers) and returns their results in order.
func (c *cluster) cutAll(ctx context.Context, ps []*proc, op string, stall time.Duration) ([]*memberResult, error) {
	for _, p := range ps {
		if err := p.send(command{Op: op, Stall: stall}); err != nil {
			return nil, err
		}
	}
	out := make([]*memberResult, len(ps))
	for i, p := range ps {
		ev, err := c.await(ctx, p, "cut", stall+30*time.Second)
		if err != nil {
			return nil, err
		}
		out[i] = ev.Result
	}
	return out, nil
}

func (o *orchestrator) transfer(ctx context.Context, spec Spec, r *RepResult, desc string) error {
	rep := &TransferReport{Refused: map[string]uint64{}}
	r.Transfer = rep
	if spec.Transfers < 1 || spec.TransferEvery <= 0 {
		return fmt.Errorf("transfer: %d transfers every %v", spec.Transfers, spec.TransferEvery)
	}
	c, stop, err := o.startRun(ctx, spec, r)
	if err != nil {
		return err
	}
	defer stop()
	leaders := r.Leaders
	leader := leaders[groupName(0)]
	r.LeaderName = leader
	procs := slices.Clone(c.procs)
	var names []string
	for _, p := range procs {
		names = append(names, p.name)
	}

	// 1. The Follow load in every process.
	probe := spec
	probe.Clients, probe.Follow, probe.Timeline = 1, true, true
	for _, p := range procs {
		if err := p.send(command{Op: "load", Spec: &probe, Drive: []string{groupName(0)}}); err != nil {
			return err
		}
	}
	for _, p := range procs {
		if _, err := c.await(ctx, p, "loading", 10*time.Second); err != nil {
			return err
		}
	}
	var okAt []int64
	var refused []loadgen.Refusal
	keep := func(cuts []*memberResult) []*memberResult {
		for _, m := range cuts {
			okAt = append(okAt, m.OKAt...)
			refused = append(refused, m.Refused...)
			for k, v := range m.Errors {
				rep.Refused[k] += v
			}
			m.OKAt, m.Refused = nil, nil
		}
		return cuts
	}

	// 2. Warm-up, "before".
	if err := sleepCtx(ctx, spec.Warmup); err != nil {
		return err
	}
	warm, err := c.cutAll(ctx, procs, "cut", o.stall)
	if err != nil {
		return err
	}
	keep(warm) // the timeline only: the gaps of "before" start there
	beforeFrom := time.Now()
	if err := sleepCtx(ctx, spec.Measure); err != nil {
		return err
	}
	before, err := c.cutAll(ctx, procs, "cut", o.stall)
	if err != nil {
		return err
	}
	keep(before)
	beforeTo := time.Now()
	steady := [][]*memberResult{before}
	var around [][]*memberResult

	// 3. The transfers.
	outcomes := make([]loadgen.Outcome, 0, spec.Transfers)
	for i := 0; i < spec.Transfers; i++ {
		start := time.Now()
		from := c.byID[leader]
		to := nextMember(names, leader)
		f := TransferFigures{From: leader, To: to, ETMs: o.electionTimeout(leader).Seconds() * 1000}
		cuts, err := c.cutAll(ctx, procs, "cut", o.stall) // the end of the steady interval (≈ 0 s)
		if err != nil {
			return err
		}
		steady = append(steady, keep(cuts))
		if err := from.send(command{Op: "transfer", Group: groupName(0), To: to}); err != nil {
			return err
		}
		ev, err := c.await(ctx, from, "transferred", 2*time.Minute)
		if err != nil {
			return err
		}
		out := *ev.Outcome
		outcomes = append(outcomes, out)
		f.CallMs, f.Err = out.Seconds()*1000, out.Err
		if err := sleepCtx(ctx, time.Until(time.Unix(0, out.End).Add(transferAround))); err != nil {
			return err
		}
		cuts, err = c.cutAll(ctx, procs, "cut", o.stall)
		if err != nil {
			return err
		}
		around = append(around, keep(cuts))
		if f.Around, err = latencyAcross(cuts); err != nil {
			return err
		}
		ls, err := c.waitLeaders(ctx, 30*time.Second)
		if err != nil {
			return fmt.Errorf("after transfer %d (%s → %s): %w", i+1, f.From, f.To, err)
		}
		leader = ls[groupName(0)]
		f.Leader = leader
		if n, err := c.nodeOf(ctx, c.byID[leader]); err == nil {
			f.Term = n.Term
		}
		rep.Transfers = append(rep.Transfers, f)
		what := "done"
		if out.Err != "" {
			what = "FAILED: " + out.Err
		}
		o.ui.logf("%s: transfer %d/%d %s → %s in %.1f ms, %s; %s leads", desc, i+1, spec.Transfers, f.From, to, f.CallMs, what, leader)
		if err := sleepCtx(ctx, time.Until(start.Add(spec.TransferEvery))); err != nil {
			return err
		}
		cuts, err = c.cutAll(ctx, procs, "cut", o.stall)
		if err != nil {
			return err
		}
		steady = append(steady, keep(cuts))
	}
	last, err := c.cutAll(ctx, procs, "unload", o.stall)
	if err != nil {
		return err
	}
	keep(last)

	// The figures.
	slices.Sort(okAt)
	sort.Slice(refused, func(i, j int) bool { return refused[i].At < refused[j].At })
	for i, out := range outcomes {
		f := &rep.Transfers[i]
		g := transferGap(okAt, out.Start, out.End)
		f.Resumed = g.Resumed
		f.GapMs = float64(g.To-g.From) / 1e6
		f.GapFromMs, f.GapToMs = float64(g.From-out.Start)/1e6, float64(g.To-out.Start)/1e6
		var span int64
		f.Refused, span = refusalsIn(refused, out.Start, out.End+int64(transferAround))
		f.RefusedMs = float64(span) / 1e6
	}
	if g := longestGap(okAt, beforeFrom.UnixNano(), beforeTo.UnixNano()); g.Resumed {
		rep.SteadyGapMs = float64(g.To-g.From) / 1e6
	}
	if rep.Steady, err = latencyAcross(steady...); err != nil {
		return err
	}
	if rep.Around, err = latencyAcross(around...); err != nil {
		return err
	}
	nodes, err := c.status(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		rep.TransfersStarted += n.TransfersStarted
		rep.TransfersDone += n.TransfersDone
		rep.TransfersFailed += n.TransfersFailed
	}
	r.Ops, r.Seconds, r.OpsPerSec = rep.Around.Ops, rep.Around.Seconds, rep.Around.OpsPerSec
	r.P50Ms, r.P99Ms, r.P999Ms = rep.Around.P50Ms, rep.Around.P99Ms, rep.Around.P999Ms
	var failed []string
	for i, f := range rep.Transfers {
		if f.Err != "" {
			failed = append(failed, fmt.Sprintf("%d (%s → %s: %s)", i+1, f.From, f.To, f.Err))
		}
	}
	if len(failed) > 0 {
		o.ui.logf("%s: %d of %d transfers failed: %s", desc, len(failed), len(rep.Transfers), strings.Join(failed, "; "))
	}
	if rep.Steady.Ops == 0 {
		return errors.New("no write succeeded in steady state")
	}
	return nil
}

// runLength is how long a run of s loads its cluster (for the progress
// bar and the estimate): the warm-up and the window, and the transfers.
func runLength(s Spec) time.Duration {
	d := s.Warmup + s.Measure
	if s.Kind == kindTransfer {
		d += time.Duration(s.Transfers) * s.TransferEvery
	}
	return d
}

// electionTimeout is the election timeout of member name: the preferred
// leader n1 has -leader-et, the others -follower-et (0: the library's
// default, 1 s).
func (o *orchestrator) electionTimeout(name string) time.Duration {
	et := o.cfg.followerET
	if name == memberIDs(1)[0] {
		et = o.cfg.leaderET
	}
	if et <= 0 {
		et = time.Second
	}
	return et
}

// nextMember is the member after leader in names (cyclically, in the
// order given): the next transfer's target.
func nextMember(names []string, leader string) string {
	i := slices.Index(names, leader)
	return names[(i+1)%len(names)]
}

// gap is an interval between two successive successful writes (Unix ns).
// Resumed is false when no write succeeded after From (To is then the
// last time the timeline knows of: the gap lasted at least that long).
type gap struct {
	From, To int64
	Resumed  bool
}

// longestGap is the longest interval between successive times of ok
// (sorted) that overlaps [from, to]. If no write succeeded after from,
// the gap runs from the last success before it (or from) to the end of
// the timeline (or to), unresumed.
func longestGap(ok []int64, from, to int64) gap {
	i := sort.Search(len(ok), func(i int) bool { return ok[i] > from }) // the first success after from
	if i == len(ok) {
		g := gap{From: from, To: max(from, to)}
		if i > 0 {
			g.From = ok[i-1]
		}
		return g
	}
	var best gap
	if i == 0 { // nothing before from: the gap from from itself
		best = gap{From: from, To: ok[0], Resumed: true}
	}
	j := max(i, 1)
	for ; j < len(ok) && ok[j-1] < to; j++ {
		if d := ok[j] - ok[j-1]; d > best.To-best.From {
			best = gap{From: ok[j-1], To: ok[j], Resumed: true}
		}
	}
	if j == len(ok) && ok[j-1] < to { // the timeline ends in the window: no write since its last
		return gap{From: ok[j-1], To: to}
	}
	return best
}

// transferGap is the write gap of a transfer that began at start and
// returned at end: the longest interval between successive successful
// writes of ok (sorted) that overlaps the transfer, from its start to the
// first write that succeeded once the call returned (the new leader's, or
// the old one's if it failed). A wider window would pick up the pauses
// of steady state (an fsync that took 10 ms) instead.
func transferGap(ok []int64, start, end int64) gap {
	i := sort.Search(len(ok), func(i int) bool { return ok[i] >= end })
	if i == len(ok) { // no write since
		return longestGap(ok, start, max(start, end))
	}
	return longestGap(ok, start, ok[i])
}

// refusalsIn counts the refusals (sorted by time) in [from, to] by kind,
// and the time from the first to the last.
func refusalsIn(refused []loadgen.Refusal, from, to int64) (map[string]int, int64) {
	i := sort.Search(len(refused), func(i int) bool { return refused[i].At >= from })
	var out map[string]int
	var first, last int64
	for ; i < len(refused) && refused[i].At <= to; i++ {
		if out == nil {
			out, first = map[string]int{}, refused[i].At
		}
		out[refused[i].Kind]++
		last = refused[i].At
	}
	return out, last - first
}

// latencyAcross merges windows of a load that several processes ran at
// once: each window is one cut of every process (their seconds overlap:
// the window lasts as long as the longest), and the windows add up.
func latencyAcross(windows ...[]*memberResult) (latency, error) {
	h := loadgen.NewHist()
	var l latency
	for _, w := range windows {
		secs := 0.0
		for _, m := range w {
			mh, err := hdr.Decode(m.Hist)
			if err != nil {
				return l, err
			}
			h.Merge(mh)
			l.Ops += m.Ops
			secs = max(secs, m.Seconds)
			for _, v := range m.Errors {
				l.Errors += v
			}
		}
		l.Seconds += secs
	}
	l.OpsPerSec = ratio(float64(l.Ops), l.Seconds)
	l.P50Ms = float64(h.ValueAtQuantile(50)) / 1000
	l.P99Ms = float64(h.ValueAtQuantile(99)) / 1000
	l.P999Ms = float64(h.ValueAtQuantile(99.9)) / 1000
	l.MaxMs = float64(h.Max()) / 1000
	return l, nil
}
