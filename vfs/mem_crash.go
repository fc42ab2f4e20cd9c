package vfs

import (
	"bytes"
	"cmp"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"syscall"
	"time"
)

// Crash simulates power loss: every directory's namespace reverts to its
// state at its last SyncDir, every file's content reverts to its state at
// its last Sync, every File handle and lock opened before the crash becomes
// dead (its methods return an error wrapping ErrCrashed) and all locks are
// released. Directories themselves are unaffected (they are durable at
// once). Injector and observer stay installed.
func (m *MemFS) Crash() { m.crash(nil) }

// CrashTorn is like Crash, except that each file with writes or
// truncations pending since its last Sync keeps a random prefix of them
// (possibly none, possibly all) applied on top of its durable content, and
// the last operation kept, if a write, may be torn: only a random prefix of
// its bytes (possibly zero bytes) reaches the disk. The outcome is then
// durable. Files are visited in creation order, so the same r (in the same
// state) gives the same result. Only files that still have a durable name
// after the crash draw from r. With clocks (see SetClock), only the writes
// and truncations issued by the time of the crash can reach the disk: an
// actor busy into the future has not issued the later ones yet.
func (m *MemFS) CrashTorn(r *rand.Rand) {
	if r == nil {
		panic("vfs: CrashTorn with nil *rand.Rand")
	}
	m.crash(r)
}

func (m *MemFS) crash(r *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clock != nil {
		// Syncs complete by now are durable; the others never completed.
		m.promote(m.present(), false)
		clear(m.inflight)
		m.inflight = m.inflight[:0]
	}
	m.epoch++
	clear(m.locks)
	var inodes []*inode
	seen := map[*inode]bool{}
	for _, d := range m.dirs { // order irrelevant: inodes are sorted below
		d.entries = maps.Clone(d.durable)
		for _, n := range d.durable {
			if !seen[n] {
				seen[n] = true
				inodes = append(inodes, n)
			}
		}
	}
	// Inodes with no durable name are unreachable from now on; forget them.
	slices.SortFunc(inodes, func(a, b *inode) int { return cmp.Compare(a.id, b.id) })
	now := time.Duration(-1) // every pending operation was issued
	if m.clock != nil {
		now = m.present()
	}
	for _, n := range inodes {
		n.crash(r, now)
	}
}

// issued is the virtual time at which an operation made now is issued:
// the issuer's time with clocks, zero without. m.mu must be held.
func (m *MemFS) issued() time.Duration {
	if m.clock == nil {
		return 0
	}
	return m.clock()
}

// crash discards the pending operations, first applying a torn prefix of
// them to the durable content if r is non-nil: of those issued by now
// (all of them if now is negative).
func (n *inode) crash(r *rand.Rand, now time.Duration) {
	issued := n.pending
	if now >= 0 {
		issued = nil
		for _, op := range n.pending {
			if op.at <= now {
				issued = append(issued, op)
			}
		}
	}
	if r != nil && len(issued) > 0 {
		keep := r.IntN(len(issued) + 1)
		for i, op := range issued[:keep] {
			if i == keep-1 && !op.trunc && r.IntN(2) == 0 {
				op.data = op.data[:r.IntN(len(op.data))] // writes are non-empty
			}
			n.durable = op.apply(n.durable)
		}
	}
	clear(n.pending)
	n.pending = n.pending[:0]
	n.data = append(n.data[:0], n.durable...)
}

// SyncAll makes the whole current state durable, as if every file and
// every directory were synced. It bypasses the injector and observer; it
// is meant for setting up tests.
func (m *MemFS) SyncAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.promote(-1, true)
	for _, d := range m.dirs {
		d.durable = maps.Clone(d.entries)
		for _, n := range d.entries {
			n.sync()
		}
	}
}

// ReadFile returns a copy of the current content of the file name. It
// bypasses the injector and observer.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := clean(name)
	if !ok {
		return nil, pathErr("open", name, syscall.ENOENT)
	}
	n, errno := m.lookupFile(p)
	if errno != 0 {
		return nil, pathErr("open", name, errno)
	}
	return bytes.Clone(n.data), nil
}

// WriteFile creates or truncates the file name and writes data to it, like
// os.WriteFile. Neither the content nor the name is made durable (see
// SyncAll). It bypasses the injector and observer.
func (m *MemFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.openLocked(name, openWrite|openCreate|openTrunc)
	if err != nil {
		return err
	}
	_, err = f.writeAt("write", data, 0)
	return err
}

// Paths returns the current paths of all files (not directories), sorted.
func (m *MemFS) Paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var paths []string
	for dir, d := range m.dirs {
		for base := range d.entries {
			paths = append(paths, path.Join(dir, base))
		}
	}
	slices.Sort(paths)
	return paths
}

// SetClock makes syncs take time. With clocks, a Sync or SyncDir takes
// effect only at the time issuer() reads when the call returns — after the
// observer has run, so a simulator that charges the sync's latency to the
// calling actor moves that time forward — and a crash keeps only the syncs
// complete by present(), the time at which it happens. issuer may run
// ahead of present: a simulated actor doing I/O is busy into the future.
// Without clocks (the default, or nil ones) a sync takes effect at once.
func (m *MemFS) SetClock(issuer, present func() time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.promote(-1, true)
	if issuer == nil || present == nil {
		m.clock, m.present = nil, nil
		return
	}
	m.clock, m.present = issuer, present
}

// completeSync stamps sp with its completion time and promotes what has
// completed by the present.
func (m *MemFS) completeSync(sp *syncPoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clock == nil {
		return
	}
	sp.at = m.clock()
	m.promote(m.present(), false)
}

// promote applies the in-flight syncs complete by now (all of them if
// all), in the order issued. A later sync of a file covers everything an
// earlier one of that file did, so completing it completes those too.
// m.mu must be held.
func (m *MemFS) promote(now time.Duration, all bool) {
	keep := m.inflight[:0]
	for i, sp := range m.inflight {
		if !all && (sp.at < 0 || sp.at > now) {
			keep = append(keep, sp)
			continue
		}
		if sp.dir != nil {
			sp.dir.durable = sp.snap
			continue
		}
		ino := sp.ino
		upTo := min(sp.upTo, len(ino.pending))
		for _, op := range ino.pending[:upTo] {
			ino.durable = op.apply(ino.durable)
		}
		ino.pending = append(ino.pending[:0], ino.pending[upTo:]...)
		for _, other := range m.inflight[i+1:] {
			if other.ino == ino {
				other.upTo -= upTo
			}
		}
		for _, earlier := range keep {
			if earlier.ino == ino {
				earlier.upTo = 0 // subsumed
			}
		}
	}
	clear(m.inflight[len(keep):])
	m.inflight = keep
}

// Wipe loses everything, as a replaced disk would: every file and
// directory but the roots is gone, durable or not, and every File handle
// and lock opened before becomes dead (as after Crash). Injector, observer
// and clock stay installed.
func (m *MemFS) Wipe() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	clear(m.locks)
	clear(m.inflight)
	m.inflight = m.inflight[:0]
	m.dirs = map[string]*memDir{"/": newMemDir(0o755), ".": newMemDir(0o755)}
}
