package chaos

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	flagDuration = flag.Duration("chaos.duration", 45*time.Second, "how long the nemesis injects faults (pass a -timeout that leaves room for it)")
	flagSeed     = flag.Uint64("chaos.seed", 0, "seed of the nemesis and the clients (0: from the clock); replays the fault schedule, not the timing")
	flagClients  = flag.Int("chaos.clients", 5, "concurrent clients")
	flagKeys     = flag.Int("chaos.keys", 8, "keys the clients work on")
	flagReads    = flag.Float64("chaos.reads", 0.5, "fraction of operations that are reads")
	flagKeep     = flag.Bool("chaos.keep", false, "keep the run directory (data, logs, timeline) even when the test passes")
	flagRace     = flag.Bool("chaos.race", false, "build the kvstore with the race detector")
	flagCheck    = flag.Duration("chaos.check-timeout", 2*time.Minute, "how long porcupine may take to check the history")
	flagElection = flag.Duration("chaos.election-timeout", time.Second, "the nodes' Raft election timeout")
	flagNemesis  = flag.String("chaos.nemesis", "all", "fault kinds the nemesis draws from: all, install (long-outage and kill-mid-install), or a comma-separated list of kinds")
	flagBallast  = flag.Int("chaos.ballast", 3<<20, "bytes of large values written at the start, outside the clients' keys, so that each snapshot takes a while to install (0: none)")
)

// snapshotFlags make the kvstore take snapshots and compact its log often
// enough that a follower down for a few seconds needs an install: a
// snapshot every 250 applied entries, the log kept to 50 entries behind
// the newest (and back to the one before) on 16 KiB WAL segments (the
// WAL drops whole segments only), and snapshots sent at 512 KiB/s, so
// that an install of a store carrying the ballast (-chaos.ballast) lasts
// about two seconds (the first 2 MiB go at once).
var snapshotFlags = []string{"-snapshot-entries", "250", "-snapshot-trailing", "50", "-snapshot-rate", "524288", "-wal-segment-bytes", "16384"}

// ballastValue is the size of each value of the ballast.
const ballastValue = 64 << 10

// Once everything is repaired, every client must complete afterHealOps
// operations within afterHealLimit.
const (
	afterHealOps   = 100
	afterHealLimit = 30 * time.Second
)

// TestChaos runs three kvstore processes behind proxies, drives them with
// concurrent clients while a nemesis kills, pauses and partitions them,
// repairs everything and checks that the history is linearizable, that
// the cluster serves writes again within 15 s, and that the nodes
// converge to the same state.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test runs processes for a minute or more; skipped with -short")
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	kinds, err := selectFaults(*flagNemesis)
	if err != nil {
		t.Fatal(err)
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < *flagDuration+3*time.Minute {
		t.Fatalf("-chaos.duration %v does not fit the test's -timeout (%v left); raise -timeout", *flagDuration, time.Until(dl).Round(time.Second))
	}
	dir, err := os.MkdirTemp("", "asyncraft-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	replay := fmt.Sprintf("cd chaos && go test -run 'TestChaos$' -v -chaos.seed=%d -chaos.duration=%v -chaos.nemesis=%s", seed, *flagDuration, *flagNemesis)
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("run directory kept: %s (node logs n*.log, timeline.txt, history.txt)", dir)
			t.Logf("seed %d; replay the schedule with: %s", seed, replay)
			return
		}
		os.RemoveAll(dir)
	})
	t.Logf("seed %d (replay: %s); run directory %s", seed, replay, dir)

	bin := buildKVStore(t, t.TempDir(), *flagRace)
	tl := &timeline{start: time.Now()}
	h := &history{start: tl.start}
	defer func() { os.WriteFile(filepath.Join(dir, "timeline.txt"), []byte(tl.String()+"\n"), 0o644) }()
	tl.add("seed %d, %d clients, %d keys, faults (%s) for %v", seed, *flagClients, *flagKeys, *flagNemesis, *flagDuration)

	c := newCluster(t, bin, dir, 3, tl, slices.Concat([]string{"-election-timeout", flagElection.String()}, snapshotFlags, catchUpFlag)...)
	var servers []string
	for _, nd := range c.nodes {
		servers = append(servers, nd.httpAddr)
	}
	c.startAll()
	probe := newClient(1000, h, servers, seed)
	defer probe.close()
	if _, err := probe.until(30*time.Second, func() kvInput {
		probe.seq++
		return kvInput{Kind: opPut, Key: "warmup", Value: fmt.Sprintf("w%d;", probe.seq)}
	}); err != nil {
		t.Fatalf("the cluster never took a first write: %v\n%s", err, tl)
	}
	tl.add("cluster up; first write done")
	writeBallast(t, servers, seed, *flagBallast, tl)

	// Faults, with the clients running.
	stopClients := make(chan struct{})
	var wg sync.WaitGroup
	for i := range *flagClients {
		cl := newClient(i, h, servers, seed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.close()
			cl.run(stopClients, *flagKeys, *flagReads)
		}()
	}
	stopNemesis := make(chan struct{})
	var once sync.Once
	halt := func() {
		once.Do(func() {
			close(stopNemesis)
			close(stopClients)
		})
	}
	defer func() { halt(); wg.Wait() }() // on t.Fatal too
	nem := &nemesis{c: c, rng: newRand(seed), tl: tl, h: h, kinds: kinds}
	nem.run(stopNemesis, time.Now().Add(*flagDuration))
	t.Logf("nemesis: %s", nem.summary())
	if nem.ran("long-outage") || nem.ran("kill-mid-install") {
		t.Logf("install nemeses: %s", nem.stats)
	}
	if nem.ran("transfer") || nem.ran("membership") {
		t.Logf("membership nemeses: %s", nem.mstats)
		tl.add("membership nemeses: %s", nem.mstats)
	}

	// Repair, then liveness: a write completes within 15 s.
	tl.add("heal")
	nem.healAll()
	// The group's configuration is the three nodes as voters again (what
	// a membership cycle cut short left is repaired).
	if err := nem.ensureMembers(nil, healMembersLimit); err != nil {
		t.Errorf("membership after the repair: %v", err)
		tl.add("MEMBERSHIP NOT REPAIRED: %v", err)
	} else if nem.mstats.repairs > 0 || nem.ran("membership") {
		tl.add("the group's voters are %v", c.wantIDs())
	}
	healed := time.Now()
	if o, err := probe.until(15*time.Second, func() kvInput {
		probe.seq++
		return kvInput{Kind: opPut, Key: "live", Value: fmt.Sprintf("l%d;", probe.seq)}
	}); err != nil {
		t.Errorf("liveness: no write completed within 15 s of the repair: %v", err)
		tl.add("LIVENESS FAILED: %v", err)
	} else {
		tl.add("liveness: a write completed %v after the repair (via %s)", time.Since(healed).Round(time.Millisecond), o.node)
	}
	// Every client then completes afterHealOps more operations, all
	// begun after the repair: each one makes progress again, and the
	// history has a healthy stretch for the checker.
	mark := h.mark()
	progressed := func() bool {
		done := make([]int, *flagClients)
		h.since(mark, func(o *op) {
			if o.client < *flagClients && o.ret > 0 && o.state == opOK {
				done[o.client]++
			}
		})
		return slices.Min(done) >= afterHealOps
	}
	if !eventually(afterHealLimit, retryEvery, progressed) {
		t.Errorf("liveness: not every client completed %d operations within %v of the repair", afterHealOps, afterHealLimit)
		tl.add("LIVENESS FAILED: not every client completed %d operations", afterHealOps)
	} else {
		tl.add("every client completed %d operations after the repair", afterHealOps)
	}
	halt()
	wg.Wait()
	tl.add("clients stopped")

	// Final reads of every key, part of the history.
	for k := range *flagKeys {
		key := fmt.Sprintf("k%d", k)
		if _, err := probe.until(15*time.Second, func() kvInput { return kvInput{Kind: opGet, Key: key} }); err != nil {
			t.Errorf("final read of %s: %v", key, err)
		}
	}
	tl.add("final reads done")

	// The nodes converge: same applied index, same state.
	if term, err := converge(c, 15*time.Second); err != nil {
		t.Errorf("after the repair: %v", err)
		tl.add("CONVERGENCE FAILED: %v", err)
	} else {
		// With pre-vote a term begins only with an election, so the
		// final term counts the elections held (won or not).
		tl.add("nodes converged in term %d", term)
		t.Logf("elections: %d (the final term)", term)
	}
	// Installs, as the nodes counted them (the counters as last read from
	// each process, summed over its lives): a follower the nemesis kept
	// down past the leader's compaction can only have caught up by one.
	totals := c.totals()
	tl.add("counted by the nodes: %s", totals)
	t.Logf("counted by the nodes: %s", totals)
	if n := c.unrouted(); n > 0 {
		// Connections to a node whose sender the harness could not
		// find (it died meanwhile): reset, and opened again.
		tl.add("proxies: %d connections reset because their sender was not found", n)
		t.Logf("proxies: %d connections reset because their sender was not found", n)
	}
	if nem.stats.compacted > 0 && totals.InstallsDone == 0 {
		t.Errorf("the leader's log was compacted past a follower kept down %d times, yet no node counted an install", nem.stats.compacted)
		tl.add("NO INSTALL: the leader's log was compacted past a follower %d times, yet no node counted an install", nem.stats.compacted)
	}

	// Orderly shutdown: every node exits cleanly on SIGTERM.
	for _, nd := range c.nodes {
		if err := nd.stop(15 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
			tl.add("SHUTDOWN FAILED: %v", err)
		}
	}
	tl.add("nodes stopped")
	for _, msg := range c.unexpectedExits() {
		t.Errorf("crash: %s", msg)
	}
	for _, msg := range c.scanLogs() {
		t.Errorf("node log: %s", msg)
	}

	ops, problems := h.snapshot()
	for _, p := range problems {
		t.Errorf("problem: %s", p)
	}
	t.Logf("%s", summarize(ops))
	writeHistory(filepath.Join(dir, "history.txt"), ops)
	checkLinearizable(t, ops, dir, seed, tl)
	if t.Failed() {
		t.Logf("timeline:\n%s", tl)
	}
}

// converge waits until every node reports the same applied index and
// digest.
func converge(c *cluster, limit time.Duration) (term uint64, err error) {
	client := &http.Client{Timeout: time.Second}
	var last []string
	same := func() bool {
		last = last[:0]
		term = 0
		var first statusReply
		agree := true
		for i, nd := range c.nodes {
			st, err := nd.status(client)
			if err != nil {
				last = append(last, fmt.Sprintf("%s: %v", nd.id, err))
				agree = false
				continue
			}
			last = append(last, fmt.Sprintf("%s: %s term %d leader %q commit %d applied %d keys %d digest %s %s",
				nd.id, st.Role, st.Term, st.Leader, st.Commit, st.Applied, st.Keys, st.Digest, st.Error))
			term = max(term, st.Term)
			if i == 0 {
				first = st
			} else if st.Applied != first.Applied || st.Digest != first.Digest {
				agree = false
			}
			if st.Error != "" {
				agree = false
			}
		}
		return agree
	}
	if !eventually(limit, 100*time.Millisecond, same) {
		return 0, fmt.Errorf("nodes did not converge within %v:\n  %s", limit, strings.Join(last, "\n  "))
	}
	return term, nil
}

// checkLinearizable checks the history with porcupine (see
// porcupineHistory) and, if it is not linearizable, writes porcupine's
// visualisation into dir.
func checkLinearizable(t *testing.T, ops []op, dir string, seed uint64, tl *timeline) {
	hist := porcupineHistory(ops)
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, hist, *flagCheck)
	t.Logf("porcupine: %s for %d operations in %v", res, len(hist), time.Since(began).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide within %v (%d operations); seed %d; run directory %s", *flagCheck, len(hist), seed, dir)
		return
	}
	path := filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		path = fmt.Sprintf("(visualisation failed: %v)", err)
	}
	tl.add("NOT LINEARIZABLE: see %s", path)
	t.Errorf("the history of %d operations is NOT LINEARIZABLE (seed %d): porcupine's visualisation is %s; node logs, timeline.txt and history.txt are in %s",
		len(hist), seed, path, dir)
}

// porcupineHistory turns the client operations into porcupine's history:
// failed operations are left out, and so are reads whose outcome is
// unknown; a write whose outcome is unknown may have taken effect at any
// time after its call, so its return is the end of the history and its
// output is ignored.
func porcupineHistory(ops []op) []porcupine.Operation {
	var end time.Duration
	for _, o := range ops {
		end = max(end, o.ret)
	}
	end += time.Second
	var hist []porcupine.Operation
	for _, o := range ops {
		ret, out := o.ret, o.output
		switch o.state {
		case opFailed:
			continue
		case opUnknown:
			if o.input.Kind == opGet {
				continue
			}
			ret, out = end, kvOutput{Unknown: true}
		}
		hist = append(hist, porcupine.Operation{ClientId: o.client, Input: o.input, Call: int64(o.call), Output: out, Return: int64(ret)})
	}
	return hist
}

func summarize(ops []op) string {
	count := map[string]int{}
	for _, o := range ops {
		count[o.input.Kind.String()+" "+o.state.String()]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d operations:", len(ops))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, count[k])
	}
	return b.String()
}

func writeHistory(path string, ops []op) {
	var b strings.Builder
	for _, o := range ops {
		fmt.Fprintf(&b, "%10.6f %10.6f client %-4d %-7s %-8s %-40s -> %-8s %q [%s]\n",
			o.call.Seconds(), o.ret.Seconds(), o.client, o.node, o.input.Kind, o.input.Key+" "+o.input.Value, o.state, o.output.Value, o.detail)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeBallast writes bytes of large values under keys ballast/NNN, which
// the clients never touch: part of every snapshot from then on, so that
// an install takes long enough for the nemesis to hit it (see
// snapshotFlags). The writes are recorded in a history of their own,
// which is not checked: no one reads these keys.
func writeBallast(t *testing.T, servers []string, seed uint64, bytes int, tl *timeline) {
	if bytes <= 0 {
		return
	}
	h := &history{start: tl.start}
	cl := newClient(2000, h, servers, seed)
	defer cl.close()
	value := strings.Repeat("b", ballastValue)
	began := time.Now()
	n := (bytes + ballastValue - 1) / ballastValue
	for i := range n {
		key := fmt.Sprintf("ballast/%03d", i)
		if _, err := cl.until(30*time.Second, func() kvInput { return kvInput{Kind: opPut, Key: key, Value: value} }); err != nil {
			t.Fatalf("ballast: put %s: %v\n%s", key, err, tl)
		}
	}
	if _, problems := h.snapshot(); len(problems) > 0 {
		t.Fatalf("ballast: %s", strings.Join(problems, "; "))
	}
	tl.add("ballast: %d values of %d KiB written in %v", n, ballastValue>>10, time.Since(began).Round(time.Millisecond))
}
