package node

import (
	"strconv"

	"github.com/asyncraft/asyncraft/actors"
)

// Every actor of a node has a well-known name on its host, derived from the
// group and the node id, so that peers can address each other from the
// configuration alone:
//
//	<group>/<id>/node                     the node actor
//	<group>/<id>/log                      the log manager (disk writer: .../log/disk)
//	<group>/<id>/fsm                      the FSM caller
//	<group>/<id>/snap                     the snapshot executor (with a data directory)
//	<group>/<id>/node/r-<peer>-<term>     the leader's replicator for peer in term
//
// Replicator names carry the term, so replies to a previous leadership
// reach no one instead of a newer replicator.

// ActorName is the name of the node actor of group and id.
func ActorName(group, id string) string { return group + "/" + id + "/node" }

// LogManagerName is the name of its log manager.
func LogManagerName(group, id string) string { return group + "/" + id + "/log" }

// FSMCallerName is the name of its FSM caller.
func FSMCallerName(group, id string) string { return group + "/" + id + "/fsm" }

// SnapshotterName is the name of its snapshot executor.
func SnapshotterName(group, id string) string { return group + "/" + id + "/snap" }

func replicatorChild(peer string, term uint64) string {
	return "r-" + peer + "-" + strconv.FormatUint(term, 10)
}

// replicatorRef is the ref of leader's replicator for peer in term, on the
// leader's host at addr.
func replicatorRef(addr, group, leader, peer string, term uint64) actors.Ref {
	return actors.Ref{Host: addr, Name: ActorName(group, leader) + "/" + replicatorChild(peer, term)}
}
