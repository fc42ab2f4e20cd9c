package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// build writes a WAL of 30 entries over 4 KiB segments in a temporary
// directory, the first segment dropped (its file kept for reuse), and
// returns the directory and its last segment.
func build(t *testing.T) (dir, last string) {
	dir = t.TempDir()
	w, err := logmgr.OpenWAL(vfs.OS, dir, logmgr.WALOptions{SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 30; i++ {
		if err := w.Append([]*raftpb.Entry{{Index: i, Term: 1, Data: bytes.Repeat([]byte("x"), 300)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.TruncatePrefix(13); err != nil {
		t.Fatal(err)
	}
	w.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	return dir, names[len(names)-1]
}

func runTool(t *testing.T, cmd, dir string) (int, string) {
	var out bytes.Buffer
	code := run(&out, cmd, dir)
	return code, out.String()
}

func TestTool(t *testing.T) {
	dir, last := build(t)
	code, out := runTool(t, "dump", dir)
	if code != 0 || !strings.Contains(out, "log: entries 13-30") || !strings.Contains(out, "batch index=30-30 entries=1 lastterm=1 len=") ||
		!strings.Contains(out, "recycled file recycle-0.wal.tmp") || !strings.Contains(out, "segment               ver") {
		t.Fatalf("dump of a clean WAL: exit %d\n%s", code, out)
	}
	if code, out := runTool(t, "check", dir); code != 0 || strings.Contains(out, "index=") {
		t.Fatalf("check of a clean WAL: exit %d\n%s", code, out)
	}

	// Tear the last record: reported, nothing modified, exit 0.
	b, _ := os.ReadFile(last)
	end := bytes.LastIndexByte(b, 'x') + 1
	torn := bytes.Clone(b)
	torn[end-1] ^= 1
	os.WriteFile(last, torn, 0o644)
	code, out = runTool(t, "check", dir)
	if code != 0 || !strings.Contains(out, "torn tail: "+last) {
		t.Fatalf("check of a torn WAL: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(last); !bytes.Equal(after, torn) {
		t.Fatal("check modified the WAL")
	}

	// Damage the first segment: exit 1, naming the file and offset.
	os.WriteFile(last, b, 0o644)
	first := filepath.Join(dir, "000000000000000d.wal")
	b, _ = os.ReadFile(first)
	b[200] ^= 1
	os.WriteFile(first, b, 0o644)
	code, out = runTool(t, "check", dir)
	if code != 1 || !strings.Contains(out, "CORRUPT: "+first+" at offset") {
		t.Fatalf("check of a corrupt WAL: exit %d\n%s", code, out)
	}
}
