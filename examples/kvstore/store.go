package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// Op is what a command does to its key.
type Op string

const (
	OpGet    Op = "get"
	OpPut    Op = "put"
	OpDelete Op = "del"
	OpAppend Op = "append"
)

// Command is one entry of the replicated log: an operation on one key.
// Reads are commands too, so that a read is ordered with the writes around
// it (linearizable).
//
// A put or an append carries the limits of the node that proposed it (see
// Limits): every replica enforces the limits written in the entry, not its
// own flags. The limit fields were added after the first version of the
// format; an entry without them (zero) has no limits.
type Command struct {
	Op    Op     `codec:"op"`
	Key   string `codec:"key"`
	Value string `codec:"value,omitempty"`
	Limits
}

// Limits bound what a put or an append may leave in the store; zero is no
// limit. Deletes and reads are never refused, and the store's limit never
// refuses a put or an append that does not make the store larger (so that
// a store over a lowered limit can shrink).
//
// The leader writes its limits (its -max-* flags) into each command, and
// OnApply checks them against the store as it stands at that entry. The
// decision to refuse an entry is thus a function of the log alone: every
// replica takes the same one, whatever flags it runs with, and a replay
// after a restart takes it again. (Checking each node's own flags would
// let two nodes with different flags diverge.)
type Limits struct {
	// MaxKeyBytes bounds the key of a put or an append (at most
	// maxKeyBytes, the bound of any key).
	MaxKeyBytes int64 `codec:"maxk,omitempty"`
	// MaxValueBytes bounds the value a put or an append leaves.
	MaxValueBytes int64 `codec:"maxv,omitempty"`
	// MaxStoreBytes bounds the store's size, Stats.Bytes: the sum over the
	// keys of entrySize.
	MaxStoreBytes int64 `codec:"maxs,omitempty"`
}

// Errors of a refused put or append (Result.Refused wraps one of them).
var (
	ErrKeyTooLarge   = errors.New("key too large")
	ErrValueTooLarge = errors.New("value too large")
	ErrStoreFull     = errors.New("store full")
)

// entryOverhead is counted with each key in the store's size, for the map
// entry, its hash and the strings' headers: without it a flood of keys with
// empty values would fill memory while the size stayed small. It is part of
// the replicated behaviour (it decides which entries are refused), like
// everything OnApply does: changing it changes the outcome of a replay.
const entryOverhead = 64

// entrySize is what a key and its value count in the store's size.
func entrySize(keyLen, valueLen int) int64 {
	return int64(keyLen) + int64(valueLen) + entryOverhead
}

// check returns nil if a put or an append may leave a value of newLen
// bytes at a key of keyLen bytes, in a store of size total where the key
// now holds oldLen bytes (found: it exists). The same function decides on
// the leader before proposing (Store.Check) and in OnApply.
func (l Limits) check(keyLen int, found bool, oldLen, newLen int, total int64) error {
	if l.MaxKeyBytes > 0 && int64(keyLen) > l.MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrKeyTooLarge, keyLen, l.MaxKeyBytes)
	}
	if l.MaxValueBytes > 0 && int64(newLen) > l.MaxValueBytes {
		return fmt.Errorf("%w: the value would be %d bytes, over the limit of %d", ErrValueTooLarge, newLen, l.MaxValueBytes)
	}
	grown := total + entrySize(keyLen, newLen)
	if found {
		grown -= entrySize(keyLen, oldLen)
	}
	if l.MaxStoreBytes > 0 && grown > l.MaxStoreBytes && grown > total {
		return fmt.Errorf("%w: the store would be %d bytes, over the limit of %d", ErrStoreFull, grown, l.MaxStoreBytes)
	}
	return nil
}

// Result is what the state machine hands back to the proposer of a
// command (through Iterator.SetResult).
type Result struct {
	// Value is the key's value after the command (for a get: its value).
	Value string
	// Found: the key existed before the command (get, del) or after it
	// (put, append).
	Found bool
	// Index is the log index the command was applied at.
	Index uint64
	// Err is set when the entry is not a valid command (never written by
	// this program; the state machine skips such an entry).
	Err string
	// Refused is set when a put or an append would break its limits: the
	// command had no effect, and Value and Found describe the key as it
	// is. It wraps ErrKeyTooLarge, ErrValueTooLarge or ErrStoreFull.
	Refused error
}

// mh is the msgpack handle for commands. A handle must not be changed
// once in use; it is safe for concurrent use.
var mh = &codec.MsgpackHandle{}

// maxKeyBytes bounds any key, in every command; Limits.MaxKeyBytes may
// bound the keys of puts and appends further.
const maxKeyBytes = 1024

// Encode returns c's msgpack encoding.
func (c Command) Encode() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var b []byte
	if err := codec.NewEncoderBytes(&b, mh).Encode(c); err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand decodes and validates a command. It never panics, whatever
// b holds.
func DecodeCommand(b []byte) (c Command, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = Command{}, fmt.Errorf("decode command: %v", p)
		}
	}()
	if len(b) == 0 {
		return Command{}, errors.New("decode command: empty entry")
	}
	if err := codec.NewDecoderBytes(b, mh).Decode(&c); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	return c, c.validate()
}

func (c Command) validate() error {
	switch c.Op {
	case OpGet, OpPut, OpDelete, OpAppend:
	default:
		return fmt.Errorf("unknown operation %q", c.Op)
	}
	return validKey(c.Key)
}

// Store is the replicated state machine: a map of strings. OnApply runs on
// the node's FSM caller; the HTTP handlers read concurrently (Get, Stats,
// Check).
//
// Beside the map, OnApply keeps the store's statistics up to date: key
// count, size (see entrySize) and an order-independent digest, the sum of
// a hash of each key and value. Stats reads them in O(1), so GET /status
// costs the same whatever the size of the store, and never holds the lock
// for longer than a copy of four integers.
type Store struct {
	fsm.Base
	id  string
	log *slog.Logger

	// mu guards the fields below. OnApply holds it for writing one entry
	// at a time, so readers wait for at most one entry.
	mu   sync.RWMutex
	data map[string]entry
	// applied is the index of the last entry applied.
	applied uint64
	// bytes = Σ entrySize(key, value) over data.
	bytes int64
	// digest = Σ entryDigest(key, e.h) over data (mod 2^64).
	digest uint64
}

// entry is a value and the running FNV-1a hash of key‖value: an append
// hashes only the bytes it adds.
type entry struct {
	v string
	h uint64
}

// NewStore returns an empty store for node id.
func NewStore(id string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{id: id, log: log, data: map[string]entry{}}
}

// OnApply applies committed commands in log order. An entry that is not a
// valid command is skipped (with an error result): a panic here would put
// the node in error.
func (s *Store) OnApply(it fsm.Iterator) {
	for it.Next() {
		c, err := DecodeCommand(it.Data())
		s.mu.Lock()
		s.applied = it.Index()
		var res Result
		if err != nil {
			res = Result{Index: it.Index(), Err: err.Error()}
		} else {
			res = s.apply(c, it.Index())
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Error("kvstore: skipping an invalid log entry", "index", it.Index(), "err", err)
		}
		it.SetResult(res)
	}
}

// apply applies c; s.mu is held.
func (s *Store) apply(c Command, index uint64) Result {
	old, found := s.data[c.Key]
	switch c.Op {
	case OpGet:
		return Result{Value: old.v, Found: found, Index: index}
	case OpDelete:
		if found {
			s.remove(c.Key, old)
		}
		return Result{Found: found, Index: index}
	}
	// A put or an append.
	newLen := len(c.Value)
	if c.Op == OpAppend {
		newLen += len(old.v)
	}
	if err := c.Limits.check(len(c.Key), found, len(old.v), newLen, s.bytes); err != nil {
		return Result{Value: old.v, Found: found, Index: index, Refused: err}
	}
	e := entry{v: c.Value, h: fnvString(fnvOffset, c.Key)}
	if c.Op == OpAppend && found {
		e = entry{v: old.v + c.Value, h: old.h}
	}
	e.h = fnvString(e.h, c.Value)
	if found {
		s.remove(c.Key, old)
	}
	s.data[c.Key] = e
	s.bytes += entrySize(len(c.Key), len(e.v))
	s.digest += entryDigest(c.Key, e.h)
	return Result{Value: e.v, Found: true, Index: index}
}

// remove deletes key, which holds e; s.mu is held.
func (s *Store) remove(key string, e entry) {
	delete(s.data, key)
	s.bytes -= entrySize(len(key), len(e.v))
	s.digest -= entryDigest(key, e.h)
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// entryDigest is a key's term in the store's digest: h, the FNV-1a hash
// of key‖value, with the key's length mixed in (so that "ab"="c" and
// "a"="bc" differ), through the splitmix64 finalizer (so that the sum of
// the terms does not inherit FNV's near-linearity).
func entryDigest(key string, h uint64) uint64 {
	x := h ^ (uint64(len(key)) * 0x9e3779b97f4a7c15)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Get reads a key from this node's state machine, which may lag behind
// the group (a linearizable read calls it after a read barrier).
func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.data[key]
	return e.v, ok
}

// Check tells whether a put (or an append, if appending) of a value of
// valueLen bytes at key would be refused under lim, were it applied now. The
// leader calls it before proposing, to refuse at once what OnApply would
// refuse; OnApply still decides, on the state the entry finds.
func (s *Store) Check(lim Limits, key string, appending bool, valueLen int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	old, found := s.data[key]
	newLen := valueLen
	if appending {
		newLen += len(old.v)
	}
	return lim.check(len(key), found, len(old.v), newLen, s.bytes)
}

// Stats describes the state machine. Nodes that applied the same entries
// have equal stats (Digest included; equal digests: equal maps, but for a
// 64-bit hash collision).
type Stats struct {
	Applied uint64
	Keys    int
	// Bytes is the store's size as the limits count it: Σ over the keys of
	// len(key) + len(value) + entryOverhead.
	Bytes  int64
	Digest uint64
}

// Stats returns the store's statistics in O(1).
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Applied: s.applied, Keys: len(s.data), Bytes: s.bytes, Digest: s.digest}
}

func (s *Store) OnLeaderStart(term uint64) {
	s.log.Info("kvstore: leading", "id", s.id, "term", term)
}

func (s *Store) OnLeaderStop(st closure.Status) {
	s.log.Info("kvstore: stopped leading", "id", s.id, "status", st.String())
}

func (s *Store) OnStartFollowing(c fsm.LeaderChange) {
	s.log.Info("kvstore: following", "id", s.id, "leader", c.Leader, "term", c.Term)
}

func (s *Store) OnError(err error) {
	s.log.Error("kvstore: the node is in error", "id", s.id, "err", err)
}

// validKey accepts non-empty UTF-8 keys of at most maxKeyBytes bytes.
func validKey(k string) error {
	switch {
	case k == "":
		return errors.New("empty key")
	case len(k) > maxKeyBytes:
		return fmt.Errorf("key of %d bytes exceeds %d", len(k), maxKeyBytes)
	case !utf8.ValidString(k):
		return errors.New("key is not valid UTF-8")
	}
	return nil
}
