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
	// Isolate each node in turn for 2 s: whichever is cut off serves
	// stale reads.
	for i := range c.nodes {
		for j := range c.nodes {
			if i != j {
				c.setLink(i, j, proxy.Blackhole)
				c.setLink(j, i, proxy.Blackhole)
			}
		}
		tl.add("isolate %s", c.nodes[i].id)
		time.Sleep(2 * time.Second)
		c.healLinks()
		tl.add("links up")
		time.Sleep(500 * time.Millisecond)
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
