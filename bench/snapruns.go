package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The snapshot workloads (soak, restart, restart-leader, install) measure
// what snapshots are for: a bounded leader over a long run, a fast
// restart after a long history, an install that does not disturb the
// group. They run on asyncraft only, each its own way (Spec.Kind); the
// results go into RepResult's Soak, Restart and Install, and their
// reports are printed after the standard table (snapreport.go).

// The kinds of Spec.Kind.
const (
	kindSoak    = "soak"
	kindRestart = "restart"
	kindInstall = "install"
)

// special runs one repetition of a snapshot workload. It is never
// repeated for other load: its report shows the other load instead.
func (o *orchestrator) special(ctx context.Context, spec Spec, rep int, desc string) RepResult {
	r := RepResult{Workload: spec.Name, System: spec.System, Client: spec.Client, Rep: rep, Attempt: 1, Started: time.Now(), Accepted: true}
	var err error
	switch spec.Kind {
	case kindSoak:
		err = o.soak(ctx, spec, &r, desc)
	case kindRestart:
		err = o.restartRun(ctx, spec, &r, desc)
	case kindInstall:
		err = o.install(ctx, spec, &r, desc)
	case kindMemberAdd:
		err = o.memberAdd(ctx, spec, &r, desc)
	case kindTransfer:
		err = o.transfer(ctx, spec, &r, desc)
	default:
		err = fmt.Errorf("unknown kind of workload %q", spec.Kind)
	}
	if err != nil {
		r.Err = err.Error()
		r.Accepted = false
	}
	return r
}

// statusOf asks p for its nodes' status.
func (c *cluster) statusOf(ctx context.Context, p *proc) ([]nodeStatus, error) {
	if err := p.send(command{Op: "status"}); err != nil {
		return nil, err
	}
	ev, err := c.await(ctx, p, "status", 10*time.Second)
	if err != nil {
		return nil, err
	}
	return ev.Nodes, nil
}

// nodeOf is p's node of group g0 (every snapshot workload runs one group).
func (c *cluster) nodeOf(ctx context.Context, p *proc) (nodeStatus, error) {
	nodes, err := c.statusOf(ctx, p)
	if err != nil {
		return nodeStatus{}, err
	}
	for _, n := range nodes {
		if n.Group == groupName(0) {
			if n.Err != "" {
				return n, fmt.Errorf("%s/%s is in the error state: %s", n.Group, n.ID, n.Err)
			}
			return n, nil
		}
	}
	return nodeStatus{}, fmt.Errorf("member %s has no node of %s", p.name, groupName(0))
}

// fill has p (which leads g0) propose f and waits until it is done,
// logging its progress every 10 s.
func (o *orchestrator) fill(ctx context.Context, c *cluster, p *proc, f loadgen.FillSpec) (*memberResult, error) {
	f.Group = groupName(0)
	stall := o.stall
	last := time.Now()
	c.onProgress = func(t tagged) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			o.ui.logf("  %s: %s of %s proposals done", t.p.name, fmtInt(float64(t.ev.Ops)), fmtInt(float64(f.Count)))
		}
	}
	defer func() { c.onProgress = nil }()
	if err := p.send(command{Op: "fill", Fill: &f, Stall: stall}); err != nil {
		return nil, err
	}
	ev, err := c.await(ctx, p, "filled", time.Hour)
	if err != nil {
		return nil, err
	}
	return ev.Result, nil
}

// snapshot has p's node of g0 take a snapshot; it returns its index and
// how long it took.
func (c *cluster) snapshot(ctx context.Context, p *proc) (uint64, float64, error) {
	if err := p.send(command{Op: "snapshot", Group: groupName(0)}); err != nil {
		return 0, 0, err
	}
	ev, err := c.await(ctx, p, "snapshot", 10*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	return ev.Index, ev.Seconds, nil
}

// cut asks p (which runs a background load) for the completions since
// the last cut.
func (c *cluster) cut(ctx context.Context, p *proc, op string, stall time.Duration) (*memberResult, error) {
	if err := p.send(command{Op: op, Stall: stall}); err != nil {
		return nil, err
	}
	ev, err := c.await(ctx, p, "cut", stall+30*time.Second)
	if err != nil {
		return nil, err
	}
	return ev.Result, nil
}

// waitFor polls p's node of g0 until ok says so, at most limit.
func (c *cluster) waitFor(ctx context.Context, p *proc, limit time.Duration, what string, ok func(nodeStatus) bool) (nodeStatus, error) {
	deadline := time.Now().Add(limit)
	for {
		n, err := c.nodeOf(ctx, p)
		if err != nil {
			return n, err
		}
		if ok(n) {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("member %s: %s: not within %v (applied %d, commit %d, first %d, snapshot %d)",
				p.name, what, limit, n.Applied, n.Commit, n.FirstIndex, n.SnapshotIndex)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

// latency is the figures of a latency histogram.
type latency struct {
	Ops       uint64  `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	Errors    uint64  `json:"errors,omitempty"`
}

// latencyOf merges cuts into one figure.
func latencyOf(cuts ...*memberResult) (latency, error) {
	h := loadgen.NewHist()
	var l latency
	for _, m := range cuts {
		mh, err := hdr.Decode(m.Hist)
		if err != nil {
			return l, err
		}
		h.Merge(mh)
		l.Ops += m.Ops
		l.Seconds += m.Seconds
		for _, v := range m.Errors {
			l.Errors += v
		}
	}
	l.OpsPerSec = ratio(float64(l.Ops), l.Seconds)
	l.P50Ms = float64(h.ValueAtQuantile(50)) / 1000
	l.P99Ms = float64(h.ValueAtQuantile(99)) / 1000
	l.P999Ms = float64(h.ValueAtQuantile(99.9)) / 1000
	l.MaxMs = float64(h.Max()) / 1000
	return l, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// rssMiB is p's current RSS in MiB (0 if it cannot be read: the
// process is gone).
func rssMiB(p *proc) float64 {
	b, err := currentRSS(p.pid)
	if err != nil {
		return 0
	}
	return mib(b)
}

// peakMiB is p's peak RSS (VmHWM) in MiB (0 if it cannot be read).
func peakMiB(p *proc) float64 {
	b, err := peakRSS(p.pid)
	if err != nil {
		return 0
	}
	return mib(b)
}

func median(xs []float64) float64 { return summarize(xs).Median }

// newRunDir makes a fresh directory for a cluster.
func (o *orchestrator) newRunDir() (string, error) {
	return os.MkdirTemp(o.tmp, "asyncraft-bench-")
}

// sampleUntil calls each every 100 ms until end (the RSS samples of the
// snapshot and membership workloads).
func sampleUntil(ctx context.Context, end time.Time, each func()) error {
	for time.Now().Before(end) {
		each()
		if err := sleepCtx(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			return err
		}
	}
	return nil
}

// afterWindow ends a before/during/after workload: it samples p's RSS
// for spec.Measure while lat1 runs on, cuts the "after" window on lp,
// fills the three windows' latencies (win: before, during, after) from
// their cuts, and puts the "during" figures and the leader's peak in r.
// It returns the median of p's RSS samples.
func (o *orchestrator) afterWindow(ctx context.Context, c *cluster, lp, p *proc, spec Spec, before, during *memberResult, win [3]*latency, leaderPeakMiB float64, r *RepResult) (float64, error) {
	var rss []float64
	if err := sampleUntil(ctx, time.Now().Add(spec.Measure), func() { rss = append(rss, rssMiB(p)) }); err != nil {
		return 0, err
	}
	after, err := c.cut(ctx, lp, "unload", o.stall)
	if err != nil {
		return 0, err
	}
	for i, cut := range []*memberResult{before, during, after} {
		if *win[i], err = latencyOf(cut); err != nil {
			return 0, err
		}
	}
	d := win[1]
	r.Ops, r.Seconds, r.OpsPerSec = d.Ops, d.Seconds, d.OpsPerSec
	r.P50Ms, r.P99Ms, r.P999Ms = d.P50Ms, d.P99Ms, d.P999Ms
	r.LeaderRSSMiB = leaderPeakMiB
	return median(rss), nil
}

// startRun starts spec's group in a new run directory and waits for its
// leaders, recording the version and the leaders in r. stop stops the
// group and removes the directory (also after an error).
func (o *orchestrator) startRun(ctx context.Context, spec Spec, r *RepResult) (c *cluster, stop func(), err error) {
	dir, err := o.newRunDir()
	if err != nil {
		return nil, nil, err
	}
	c, err = startCluster(ctx, spec, dir, o.cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	stop = func() {
		c.stop()
		os.RemoveAll(dir)
	}
	r.Version = c.procs[0].version
	leaders, err := c.waitLeaders(ctx, 30*time.Second)
	if err != nil {
		stop()
		return nil, nil, err
	}
	r.Leaders = leaders
	return c, stop, nil
}

// leaderProc is the process that leads g0, and the others in id order.
func leaderProc(c *cluster, leaders map[string]string) (*proc, []*proc) {
	l := c.byID[leaders[groupName(0)]]
	var others []*proc
	for _, p := range c.procs {
		if p != l {
			others = append(others, p)
		}
	}
	slices.SortFunc(others, func(a, b *proc) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return l, others
}
