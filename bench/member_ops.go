package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/closure"
)

// The member's own commands (loadgen.Commander), for the snapshot
// workloads:
//
//	snapshot  Node.Snapshot on this process's node of cmd.Group; answered
//	          "snapshot" with its index and duration (from another
//	          goroutine: a large snapshot takes seconds)
//	fill      cmd.Fill's proposals through the leader of its group, with
//	          callbacks; "progress" events, then "filled"
//	recovery  the recovery timeline of this process's node of cmd.Group,
//	          started with NodeConfig.Watch; answered "recovery" once it
//	          serves
//
// and for the membership workloads (member_membership.go): change and
// transfer.

func (m *member) Command(cmd command, emit func(event)) (bool, error) {
	switch cmd.Op {
	case "change", "transfer":
		return m.membershipCommand(cmd, emit)
	case "snapshot":
		gn, err := m.nodeOf(cmd.Group)
		if err != nil {
			return true, err
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			start := time.Now()
			index, err := gn.node.Snapshot(ctx)
			if err != nil {
				emit(event{Ev: "error", Err: fmt.Sprintf("snapshot of %s: %v", cmd.Group, err)})
				return
			}
			emit(event{Ev: "snapshot", Index: index, Seconds: time.Since(start).Seconds()})
		}()
		return true, nil
	case "fill":
		if cmd.Fill == nil {
			return true, errors.New("fill needs a fill spec")
		}
		gn, err := m.leaderOf(cmd.Fill.Group)
		if err != nil {
			return true, err
		}
		res, err := fill(gn, *cmd.Fill, cmd.Stall, func(ok uint64) { emit(event{Ev: "progress", Ops: ok}) })
		if err != nil {
			return true, err
		}
		emit(event{Ev: "filled", Result: res})
		return true, nil
	case "recovery":
		gn, err := m.nodeOf(cmd.Group)
		if err != nil {
			return true, err
		}
		if gn.recovery == nil {
			return true, fmt.Errorf("%s was not started with Watch", cmd.Group)
		}
		go func() {
			select {
			case r := <-gn.recovery:
				emit(event{Ev: "recovery", Recovery: r})
			case <-time.After(2 * time.Minute):
				emit(event{Ev: "error", Err: "recovery: the node did not serve within 2 minutes"})
			}
		}()
		return true, nil
	}
	return false, nil
}

// nodeOf returns this process's node of group, in any role.
func (m *member) nodeOf(group string) (*groupNode, error) {
	for _, key := range m.order {
		if g, _, _ := strings.Cut(key, "/"); g == group {
			return m.nodes[key], nil
		}
	}
	return nil, fmt.Errorf("this process has no node of group %q", group)
}

// watchRecovery times a node's recovery after StartNode (called at t0,
// returned after startNode, with status s0 right then): until it has
// applied up to the commit index it started with (the tail after its
// snapshot, replayed at once), until it knows a leader, and until a
// linearizable read through it succeeds. It polls every millisecond.
func watchRecovery(gn *groupNode, t0 time.Time, startNode time.Duration, s0 asyncraft.Status) {
	r := &loadgen.Recovery{
		Group: s0.Group, ID: s0.ID, StartNode: startNode.Seconds(),
		Load: time.Duration(gn.sm.loadNanos.Load()).Seconds(), LoadBytes: gn.sm.loadBytes.Load(),
		SnapshotIndex: s0.Applied, Commit: s0.Commit,
	}
	since := func() float64 { return time.Since(t0).Seconds() }
	if s0.Applied >= s0.Commit {
		r.Replayed = startNode.Seconds()
	}
	// The reads, from now on, each with a short deadline.
	var served atomic.Int64 // ns since t0, 0 until one succeeds
	var lastErr atomic.Value
	var reads atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			err := gn.node.ReadBarrier(ctx, asyncraft.ReadSafe)
			cancel()
			reads.Add(1)
			if err == nil {
				served.Store(int64(time.Since(t0)))
				return
			}
			lastErr.Store(err.Error())
			time.Sleep(2 * time.Millisecond)
		}
	})
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for r.Replayed == 0 || r.Leader == 0 || served.Load() == 0 {
		select {
		case <-tick.C:
		case <-deadline:
			close(stop)
			wg.Wait()
			if e, ok := lastErr.Load().(string); ok {
				r.LastErr = e
			}
			r.Reads = int(reads.Load())
			gn.recovery <- r
			return
		}
		s := gn.node.Status()
		if r.Replayed == 0 && s.Applied >= s0.Commit {
			r.Replayed = since()
		}
		if r.Leader == 0 && s.Leader != "" {
			r.Leader = since()
		}
	}
	wg.Wait()
	r.Serving = time.Duration(served.Load()).Seconds()
	r.Reads = int(reads.Load())
	if e, ok := lastErr.Load().(string); ok {
		r.LastErr = e
	}
	gn.recovery <- r
}

// fill proposes f's commands through gn (which leads its group) with
// f.InFlight (default 512) callbacks in flight: each issues the next
// command from its predecessor's completion; a failed one (EBUSY, say) is
// proposed again 1 ms later. It reports progress every 250 ms and fails
// when nothing completes for stall.
func fill(gn *groupNode, f loadgen.FillSpec, stall time.Duration, progress func(ok uint64)) (*memberResult, error) {
	start := time.Now()
	if stall <= 0 {
		stall = 30 * time.Second
	}
	if f.Blob > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), stall)
		defer cancel()
		if _, err := gn.node.ApplyWait(ctx, blobCommand(f.Blob, f.Seed)); err != nil {
			return nil, fmt.Errorf("the blob command: %w", err)
		}
		return &memberResult{Ops: 1, Seconds: time.Since(start).Seconds()}, nil
	}
	if f.Count == 0 {
		return &memberResult{}, nil
	}
	if !f.Sequential && f.Keys == 0 {
		return nil, errors.New("fill: Keys is 0")
	}
	inFlight := f.InFlight
	if inFlight <= 0 {
		inFlight = 512
	}
	value := loadgen.ValueBytes(f.ValueSize)
	var next, done, failed atomic.Uint64
	var errMu sync.Mutex
	errs := map[string]uint64{}
	finished := make(chan struct{})
	keyOf := func(seq uint64) uint64 {
		if f.Sequential {
			return f.KeyBase + seq
		}
		return f.KeyBase + (seq*0x9E3779B97F4A7C15)%f.Keys
	}
	var issue func(seq uint64)
	issue = func(seq uint64) {
		gn.node.Apply(asyncraft.Task{Data: loadgen.EncodeCommand(keyOf(seq), value), Done: closure.Func(func(st closure.Status) {
			if !st.OK() {
				failed.Add(1)
				errMu.Lock()
				errs[st.Code.String()]++
				errMu.Unlock()
				time.AfterFunc(time.Millisecond, func() { issue(seq) })
				return
			}
			if done.Add(1) == f.Count {
				close(finished)
				return
			}
			if s := next.Add(1) - 1; s < f.Count {
				issue(s)
			}
		})})
	}
	for range min(uint64(inFlight), f.Count) {
		issue(next.Add(1) - 1)
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last, lastAt := uint64(0), time.Now()
	for {
		select {
		case <-finished:
			res := &memberResult{Ops: f.Count, Seconds: time.Since(start).Seconds()}
			if len(errs) > 0 {
				errMu.Lock()
				res.Errors = errs
				errMu.Unlock()
			}
			return res, nil
		case <-t.C:
			n := done.Load()
			progress(n)
			if n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > stall {
				errMu.Lock()
				defer errMu.Unlock()
				return nil, fmt.Errorf("fill: nothing completed for %v (%d of %d done, %d failed: %v)", stall, n, f.Count, failed.Load(), errs)
			}
		}
	}
}
