package logmgr

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// ent builds one entry whose data names its index and term, so that a
// misplaced entry is easy to spot.
func ent(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Index: index, Term: term, Data: fmt.Appendf(nil, "e%d.t%d", index, term)}
}

// ents builds the entries [lo, hi) of term.
func ents(lo, hi, term uint64) []*raftpb.Entry {
	out := make([]*raftpb.Entry, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, ent(i, term))
	}
	return out
}

// randEnts builds n entries from index lo with random types and data
// (sometimes empty, sometimes a few hundred bytes).
func randEnts(r *rand.Rand, lo uint64, n int, term uint64) []*raftpb.Entry {
	out := make([]*raftpb.Entry, n)
	for i := range out {
		var data []byte
		switch r.IntN(4) {
		case 0: // empty
		case 1:
			data = make([]byte, r.IntN(400))
		default:
			data = make([]byte, r.IntN(40))
		}
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		out[i] = &raftpb.Entry{Index: lo + uint64(i), Term: term, Type: raftpb.EntryType(r.IntN(3)), Data: data}
	}
	return out
}

// sameEntry compares the fields of two entries (nil and empty data are the
// same, as they are on the wire).
func sameEntry(a, b *raftpb.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

func diffEntries(got, want []*raftpb.Entry) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d entries %s, want %d %s", len(got), summary(got), len(want), summary(want))
	}
	for i := range got {
		if !sameEntry(got[i], want[i]) {
			return fmt.Errorf("entry #%d: got %v, want %v", i, got[i], want[i])
		}
	}
	return nil
}

// summary renders entries as index/term pairs.
func summary(es []*raftpb.Entry) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i == 8 && len(es) > 10 {
			fmt.Fprintf(&b, "... (%d more) ", len(es)-9)
			e = es[len(es)-1]
		}
		fmt.Fprintf(&b, "%d/%d", e.Index, e.Term)
		if i == 8 && len(es) > 10 {
			break
		}
	}
	b.WriteByte(']')
	return b.String()
}

// checkStorage compares every read of s with the oracle log want (entries
// 1..len(want)).
func checkStorage(s LogStorage, want []*raftpb.Entry) error {
	last := uint64(len(want))
	if got := s.FirstIndex(); got != 1 {
		return fmt.Errorf("FirstIndex = %d, want 1", got)
	}
	if got := s.LastIndex(); got != last {
		return fmt.Errorf("LastIndex = %d, want %d", got, last)
	}
	for i := uint64(0); i <= last; i++ {
		wantTerm := uint64(0)
		if i > 0 {
			wantTerm = want[i-1].Term
		}
		if got, err := s.Term(i); err != nil || got != wantTerm {
			return fmt.Errorf("Term(%d) = %d, %v; want %d", i, got, err, wantTerm)
		}
	}
	if _, err := s.Term(last + 1); !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("Term(%d) past the end: err %v, want ErrUnavailable", last+1, err)
	}
	got, err := s.Entries(1, last+1, ^uint64(0))
	if err != nil {
		return fmt.Errorf("Entries(1, %d): %v", last+1, err)
	}
	if err := diffEntries(got, want); err != nil {
		return fmt.Errorf("Entries(1, %d): %v", last+1, err)
	}
	return nil
}

// oracle is the trivial model of a log: a slice of entries 1..n.
type oracle []*raftpb.Entry

func (o oracle) append(es []*raftpb.Entry) oracle {
	return append(o[:len(o):len(o)], es...)
}

func (o oracle) truncate(from uint64) oracle { return o[: from-1 : from-1] }

func (o oracle) lastTerm() uint64 {
	if len(o) == 0 {
		return 0
	}
	return o[len(o)-1].Term
}

// recordSize is the number of bytes one record takes in the WAL's framing
// holding m.
func recordSize(m proto.Message) int64 { return recHeader + int64(proto.Size(m)) }

// quietLogger drops everything (the WAL warns about repaired tails, which
// the crash tests cause on purpose).
var quietLogger = slog.New(slog.DiscardHandler)
