// Command peers is the member program of the bench harness's peers: one
// member of a dragonboat or hashicorp/raft cluster per process, driven by
// the orchestrator in bench/ over stdin and stdout exactly as asyncraft's
// members are (package loadgen, shared with them: the same command, state
// machine, closed-loop goroutine clients and measured window). Each
// library runs with its defaults (fsync on) and is called through its
// native blocking API with a per-operation deadline:
//
//	dragonboat v4:          SyncPropose; SyncRead (ReadIndex, then a Lookup in the map)
//	hashicorp/raft+raft-wal: Apply(cmd, timeout).Error(); VerifyLeader().Error(), then a read of the map
//
// It is its own module so that the peers' dependencies stay out of the
// library and out of the harness. The orchestrator builds it:
//
//	cd bench && go run . -system asyncraft,dragonboat,hashicorp
//
// and starts it as: peers -member -system dragonboat -ids n1 -addr
// 127.0.0.1:0 -data DIR.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "-member" {
		args = args[1:]
	}
	if err := memberMain(args); err != nil {
		fmt.Fprintln(os.Stderr, "peers member:", err)
		os.Exit(1)
	}
}

func memberMain(args []string) error {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	system := fs.String("system", "", "dragonboat or hashicorp")
	ids := fs.String("ids", "", "the node id this process runs (one)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0: a free one")
	data := fs.String("data", "", "data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *ids == "" || strings.Contains(*ids, ",") {
		return errors.New("-data and one id in -ids are needed (the peers run one member per process)")
	}
	if err := os.MkdirAll(*data, 0o755); err != nil {
		return err
	}
	var (
		sys interface {
			loadgen.System
			Close()
		}
		err error
	)
	switch *system {
	case "dragonboat":
		sys, err = newDragonboat(*ids, *addr, *data)
	case "hashicorp":
		sys, err = newHashicorp(*ids, *addr, *data)
	default:
		return fmt.Errorf("unknown -system %q (dragonboat or hashicorp)", *system)
	}
	if err != nil {
		return err
	}
	defer sys.Close()
	return loadgen.Serve(sys, os.Stdin, os.Stdout)
}

// moduleVersion is the version of module path built into this program.
func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version + " (replaced)"
			}
			return d.Version
		}
	}
	return "(not built in)"
}

// replicaOf is the position (from 1) of id in peers, and peers' ids by
// position.
func replicaOf(id string, peers []loadgen.Peer) (uint64, error) {
	for i, p := range peers {
		if p.ID == id {
			return uint64(i + 1), nil
		}
	}
	return 0, fmt.Errorf("%s is not among the peers %v", id, peers)
}
