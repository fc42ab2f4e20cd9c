package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// InstallHandover scripts an install that a new leader takes over with
// its own snapshot of the same index, whose bytes differ from the old
// leader's (each node writes its id into its snapshots, as a state machine
// that iterates a Go map writes its pairs in an order of its own). Three
// nodes, L leading, F and G following:
//
//  1. F is cut off while the clients write. L and G each take a
//     snapshot; later the writes stop, and they take another of what
//     they applied: the same index, different checksums. Both logs are
//     compacted past F's.
//  2. F is healed and L begins to install its snapshot there; at L's
//     first chunk to F, L crashes.
//  3. G leads the next term and installs its own snapshot of that index
//     on F: a new fetch, which replaces L's.
//
// No fault in this history justifies a failed install: every install
// failure a node answers is a violation ("install"). The failure to
// catch is F answering G, for the fetch of L's snapshot that G's request
// replaced, that the install failed.
func InstallHandover(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes = 3
	cfg.snapshotsDiffer = true
	// No snapshots but the two the scenario takes: L's replicator must
	// find F behind the snapshot both hold, not an earlier one.
	cfg.SnapshotEntries = 1 << 30
	if cfg.SnapshotPadding == 0 {
		cfg.SnapshotPadding = 1 << 20 // several chunks
	}
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		r.watch(func(from, to actors.Ref, msg any) {
			e, ok := msg.(*raftpb.Envelope)
			if !ok {
				return
			}
			if resp := e.GetInstallSnapshotResponse(); resp != nil && !resp.Success {
				r.violate("install", "%s answered %s that an install failed, with no fault to cause it: %s", e.From, e.To, resp.Reason)
			}
		})
		s.At(2*time.Second, func() {
			l, f, g := r.leaderAndTwo()
			if l == "" {
				return
			}
			s.Isolate(f)
			r.say("install-handover: %s cut off; %s leads", f, l)
			// A first snapshot each, so that the second lets the logs
			// be compacted (a log keeps what follows the snapshot
			// before the newest).
			snapshot := func(then func()) {
				taken := 0
				for _, id := range []string{l, g} {
					r.c.Node(id).SnapshotAsync(func(index uint64, err error) {
						r.say("install-handover: %s's snapshot: %d, %s", id, index, errString(err))
						if taken++; taken == 2 {
							then()
						}
					})
				}
			}
			s.At(4*time.Second, func() {
				snapshot(func() {})
				s.At(2*time.Second, func() {
					r.noWrites = true
					s.At(time.Second, func() {
						snapshot(func() {
							crashed := false
							r.watch(func(from, to actors.Ref, msg any) {
								if e, ok := msg.(*raftpb.Envelope); ok && !crashed && e.GetSnapshotChunk() != nil && from.Host == l && to.Host == f {
									crashed = true
									r.say("install-handover: %s's first chunk to %s; crashing %s", l, f, l)
									s.At(0, func() { r.crash(l) })
									s.At(5*time.Second, func() {
										r.restart(l)
										r.noWrites = false
									})
								}
							})
							r.say("install-handover: healing %s", f)
							s.Heal()
						})
					})
				})
			})
		})
	})
}
