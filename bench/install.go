package main

import (
	"context"
	"fmt"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The install workload: a group whose snapshot is Spec.StateBytes (1 GiB)
// installs it on a follower whose data directory was wiped, while one
// client proposes through the leader (lat1's load), and the install's
// cost is measured against the same load without it.
//
//  1. 3 members with 1 MiB WAL segments and 1,000 trailing entries, so
//     that a short log can be compacted. 20,000 commands, a first snapshot
//     (small), the command that gives the state its blob (kv.go: bytes
//     generated from a seed, streamed as the snapshot's file and checked
//     byte for byte on load), 20,000 more, and a second snapshot on the
//     leader (the large one). The log is then compacted past entry 1
//     (it keeps what follows the first snapshot), so a member without
//     data can only catch up by an install.
//  2. lat1's load on the leader: warm-up, then the "before" window
//     (Spec.Measure), RSS sampled every 100 ms.
//  3. The follower with the highest id is stopped, its data directory
//     removed, and started again at the same address: the install runs.
//     The "during" window goes from its spawn until it has installed the
//     snapshot and applied the leader's commit index; then an "after"
//     window of the same length as "before".
//
// The member restarted without its data is given the leader's term as
// NodeOptions.RejoinTerm (the group's highest: every member is up), so
// that it votes only in later terms, as docs/snapshots.md's procedure for
// a wiped member says.

// InstallReport is one install's figures.
type InstallReport struct {
	Leader   string `json:"leader"`
	Follower string `json:"follower"`
	// The leader's snapshot: last index, size, time to take it; its log's
	// first index when the follower came back.
	SnapshotIndex   uint64  `json:"snapshot_index"`
	SnapshotMiB     float64 `json:"snapshot_mib"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	FirstIndex      uint64  `json:"first_index"`
	// RejoinTerm: the wiped follower's NodeOptions.RejoinTerm.
	RejoinTerm uint64 `json:"rejoin_term"`
	// Seconds from the follower's spawn: its host up, StartNode returned,
	// the install begun (InstallsStarted), done (InstallsDone), and the
	// leader's commit index applied.
	Ready          float64 `json:"ready"`
	Started        float64 `json:"started"`
	InstallStarted float64 `json:"install_started"`
	InstallDone    float64 `json:"install_done"`
	CaughtUp       float64 `json:"caught_up"`
	// Bytes the follower received and the leader sent, MiB/s over the
	// install (from its start to done).
	ReceivedMiB float64 `json:"received_mib"`
	SentMiB     float64 `json:"sent_mib"`
	MiBps       float64 `json:"mib_per_sec"`
	Failures    uint64  `json:"install_failures,omitempty"`
	// RSS (MiB): the leader's steady state (median VmRSS in "before"),
	// its peak during the install (VmHWM reset at the follower's spawn,
	// and the 100 ms samples); the follower's peak (its process's VmHWM,
	// which began with the install) and its steady state after (median
	// in "after"); the other follower's steady state (median in
	// "before"), the reference for a follower.
	LeaderSteadyMiB   float64 `json:"leader_steady_mib"`
	LeaderPeakMiB     float64 `json:"leader_peak_mib"`
	FollowerPeakMiB   float64 `json:"follower_peak_mib"`
	FollowerAfterMiB  float64 `json:"follower_after_mib"`
	OtherFollowerMiB  float64 `json:"other_follower_mib"`
	FollowerBeforeMiB float64 `json:"follower_before_mib"`
	// lat1's load through the leader before, during and after.
	Before latency `json:"before"`
	During latency `json:"during"`
	After  latency `json:"after"`
}

func (o *orchestrator) install(ctx context.Context, spec Spec, r *RepResult, desc string) error {
	rep := &InstallReport{}
	r.Install = rep
	c, stop, err := o.startRun(ctx, spec, r)
	if err != nil {
		return err
	}
	defer stop()
	leaders := r.Leaders
	lp, others := leaderProc(c, leaders)
	if len(others) < 2 {
		return fmt.Errorf("install needs 3 members, not %d", len(c.procs))
	}
	fp, op := others[len(others)-1], others[0]
	rep.Leader, rep.Follower, r.LeaderName = lp.name, fp.name, lp.name

	// 1. The history and the two snapshots.
	st, err := o.prepareLargeState(ctx, c, lp, spec, uint64(r.Rep), desc)
	if err != nil {
		return err
	}
	rep.SnapshotIndex, rep.SnapshotSeconds, rep.FirstIndex, rep.SnapshotMiB = st.SnapshotIndex, st.SnapshotSeconds, st.FirstIndex, st.SnapshotMiB

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
	var lrss, orss, frss []float64
	if err := sampleUntil(ctx, time.Now().Add(spec.Measure), func() {
		lrss, orss, frss = append(lrss, rssMiB(lp)), append(orss, rssMiB(op)), append(frss, rssMiB(fp))
	}); err != nil {
		return err
	}
	before, err := c.cut(ctx, lp, "cut", o.stall)
	if err != nil {
		return err
	}
	rep.LeaderSteadyMiB, rep.OtherFollowerMiB, rep.FollowerBeforeMiB = median(lrss), median(orss), median(frss)

	// 3. The follower wiped and restarted; the install.
	o.ui.logf("%s: wiping %s and starting it again", desc, fp.name)
	fp.retired = true
	fp.stop(30 * time.Second)
	if _, err := c.cut(ctx, lp, "cut", o.stall); err != nil { // while it was down: not counted
		return err
	}
	_ = resetPeakRSS(lp.pid)
	rejoin := loadgen.NodeConfig{}
	if spec.Node != nil {
		rejoin = *spec.Node
	}
	for _, p := range []*proc{lp, op} {
		n, err := c.nodeOf(ctx, p)
		if err != nil {
			return err
		}
		rejoin.RejoinTerm = max(rejoin.RejoinTerm, n.Term)
	}
	rep.RejoinTerm = rejoin.RejoinTerm
	np, t, err := c.restart(ctx, fp, true, o.cfg, &rejoin)
	if err != nil {
		return err
	}
	since := func() float64 { return time.Since(t.Spawned).Seconds() }
	rep.Ready, rep.Started = t.Ready.Sub(t.Spawned).Seconds(), t.Started.Sub(t.Spawned).Seconds()
	peak := 0.0
	var target uint64
	deadline := time.Now().Add(15 * time.Minute)
	for rep.CaughtUp == 0 {
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
			l, err := c.nodeOf(ctx, lp)
			if err != nil {
				return err
			}
			target = l.Commit
			rep.ReceivedMiB = mib(n.SnapBytesReceived)
			rep.SentMiB = mib(l.SnapBytesSent)
		}
		if rep.InstallDone > 0 && n.Applied >= target {
			rep.CaughtUp = since()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not install the snapshot within 15 minutes (installs started %d, done %d, failed %d, received %.0f MiB)",
				np.name, n.InstallsStarted, n.InstallsDone, n.InstallFailures, mib(n.SnapBytesReceived))
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	during, err := c.cut(ctx, lp, "cut", o.stall)
	if err != nil {
		return err
	}
	rep.LeaderPeakMiB = max(peak, peakMiB(lp))
	rep.FollowerPeakMiB = peakMiB(np)
	if d := rep.InstallDone - rep.InstallStarted; d > 0 {
		rep.MiBps = rep.ReceivedMiB / d
	}

	// lat1 after, as long as before.
	rep.FollowerAfterMiB, err = o.afterWindow(ctx, c, lp, np, spec, before, during, [3]*latency{&rep.Before, &rep.During, &rep.After}, rep.LeaderPeakMiB, r)
	return err
}

// largeState is the leader's snapshot after prepareLargeState: its last
// index, the time it took, its size, and the first index of the leader's
// log once compacted.
type largeState struct {
	SnapshotIndex   uint64
	SnapshotSeconds float64
	SnapshotMiB     float64
	FirstIndex      uint64
}

// prepareLargeState gives g0, led by lp, a state of spec.StateBytes that
// a member without data can only get by an install (step 1 of install,
// and of member-add): 20,000 commands, a first (small) snapshot, the blob
// command (seed), 20,000 more, and a second snapshot on the leader, after
// which the leader's log must be compacted past entry 1.
func (o *orchestrator) prepareLargeState(ctx context.Context, c *cluster, lp *proc, spec Spec, seed uint64, desc string) (largeState, error) {
	var st largeState
	small := loadgen.FillSpec{Count: 20000, Keys: uint64(spec.Keys), ValueSize: spec.ValueSize, InFlight: 256}
	if _, err := o.fill(ctx, c, lp, small); err != nil {
		return st, err
	}
	if _, _, err := c.snapshot(ctx, lp); err != nil {
		return st, err
	}
	if _, err := o.fill(ctx, c, lp, loadgen.FillSpec{Blob: spec.StateBytes, Seed: seed}); err != nil {
		return st, err
	}
	if _, err := o.fill(ctx, c, lp, small); err != nil {
		return st, err
	}
	o.ui.logf("%s: taking the leader's snapshot of %.0f MiB", desc, float64(spec.StateBytes)/(1<<20))
	idx, secs, err := c.snapshot(ctx, lp)
	if err != nil {
		return st, err
	}
	st.SnapshotIndex, st.SnapshotSeconds = idx, secs
	ln, err := c.waitFor(ctx, lp, 30*time.Second, "compacting its log", func(n nodeStatus) bool { return n.FirstIndex > 1 })
	if err != nil {
		return st, fmt.Errorf("the leader's log was not compacted, so no install would be needed: %w", err)
	}
	st.FirstIndex, st.SnapshotMiB = ln.FirstIndex, float64(ln.SnapshotBytes)/(1<<20)
	o.ui.logf("%s: snapshot at %s, %.0f MiB in %.1f s; the leader's log starts at %s",
		desc, fmtInt(float64(idx)), st.SnapshotMiB, secs, fmtInt(float64(ln.FirstIndex)))
	return st, nil
}
