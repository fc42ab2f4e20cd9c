package logmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/asyncraft/asyncraft/raftpb"
)

// logModel is the reference for a log with prefix truncation and reset: it
// remembers every entry since the last reset, because a storage may keep
// entries before the first index asked for (FirstIndex may be anywhere in
// [start, compact]). Values are never modified in place: the methods
// return new models, so that old ones can be kept as crash states.
type logModel struct {
	start    uint64 // first index after the last reset (1 at first)
	prevTerm uint64 // term of entry start-1
	ents     []*raftpb.Entry
	compact  uint64 // the largest first passed to TruncatePrefix, at least start
}

func newModel() logModel { return logModel{start: 1, compact: 1} }

func (m logModel) last() uint64 { return m.start + uint64(len(m.ents)) - 1 }

func (m logModel) term(i uint64) uint64 {
	if i == 0 {
		return 0
	}
	if i == m.start-1 {
		return m.prevTerm
	}
	return m.ents[i-m.start].Term
}

func (m logModel) lastTerm() uint64 { return m.term(m.last()) }

func (m logModel) appended(es []*raftpb.Entry) logModel {
	m.ents = append(m.ents[:len(m.ents):len(m.ents)], es...)
	return m
}

func (m logModel) truncated(from uint64) logModel {
	n := from - m.start
	m.ents = m.ents[:n:n]
	return m
}

func (m logModel) compacted(first uint64) logModel {
	m.compact = max(m.compact, first)
	return m
}

func (m logModel) reset(next, term uint64) logModel {
	return logModel{start: next, prevTerm: term, compact: next}
}

// appendStates returns the states after each entry of es in turn: a torn
// batch keeps a prefix of its records.
func (m logModel) appendStates(es []*raftpb.Entry) []logModel {
	out := make([]logModel, len(es))
	for i := range es {
		out[i] = m.appended(es[:i+1])
	}
	return out
}

func (m logModel) String() string {
	return fmt.Sprintf("{start %d prevTerm %d compact %d last %d/%d}", m.start, m.prevTerm, m.compact, m.last(), m.lastTerm())
}

// check compares every read of s with the model. exact requires FirstIndex
// to be exactly the compaction point (MemoryStorage drops
// exactly what they are asked to); otherwise it may be anywhere from the
// reset point to it.
func (m logModel) check(s LogStorage, exact bool) error {
	last := m.last()
	if got := s.LastIndex(); got != last {
		return fmt.Errorf("LastIndex = %d, want %d (model %v)", got, last, m)
	}
	first := s.FirstIndex()
	lo, hi := m.start, min(m.compact, last+1)
	if exact {
		lo = hi
	}
	if first < lo || first > hi {
		return fmt.Errorf("FirstIndex = %d, want within [%d, %d] (model %v)", first, lo, hi, m)
	}
	for i := first - 1; i <= last+1; i++ {
		got, err := s.Term(i)
		if i > last {
			if !errors.Is(err, ErrUnavailable) {
				return fmt.Errorf("Term(%d) past the end: %d, %v; want ErrUnavailable", i, got, err)
			}
			continue
		}
		if err != nil || got != m.term(i) {
			return fmt.Errorf("Term(%d) = %d, %v; want %d (model %v)", i, got, err, m.term(i), m)
		}
	}
	if first >= 3 {
		if _, err := s.Term(first - 2); !errors.Is(err, ErrCompacted) {
			return fmt.Errorf("Term(%d) before FirstIndex %d: err %v, want ErrCompacted", first-2, first, err)
		}
	}
	if got, err := s.Term(0); err != nil || got != 0 {
		return fmt.Errorf("Term(0) = %d, %v", got, err)
	}
	if first > 1 {
		if _, err := s.Entries(first-1, last+1, ^uint64(0)); !errors.Is(err, ErrCompacted) {
			return fmt.Errorf("Entries(%d, ...) before FirstIndex %d: err %v, want ErrCompacted", first-1, first, err)
		}
	}
	got, err := s.Entries(first, last+1, ^uint64(0))
	if err != nil {
		return fmt.Errorf("Entries(%d, %d): %v", first, last+1, err)
	}
	if err := diffEntries(got, m.ents[first-m.start:]); err != nil {
		return fmt.Errorf("Entries(%d, %d): %v (model %v)", first, last+1, err, m)
	}
	return nil
}

// checkRange compares a random Entries call with a byte cap.
func (m logModel) checkRange(r *rand.Rand, s LogStorage) error {
	first, last := s.FirstIndex(), m.last()
	if first > last {
		return nil
	}
	lo := first + r.Uint64N(last-first+1)
	hi := lo + r.Uint64N(last-lo+2)
	maxBytes := r.Uint64N(2000)
	got, err := s.Entries(lo, hi, maxBytes)
	if err != nil {
		return fmt.Errorf("Entries(%d, %d, %d): %v", lo, hi, maxBytes, err)
	}
	want := m.ents[lo-m.start : hi-m.start]
	if err := diffEntries(got, want[:prefixWithin(want, maxBytes)]); err != nil {
		return fmt.Errorf("Entries(%d, %d, %d): %v", lo, hi, maxBytes, err)
	}
	return nil
}

// matchState returns the index of the first state s matches, or -1.
func matchState(s LogStorage, states []logModel) int {
	for i, st := range states {
		if st.check(s, false) == nil {
			return i
		}
	}
	return -1
}
