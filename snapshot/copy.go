package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Installing a snapshot on a follower moves it from the leader's store to
// the follower's, between two copy actors, one per node: the follower's
// pulls (SnapshotFetch), the leader's answers (SnapshotChunk).
//
// Why the follower pulls: it knows what it has (a partial download from
// an earlier attempt, resumed after a crash or a change of leader), it
// bounds its own memory (a window of chunks), and it alone can tell when
// to ask again for a chunk lost on the way. The leader's side is
// stateless per chunk: any fetch of a pinned snapshot can be answered in
// any order, any number of times. The alternative, the leader pushing
// chunks with acknowledgements, would put the follower's disk state and
// the flow control on the side that knows neither.
//
// Why a child of the executor: the executor runs the state machine's
// Persist, which may block for long; a transfer behind it would stall.
// The copy actor does disk I/O (reads on the leader, writes and fsyncs on
// the follower), so it is spawned Blocking too, but it never runs user
// code.

// Defaults and limits of CopyConfig.
const (
	// DefaultChunkSize is how many bytes a follower asks for per
	// SnapshotFetch.
	DefaultChunkSize = 256 << 10
	// DefaultMaxChunkSize caps the bytes a leader sends per SnapshotChunk.
	DefaultMaxChunkSize = 1 << 20
	// MaxChunkLimit bounds both: half the remote transport's default
	// message size, leaving room for the envelope.
	MaxChunkLimit = 2 << 20
	// DefaultWindow is how many SnapshotFetch requests a follower keeps
	// outstanding.
	DefaultWindow = 4
	// DefaultFetchTimeout is how long a follower waits for a chunk before
	// asking again.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultStallTimeout is how long a fetch goes on with no chunk at all
	// before it fails (ErrStalled).
	DefaultStallTimeout = time.Minute
	// DefaultServeIdleTimeout is how long a leader keeps a serving session
	// that sees no fetch.
	DefaultServeIdleTimeout = 30 * time.Second
	// DefaultSyncBytes is how many bytes a follower writes between two
	// checkpoints of its partial download (fsync and PROGRESS).
	DefaultSyncBytes = 4 << 20
)

// CopyChild is the copy actor's name under its executor: a node's copy
// actor is <group>/<id>/snap/copy.
const CopyChild = "copy"

// CopyName returns the name of the copy actor of the executor named
// executor (node.SnapshotterName(group, id)).
func CopyName(executor string) string { return executor + "/" + CopyChild }

var (
	// ErrSourceGone is wrapped by FetchFailed's error when the leader
	// answers that it no longer serves the snapshot (it was withdrawn,
	// expired or never offered to this node).
	ErrSourceGone = errors.New("snapshot: the leader no longer serves this snapshot")
	// ErrStale is wrapped by FetchFailed's error for a snapshot older than
	// the newest one the store holds.
	ErrStale = errors.New("snapshot: older than the newest snapshot held")
	// ErrStalled is wrapped by FetchFailed's error when no chunk arrived
	// for CopyConfig.StallTimeout.
	ErrStalled = errors.New("snapshot: the fetch made no progress")
	// ErrCanceled is wrapped by FetchFailed's error for a fetch ended by
	// CancelFetch, by a Fetch of another snapshot, or by the actor
	// stopping.
	ErrCanceled = errors.New("snapshot: fetch canceled")
	// ErrBadMeta is wrapped by FetchFailed's error for a manifest no
	// snapshot can have (no index, bad or repeated file names, sizes over
	// CopyConfig.MaxSnapshotBytes).
	ErrBadMeta = errors.New("snapshot: invalid manifest")
)

// CopyConfig configures a node's copy actor.
type CopyConfig struct {
	// Store is the node's snapshot store (the executor's).
	Store *Store
	// Node receives Fetched and FetchFailed.
	Node actors.Ref
	// Group, ID and Cluster are the node's group, its id and the
	// cluster identity: stamped on the envelopes it sends, and checked on
	// those it receives (others are dropped and counted).
	Group   string
	ID      string
	Cluster uint64
	// Throttle caps the bytes served per second, shared by all the copy
	// actors of the host. Nil: no cap.
	Throttle *Throttle
	// ChunkSize is how many bytes a fetch asks for at a time (default
	// DefaultChunkSize); MaxChunkSize caps what a chunk served holds
	// (default DefaultMaxChunkSize). Both are at most MaxChunkLimit. A
	// shorter answer than asked is fine: the follower asks for the rest.
	ChunkSize    int
	MaxChunkSize int
	// Window is how many fetches are outstanding at once (default
	// DefaultWindow). A fetch buffers at most Window × ChunkSize bytes.
	Window int
	// FetchTimeout: a fetch unanswered for that long is sent again
	// (default DefaultFetchTimeout). StallTimeout: a fetch that received
	// nothing for that long fails with ErrStalled (default
	// DefaultStallTimeout; at least FetchTimeout).
	FetchTimeout time.Duration
	StallTimeout time.Duration
	// ServeIdleTimeout ends a serving session that saw no fetch for that
	// long (default DefaultServeIdleTimeout).
	ServeIdleTimeout time.Duration
	// SyncBytes is how many bytes a fetch writes between two checkpoints
	// of its download (default DefaultSyncBytes): what a crash can cost.
	SyncBytes int64
	// MaxSnapshotBytes is the largest snapshot (data and files) a fetch
	// accepts (default DefaultMaxSnapshotBytes).
	MaxSnapshotBytes uint64
	// Stats, if set, counts the transfers (one Stats per copy actor:
	// Progress is its current fetch's).
	Stats  *Stats
	Logger *slog.Logger
}

func (cfg CopyConfig) withDefaults() (CopyConfig, error) {
	if cfg.Store == nil {
		return cfg, errors.New("snapshot: CopyConfig.Store is required")
	}
	if cfg.Group == "" || cfg.ID == "" {
		return cfg, fmt.Errorf("snapshot: CopyConfig: Group %q and ID %q are required", cfg.Group, cfg.ID)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.ChunkSize, DefaultChunkSize)
	def(&cfg.MaxChunkSize, DefaultMaxChunkSize)
	def(&cfg.Window, DefaultWindow)
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = max(DefaultStallTimeout, cfg.FetchTimeout)
	}
	if cfg.ServeIdleTimeout == 0 {
		cfg.ServeIdleTimeout = DefaultServeIdleTimeout
	}
	if cfg.SyncBytes == 0 {
		cfg.SyncBytes = DefaultSyncBytes
	}
	if cfg.MaxSnapshotBytes == 0 {
		cfg.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	switch {
	case cfg.ChunkSize < 1 || cfg.ChunkSize > MaxChunkLimit:
		return cfg, fmt.Errorf("snapshot: CopyConfig.ChunkSize %d: must be in [1, %d]", cfg.ChunkSize, MaxChunkLimit)
	case cfg.MaxChunkSize < 1 || cfg.MaxChunkSize > MaxChunkLimit:
		return cfg, fmt.Errorf("snapshot: CopyConfig.MaxChunkSize %d: must be in [1, %d]", cfg.MaxChunkSize, MaxChunkLimit)
	case cfg.Window < 1 || cfg.Window > 256:
		return cfg, fmt.Errorf("snapshot: CopyConfig.Window %d: must be in [1, 256]", cfg.Window)
	case cfg.FetchTimeout < 0 || cfg.ServeIdleTimeout < 0 || cfg.SyncBytes < 0:
		return cfg, errors.New("snapshot: CopyConfig: negative timeout or SyncBytes")
	case cfg.StallTimeout < cfg.FetchTimeout:
		return cfg, fmt.Errorf("snapshot: CopyConfig.StallTimeout %v: shorter than FetchTimeout %v", cfg.StallTimeout, cfg.FetchTimeout)
	}
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Stats counts a copy actor's transfers. Fields are updated atomically
// and may be read at any time, from any goroutine.
type Stats struct {
	// Serving (leader).
	//
	// Offers counts the sessions opened, OfferFailures the Offers
	// refused; SessionsExpired the sessions ended by ServeIdleTimeout.
	Offers, OfferFailures, SessionsExpired atomic.Uint64
	// ChunksSent and BytesSent count the chunks served with data;
	// MissingSent the answers saying the snapshot is not served;
	// Throttled the chunks the throttle delayed.
	ChunksSent, BytesSent, MissingSent, Throttled atomic.Uint64

	// Fetching (follower).
	//
	// Fetches counts the fetches started (a resumed one too); Installed
	// those that ended in a committed snapshot; FetchFailures those that
	// failed, Corrupt among them those whose bytes did not match the
	// manifest.
	Fetches, Installed, FetchFailures, Corrupt atomic.Uint64
	// BytesReceived counts the bytes of chunks accepted; BytesResumed the
	// bytes found durable in a partial download when a fetch resumed it.
	BytesReceived, BytesResumed atomic.Uint64
	// ChunksRefetched counts the fetches sent again after FetchTimeout or
	// to a new leader; ChunksDuplicate the chunks that matched no
	// outstanding fetch (duplicates, late answers).
	ChunksRefetched, ChunksDuplicate atomic.Uint64
	// MaxBuffered is the most bytes a fetch ever held in memory, received
	// and not yet written (at most Window × ChunkSize).
	MaxBuffered atomic.Uint64

	// Dropped counts the envelopes dropped unread: of another cluster,
	// group or node, malformed, or fetches over the serving backlog.
	Dropped atomic.Uint64

	progress atomic.Pointer[Progress]
}

// Progress is where the current fetch stands.
type Progress struct {
	// ID is the snapshot being fetched, from Leader.
	ID     ID
	Leader string
	// Done counts the bytes written (data and files, in transfer order)
	// of Total.
	Done, Total uint64
}

// Progress returns where the current fetch stands, and false when none
// runs.
func (s *Stats) Progress() (Progress, bool) {
	if p := s.progress.Load(); p != nil {
		return *p, true
	}
	return Progress{}, false
}

// Copier is the copy actor of a node (<group>/<id>/snap/copy): it serves
// the node's snapshots to followers while the node leads, and fetches the
// leader's snapshot while it follows. It owns the serving sessions (one
// per peer, each pinning a snapshot) and the current fetch (at most one,
// with its partial download in the store).
//
// It accepts Offer and Withdraw (from the node's replicators), Fetch and
// CancelFetch (from the node), and raftpb.Envelopes carrying
// SnapshotFetch or SnapshotChunk (from peers' copy actors). It sends
// Offered and OfferFailed to an Offer's Reply, Fetched and FetchFailed to
// CopyConfig.Node, SnapshotChunk envelopes to a session's peer and
// SnapshotFetch envelopes to the leader of the current fetch. See
// messages.go.
//
// Spawn it Blocking, as the executor's child (ExecutorConfig.Copier): it
// reads, writes and syncs files.
type Copier struct {
	cfg   CopyConfig
	stats *Stats
	log   *slog.Logger

	// Serving: sessions by peer; peers remembers the copy actors of the
	// peers offered to, to answer their fetches after a session ended.
	sessions map[string]*session
	peers    []peerRef
	gen      uint64 // numbers sessions and fetches, so stale timers are ignored

	// Fetching.
	fetch *fetch
	seq   uint64 // of the SnapshotFetch envelopes sent
}

// NewCopier returns a copy actor for cfg, with the defaults filled in, or
// an error saying which option is wrong.
func NewCopier(cfg CopyConfig) (*Copier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Copier{cfg: cfg, stats: cfg.Stats, log: cfg.Logger, sessions: map[string]*session{}}, nil
}

// Stats returns the actor's counters.
func (c *Copier) Stats() *Stats { return c.stats }

// Receive implements actors.Actor.
func (c *Copier) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		// Seqs start at a random point, so that the answers to a previous
		// incarnation's fetches are unlikely to pass for this one's.
		c.seq = env.Rand().Uint64() >> 8
	case Offer:
		c.onOffer(env, m)
	case Withdraw:
		if s := c.sessions[m.Peer]; s != nil {
			c.endSession(s, "withdrawn")
		}
	case idleCheck:
		c.onIdleCheck(env, m)
	case serveLater:
		c.onServeLater(env, m)
	case Fetch:
		c.onFetch(env, m)
	case CancelFetch:
		if c.fetch != nil {
			c.endFetch(env, fmt.Errorf("%w by the node", ErrCanceled), true)
		}
	case fetchTick:
		c.onFetchTick(env, m)
	case *raftpb.Envelope:
		c.onEnvelope(env, m)
	case actors.Stopped:
		for _, s := range c.sortedSessions() {
			c.endSession(s, "stopped")
		}
		if c.fetch != nil {
			c.endFetch(env, fmt.Errorf("%w: the copy actor stopped", ErrCanceled), true)
		}
	}
}

// onEnvelope admits an envelope from a peer and hands its body over.
func (c *Copier) onEnvelope(env actors.Env, e *raftpb.Envelope) {
	if e == nil || e.Cluster != c.cfg.Cluster || e.Group != c.cfg.Group || e.To != c.cfg.ID {
		c.drop("an envelope of another cluster, group or node", e)
		return
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_SnapshotFetch:
		if b.SnapshotFetch == nil {
			c.drop("an empty fetch", e)
			return
		}
		c.onSnapshotFetch(env, e, b.SnapshotFetch)
	case *raftpb.Envelope_SnapshotChunk:
		if b.SnapshotChunk == nil {
			c.drop("an empty chunk", e)
			return
		}
		c.onSnapshotChunk(env, e, b.SnapshotChunk)
	default:
		c.drop("an envelope that is neither a fetch nor a chunk", e)
	}
}

func (c *Copier) drop(why string, e *raftpb.Envelope) {
	c.stats.Dropped.Add(1)
	if e != nil && c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("snapshot: dropped "+why, "envelope", e.TraceString())
	}
}

// envelope returns an envelope of the group from this node to to.
func (c *Copier) envelope(to string, term, seq uint64) *raftpb.Envelope {
	return &raftpb.Envelope{Group: c.cfg.Group, From: c.cfg.ID, To: to, Term: term, Seq: seq, Cluster: c.cfg.Cluster}
}
