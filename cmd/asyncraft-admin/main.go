// Command asyncraft-admin runs operator actions: on a stopped node's data
// (reset-peers), and on a running group through the HTTP API of a
// kvstore-style server (examples/kvstore: GET and POST /membership, POST
// /transfer).
//
//	asyncraft-admin reset-peers -data DIR -group G -id ID -voters ID=ADDR[,ID=ADDR...] -unsafe
//	asyncraft-admin members     -http HOST:PORT [-local] [-json]
//	asyncraft-admin add-voter   -http HOST:PORT -id ID -addr RAFTADDR [-if-index N]
//	asyncraft-admin add-learner -http HOST:PORT -id ID -addr RAFTADDR [-promote] [-if-index N]
//	asyncraft-admin promote     -http HOST:PORT -id ID [-if-index N]
//	asyncraft-admin remove      -http HOST:PORT -id ID [-learner] [-if-index N]
//	asyncraft-admin replace     -http HOST:PORT -old ID -id ID -addr RAFTADDR [-if-index N]
//	asyncraft-admin set-priority -http HOST:PORT -id ID -priority N [-if-index N]
//	asyncraft-admin transfer    -http HOST:PORT [-to ID]
//
// reset-peers forces the configuration of a stopped node (asyncraft.
// ResetPeers): the recovery of a group that lost a majority of its voters
// for good. It is unsafe — committed entries the node lacks are lost,
// entries it holds that were never committed become committed — and so
// runs only with -unsafe. Follow docs/operations.md ("Losing a majority").
//
// The other commands talk to the node at -http, which may be any member:
// a node that does not lead answers 421 naming the leader's HTTP address,
// and the command follows it. A change runs on the leader and waits until
// it completes (-timeout): a new voter first catches up as a learner.
// -if-index guards a change: it is made only if the configuration in force
// is still the one of that index (members shows it). See docs/membership.md.
//
// Exit status: 0 on success, 1 on failure (nothing changed, or, after
// ETIMEDOUT, what the message says), 2 on bad usage, 3 when the outcome is
// unknown (the change may still complete: run members).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usageText = `usage:
  asyncraft-admin reset-peers -data DIR -group G -id ID -voters ID=ADDR[,ID=ADDR...] -unsafe
  asyncraft-admin members     -http HOST:PORT [-local] [-json]
  asyncraft-admin add-voter   -http HOST:PORT -id ID -addr RAFTADDR [-if-index N]
  asyncraft-admin add-learner -http HOST:PORT -id ID -addr RAFTADDR [-promote] [-if-index N]
  asyncraft-admin promote     -http HOST:PORT -id ID [-if-index N]
  asyncraft-admin remove      -http HOST:PORT -id ID [-learner] [-if-index N]
  asyncraft-admin replace     -http HOST:PORT -old ID -id ID -addr RAFTADDR [-if-index N]
  asyncraft-admin set-priority -http HOST:PORT -id ID -priority N [-if-index N]
  asyncraft-admin transfer    -http HOST:PORT [-to ID]
run "asyncraft-admin COMMAND -h" for a command's flags`

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitUnknown = 3
)

func run(args []string, out, errOut io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(errOut, usageText)
		return exitUsage
	}
	switch args[0] {
	case "reset-peers":
		return resetPeers(args[1:], out, errOut)
	case "members", "add-voter", "add-learner", "promote", "remove", "replace", "set-priority", "transfer":
		return remote(args[0], args[1:], out, errOut)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(out, usageText)
		return exitOK
	default:
		fmt.Fprintf(errOut, "asyncraft-admin: no command %q\n%s\n", args[0], usageText)
		return exitUsage
	}
}

func resetPeers(args []string, out, errOut io.Writer) int {
	usage := func() int {
		fmt.Fprintln(errOut, "usage: asyncraft-admin reset-peers -data DIR -group G -id ID -voters ID=ADDR[,ID=ADDR...] -unsafe")
		return exitUsage
	}
	fs := flag.NewFlagSet("reset-peers", flag.ContinueOnError)
	fs.SetOutput(errOut)
	data := fs.String("data", "", "the host's data directory (HostOptions.DataDir)")
	group := fs.String("group", "", "the node's group")
	id := fs.String("id", "", "the node's id")
	list := fs.String("voters", "", "the new voters, ID=ADDR separated by commas; the node must be one")
	unsafe := fs.Bool("unsafe", false, "confirm that you follow the recovery procedure of docs/operations.md: this may lose committed entries")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *data == "" || *group == "" || *id == "" || *list == "" || fs.NArg() != 0 {
		return usage()
	}
	if !*unsafe {
		fmt.Fprintln(errOut, "asyncraft-admin: reset-peers may lose committed entries and runs only with -unsafe; read docs/operations.md, \"Losing a majority\", first")
		return exitUsage
	}
	var voters []asyncraft.Peer
	for _, v := range strings.Split(*list, ",") {
		idAddr := strings.SplitN(v, "=", 2)
		if len(idAddr) != 2 || idAddr[0] == "" || idAddr[1] == "" {
			fmt.Fprintf(errOut, "asyncraft-admin: voter %q is not ID=ADDR\n", v)
			return exitUsage
		}
		voters = append(voters, asyncraft.Peer{ID: idAddr[0], Addr: idAddr[1]})
	}
	index, err := asyncraft.ResetPeers(nil, *data, *group, *id, voters)
	if err != nil {
		fmt.Fprintln(errOut, "asyncraft-admin:", err)
		return exitFailed
	}
	fmt.Fprintf(out, "reset %s/%s: configuration entry %d names the voters %s; start the node now\n", *group, *id, index, *list)
	return exitOK
}

// remote runs one of the commands that talk to a node's HTTP API.
func remote(cmd string, args []string, out, errOut io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(errOut)
	httpAddr := fs.String("http", "", "HTTP address (host:port) of a node of the group; a node that does not lead names the leader, whose address is then used")
	timeout := fs.Duration("timeout", 25*time.Second, "how long the node waits for the change or transfer to complete (at most the server's -http-write-timeout less a second)")
	var (
		id, addr, old, to *string
		ifIndex, priority *int64
		promote, learner  *bool
		local, asJSON     *bool
	)
	switch cmd {
	case "members":
		local = fs.Bool("local", false, "the configuration of the node at -http, whether it leads or not (default: the leader's)")
		asJSON = fs.Bool("json", false, "print the node's JSON answer")
	case "transfer":
		to = fs.String("to", "", "the voter to hand the leadership to (default: the most up-to-date one)")
	default:
		id = fs.String("id", "", "the member's id")
		if cmd == "add-voter" || cmd == "add-learner" || cmd == "replace" {
			addr = fs.String("addr", "", "the new member's Raft address (host:port), as the other members reach it")
		}
		if cmd == "replace" {
			old = fs.String("old", "", "the voter to replace")
		}
		if cmd == "add-learner" {
			promote = fs.Bool("promote", false, "mark the learner for promotion: the leader makes it a voter once it has caught up")
		}
		if cmd == "remove" {
			learner = fs.Bool("learner", false, "remove only a learner (refused if the member is a voter)")
		}
		if cmd == "set-priority" {
			priority = fs.Int64("priority", -1, "the member's election priority (0: none): a leader hands its leadership to a caught-up voter of a higher priority")
		}
		ifIndex = fs.Int64("if-index", -1, "change only if the configuration in force is the one of this index (members shows it)")
	}
	usage := func(msg string) int {
		fmt.Fprintf(errOut, "asyncraft-admin %s: %s\n", cmd, msg)
		fs.Usage()
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	switch {
	case fs.NArg() != 0:
		return usage(fmt.Sprintf("unexpected arguments %q", fs.Args()))
	case *httpAddr == "":
		return usage("-http is required")
	case *timeout <= 0:
		return usage("-timeout must be positive")
	case id != nil && *id == "":
		return usage("-id is required")
	case addr != nil && *addr == "":
		return usage("-addr is required")
	case old != nil && *old == "":
		return usage("-old is required")
	case priority != nil && (*priority < 0 || *priority > math.MaxUint32):
		return usage(fmt.Sprintf("-priority is required, from 0 to %d", uint32(math.MaxUint32)))
	}
	if addr != nil {
		if _, _, err := net.SplitHostPort(*addr); err != nil {
			return usage(fmt.Sprintf("-addr %q is not host:port: %v", *addr, err))
		}
	}
	if _, _, err := net.SplitHostPort(*httpAddr); err != nil {
		return usage(fmt.Sprintf("-http %q is not host:port: %v", *httpAddr, err))
	}
	c := &adminClient{http: &http.Client{Timeout: *timeout + 5*time.Second}, errOut: errOut}
	ctx := context.Background()
	q := url.Values{}
	if cmd != "members" {
		q.Set("timeout", timeout.String())
	}

	if cmd == "members" {
		path := "/membership"
		if *local {
			path += "?local=1"
		}
		var m kvapi.MembershipReply
		body, code := c.do(ctx, http.MethodGet, *httpAddr, path, nil, &m, !*local)
		if code != exitOK {
			return code
		}
		if *asJSON {
			out.Write(body)
			return exitOK
		}
		printMembership(out, m)
		return exitOK
	}
	if cmd == "transfer" {
		if *to != "" {
			q.Set("to", *to)
		}
		var tr kvapi.TransferReply
		if _, code := c.do(ctx, http.MethodPost, *httpAddr, "/transfer?"+q.Encode(), nil, &tr, true); code != exitOK {
			return code
		}
		fmt.Fprintf(out, "leadership transferred: %s leads in term %d", tr.Leader, tr.Term)
		if tr.LeaderHTTP != "" {
			fmt.Fprintf(out, " (HTTP %s)", tr.LeaderHTTP)
		}
		fmt.Fprintln(out)
		return exitOK
	}

	req := kvapi.MembershipRequest{Op: cmd, ID: *id}
	if addr != nil {
		req.Addr = *addr
	}
	if old != nil {
		req.Old = *old
	}
	if promote != nil && *promote {
		req.Op = "add-learner-to-promote"
	}
	if learner != nil && *learner {
		req.Op = "remove-learner"
	}
	if priority != nil {
		p := uint32(*priority)
		req.Priority = &p
	}
	if *ifIndex >= 0 {
		v := uint64(*ifIndex)
		req.IfIndex = &v
	}
	b, _ := json.Marshal(req)
	var m kvapi.MembershipReply
	if _, code := c.do(ctx, http.MethodPost, *httpAddr, "/membership?"+q.Encode(), b, &m, true); code != exitOK {
		return code
	}
	fmt.Fprintf(out, "%s %s: done, committed at index %d\n", req.Op, *id, m.ChangeIndex)
	printMembership(out, m)
	return exitOK
}

type adminClient struct {
	http   *http.Client
	errOut io.Writer
}

// do sends a request to addr and decodes a 200 answer into v; a 421
// naming the leader's HTTP address is followed (at most three times) when
// follow is set. It returns the answer's body and exitOK, or reports the
// failure on errOut and returns the exit status.
func (c *adminClient) do(ctx context.Context, method, addr, path string, body []byte, v any, follow bool) ([]byte, int) {
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
		if err != nil {
			fmt.Fprintf(c.errOut, "asyncraft-admin: %v\n", err)
			return nil, exitUsage
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" || method == http.MethodGet {
				fmt.Fprintf(c.errOut, "asyncraft-admin: %s %s: %v\n", method, addr, err)
				return nil, exitFailed
			}
			fmt.Fprintf(c.errOut, "asyncraft-admin: %s %s%s: %v\nthe outcome is unknown: the request may have been carried out; check with asyncraft-admin members\n", method, addr, path, err)
			return nil, exitUnknown
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			fmt.Fprintf(c.errOut, "asyncraft-admin: %s %s: reading the answer: %v\n", method, addr, err)
			return nil, exitUnknown
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, v); err != nil {
				fmt.Fprintf(c.errOut, "asyncraft-admin: %s %s%s answered 200 with %q: %v\n", method, addr, path, b, err)
				return nil, exitFailed
			}
			return b, exitOK
		}
		var e kvapi.APIError
		if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
			fmt.Fprintf(c.errOut, "asyncraft-admin: %s %s%s answered %s: %s\n(is %s the HTTP API of a kvstore node?)\n", method, addr, path, resp.Status, bytes.TrimSpace(b), addr)
			return nil, exitFailed
		}
		if resp.StatusCode == http.StatusMisdirectedRequest && follow && e.LeaderHTTP != "" && hops < 3 && e.LeaderHTTP != addr {
			fmt.Fprintf(c.errOut, "asyncraft-admin: %s does not lead; asking the leader %s at %s\n", addr, e.Leader, e.LeaderHTTP)
			addr = e.LeaderHTTP
			continue
		}
		return nil, c.report(resp.StatusCode, e)
	}
}

// report prints a failure the node answered, with what to do about it,
// and returns the exit status.
func (c *adminClient) report(status int, e kvapi.APIError) int {
	fmt.Fprintf(c.errOut, "asyncraft-admin: %d %s: %s\n", status, e.Code, e.Error)
	hint, code := "", exitFailed
	switch e.Code {
	case "EPERM":
		switch {
		case e.Leader != "" && e.LeaderHTTP == "":
			hint = fmt.Sprintf("the leader is %s, whose HTTP address this node does not know: give it as -http", e.Leader)
		case e.Leader == "":
			hint = "no leader is known (an election is under way?): retry"
		default:
			hint = fmt.Sprintf("the leader is %s at %s", e.Leader, e.LeaderHTTP)
		}
	case "EAGAIN", "EBUSY":
		hint = "nothing was changed; retry (a new leader, or a leadership transfer under way)"
	case "EINPROGRESS":
		hint = "another membership change is under way; retry once it completes (asyncraft-admin members shows it)"
	case "EUNCHANGED":
		hint = "nothing to do: the configuration is already so"
	case "ECONFSTALE":
		hint = "the configuration changed since you read it: read it again (asyncraft-admin members) and decide again"
	case "ETIMEDOUT":
		hint = "it did not complete: new voters that made no progress stay learners (remove them, or try again); a transfer that timed out leaves the leader as it was"
	case "EUNKNOWN":
		hint, code = "the outcome is unknown: the change may still complete; check with asyncraft-admin members", exitUnknown
	}
	if hint != "" {
		fmt.Fprintln(c.errOut, hint)
	}
	return code
}

// printMembership writes a configuration for people.
func printMembership(out io.Writer, m kvapi.MembershipReply) {
	state := "committed"
	if !m.Committed {
		state = "not committed yet"
	}
	fmt.Fprintf(out, "configuration of index %d (%s) on %s, term %d, leader %q", m.Index, state, m.ID, m.Term, m.Leader)
	if m.ClusterIdentity != "" {
		fmt.Fprintf(out, "; cluster identity %s", m.ClusterIdentity)
	}
	fmt.Fprintln(out)
	if m.Joint {
		fmt.Fprintln(out, "JOINT: a change of voters is under way; decisions need a majority of the voters and one of the old voters")
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	promoting := map[string]bool{}
	for _, id := range m.Promoting {
		promoting[id] = true
	}
	list := func(role string, ms []kvapi.MemberReply) {
		for _, p := range ms {
			extra := ""
			if promoting[p.ID] && role == "learner" {
				extra = "promoted once caught up"
			}
			if p.ID == m.Leader && role == "voter" {
				extra = "leader"
			}
			http := p.HTTP
			if http == "" {
				http = "-"
			}
			if p.Priority != 0 {
				extra = strings.TrimPrefix(extra+fmt.Sprintf(", priority %d", p.Priority), ", ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\thttp %s\t%s\n", role, p.ID, p.Addr, http, extra)
		}
	}
	list("voter", m.Voters)
	list("learner", m.Learners)
	list("old voter", m.OldVoters)
	list("old learner", m.OldLearners)
	tw.Flush()
}
