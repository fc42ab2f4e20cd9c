package chaos

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/asyncraft/asyncraft/chaos/proxy"
)

// TestChaosSelfCheck checks the checker, end to end: with -stale-reads
// every node answers reads from its own state machine, so a node cut off
// from the others serves old values while the majority moves on. The same
// harness must find that history not linearizable.
func TestChaosSelfCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes; skipped with -short")
	}
	dir, err := os.MkdirTemp("", "asyncraft-chaos-selfcheck-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	bin := buildKVStore(t, t.TempDir(), false)
	tl := &timeline{start: time.Now()}
	h := &history{start: tl.start}
	c := newCluster(t, bin, dir, 3, tl, "-stale-reads")
	var servers []string
	for _, nd := range c.nodes {
		servers = append(servers, nd.httpAddr)
	}
	c.startAll()
	probe := newClient(1000, h, servers, 1)
	defer probe.close()
	if _, err := probe.until(30*time.Second, func() kvInput {
		probe.seq++
		return kvInput{Kind: opPut, Key: "warmup", Value: fmt.Sprintf("w%d;", probe.seq)}
	}); err != nil {
		t.Fatalf("the cluster never took a first write: %v\n%s", err, tl)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		cl := newClient(i, h, servers, 1)
		cl.readAnywhere = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.close()
			cl.run(stop, 4, 0.5)
		}()
	}
	// Isolate each node in turn: whichever is cut off serves stale reads.
	// Each isolation lasts until the history holds one (a write the
	// majority completed, then a read of that key answered by the cut-off
	// node), or 10 s; after the repair the group must take a write again.
	for i := range c.nodes {
		mark := h.mark()
		for j := range c.nodes {
			if i != j {
				c.setLink(i, j, proxy.Blackhole)
				c.setLink(j, i, proxy.Blackhole)
			}
		}
		tl.add("isolate %s", c.nodes[i].id)
		if eventually(10*time.Second, retryEvery, func() bool { return staleReadSeen(h, mark, c.nodes[i].httpAddr) }) {
			tl.add("a stale read from %s is in the history", c.nodes[i].id)
		}
		c.healLinks()
		tl.add("links up")
		if _, err := probe.until(15*time.Second, func() kvInput {
			probe.seq++
			return kvInput{Kind: opPut, Key: "heal", Value: fmt.Sprintf("h%d;", probe.seq)}
		}); err != nil {
			t.Fatalf("no write completed within 15 s of healing: %v\n%s", err, tl)
		}
	}
	close(stop)
	wg.Wait()

	ops, _ := h.snapshot()
	hist := porcupineHistory(ops)
	res, _ := porcupine.CheckOperationsVerbose(kvModel, hist, *flagCheck)
	t.Logf("%s; porcupine: %s", summarize(ops), res)
	if res != porcupine.Illegal {
		t.Errorf("stale reads went unnoticed: porcupine says %s for %d operations\n%s", res, len(hist), tl)
	}
}

// staleReadSeen reports whether, among the operations begun after mark, a
// write completed on a node other than isolated and a later read of the
// same key was answered by isolated (which cannot have seen the write).
func staleReadSeen(h *history, mark int, isolated string) bool {
	written := map[string]time.Duration{} // key -> earliest completion
	var reads []op
	h.since(mark, func(o *op) {
		if o.ret == 0 || o.state != opOK {
			return
		}
		switch {
		case o.input.Kind == opGet && o.node == isolated:
			reads = append(reads, *o)
		case o.input.Kind != opGet && o.node != isolated:
			if w, ok := written[o.input.Key]; !ok || o.ret < w {
				written[o.input.Key] = o.ret
			}
		}
	})
	for _, r := range reads {
		if w, ok := written[r.input.Key]; ok && r.call > w {
			return true
		}
	}
	return false
}
