package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// The soak workload: tput's load (256 closed-loop clients of 128 B
// proposals) for a long window (10 minutes) with automatic snapshots on,
// sampled every SampleEvery: throughput, the leader's RSS, every member's
// data directory, the leader's snapshots and log bounds. A plain tput run
// (snapshots off, its standard 2 s + 10 s) on a fresh cluster of the same
// sitting comes first, as the throughput to compare with.

// SoakSample is one sampling point of a soak, at the end of an interval.
type SoakSample struct {
	// At: seconds since the window began.
	At        float64 `json:"at"`
	Ops       uint64  `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P99Ms     float64 `json:"p99_ms"`
	Errors    uint64  `json:"errors,omitempty"`
	// RSS now (VmRSS) of the leader's process and of every member's.
	LeaderRSSMiB float64            `json:"leader_rss_mib"`
	RSSMiB       map[string]float64 `json:"rss_mib"`
	// Data directories: allocated MiB of the leader's, the largest, and
	// every member's.
	LeaderDataMiB float64            `json:"leader_data_mib"`
	MaxDataMiB    float64            `json:"max_data_mib"`
	DataMiB       map[string]float64 `json:"data_mib"`
	// The leader's snapshots so far, its log's bounds and newest snapshot.
	Snapshots     uint64 `json:"snapshots"`
	FirstIndex    uint64 `json:"first_index"`
	LastIndex     uint64 `json:"last_index"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	SnapshotBytes int64  `json:"snapshot_bytes"`
}

// SoakReport is a soak's figures.
type SoakReport struct {
	Samples []SoakSample `json:"samples"`
	// Over the whole window.
	Window latency `json:"window"`
	// The leader's RSS (VmRSS) at the sample nearest a fifth of the
	// window (minute 2 of 10) and at the last one, the largest sample,
	// and the peak (VmHWM) of the whole run.
	EarlyAt     float64 `json:"early_at"`
	EarlyRSSMiB float64 `json:"early_rss_mib"`
	LateAt      float64 `json:"late_at"`
	LateRSSMiB  float64 `json:"late_rss_mib"`
	// The RSS rises and falls with each compaction (a sawtooth of a few
	// MiB), so the targets are judged on the largest samples around those
	// points: from 15 % to 25 % of the window (minutes 1.5–2.5 of 10), and
	// in its last 10 % (minutes 9–10).
	EarlyMaxRSSMiB float64 `json:"early_max_rss_mib"`
	LateMaxRSSMiB  float64 `json:"late_max_rss_mib"`
	MaxRSSMiB      float64 `json:"max_rss_mib"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	MaxDataMiB     float64 `json:"max_data_mib"`
	LastDataMiB    float64 `json:"last_data_mib"`
	Snapshots      uint64  `json:"snapshots"`
	SnapFailures   uint64  `json:"snapshot_failures"`
	// Baseline: the plain tput of the same sitting (nil if it failed;
	// BaselineErr says why).
	Baseline    *RepResult `json:"baseline,omitempty"`
	BaselineErr string     `json:"baseline_error,omitempty"`
}

// soakTput is the baseline: the registry's tput, in spec's system and
// client model.
func soakTput(spec Spec) Spec {
	for _, s := range registry(1) {
		if s.Name == "tput" {
			s.System, s.Client, s.OpTimeout = spec.System, spec.Client, spec.OpTimeout
			return s
		}
	}
	panic("no tput workload")
}

func (o *orchestrator) soak(ctx context.Context, spec Spec, r *RepResult, desc string) error {
	rep := &SoakReport{}
	r.Soak = rep

	// The baseline first.
	base := soakTput(spec)
	o.ui.logf("%s: the plain tput first (snapshots off, %v + %v)", desc, base.Warmup, base.Measure)
	b := o.attempt(ctx, base, r.Rep, 1, desc+" baseline")
	if b.Err != "" {
		rep.BaselineErr = b.Err
	} else {
		b.Hist = nil
		rep.Baseline = &b
		o.ui.logf("%s: baseline tput %s ops/s, p99 %s ms, leader RSS %.0f MiB", desc, fmtInt(b.OpsPerSec), fmtMs(b.P99Ms), b.LeaderRSSMiB)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	c, stop, err := o.startRun(ctx, spec, r)
	if err != nil {
		return err
	}
	defer stop()
	leaders := r.Leaders
	r.SetupSeconds = time.Since(r.Started).Seconds()
	lp, _ := leaderProc(c, leaders)
	r.LeaderName = lp.name

	if err := lp.send(command{Op: "load", Spec: &spec, Drive: []string{groupName(0)}}); err != nil {
		return err
	}
	if _, err := c.await(ctx, lp, "loading", 10*time.Second); err != nil {
		return err
	}
	start := time.Now()
	if err := sleepCtx(ctx, spec.Warmup); err != nil {
		return err
	}
	if _, err := c.cut(ctx, lp, "cut", o.stall); err != nil { // the warm-up
		return err
	}
	every := spec.SampleEvery
	if every <= 0 || spec.Measure/every < 10 {
		every = max(time.Second, spec.Measure/10)
	}
	pids := append(c.pids(), os.Getpid())
	sA, err := takeCPUSample(pids)
	if err != nil {
		return err
	}
	ws := time.Now()
	var cuts []*memberResult
	quiet := time.Duration(0)
	for next := ws.Add(every); ; next = next.Add(every) {
		end := ws.Add(spec.Measure)
		if next.After(end) {
			next = end
		}
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			return err
		}
		cut, err := c.cut(ctx, lp, "cut", o.stall)
		if err != nil {
			return err
		}
		cuts = append(cuts, cut)
		s, err := o.soakSample(ctx, c, lp, cut, time.Since(ws))
		if err != nil {
			return err
		}
		rep.Samples = append(rep.Samples, s)
		o.ui.progress(fmt.Sprintf("%s · %s ops/s, leader %.0f MiB, data %.0f MiB, %d snapshots",
			desc, fmtInt(s.OpsPerSec), s.LeaderRSSMiB, s.MaxDataMiB, s.Snapshots), time.Since(start))
		if cut.Ops == 0 {
			quiet += time.Duration(cut.Seconds * float64(time.Second))
			if quiet > o.stall {
				return fmt.Errorf("soak made no progress for %v (errors %v)%s", quiet.Round(time.Second), cut.Errors, c.tails([]*proc{lp}))
			}
		} else {
			quiet = 0
		}
		if !next.Before(end) {
			break
		}
	}
	sB, err := takeCPUSample(pids)
	if err != nil {
		return err
	}
	last, err := c.cut(ctx, lp, "unload", o.stall)
	if err != nil {
		return err
	}
	r.Unfinished = last.Unfinished
	rep.PeakRSSMiB = peakMiB(lp)

	// The figures.
	if rep.Window, err = latencyOf(cuts...); err != nil {
		return err
	}
	r.Ops, r.Seconds, r.OpsPerSec = rep.Window.Ops, rep.Window.Seconds, rep.Window.OpsPerSec
	r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = rep.Window.P50Ms, rep.Window.P99Ms, rep.Window.P999Ms, rep.Window.MaxMs
	r.Errors = map[string]uint64{}
	for _, cut := range cuts {
		for k, v := range cut.Errors {
			r.Errors[k] += v
		}
	}
	use := cpuBetween(sA, sB)
	for _, p := range c.procs {
		f := memberFigures{Name: p.name, PID: p.pid, RSSMiB: peakMiB(p), Cores: use.Procs[p.pid], Drove: p == lp, Members: p.name}
		r.Members = append(r.Members, f)
		r.AllRSSMiB += f.RSSMiB
		r.Cores += f.Cores
	}
	r.LeaderRSSMiB, r.LeaderCores = rep.PeakRSSMiB, use.Procs[lp.pid]
	r.OrchestratorCores = use.Procs[os.Getpid()]
	r.KernelCores, r.OtherCores, r.StealCores = use.Kernel, use.Other, use.Steal
	r.Disturbed = r.OtherCores > o.maxOther
	r.OpsPerCPUSec = ratio(r.OpsPerSec, r.Cores)

	early := spec.Measure.Seconds() / 5
	best := math.Inf(1)
	for _, s := range rep.Samples {
		if d := math.Abs(s.At - early); d < best {
			best, rep.EarlyAt, rep.EarlyRSSMiB = d, s.At, s.LeaderRSSMiB
		}
		rep.MaxRSSMiB = max(rep.MaxRSSMiB, s.LeaderRSSMiB)

		rep.MaxDataMiB = max(rep.MaxDataMiB, s.MaxDataMiB)
	}
	if n := len(rep.Samples); n > 0 {
		l := rep.Samples[n-1]
		rep.LateAt, rep.LateRSSMiB, rep.LastDataMiB, rep.Snapshots = l.At, l.LeaderRSSMiB, l.MaxDataMiB, l.Snapshots
	}
	rep.EarlyMaxRSSMiB, rep.LateMaxRSSMiB = rssWindows(rep.Samples, spec.Measure.Seconds())
	if n, err := c.nodeOf(ctx, lp); err == nil {
		rep.Snapshots, rep.SnapFailures = n.Snapshots, n.SnapshotFailures
	}
	if rep.Window.Ops == 0 {
		return errors.New("no operation completed in the window")
	}
	return nil
}

// soakSample samples the cluster at the end of an interval.
func (o *orchestrator) soakSample(ctx context.Context, c *cluster, lp *proc, cut *memberResult, at time.Duration) (SoakSample, error) {
	s := SoakSample{At: at.Seconds(), RSSMiB: map[string]float64{}, DataMiB: map[string]float64{}}
	l, err := latencyOf(cut)
	if err != nil {
		return s, err
	}
	s.Ops, s.OpsPerSec, s.P99Ms, s.Errors = l.Ops, l.OpsPerSec, l.P99Ms, l.Errors
	for _, p := range c.procs {
		s.RSSMiB[p.name] = rssMiB(p)
		alloc, _, err := diskUsage(p.dataDir)
		if err != nil {
			return s, err
		}
		s.DataMiB[p.name] = mib(uint64(alloc))
		s.MaxDataMiB = max(s.MaxDataMiB, s.DataMiB[p.name])
	}
	s.LeaderRSSMiB, s.LeaderDataMiB = s.RSSMiB[lp.name], s.DataMiB[lp.name]
	n, err := c.nodeOf(ctx, lp)
	if err != nil {
		return s, err
	}
	s.Snapshots, s.FirstIndex, s.LastIndex, s.SnapshotIndex, s.SnapshotBytes = n.Snapshots, n.FirstIndex, n.LastIndex, n.SnapshotIndex, n.SnapshotBytes
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rssWindows is the leader's largest RSS sample from 15 % to 25 % of a
// window of secs seconds, and in its last 10 % (the sample nearest a
// fifth, and the last one, when none falls inside).
func rssWindows(samples []SoakSample, secs float64) (early, late float64) {
	if len(samples) == 0 || secs <= 0 {
		return 0, 0
	}
	nearest, best := samples[0], math.Inf(1)
	for _, s := range samples {
		switch frac := s.At / secs; {
		case frac >= 0.15 && frac <= 0.25:
			early = max(early, s.LeaderRSSMiB)
		case frac >= 0.9:
			late = max(late, s.LeaderRSSMiB)
		}
		if d := math.Abs(s.At - secs/5); d < best {
			nearest, best = s, d
		}
	}
	if early == 0 {
		early = nearest.LeaderRSSMiB
	}
	if late == 0 {
		late = samples[len(samples)-1].LeaderRSSMiB
	}
	return early, late
}
