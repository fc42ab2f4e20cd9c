// Package chaos is a process-level chaos test of asyncraft, through the
// kvstore example (examples/kvstore): real processes, real disks, a real
// network on 127.0.0.1, with faults injected from outside.
//
// TestChaos builds the kvstore, starts three nodes whose Raft links all go
// through proxies (package proxy: one per directed link, each of which can
// be cut one way), runs concurrent HTTP clients that record a history,
// lets a seeded nemesis kill -9, SIGSTOP and partition the nodes (and keep
// a follower down until it needs a snapshot install, and kill the receiver
// or the sender of that install: install_test.go; and transfer the
// leadership, remove nodes and add them back, or replace one by a wiped
// node that joins under a new id, through the kvstore's membership API:
// membership_test.go), repairs everything,
// and checks the history with porcupine against a key-value model, that
// the cluster takes a write within 15 s of the repair, that the nodes
// converge to the same state, and that every process shuts down cleanly.
// See README.md.
//
// It lives in its own module so that its dependencies stay out of the
// library's.
package chaos
