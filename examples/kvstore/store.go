package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
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
type Command struct {
	Op    Op     `codec:"op"`
	Key   string `codec:"key"`
	Value string `codec:"value,omitempty"`
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
}

// mh is the msgpack handle for commands. A handle must not be changed
// once in use; it is safe for concurrent use.
var mh = &codec.MsgpackHandle{}

// maxKeyBytes bounds a key; values are bounded by the HTTP layer.
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
// the node's FSM caller; the mutex is for readers (status).
type Store struct {
	fsm.Base
	id  string
	log *slog.Logger

	mu      sync.Mutex
	data    map[string]string
	applied uint64
}

// NewStore returns an empty store for node id.
func NewStore(id string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{id: id, log: log, data: map[string]string{}}
}

// OnApply applies committed commands in log order. An entry that is not a
// valid command is skipped (with an error result): a panic here would put
// the node in error.
func (s *Store) OnApply(it fsm.Iterator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for it.Next() {
		s.applied = it.Index()
		c, err := DecodeCommand(it.Data())
		if err != nil {
			s.log.Error("kvstore: skipping an invalid log entry", "index", it.Index(), "err", err)
			it.SetResult(Result{Index: it.Index(), Err: err.Error()})
			continue
		}
		it.SetResult(s.apply(c, it.Index()))
	}
}

func (s *Store) apply(c Command, index uint64) Result {
	old, found := s.data[c.Key]
	switch c.Op {
	case OpGet:
		return Result{Value: old, Found: found, Index: index}
	case OpPut:
		s.data[c.Key] = c.Value
		return Result{Value: c.Value, Found: true, Index: index}
	case OpAppend:
		s.data[c.Key] = old + c.Value
		return Result{Value: old + c.Value, Found: true, Index: index}
	default: // OpDelete
		delete(s.data, c.Key)
		return Result{Found: found, Index: index}
	}
}

// Get reads a key from this node's state machine, which may lag behind
// the group (for -stale-reads only).
func (s *Store) Get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// Snapshot returns the last applied index, the number of keys and a digest
// of the whole map (equal on nodes that applied the same entries).
func (s *Store) Snapshot() (applied uint64, keys int, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := make([]string, 0, len(s.data))
	for k := range s.data {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	h := fnv.New64a()
	for _, k := range ks {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(s.data[k]), s.data[k])
	}
	return s.applied, len(ks), fmt.Sprintf("%016x", h.Sum64())
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
