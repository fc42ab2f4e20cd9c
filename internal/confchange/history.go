package confchange

import (
	"fmt"
	"sort"
)

// History is the configurations along a log, by index: the one in force
// at an index is the newest at or before it. A node uses a configuration
// as soon as its entry is in the log (appended, not committed), so a
// truncation of the log's suffix rolls back the configurations it held,
// and compaction forgets those older than the one in force at the first
// index still needed (a snapshot's, which carries it).
//
// The zero History is empty; a node starts it with its bootstrap
// configuration at index 0, or with its snapshot's at the snapshot's
// index.
type History struct {
	at []versioned // by increasing index
}

type versioned struct {
	index uint64
	cfg   Config
}

// Append records cfg as in force from index on. index must be above the
// newest recorded one (entries are appended in order; a truncation comes
// first).
func (h *History) Append(index uint64, cfg Config) error {
	if n := len(h.at); n > 0 && index <= h.at[n-1].index {
		return fmt.Errorf("confchange: configuration at %d appended after one at %d", index, h.at[n-1].index)
	}
	h.at = append(h.at, versioned{index, cfg})
	return nil
}

// Truncate forgets the configurations at index from and after (the log
// lost those entries); the one before, if any, is in force again.
func (h *History) Truncate(from uint64) {
	i := sort.Search(len(h.at), func(i int) bool { return h.at[i].index >= from })
	clear(h.at[i:])
	h.at = h.at[:i]
}

// Reset replaces the history with cfg in force from index: a snapshot
// installed or loaded at index, carrying cfg.
func (h *History) Reset(index uint64, cfg Config) {
	clear(h.at)
	h.at = append(h.at[:0], versioned{index, cfg})
}

// Compact forgets the configurations no index at or after first can need:
// it keeps the newest at or before first and every one after it.
func (h *History) Compact(first uint64) {
	i := sort.Search(len(h.at), func(i int) bool { return h.at[i].index > first }) - 1
	if i > 0 {
		n := copy(h.at, h.at[i:])
		clear(h.at[n:])
		h.at = h.at[:n]
	}
}

// At returns the configuration in force at index and the index of its
// entry; ok is false if none is recorded at or before index.
func (h *History) At(index uint64) (cfg Config, from uint64, ok bool) {
	i := sort.Search(len(h.at), func(i int) bool { return h.at[i].index > index }) - 1
	if i < 0 {
		return Config{}, 0, false
	}
	return h.at[i].cfg, h.at[i].index, true
}

// Latest returns the newest configuration and the index of its entry; ok
// is false for an empty History.
func (h *History) Latest() (cfg Config, index uint64, ok bool) {
	if len(h.at) == 0 {
		return Config{}, 0, false
	}
	v := h.at[len(h.at)-1]
	return v.cfg, v.index, true
}

// Len is the number of configurations recorded.
func (h *History) Len() int { return len(h.at) }

// All yields the configurations recorded, oldest first, with the index of
// each one's entry.
func (h *History) All(yield func(index uint64, cfg Config) bool) {
	for _, v := range h.at {
		if !yield(v.index, v.cfg) {
			return
		}
	}
}
