// Command asyncraft-admin runs operator actions on a node's data.
//
//	asyncraft-admin reset-peers -data DIR -group G -id ID -voters ID=ADDR[,ID=ADDR...] -unsafe
//
// reset-peers forces the configuration of a stopped node (asyncraft.
// ResetPeers): the recovery of a group that lost a majority of its voters
// for good. It is unsafe — committed entries the node lacks are lost,
// entries it holds that were never committed become committed — and so
// runs only with -unsafe. Follow docs/operations.md ("Losing a majority").
//
// Exit status: 0 on success, 1 on failure, 2 on bad usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/asyncraft/asyncraft"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, out, errOut io.Writer) int {
	usage := func() int {
		fmt.Fprintln(errOut, "usage: asyncraft-admin reset-peers -data DIR -group G -id ID -voters ID=ADDR[,ID=ADDR...] -unsafe")
		return 2
	}
	if len(args) == 0 || args[0] != "reset-peers" {
		return usage()
	}
	fs := flag.NewFlagSet("reset-peers", flag.ContinueOnError)
	fs.SetOutput(errOut)
	data := fs.String("data", "", "the host's data directory (HostOptions.DataDir)")
	group := fs.String("group", "", "the node's group")
	id := fs.String("id", "", "the node's id")
	list := fs.String("voters", "", "the new voters, ID=ADDR separated by commas; the node must be one")
	unsafe := fs.Bool("unsafe", false, "confirm that you follow the recovery procedure of docs/operations.md: this may lose committed entries")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *data == "" || *group == "" || *id == "" || *list == "" || fs.NArg() != 0 {
		return usage()
	}
	if !*unsafe {
		fmt.Fprintln(errOut, "asyncraft-admin: reset-peers may lose committed entries and runs only with -unsafe; read docs/operations.md, \"Losing a majority\", first")
		return 2
	}
	var voters []asyncraft.Peer
	for _, v := range strings.Split(*list, ",") {
		idAddr := strings.SplitN(v, "=", 2)
		if len(idAddr) != 2 || idAddr[0] == "" || idAddr[1] == "" {
			fmt.Fprintf(errOut, "asyncraft-admin: voter %q is not ID=ADDR\n", v)
			return 2
		}
		voters = append(voters, asyncraft.Peer{ID: idAddr[0], Addr: idAddr[1]})
	}
	index, err := asyncraft.ResetPeers(nil, *data, *group, *id, voters)
	if err != nil {
		fmt.Fprintln(errOut, "asyncraft-admin:", err)
		return 1
	}
	fmt.Fprintf(out, "reset %s/%s: configuration entry %d names the voters %s; start the node now\n", *group, *id, index, *list)
	return 0
}
