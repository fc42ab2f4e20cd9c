// Package node is the Raft node actor: roles, terms, elections, the commit
// index, linearizable reads and the fate of proposals. The host builds one
// per group it belongs to from a Config (filled from the public
// NodeOptions) and a Shared handle (the queues the Node handle pushes into,
// and the state the actor publishes for Status); the actor reaches
// everything else through messages. It imports neither an actor runtime
// nor the root package: the simulator runs it unchanged.
//
// # Messages
//
// It accepts (messages.go lists its own):
//   - envelopes from peers (votes, appends, heartbeats, reads);
//   - Tick from the host's ticker, Nudge, TakeSnapshot, ChangeConfig and
//     TransferLeadership from its Node handle, ShutdownNode and
//     ActorFailed from its host;
//   - Progress, HigherTerm, ReadFailed, ReadResumed and LostEntries from
//     its replicators (children, while it leads);
//   - Stable, HardStateSaved, Failed and Closed from its log manager;
//   - Applied, Failed and ShutdownDone from its FSM caller.
//
// It sends envelopes to peers, Append/TruncateSuffix/SaveHardState/Close to
// the log manager, Committed and leadership events to the FSM caller,
// Update, Tick and Beat to replicators, and completed closures to the
// host's executor.
//
// # Rooms
//
// Each file is one room; Receive (actor.go) is the one dispatcher, and an
// envelope passes one admission check (admit.go) and one term gate
// (envelopes.go) before its handler runs.
//
//	actor.go        the Actor, its dispatcher, tick, failure and shutdown, invariant checks
//	envelopes.go    envelopes: admission, the term gate, the handler of each kind
//	admit.go        which envelopes are accepted, and the warnings about the rest
//	election.go     pre-vote, campaigns, votes, stickiness, check-quorum, becoming a follower
//	leader.go       becoming leader, proposals into the log, replicator reports
//	follower.go     appends and heartbeats from the leader, acks (diverge.go: committed-entry checks)
//	storage.go      the log (view and storage written as one operation), hard state, commit
//	reads.go        linearizable reads: the protocol, and the actor's side
//	logcache.go     what the log view keeps in memory
//	lostlog.go      followers that lost entries they had acknowledged
//	snapshots.go    taking snapshots and compacting the log (install.go: installs from the leader)
//	membership.go   the configuration history and membership changes (joint, then C_new)
//	transfer.go     leadership transfer (TimeoutNow)
//
// The actor's edges: config.go (Config, Shared), messages.go, queue.go (the
// handle's queues), status.go and metrics.go (what it publishes), names.go
// (its actors' names).
//
// State owners, each with its own invariants and unit tests without a
// cluster:
//
//	tracker.go      configuration, per-peer records (match, activity, ack times, replicator), votes
//	readservice.go  pending reads and the lease, fed times and indexes, returning completions
//	ackgate.go      messages held until the hard state is durable, acks held until entries are
//
// # Durability
//
// Rules it keeps (Raft §5, thesis §3.8):
//   - no message leaves while the term and vote it is based on are not
//     durable: sends wait in the ack gate until HardStateSaved (so a vote
//     is on disk before it is granted, and a candidate's vote for itself
//     before its requests leave);
//   - a follower acknowledges entries only once they are durable (acks
//     wait for Stable);
//   - the leader counts itself toward the commit quorum only for entries
//     it has made durable (its match is its stable index), while its
//     replicators send the same entries in parallel.
//
// # Invariants
//
// Under the invariants build tag (and -race), every Receive ends by
// checking applied <= commit <= last index, stable <= last index, the
// order of pending tasks, and each owner's own rules; a violation panics.
package node
