package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// A member whose data directory is wiped rejoins under its old id with
// -rejoin-term (three processes over loopback): -rejoin-term is refused on
// a directory that still holds the member's state; on the wiped one, the
// member starts in the others' highest term, is sent a snapshot (the
// leader compacted the entries it would need), reaches the others' store
// and then applies new writes from the log.
func TestWipedMemberRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	c := newTestCluster(t, "-snapshot-entries", "20", "-snapshot-trailing", "5", "-wal-segment-bytes", "4096")
	c.startAll(t)
	dir, ids, procs, logs := c.dir, c.ids, c.procs, c.logs
	client := &http.Client{Timeout: 10 * time.Second}
	status := func(id string) (kvapi.StatusReply, bool) {
		var st kvapi.StatusReply
		return st, getJSON(client, "GET", "http://"+procs[id].http+"/status", "", &st) == 200
	}
	// put writes n keys from key k<from> on, through whichever node leads.
	put := func(from, n int) {
		t.Helper()
		for k := from; k < from+n; k++ {
			waitFor(t, 20*time.Second, fmt.Sprintf("PUT k%d", k), func() bool {
				for _, id := range ids {
					if st, ok := status(id); ok && st.Role == "leader" {
						return getJSON(client, "PUT", "http://"+procs[id].http+fmt.Sprintf("/kv/k%d", k), strings.Repeat("v", 200), nil) == 204
					}
				}
				return false
			})
		}
	}
	// converged waits until the nodes up hold want keys and equal stores.
	converged := func(up []string, want int) {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("%v hold %d keys, the same", up, want), func() bool {
			digest := ""
			for _, id := range up {
				st, ok := status(id)
				if !ok || st.Keys != want || (digest != "" && st.Digest != digest) {
					return false
				}
				digest = st.Digest
			}
			return true
		})
	}

	put(0, 10)
	converged(ids, 10)
	var wiped string
	for _, id := range ids {
		if st, ok := status(id); ok && st.Role == "follower" {
			wiped = id
			break
		}
	}
	if wiped == "" {
		t.Fatalf("no follower\n%s", logs())
	}
	w := procs[wiped]
	wi := 0
	for i, id := range ids {
		if id == wiped {
			wi = i
		}
	}
	var others []string
	for _, id := range ids {
		if id != wiped {
			others = append(others, id)
		}
	}
	w.stop(t, logs)

	// -rejoin-term on a data directory that still holds the member's
	// state is refused: the node does not start.
	w.start(t, c.args(wi, "-rejoin-term", "1"))
	select {
	case <-w.done:
		out, _ := os.ReadFile(w.log)
		if w.cmd.ProcessState.Success() || !strings.Contains(string(out), "RejoinTerm is for a node whose data directory was wiped") {
			t.Fatalf("-rejoin-term on a kept data directory: exit %v\n%s", w.cmd.ProcessState, out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("-rejoin-term on a kept data directory: the node started\n%s", logs())
	}

	// Wipe it; the others write on and compact past everything it had.
	if err := os.RemoveAll(filepath.Join(dir, wiped)); err != nil {
		t.Fatal(err)
	}
	put(10, 60)
	converged(others, 70)
	term := uint64(0)
	for _, id := range others {
		st, ok := status(id)
		if !ok || st.FirstIndex <= 1 {
			t.Fatalf("%s: status %+v: want a compacted log", id, st)
		}
		term = max(term, st.Term)
	}

	w.start(t, c.args(wi, "-rejoin-term", fmt.Sprint(term)))
	converged(ids, 70)
	if st, _ := status(wiped); st.Metrics == nil || st.Metrics.InstallsDone < 1 || st.SnapshotIndex == 0 {
		t.Fatalf("%s rejoined without an install: %+v %+v\n%s", wiped, st, st.Metrics, logs())
	}
	// After the install it follows the log again.
	put(70, 5)
	converged(ids, 75)
	for _, id := range ids {
		procs[id].stop(t, logs)
	}
}
