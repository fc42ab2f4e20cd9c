// Package snapshot is the on-disk snapshot store: a directory of
// snapshots of a state machine, each written in a temporary directory and
// made durable and visible at once by a rename, each checked by checksums
// when it is read. It also holds the two actors that move snapshots: the
// snapshot executor (Executor), which persists the state machine's
// captures into the store, and its child the copy actor (Copier), which
// serves a leader's snapshots to followers and installs a leader's
// snapshot on a follower (see "Installing a snapshot" below, and
// messages.go for every message).
//
//	st, err := snapshot.Open(fsys, dir, snapshot.Options{Keep: 3, Logger: logger})
//	w, err := st.Create(&raftpb.SnapshotMeta{LastIndex: i, LastTerm: t, Configuration: conf})
//	_, err = w.Write(state)            // as many times as needed: the size need not be known
//	f, err := w.AddFile("sst-000001")  // optional extra files; Close each
//	meta, err := w.Commit()            // or w.Abort()
//
//	r, err := st.OpenNewest()          // or st.Open(index, term)
//	_, err = io.Copy(dst, r)           // err wraps ErrCorrupt if the data does not check out
//	r.Close()
//
// # Directory format
//
// A store's directory holds one directory per snapshot, named after the
// term and the index of the last entry the snapshot covers, as 16
// lower-case hex digits each, and the temporary directories of snapshots
// being written or removed:
//
//	snap-0000000000000003-0000000000004e20/
//	    data          the state machine's bytes (possibly empty)
//	    sst-000001    extra files, if the state machine hands any over
//	    MANIFEST      written last
//	snap-0000000000000004-0000000000009c40/
//	tmp-7/            a snapshot being written (or removed)
//	part-0000000000000005-000000000000ea60/
//	                  a snapshot being received from the leader (below)
//
// Snapshots are ordered by index, then term. Other entries in the
// directory are left alone. An extra file's name is not empty, ".",
// "data", "MANIFEST", "PROGRESS" or "PROGRESS.tmp" (the last two are a
// partial download's), and holds neither "/" nor "..".
//
// The MANIFEST is a frame around a raftpb.SnapshotMeta:
//
//	+------------+-------------+------------+--------------------+------------+
//	| "asnapmf\0"| version u32 | length u32 | SnapshotMeta       | crc32c u32 |
//	|  8 bytes   | = 1         |            | (length bytes)     |            |
//	+------------+-------------+------------+--------------------+------------+
//	  little endian; the crc32c (Castagnoli) covers every byte before it
//
// The SnapshotMeta holds the index, the term and the configuration the
// snapshot was created with, the size and CRC-32C of data (data_size,
// data_crc32c), and the name, size and CRC-32C of each extra file
// (files). A MANIFEST whose frame, checksum or message does not check out,
// that names another index or term than its directory, or whose files
// are missing or of another size than it records, makes the snapshot
// damaged.
//
// # Writing, and what a crash leaves
//
// Create makes tmp-<n>/ and data in it; Write and AddFile write the files.
// Commit then:
//
//  1. syncs and closes data and every extra file (AddFile's Close does it
//     for a file closed earlier);
//  2. writes MANIFEST and syncs it;
//  3. syncs tmp-<n>/, so that the names of the files in it are durable;
//  4. renames tmp-<n>/ to snap-<term>-<index>/;
//  5. syncs the store's directory, so that the rename is durable;
//  6. prunes (below).
//
// A crash before step 4 leaves a tmp-* directory, with any part of the
// snapshot in it: Open removes every tmp-* directory, and logs it. A crash
// after step 4 leaves either the tmp-* directory (the rename did not reach
// the disk) or the complete snapshot: every file, the MANIFEST included,
// and every name in the directory were durable before the rename. So a
// snapshot directory with its final name is always complete, and Commit
// returns only once it is durable. A snapshot is never changed in place.
//
// Removing a snapshot renames it to a tmp-* directory first and syncs the
// store's directory, then removes its files: a crash part way leaves a
// tmp-* directory that Open removes, never a snapshot with files missing.
//
// # Opening, and damage
//
// Open removes the tmp-* directories, then reads every snapshot's
// MANIFEST and checks the sizes of its files (not their checksums, which
// would mean reading every snapshot whole; see Verify). A snapshot that
// does not check out cannot come from a crash under the protocol above:
// it is damage (a bad disk, an operator's hand, a bug). It is logged at
// WARN, left out of List and reported by Damaged. It is removed only once
// a newer valid snapshot exists, by Open or a later pruning; while none
// does it is kept, since it may be the only copy of the state. So when the
// newest snapshot is damaged, the one before becomes the newest, with a
// log line saying so; when no valid snapshot is left, nothing is deleted,
// List is empty and OpenNewest fails with ErrNotFound naming the damaged
// snapshots. An I/O error while checking (other than a missing file) is
// not damage: Open fails with it, and removes nothing.
//
// # Reading
//
// A Reader's Read, and the reader of an extra file, count the bytes and
// their CRC-32C as they go, and at the end return io.EOF only if both are
// the MANIFEST's: otherwise an error wrapping ErrCorrupt (also as soon as
// a file turns out longer than recorded). A consumer that reads to io.EOF
// has therefore checked everything it read; it must not act on what it read
// before then.
//
// # Retention and pinning
//
// After each Commit (and at Open, and on Prune), the store keeps the newest
// Options.Keep valid snapshots (default 3) and removes the older ones,
// except those that are pinned: Pin(index, term) returns an unpin func,
// and while any pin is held the snapshot is not removed (a leader must not
// lose the snapshot it is sending to a follower). An open Reader holds a
// pin too. A snapshot that pruning skipped because of a pin is removed by
// the first Commit or Prune after its last unpin.
//
// # Installing a snapshot
//
// A leader whose follower needs entries it compacted away sends it a
// snapshot, from its copy actor to the follower's. The follower pulls:
//
//  1. The leader's replicator sends Offer to its copy actor, which pins
//     the newest valid snapshot for a session of that peer and answers
//     Offered with the snapshot's meta (the manifest), which the
//     replicator sends in an InstallSnapshotRequest.
//  2. The follower's node sends Fetch with that meta to its copy actor,
//     which checks the manifest (an index and a term, file names an extra
//     file may have, each once, sizes within CopyConfig.MaxSnapshotBytes)
//     before it creates anything.
//  3. The follower's copy actor sends SnapshotFetch envelopes for
//     ChunkSize bytes at a time, at most Window outstanding, to the
//     leader's copy actor, which reads the bytes at that offset
//     (Store.OpenSource, Source.ReadAt) and answers SnapshotChunk. A
//     chunk is matched to its fetch by file and offset, so lost,
//     repeated and reordered chunks do no harm; a fetch unanswered for
//     FetchTimeout is sent again. Chunks are written in order, so memory
//     holds at most Window × ChunkSize bytes, whatever the snapshot's size.
//  4. Each file's CRC-32C, computed over the bytes written, must be the
//     manifest's when the file is complete; then the download is
//     committed into the store (below) and the node told Fetched.
//
// The leader does not check the CRC-32Cs of what it sends (it reads
// pieces in any order); the follower checks every byte, and a mismatch
// fails the fetch with ErrCorrupt before anything is replaced. A Throttle
// shared by the copy actors of a host caps the bytes it serves per
// second: a chunk over the budget is answered later, from a timer.
//
// # Partial downloads
//
// The follower writes into part-<term>-<index>/, which holds:
//
//	MANIFEST      the leader's manifest, written (and synced) first
//	data, ...     the files, in transfer order: data, then the extra
//	              files in the manifest's order
//	PROGRESS      how far they are durable
//
// PROGRESS is a fixed frame, rewritten at every checkpoint:
//
//	+------------+-------------+-----------+----------+-------------+------------+------------+
//	| "asnappg\0"| version u32 | index u64 | term u64 | segment u32 | offset u64 | crc32c u32 |
//	|  8 bytes   | = 1         |           |          |             |            |            |
//	+------------+-------------+-----------+----------+-------------+------------+------------+
//	  little endian; the crc32c (Castagnoli) covers every byte before it
//
// It says the files before number segment (0 is data) are complete and
// the first offset bytes of that one are durable. A checkpoint, every
// CopyConfig.SyncBytes written and when a fetch ends without failing on
// a checksum, syncs the file being written, writes PROGRESS.tmp, syncs
// it, renames it to PROGRESS and syncs the directory (making the names of
// the files created since durable too). A complete file is synced and
// closed at once.
//
// Resuming a download (a Fetch of the same index and term, with an equal
// manifest, from any leader) reads PROGRESS, checks every complete file
// against the manifest, cuts the file being written to the recorded
// offset and reads that prefix back to compute its CRC-32C; then it
// fetches from there. A missing or damaged PROGRESS resumes from the
// start; another manifest, a complete file that does not check out, or a
// file shorter than PROGRESS says start afresh.
//
// Committing a complete download removes PROGRESS, syncs the directory,
// renames it to snap-<term>-<index>/ and syncs the store's directory,
// then prunes as Writer.Commit does: a crash leaves either the snapshot,
// complete, or the download (which, without PROGRESS, is fetched again
// from the start). The store keeps one download at a time: starting one
// removes the others. Open keeps the newest download unless a valid
// snapshot as new or newer exists, and removes the others.
//
// # Errors
//
// I/O errors are returned wrapped with the operation and the path; none
// panics. A Writer whose write failed fails its Commit and removes its
// temporary directory. Every method of a Writer after Commit or Abort, and
// of a Reader after Close, returns an error wrapping ErrClosed.
//
// The store assumes it is the only one using its directory (the host locks
// its data directory).
package snapshot
