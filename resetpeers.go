package asyncraft

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/node"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// ResetPeers forces the configuration of a stopped node: the recovery of
// a group that lost a majority of its voters for good, which can elect no
// leader and commit nothing. UNSAFE: it overrides what the group agreed,
// and may lose committed entries or commit entries that never were.
// Follow docs/operations.md ("Losing a majority") and nothing else.
//
// The node's data is in dataDir (HostOptions.DataDir) on fs (nil: the
// real file system), under group and id; the node must not be running.
// ResetPeers appends to its log a configuration entry whose voters are
// voters (the node among them), in a term above every term the node has
// seen, and saves that term as its hard state, with its vote for itself.
// Started again, the node reads that configuration from its log: with
// voters naming it alone it elects itself at once; its log, the most
// up-to-date there is (its last term is the highest), becomes the group's,
// and the entry is committed with the leader's first entry. It returns the
// entry's index.
//
// What the node's log lacks of what the group had committed (entries
// only the lost voters held) is lost; entries it holds that the group had
// not committed become committed. The other members' data must not be
// used again as it is: remove them and add them back as new nodes
// (NodeOptions.JoinIdentity) on empty data directories.
func ResetPeers(fs vfs.FS, dataDir, group, id string, voters []Peer) (uint64, error) {
	if fs == nil {
		fs = vfs.OS
	}
	target := node.VotersConfig(voters)
	if err := confchange.Validate(target); err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: %w", group, id, err)
	}
	if !slices.ContainsFunc(voters, func(p Peer) bool { return p.ID == id }) {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: %w: the node is not among the voters given, so it could not lead the group out of the loss", group, id, ErrInvalidConfiguration)
	}
	if dataDir == "" {
		return 0, errors.New("asyncraft: reset peers: no data directory: a node without one keeps nothing to reset")
	}
	dir := path.Join(dataDir, group, id)
	if _, err := fs.Stat(dir); err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: no data at %s: %w", group, id, dir, err)
	}
	storage, err := logmgr.OpenWAL(fs, dir, logmgr.WALOptions{Buffered: true})
	if err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: open its log: %w", group, id, err)
	}
	defer storage.Close()
	meta, err := logmgr.OpenFileMeta(fs, dir)
	if err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: open its hard state: %w", group, id, err)
	}
	defer meta.Close()
	hs, err := meta.Load()
	if err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: read its hard state: %w", group, id, err)
	}
	if hs.Bootstrap == nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: its data has no bootstrap record (it never started, or an earlier version wrote it): start it once first", group, id)
	}
	last := storage.LastIndex()
	lastTerm, err := storage.Term(last)
	if err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: the term of its last entry %d: %w", group, id, last, err)
	}
	term := max(hs.Term, lastTerm) + 1
	e := &raftpb.Entry{Index: last + 1, Term: term, Type: raftpb.EntryType_ENTRY_TYPE_CONFIG, Data: confchange.Encode(target)}
	if err := storage.Append([]*raftpb.Entry{e}); err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: append the configuration: %w", group, id, err)
	}
	if err := storage.Sync(); err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: sync its log: %w", group, id, err)
	}
	if err := meta.Save(&raftpb.HardState{Term: term, Vote: id, Commit: hs.Commit, Bootstrap: hs.Bootstrap}); err != nil {
		return 0, fmt.Errorf("asyncraft: reset peers of %s/%s: save its hard state: %w", group, id, err)
	}
	return e.Index, nil
}
