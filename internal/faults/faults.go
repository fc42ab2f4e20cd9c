// Package faults plants known bugs in asyncraft, to prove that the cluster
// simulation's checks catch them. Only tests switch them on; each is a
// single flag test in production code paths, off by default.
package faults

import "sync/atomic"

// Fault is one planted bug.
type Fault uint32

const (
	// VoteWithoutPersist grants votes before they are durable.
	VoteWithoutPersist Fault = 1 << iota
	// VoteTwice grants a vote to any up-to-date candidate, even after
	// voting for another in the same term.
	VoteTwice
	// CommitPriorTerm lets a leader commit entries of earlier terms by
	// counting replicas (Raft §5.4.2 forbids it).
	CommitPriorTerm
	// AckBeforeSync lets followers acknowledge entries before they are
	// durable.
	AckBeforeSync
	// SkipPrevCheck lets followers accept entries without checking that
	// the previous entry matches.
	SkipPrevCheck
	// ApplyTwice hands the last entry of each run to the state machine a
	// second time.
	ApplyTwice
	// ReadWithoutQuorum serves safe reads without confirming leadership
	// with a quorum round.
	ReadWithoutQuorum
	// VoteAfterRestart lets a node grant (pre-)votes, and campaign, right
	// after it restarts, forgetting the lease promise it may have made to
	// a leader before it crashed.
	VoteAfterRestart
	// NoStickiness lets voters grant (pre-)votes while they still hear
	// from a leader.
	NoStickiness
	// StaleVoteAnswers lets a node that no longer campaigns act on a late
	// answer to its (pre-)vote request: one with a higher term makes it
	// drop the leader it follows.
	StaleVoteAnswers
	// TransferKeepsLease lets a leader transferring its leadership keep
	// its lease (and extend it) while the target, whose vote requests
	// bypass stickiness, gets elected.
	TransferKeepsLease
	// ReplicateAfterSync makes a leader send new entries to its followers
	// only once its own write of them is durable, not in parallel with it
	// (a loss of speed, not of safety).
	ReplicateAfterSync
	// CompactPastSnapshot lets a node compact its log up to what is
	// durable in it, not what its snapshots cover.
	CompactPastSnapshot
	// InstallUnverified lets a follower install a snapshot without
	// checking it against the manifest's checksums, and load snapshots
	// without checking them either.
	InstallUnverified
	// JointNewMajorityOnly makes a leader in a joint configuration commit
	// with a majority of the new voters only, forgetting the old ones.
	JointNewMajorityOnly
	// WipedDataUnchecked lets nodes act on envelopes of a voter whose data
	// has another incarnation than the one they heard from (a voter back
	// on wiped data, which may vote twice in a term).
	WipedDataUnchecked
	// IncarnationRelayOff makes followers ignore the voters' incarnations
	// their leader passes on, so a node knows only those it heard itself.
	IncarnationRelayOff
	// MembershipUnchecked makes nodes judge a voter's incarnation without
	// its membership: a voter removed and added back on new data is
	// refused by a node that missed both changes.
	MembershipUnchecked
	// InstallByIndex makes a follower take another leader's snapshot of
	// the index it is installing for the one it fetches (index and term
	// alike, bytes not compared), so that the end of the replaced fetch
	// fails the new leader's install.
	InstallByIndex
)

var names = map[Fault]string{
	VoteWithoutPersist:   "vote-without-persist",
	VoteTwice:            "vote-twice",
	CommitPriorTerm:      "commit-prior-term",
	AckBeforeSync:        "ack-before-sync",
	SkipPrevCheck:        "skip-prev-check",
	ApplyTwice:           "apply-twice",
	ReadWithoutQuorum:    "read-without-quorum",
	VoteAfterRestart:     "vote-after-restart",
	NoStickiness:         "no-stickiness",
	StaleVoteAnswers:     "stale-vote-answers",
	TransferKeepsLease:   "transfer-keeps-lease",
	ReplicateAfterSync:   "replicate-after-sync",
	CompactPastSnapshot:  "compact-past-snapshot",
	InstallUnverified:    "install-unverified",
	JointNewMajorityOnly: "joint-new-majority-only",
	WipedDataUnchecked:   "wiped-data-unchecked",
	IncarnationRelayOff:  "incarnation-relay-off",
	MembershipUnchecked:  "membership-unchecked",
	InstallByIndex:       "install-by-index",
}

func (f Fault) String() string {
	if n, ok := names[f]; ok {
		return n
	}
	return "fault(?)"
}

// All lists every planted fault.
var All = []Fault{VoteWithoutPersist, VoteTwice, CommitPriorTerm, AckBeforeSync, SkipPrevCheck, ApplyTwice, ReadWithoutQuorum, VoteAfterRestart, NoStickiness, StaleVoteAnswers, TransferKeepsLease, ReplicateAfterSync, CompactPastSnapshot, InstallUnverified, JointNewMajorityOnly, WipedDataUnchecked, IncarnationRelayOff, MembershipUnchecked, InstallByIndex}

var active atomic.Uint32

// On reports whether f is switched on.
func On(f Fault) bool { return active.Load()&uint32(f) != 0 }

// Set switches f on and returns a function that switches it off again.
// Faults are process-wide: tests that set them must not run in parallel.
func Set(f Fault) (restore func()) {
	active.Or(uint32(f))
	return func() { active.And(^uint32(f)) }
}

// Parse returns the fault named name (see String).
func Parse(name string) (Fault, bool) {
	for f, n := range names {
		if n == name {
			return f, true
		}
	}
	return 0, false
}
