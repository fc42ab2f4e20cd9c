// Command asyncraft-wal inspects an asyncraft write-ahead log directory
// without modifying it (files are opened read-only).
//
//	asyncraft-wal dump DIR    segments, index ranges, one line per record
//	asyncraft-wal check DIR   segments, index ranges, damage
//
// Both report a torn tail (what opening the WAL would zero) without
// treating it as an error. Exit status: 0 when the WAL would open, 1 on
// mid-log corruption or any other error (with the file and offset), 2 on
// bad usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/vfs"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "dump" && os.Args[1] != "check") {
		fmt.Fprintln(os.Stderr, "usage: asyncraft-wal {dump|check} DIR")
		os.Exit(2)
	}
	os.Exit(run(os.Stdout, os.Args[1], os.Args[2]))
}

func run(out io.Writer, cmd, dir string) int {
	fmt.Fprintf(out, "dir %s\n", dir)
	var visit func(logmgr.WALRecord)
	if cmd == "dump" {
		fmt.Fprintln(out, "records (live segments, in log order):")
		visit = func(r logmgr.WALRecord) { fmt.Fprintln(out, "  "+formatRecord(r)) }
	}
	rep, err := logmgr.InspectWAL(vfs.OS, dir, visit)
	report(out, rep)
	if err != nil {
		var ce *logmgr.WALCorruptError
		if errors.As(err, &ce) {
			fmt.Fprintf(out, "CORRUPT: %s at offset %d is not a valid record, but %s at offset %d is: the WAL will not open\n",
				ce.Segment, ce.Offset, ce.ValidSegment, ce.ValidOffset)
		} else {
			fmt.Fprintf(out, "ERROR: %v\n", err)
		}
		return 1
	}
	fmt.Fprintln(out, "ok")
	return 0
}

func formatRecord(r logmgr.WALRecord) string {
	head := fmt.Sprintf("%s @%d %s", r.Segment, r.Offset, r.Type)
	switch r.Type.String() {
	case "entry":
		return fmt.Sprintf("%s index=%d term=%d len=%d", head, r.Index, r.Term, r.Len)
	case "batch":
		return fmt.Sprintf("%s index=%d-%d entries=%d lastterm=%d len=%d", head, r.Index, r.Index+uint64(r.Entries)-1, r.Entries, r.Term, r.Len)
	case "truncate":
		return fmt.Sprintf("%s from=%d", head, r.Index)
	case "segment":
		return fmt.Sprintf("%s first=%d prevterm=%d seq=%d reset=%v", head, r.Index, r.Term, r.Seq, r.Reset)
	}
	return fmt.Sprintf("%s len=%d", head, r.Len)
}

func report(out io.Writer, rep *logmgr.WALReport) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "segment\tver\tfirst\tprevterm\tseq\tsize\tdata\trecords\tentries\tstate")
	for _, s := range rep.Segments {
		state, entries := "live", "-"
		switch {
		case !s.Live:
			state = "dead (superseded; recycled or removed on open)"
		case s.Reset:
			state = "live (reset)"
		}
		if s.Live && s.LastEntry >= s.FirstEntry && s.Records > 0 {
			entries = fmt.Sprintf("%d-%d", s.FirstEntry, s.LastEntry)
		}
		data, records := "-", "-"
		if s.Records > 0 {
			data, records = fmt.Sprint(s.DataBytes), fmt.Sprint(s.Records)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Version, s.First, s.PrevTerm, s.Seq, s.Size, data, records, entries, state)
	}
	tw.Flush()
	if rep.LastIndex >= rep.FirstIndex {
		fmt.Fprintf(out, "log: entries %d-%d (%d), term before the first %d\n", rep.FirstIndex, rep.LastIndex, rep.LastIndex-rep.FirstIndex+1, rep.PrevTerm)
	} else {
		fmt.Fprintf(out, "log: empty, next index %d, term before it %d\n", rep.FirstIndex, rep.PrevTerm)
	}
	for _, t := range rep.Temporary {
		fmt.Fprintf(out, "leftover temporary file %s (removed on open)\n", t)
	}
	for _, r := range rep.Recycled {
		fmt.Fprintf(out, "recycled file %s (kept for reuse as a later segment)\n", r)
	}
	if t := rep.Torn; t != nil {
		fmt.Fprintf(out, "torn tail: %s at offset %d, %d bytes (opening the WAL zeroes them)\n", t.Segment, t.Offset, t.Bytes)
	}
}
