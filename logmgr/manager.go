package logmgr

import (
	"log/slog"
	"sync/atomic"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Config configures a log manager.
type Config struct {
	Storage LogStorage
	Meta    MetaStorage
	// Node receives Stable, HardStateSaved, Failed and Closed.
	Node actors.Ref
	// MaxBatchEntries and MaxBatchBytes cap one write (group commit).
	// Defaults: 4096 entries, 4 MiB.
	MaxBatchEntries int
	MaxBatchBytes   uint64
	// Stats, if set, is updated as writes complete.
	Stats  *Stats
	Logger *slog.Logger
}

// Stats counts the log manager's work. Fields are updated atomically and
// may be read at any time.
type Stats struct {
	// Writes is the number of batches written (each ending in one sync
	// when it touched the log).
	Writes atomic.Uint64
	// Entries is the number of entries written.
	Entries atomic.Uint64
	// MaxBatch is the largest number of entries written in one batch.
	MaxBatch atomic.Uint64
}

// Manager is the log manager actor. It owns the storage (through its disk
// writer child) and the queue of operations not yet handed to the writer.
//
// Group commit: at most one batch is at the disk writer at a time; what
// arrives meanwhile queues up and becomes the next batch, up to
// MaxBatchEntries and MaxBatchBytes. So the busier the node, the more
// entries each sync covers.
//
// Accepts Append, TruncateSuffix, TruncatePrefix, Reset, SaveHardState and
// Close from the node; sends it Stable, HardStateSaved, Failed and Closed.
type Manager struct {
	cfg      Config
	writer   actors.Ref
	queue    []op
	inflight bool
	closing  bool
	failed   bool
}

// NewManager returns a log manager actor for cfg.
func NewManager(cfg Config) *Manager {
	if cfg.MaxBatchEntries <= 0 {
		cfg.MaxBatchEntries = 4096
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg}
}

// Receive implements actors.Actor.
func (m *Manager) Receive(env actors.Env, msg any) {
	switch msg := msg.(type) {
	case actors.Started:
		ref, err := env.Spawn("disk", &diskWriter{manager: env.Self(), storage: m.cfg.Storage, meta: m.cfg.Meta}, actors.Blocking())
		if err != nil {
			m.fail(env, err)
			return
		}
		m.writer = ref
	case Append:
		if len(msg.Entries) > 0 {
			m.enqueue(env, op{kind: opAppend, entries: msg.Entries})
		}
	case TruncateSuffix:
		m.enqueue(env, op{kind: opTruncate, from: msg.From})
	case TruncatePrefix:
		m.enqueue(env, op{kind: opTruncatePrefix, from: msg.First})
	case Reset:
		m.enqueue(env, op{kind: opReset, from: msg.Next, term: msg.Term})
	case SaveHardState:
		m.enqueue(env, op{kind: opHardState, hs: msg.HardState})
	case writeDone:
		m.inflight = false
		m.cfg.Stats.Writes.Add(1)
		m.cfg.Stats.Entries.Add(uint64(msg.entries))
		if uint64(msg.entries) > m.cfg.Stats.MaxBatch.Load() {
			m.cfg.Stats.MaxBatch.Store(uint64(msg.entries))
		}
		if msg.err != nil {
			m.fail(env, msg.err)
			m.flush(env) // a Close received meanwhile still closes
			return
		}
		if msg.hs != nil {
			env.Send(m.cfg.Node, HardStateSaved{HardState: msg.hs})
		}
		env.Send(m.cfg.Node, Stable{Index: msg.index, Term: msg.term})
		m.flush(env)
	case Close:
		m.closing = true
		m.flush(env)
	case storageClosed:
		if msg.err != nil {
			m.cfg.Logger.Warn("asyncraft: closing log storage", "err", msg.err)
		}
		env.Send(m.cfg.Node, Closed{})
	}
}

func (m *Manager) enqueue(env actors.Env, o op) {
	if m.failed || m.closing {
		return
	}
	m.queue = append(m.queue, o)
	m.flush(env)
}

// flush hands the next batch to the writer if it is idle. Once the
// manager has failed it writes nothing more, but a Close still closes the
// storage and is answered.
func (m *Manager) flush(env actors.Env) {
	if m.inflight {
		return
	}
	if m.failed || len(m.queue) == 0 {
		if m.closing {
			m.inflight = true // nothing may follow
			if m.writer.IsZero() {
				// The disk writer never started: close here.
				w := diskWriter{manager: env.Self(), storage: m.cfg.Storage, meta: m.cfg.Meta}
				w.Receive(env, closeStorage{})
				return
			}
			env.Send(m.writer, closeStorage{})
		}
		return
	}
	batch := m.take()
	m.inflight = true
	env.Send(m.writer, writeBatch{ops: batch})
}

// take removes the next batch from the queue, splitting an append that
// would exceed the caps.
func (m *Manager) take() []op {
	var (
		batch   []op
		entries int
		bytes   uint64
	)
	for len(m.queue) > 0 {
		o := m.queue[0]
		if o.kind == opAppend {
			room := m.cfg.MaxBatchEntries - entries
			n := 0
			for n < len(o.entries) && n < room && (n == 0 && entries == 0 || bytes+entrySize(o.entries[n]) <= m.cfg.MaxBatchBytes) {
				bytes += entrySize(o.entries[n])
				n++
			}
			if n == 0 {
				break
			}
			entries += n
			if n < len(o.entries) {
				batch = append(batch, op{kind: opAppend, entries: o.entries[:n:n]})
				m.queue[0].entries = o.entries[n:]
				break
			}
		}
		batch = append(batch, o)
		m.queue[0] = op{}
		m.queue = m.queue[1:]
	}
	if len(m.queue) == 0 {
		m.queue = nil
	}
	return batch
}

func (m *Manager) fail(env actors.Env, err error) {
	if m.failed {
		return
	}
	m.failed = true
	m.queue = nil
	m.cfg.Logger.Error("asyncraft: log storage failed; the node stops", "err", err)
	env.Send(m.cfg.Node, Failed{Err: err})
}

// diskWriter is the log manager's child that performs batches. It is the
// only actor that blocks on the log's disk.
type diskWriter struct {
	manager actors.Ref
	storage LogStorage
	meta    MetaStorage
	ents    []*raftpb.Entry // scratch: consecutive appends merged
}

func (w *diskWriter) Receive(env actors.Env, msg any) {
	switch msg := msg.(type) {
	case writeBatch:
		env.Send(w.manager, w.write(msg.ops))
	case closeStorage:
		err := w.storage.Close()
		if err2 := w.meta.Close(); err == nil {
			err = err2
		}
		env.Send(w.manager, storageClosed{err: err})
	}
}

// write performs ops in order, merging consecutive appends into one
// Append (one write: with direct writes, each Append is a durable write of
// its own), then syncs the log if it was touched.
func (w *diskWriter) write(ops []op) writeDone {
	var done writeDone
	logTouched := false
	for i, o := range ops {
		var err error
		switch o.kind {
		case opHardState:
			err = w.meta.Save(o.hs)
			done.hs = o.hs
		case opTruncate:
			err = w.storage.TruncateSuffix(o.from)
			logTouched = true
		case opTruncatePrefix:
			// Durable on its own (the storage syncs what came before it);
			// what it drops is covered by a snapshot, so a crash that
			// undoes it loses nothing.
			err = w.storage.TruncatePrefix(o.from)
		case opReset:
			err = w.storage.Reset(o.from, o.term) // durable on its own
			logTouched = true
		case opAppend:
			done.entries += len(o.entries)
			logTouched = true
			if i+1 < len(ops) && ops[i+1].kind == opAppend {
				w.ents = append(w.ents, o.entries...)
				continue
			}
			ents := o.entries
			if len(w.ents) > 0 { // the end of a run of appends
				w.ents = append(w.ents, o.entries...)
				ents = w.ents
			}
			err = w.storage.Append(ents)
			clear(w.ents)
			w.ents = w.ents[:0]
		}
		if err != nil {
			done.err = err
			return done
		}
	}
	if logTouched {
		if err := w.storage.Sync(); err != nil {
			done.err = err
			return done
		}
	}
	done.index = w.storage.LastIndex()
	done.term, done.err = w.storage.Term(done.index)
	return done
}
