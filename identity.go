package asyncraft

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/node"
	"github.com/asyncraft/asyncraft/raftpb"
)

// A node's identity (docs/operations.md, "Identity: the bootstrap record").
//
// At its first start — an empty log and an empty hard state — a node
// stores, with its hard state, a bootstrap record: NodeOptions.ClusterID,
// Group, ID and the voters of Peers (ids and addresses). Every later start
// on the same data must give the same cluster id, group, id and voter ids,
// or StartNode refuses it with ErrBootstrapMismatch naming both. Without
// the record, a node restarted with a wrong peer list forms a different
// majority — one naming only itself is a group of one, which elects itself
// and acknowledges writes alone — and a data directory copied from another
// node or another cluster brings a log and a vote the group never agreed
// on.
//
// Addresses are not part of the identity: a peer that moves only changes
// the others' lists (the record keeps the addresses of the first start, for
// the error message). Once membership changes exist, the configuration
// entries of the log become the authority on the voters and the record only
// seeds the first configuration; the cluster identity stays the one derived
// at bootstrap.
//
// The cluster identity is a 64-bit hash of the record's cluster id, group
// and voter ids. Every envelope carries it, and a node drops (and counts,
// and logs) envelopes whose identity is not its own: a node of another
// cluster, or one of this group started with another peer list or cluster
// id, cannot vote, lead or replicate here. With an empty ClusterID the
// identity still tells groups with different names or voter ids apart, but
// not two clusters that use the same ones: set ClusterID to catch a data
// directory copied from another cluster.

// ErrBootstrapMismatch is the error of a StartNode refused because the
// node's data was bootstrapped with another cluster id, group, node id or
// set of voters than the options name.
var ErrBootstrapMismatch = errors.New("asyncraft: the node's data was bootstrapped with a different identity")

// newBootstrap is the bootstrap record of a node started with opts, its
// voters sorted by id.
func newBootstrap(opts NodeOptions) *raftpb.Bootstrap {
	if opts.JoinIdentity != 0 {
		return &raftpb.Bootstrap{ClusterId: opts.ClusterID, Group: opts.Group, Id: opts.ID, Identity: opts.JoinIdentity}
	}
	voters := make([]*raftpb.Peer, 0, len(opts.Peers))
	for _, p := range opts.Peers {
		voters = append(voters, &raftpb.Peer{Id: p.ID, Addr: p.Addr, Priority: p.Priority})
	}
	slices.SortFunc(voters, func(x, y *raftpb.Peer) int { return cmp.Compare(x.Id, y.Id) })
	return &raftpb.Bootstrap{ClusterId: opts.ClusterID, Group: opts.Group, Id: opts.ID,
		Configuration: &raftpb.Configuration{Voters: voters}}
}

// voterIDs returns the sorted ids of a record's voters.
func voterIDs(b *raftpb.Bootstrap) []string {
	ids := make([]string, 0, len(b.GetConfiguration().GetVoters()))
	for _, p := range b.GetConfiguration().GetVoters() {
		ids = append(ids, p.Id)
	}
	slices.Sort(ids)
	return ids
}

// clusterIdentity is the identity every envelope of the cluster carries:
// FNV-1a (64 bits) over a version tag, the cluster id, the group and the
// sorted voter ids, each preceded by its length. Never 0, which marks an
// envelope without one.
func clusterIdentity(b *raftpb.Bootstrap) uint64 {
	if b.GetIdentity() != 0 {
		return b.Identity // a node that joined: its group's
	}
	h := fnv.New64a()
	var n [binary.MaxVarintLen64]byte
	put := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	put("asyncraft cluster identity v1")
	put(b.ClusterId)
	put(b.Group)
	for _, id := range voterIDs(b) {
		put(id)
	}
	return max(h.Sum64(), 1)
}

// checkBootstrap compares the record stored with a node's data with the
// one its options make: they must agree on everything but addresses.
func checkBootstrap(stored, want *raftpb.Bootstrap) error {
	var diffs []string
	if stored.Group != want.Group || stored.Id != want.Id {
		diffs = append(diffs, fmt.Sprintf("the data belongs to node %s/%s, not %s/%s", stored.Group, stored.Id, want.Group, want.Id))
	}
	if stored.ClusterId != want.ClusterId {
		diffs = append(diffs, fmt.Sprintf("the data belongs to cluster %q, not %q", stored.ClusterId, want.ClusterId))
	}
	switch {
	case stored.Identity == 0 && want.Identity != 0:
		diffs = append(diffs, "the data belongs to a founding member of its group, and this start sets JoinIdentity")
	case stored.Identity != 0 && want.Identity == 0:
		diffs = append(diffs, fmt.Sprintf("the data belongs to a node that joined the group of identity %016x, and this start sets no JoinIdentity", stored.Identity))
	case stored.Identity != want.Identity:
		diffs = append(diffs, fmt.Sprintf("the node joined the group of identity %016x, not %016x", stored.Identity, want.Identity))
	case stored.Identity != 0:
		// A node that joined has no voters of its own to compare.
	default:
		if a, b := voterIDs(stored), voterIDs(want); !slices.Equal(a, b) {
			diffs = append(diffs, fmt.Sprintf("the voters were [%s], not [%s]", strings.Join(a, " "), strings.Join(b, " ")))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%s): bootstrapped as %s; this start names %s. Start the node with the configuration it was bootstrapped with, or, if this data does not belong to it, give it its own data directory (docs/operations.md)",
		ErrBootstrapMismatch, strings.Join(diffs, "; "), node.DescribeBootstrap(stored), node.DescribeBootstrap(want))
}

// bootstrap checks the record stored with a node's hard state against the
// node's options, and at the node's first start (an empty log and hard
// state) stores it. It returns the hard state the node starts from.
//
// A node that has a log or a term but no record was written by an earlier
// version (or by a MetaStorage that drops the record): its configuration
// cannot be checked this once, and is recorded as it is now, with a
// warning.
func (h *Host) bootstrap(opts NodeOptions, hs *raftpb.HardState, storage logmgr.LogStorage, meta logmgr.MetaStorage) (*raftpb.HardState, error) {
	want := newBootstrap(opts)
	fresh := hs.Bootstrap == nil && hs.Term == 0 && hs.Vote == "" && storage.LastIndex() == 0
	if opts.RejoinTerm > 0 && !fresh {
		return nil, fmt.Errorf("NodeOptions.RejoinTerm is for a node whose data directory was wiped, and this node's holds a hard state (term %d) or a log (last index %d): start it without RejoinTerm",
			hs.Term, storage.LastIndex())
	}
	if hs.Bootstrap != nil {
		if err := checkBootstrap(hs.Bootstrap, want); err != nil {
			return nil, err
		}
		if hs.Bootstrap.Incarnation == 0 {
			// Written before incarnations existed: draw one now.
			hs = proto.Clone(hs).(*raftpb.HardState)
			hs.Bootstrap.Incarnation = h.incarnation(opts)
			if err := meta.Save(hs); err != nil {
				return nil, fmt.Errorf("store the bootstrap record's incarnation: %w", err)
			}
		}
		return hs, nil
	}
	want.Incarnation = h.incarnation(opts)
	if fresh && opts.RejoinTerm > 0 {
		// A wiped node rejoining: it may have voted in any term up to
		// RejoinTerm in its previous life. Starting in that term, as if it
		// had voted for itself, it votes only in later terms.
		h.opts.Logger.Warn("asyncraft: rejoining with an empty data directory; this node votes only in terms after RejoinTerm",
			"group", opts.Group, "id", opts.ID, "rejoin term", opts.RejoinTerm)
		want.RejoinTerm = opts.RejoinTerm
		hs = &raftpb.HardState{Term: opts.RejoinTerm, Vote: opts.ID, Bootstrap: want}
		if err := meta.Save(hs); err != nil {
			return nil, fmt.Errorf("store the rejoining hard state: %w", err)
		}
		return hs, nil
	}
	if hs.Term != 0 || hs.Vote != "" || storage.LastIndex() != 0 {
		h.opts.Logger.Warn("asyncraft: the node's data has no bootstrap record (written by an earlier version, or by a MetaStorage that does not keep it); recording this start's configuration as the node's identity",
			"group", opts.Group, "id", opts.ID, "term", hs.Term, "last index", storage.LastIndex(), "bootstrap", node.DescribeBootstrap(want))
	}
	hs = &raftpb.HardState{Term: hs.Term, Vote: hs.Vote, Commit: hs.Commit, Bootstrap: want}
	if err := meta.Save(hs); err != nil {
		return nil, fmt.Errorf("store the bootstrap record: %w", err)
	}
	return hs, nil
}

// incarnation draws the incarnation of a node's data at the start that
// writes its bootstrap record: a hash of the host's clock (nanoseconds),
// address and the node's group and id. Two starts of one node on its
// data's first start cannot share a clock reading; in the simulator the
// clock is virtual, so runs stay reproducible. Never 0.
func (h *Host) incarnation(opts NodeOptions) uint64 {
	hash := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(h.rt.Now().UnixNano()))
	hash.Write(b[:])
	for _, s := range []string{h.rt.Host(), opts.Group, opts.ID} {
		hash.Write([]byte(s))
		hash.Write([]byte{0})
	}
	return max(hash.Sum64(), 1)
}

// ClusterIdentity is the identity the node sends on every message and
// requires on every message it accepts: a hash of the cluster id, group
// and voter ids it was bootstrapped with (never 0).
func (n *Node) ClusterIdentity() uint64 { return n.cluster }
