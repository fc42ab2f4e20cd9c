// Package raftpb holds asyncraft's wire and disk types, generated from
// raft.proto. The generated code is committed; regenerate it with
//
//	go generate ./raftpb
//
// which needs protoc (3.21 or newer) and protoc-gen-go at the version pinned
// in docs/protobuf.md.
package raftpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative raft.proto
