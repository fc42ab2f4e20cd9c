package asyncraft_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// BenchmarkHostIdle1000 is the footprint of a host holding 1,000 small
// groups with their logs on disk: it starts 1,000 single-member groups on
// one host with a data directory, applies 20 commands in each, and
// reports the process's resident memory, the Go heap, the open file
// descriptors, the goroutines and the disk space of the data directory,
// all after the groups went idle. A member of a real group holds the same
// actors and files (its replicators aside). Select it explicitly, once
// per process:
//
//	go test -run '^$' -bench HostIdle1000 -benchtime 1x .
func BenchmarkHostIdle1000(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "HostIdle1000") {
		b.Skip("starts 1,000 groups: select it with -bench HostIdle1000")
	}
	if hostIdleRan {
		b.Skip("measures the process's growth from a fresh start: run it once per process (-count 1, -benchtime 1x)")
	}
	hostIdleRan = true
	const groups = 1000
	for range b.N {
		dir := b.TempDir()
		fdsBefore, rssBefore := countFDs(b), rssBytes(b)
		host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, DataDir: dir, TickInterval: 50 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		peers := []asyncraft.Peer{{ID: "a", Addr: "local"}}
		nodes := make([]*asyncraft.Node, groups)
		for g := range nodes {
			if nodes[g], err = host.StartNode(asyncraft.NodeOptions{
				Group: fmt.Sprintf("g%04d", g), ID: "a", Peers: peers, StateMachine: &counter{},
			}); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		for _, n := range nodes {
			for range 20 {
				if _, err := n.ApplyWait(ctx, []byte("x")); err != nil {
					b.Fatalf("%s: %v", n.Group(), err)
				}
			}
		}
		cancel()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, fds := rssBytes(b)-rssBefore, countFDs(b)-fdsBefore
		goroutines := runtime.NumGoroutine()
		disk := diskBytes(b, dir)
		if err := host.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss)/(1<<20), "MiB-RSS")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(fds), "fds")
		b.ReportMetric(float64(goroutines), "goroutines")
		b.ReportMetric(float64(disk)/(1<<20), "MiB-disk")
	}
}

// hostIdleRan is set once BenchmarkHostIdle1000 has run in this process:
// a second run would start from the first one's memory and descriptors.
var hostIdleRan bool

// countFDs is the number of file descriptors the process has open.
func countFDs(b *testing.B) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(es)
}

// rssBytes is the process's resident set size (VmRSS).
func rssBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// diskBytes is the disk space the files under dir take (allocated blocks).
func diskBytes(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}
