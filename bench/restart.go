package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The restart workloads: a member whose group has a long history
// (Spec.History entries, 10 M) and whose snapshot is large
// (Spec.StateBytes, 100 MiB: a map of ValueSize-byte values) is stopped
// in order and started again, and its recovery is timed in pieces: the
// process up (its host listening), StartNode (which loads the snapshot:
// the state machine's OnSnapshotLoad, timed apart), the replay of the
// log after the snapshot up to the commit index saved at shutdown (the
// Spec.Tail entries written after the member's last snapshot), a leader
// known, and the first linearizable read through the member.
//
// The history is built once per invocation and reused by every
// repetition (each repetition starts the cluster again from the same data
// directories, then takes a snapshot on the member, writes the tail,
// stops and restarts it): first one command per key of the state, in
// key order, then 16-byte commands (8-byte values over 1,024 other keys)
// up to the history's length, as fast as 1,024 callbacks in flight go.
// The members take a snapshot every Node.SnapshotEntries meanwhile, as a
// deployment would, so their logs stay short.

// RestartReport is one restart's figures.
type RestartReport struct {
	// Target: "follower" or "leader"; Member: which one.
	Target string `json:"target"`
	Member string `json:"member"`
	// Built: this repetition built the history, in BuildSeconds.
	Built        bool    `json:"built"`
	BuildSeconds float64 `json:"build_seconds,omitempty"`
	// The group's last index when the member stopped; the keys of the
	// state.
	History   uint64 `json:"history"`
	StateKeys uint64 `json:"state_keys"`
	// The member's snapshot (taken on demand just before the tail): its
	// last index, size and the time it took; the tail written after it;
	// the member's log's first index and data directory before it
	// stopped.
	SnapshotIndex   uint64  `json:"snapshot_index"`
	SnapshotMiB     float64 `json:"snapshot_mib"`
	SnapshotSeconds float64 `json:"snapshot_seconds"`
	Tail            uint64  `json:"tail"`
	FirstIndex      uint64  `json:"first_index"`
	DataMiB         float64 `json:"data_mib"`
	// StopSeconds: the orderly stop (its host closing). ReadySeconds:
	// from spawning the new process to its host listening.
	StopSeconds  float64 `json:"stop_seconds"`
	ReadySeconds float64 `json:"ready_seconds"`
	// Recovery: the member's own timeline, from its StartNode call.
	Recovery loadgen.Recovery `json:"recovery"`
	// TotalSeconds: from spawning the process to the first read served.
	TotalSeconds float64 `json:"total_seconds"`
	// PeakRSSMiB: the restarted process's peak RSS, once serving.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// restartKey names a history: the directories that hold it are kept for
// the other repetitions.
func restartKey(spec Spec) string {
	return fmt.Sprintf("%d/%d/%d/%v", spec.History, spec.StateBytes, spec.ValueSize, spec.Node)
}

func (o *orchestrator) restartRun(ctx context.Context, spec Spec, r *RepResult, desc string) error {
	rep := &RestartReport{Target: spec.Target}
	r.Restart = rep
	keys := uint64(spec.StateBytes) / uint64(12+spec.ValueSize) // a key, a length and a value each in the snapshot
	rep.StateKeys = keys

	dir, built := o.builds[restartKey(spec)]
	if !built {
		var err error
		if dir, err = o.newRunDir(); err != nil {
			return err
		}
	}
	c, err := startCluster(ctx, spec, dir, o.cfg)
	if err != nil {
		if !built {
			o.builds[restartKey(spec)] = dir // removed at the end
		}
		return err
	}
	defer c.stop()
	o.builds[restartKey(spec)] = dir
	r.Version = c.procs[0].version
	leaders, err := c.waitLeaders(ctx, time.Minute)
	if err != nil {
		return err
	}
	r.Leaders = leaders
	lp, others := leaderProc(c, leaders)
	r.LeaderName = lp.name

	if !built {
		rep.Built = true
		start := time.Now()
		o.ui.logf("%s: building the history: %s keys of %d B values, then small commands up to %s entries",
			desc, fmtInt(float64(keys)), spec.ValueSize, fmtInt(float64(spec.History)))
		res, err := o.fill(ctx, c, lp, loadgen.FillSpec{Count: keys, Sequential: true, ValueSize: spec.ValueSize, InFlight: 512})
		if err != nil {
			return fmt.Errorf("building the state: %w", err)
		}
		o.ui.logf("%s: state written: %s commands in %.1f s", desc, fmtInt(float64(res.Ops)), res.Seconds)
		n, err := c.nodeOf(ctx, lp)
		if err != nil {
			return err
		}
		if n.LastIndex < spec.History {
			res, err = o.fill(ctx, c, lp, loadgen.FillSpec{Count: spec.History - n.LastIndex, KeyBase: keys, Keys: 1024, ValueSize: 8, InFlight: 1024})
			if err != nil {
				return fmt.Errorf("building the history: %w", err)
			}
			o.ui.logf("%s: history written: %s more commands in %.1f s (%s/s)", desc, fmtInt(float64(res.Ops)), res.Seconds, fmtInt(float64(res.Ops)/res.Seconds))
		}
		rep.BuildSeconds = time.Since(start).Seconds()
	}

	target := lp
	if spec.Target != "leader" {
		target = others[0]
	}
	rep.Member = target.name
	idx, secs, err := c.snapshot(ctx, target)
	if err != nil {
		return err
	}
	rep.SnapshotIndex, rep.SnapshotSeconds = idx, secs
	if spec.Tail > 0 {
		if _, err := o.fill(ctx, c, lp, loadgen.FillSpec{Count: spec.Tail, KeyBase: keys, Keys: 1024, ValueSize: 8, InFlight: 1024}); err != nil {
			return fmt.Errorf("writing the tail: %w", err)
		}
	}
	ln, err := c.nodeOf(ctx, lp)
	if err != nil {
		return err
	}
	tn, err := c.waitFor(ctx, target, time.Minute, "applying the tail", func(n nodeStatus) bool { return n.Applied >= ln.Commit })
	if err != nil {
		return err
	}
	rep.History, rep.FirstIndex, rep.SnapshotMiB = ln.LastIndex, tn.FirstIndex, float64(tn.SnapshotBytes)/(1<<20)
	rep.Tail = tn.Applied - tn.SnapshotIndex
	if alloc, _, err := diskUsage(target.dataDir); err == nil {
		rep.DataMiB = mib(uint64(alloc))
	}

	o.ui.logf("%s: restarting %s (%s): snapshot at %s (%.1f MiB), %s entries after it, history %s",
		desc, target.name, spec.Target, fmtInt(float64(tn.SnapshotIndex)), rep.SnapshotMiB, fmtInt(float64(rep.Tail)), fmtInt(float64(rep.History)))
	node := loadgen.NodeConfig{}
	if spec.Node != nil {
		node = *spec.Node
	}
	node.Watch = true
	var extra []string
	if o.profileDir != "" {
		path, err := filepath.Abs(filepath.Join(o.profileDir, fmt.Sprintf("%s-rep%d-%s-recovery.pprof", spec.Name, r.Rep, target.name)))
		if err != nil {
			return err
		}
		extra = []string{"-profile-recovery", path}
		r.Profiles = append(r.Profiles, path)
	}
	stopAt := time.Now()
	np, t, err := c.restart(ctx, target, false, o.cfg, &node, extra...)
	if err != nil {
		return err
	}
	rep.StopSeconds = t.Spawned.Sub(stopAt).Seconds()
	rep.ReadySeconds = t.Ready.Sub(t.Spawned).Seconds()
	if err := np.send(command{Op: "recovery", Group: groupName(0)}); err != nil {
		return err
	}
	ev, err := c.await(ctx, np, "recovery", 3*time.Minute)
	if err != nil {
		return err
	}
	rep.Recovery = *ev.Recovery
	if rep.Recovery.Serving == 0 {
		return fmt.Errorf("%s did not serve a read after its restart (%d reads, the last: %s)", np.name, rep.Recovery.Reads, rep.Recovery.LastErr)
	}
	// StartNode was called about when "started" came back less its
	// duration.
	called := t.Started.Add(-time.Duration(rep.Recovery.StartNode * float64(time.Second)))
	rep.TotalSeconds = called.Sub(t.Spawned).Seconds() + rep.Recovery.Serving
	rep.PeakRSSMiB = peakMiB(np)
	r.Seconds = rep.TotalSeconds
	return nil
}
