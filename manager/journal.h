/* SPDX-License-Identifier: MIT */
/*
 * journal.h - the manager's write-ahead journal and its snapshots.
 *
 * Contract. Every change to durable state (queues, the key/value store,
 * jobs) is a record appended to the journal before the request that
 * made it is acknowledged. A snapshot is a file of records that rebuild
 * the live state; after one is written the journal starts again empty, so
 * the files stay proportional to the live state, not to its history. On
 * start the manager replays the snapshot, then the journal:
 *
 *   - a torn or corrupt tail of the journal (a crash in the middle of a
 *     write, a flipped bit) is cut at the last good record; the cut and its
 *     offset are reported, and the manager starts;
 *   - a snapshot that does not verify from its header to its end record,
 *     or a journal whose header does not, is refused: the manager does not
 *     start (an empty queue in place of a damaged one would lose data
 *     silently).
 *
 * Files (created 0666 less the umask: jobqd's keeps them to the instance's
 * user, or group). FILE (DIR/journal, or --journal FILE) is the journal;
 * FILE.snap the snapshot; FILE.tmp and FILE.snap.tmp are being written and mean
 * nothing after a crash; FILE.spare (--fsync none) is an older journal kept
 * to be the next one, and means nothing either. Both files start with a
 * header:
 *
 *   magic[8] u32 version  u32 kind  u64 generation  u64 seq0  u32 0  u32 crc
 *
 * crc is the CRC-32C of the 36 bytes before it. A snapshot of generation N
 * holds the state as of its writing; the journal of generation N holds what
 * changed after it. A journal of an older generation than the snapshot is
 * stale (a crash came between writing the snapshot and starting the new
 * journal) and is ignored: the snapshot already holds its records. After
 * the header come records, each
 *
 *   u32 len  u16 type  u16 flags  u64 seq  payload[len]  u32 crc
 *
 * little-endian, packed, crc the CRC-32C of everything before it in the
 * record. Payloads are the owning module's structs in host byte order. Sequence
 * numbers rise by one from the header's seq0, across the snapshot into its
 * journal, so a stale record that looks whole is caught.
 *
 * Durability. JOBQ__FSYNC_NONE writes and never syncs: what was written
 * survives the manager's death (the page cache keeps it), not the
 * machine's. It writes by copying into a shared mapping of the journal,
 * allocated ahead in chunks, so a journal killed in NONE mode may end in
 * zeros. Where names can be swapped at once, NONE also recycles: a new
 * journal is the file of the one before the last, its header rewritten,
 * so what follows its records is an older journal's. Each copy therefore
 * zeroes a record header's worth of bytes after itself (the end mark),
 * and replay takes a record header of zeros as the clean end: a tail of
 * zeros or an end mark, never a cut. A copy cut short by the manager's
 * death was never acknowledged; one that left some bytes of its header is
 * a cut, as a torn write is. A clean close or a start leaves the file at
 * its records' length. BATCH and
 * ALWAYS sync the journal after each write, and the files and their directory
 * around every rename. The caller decides how many requests share one sync (for
 * BATCH, all that arrived while the previous commit ran; for ALWAYS one, a unit
 * each). With @force set (a
 * --durable request) commits and snapshots sync in any mode, until the
 * caller clears it.
 *
 * Errors. A failed write or sync is never hidden: commit returns it, the
 * journal is marked failed and takes no more appends (the records lost
 * would make the file a lie), and the only way back is a snapshot of the
 * live state, which the caller retries until it succeeds.
 *
 * Asynchronous commits. jobq__journal_begin() takes the records added so
 * far as one commit and jobq__journal_ops() hands out its IO (writes and
 * syncs, to be run in order, each linked to the one before) for the caller
 * to submit, to an io_uring for jobqd; the results come back through
 * jobq__journal_done(). Records added meanwhile wait for the next commit:
 * one commit is in flight at a time, so everything that arrives while its
 * sync runs shares the next one (group commit). A commit is cut into units
 * (jobq__journal_cut(): one per request for ALWAYS), each written and, when
 * it asks, synced before the next unit's write. jobq__journal_commit()
 * runs one commit to its end through the seam's pwritev() and sync().
 *
 * All file access goes through struct jobq__jio, so that tests can fail
 * the nth write or sync and drop what was never synced (a power loss); the
 * results of asynchronous IO pass through its complete() as well.
 * This header needs nothing of the rest of the manager.
 */
#ifndef JOBQ_JOURNAL_H
#define JOBQ_JOURNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum jobq__fsync_mode {
	JOBQ__FSYNC_NONE = 0,
	JOBQ__FSYNC_BATCH = 1,
	JOBQ__FSYNC_ALWAYS = 2,
};

/*
 * Record types. Ranges by owner, so that a module adds types without
 * touching another's: 1..15 the journal itself, 16..31 queues, 32..47 the
 * key/value store, 48..63 sessions, 64..127 jobs.
 */
enum jobq__jrec_type {
	/* Never in a file: replay calls with it (no payload) at the end of
	 * each file, whose bytes it frees after; what a module kept pointers
	 * to must be copied by then. */
	JOBQ__JR_EOF = 0,
	JOBQ__JR_SNAP_END = 1, /* last of a snapshot: u64 records before it */
	/* No payload: the first record of a turn's records built in the
	 * mapping, written last, at their commit. Until then its header is
	 * zeros, an end mark, so that a crash in the middle of a turn leaves
	 * none of the turn's records to replay: a request's effect and its
	 * answer (a job and the session record that makes a resend apply
	 * once) come back together or not at all. */
	JOBQ__JR_TURN = 2,
	/* Queues (queues.c). Q_CREATE and Q_REMOVE name a queue by the id
	 * clients get (generation and record index); the others by the
	 * record index, which names the queue created there last. */
	JOBQ__JR_Q_CREATE = 16, /* u32 qid, name bytes */
	JOBQ__JR_Q_LIMITS = 17, /* u32 qid, u32 0, u64 max_depth, max_bytes */
	JOBQ__JR_Q_PUT = 18,	/* u32 qid, u32 type, u64 oid, payload */
	JOBQ__JR_Q_DEL = 19,	/* u64 oid...: the objects were taken */
	/* Types of the queue range are added from its end, down. */
	JOBQ__JR_Q_REMOVE = 31, /* u32 qid: removed, with its objects */
	/* A run of a batched put: u32 count, then per object u32 len and
	 * what a Q_PUT holds (len counts both). */
	JOBQ__JR_Q_PUTS = 30,
	/* The key/value store (kv.c). */
	JOBQ__JR_KV_SET = 32, /* u32 klen, u32 type, key, value */
	JOBQ__JR_KV_DEL = 33, /* key */
	/* Sessions (session.c): the answers a resent request gets. */
	JOBQ__JR_SESS_OPEN = 48, /* u64 sid, u32 uid, u32 keep_ms */
	JOBQ__JR_SESS_RES = 49,	 /* u64 sid, rid, val, i32 res, u32 0 */
	JOBQ__JR_SESS_END = 50,	 /* u64 sid */
	/* Jobs (jobs.c): 64..127. A job is named by its id, a type by its
	 * creation order, as a queue is. */
	JOBQ__JR_JOB_FIRST = 64,
	JOBQ__JR_JOB_TYPE = 64,	  /* u32 tid, name bytes */
	JOBQ__JR_JOB_NEW = 65,	  /* struct jjob, args, result */
	JOBQ__JR_JOB_KEY = 66,	  /* u64 id, unique key bytes */
	JOBQ__JR_JOB_DEP = 67,	  /* u64 dependency id, u64 waiter id */
	JOBQ__JR_JOB_UPD = 68,	  /* struct jupd, result when it has one */
	JOBQ__JR_JOB_FREE = 69,	  /* u64 id: the record went */
	JOBQ__JR_JOB_NEXTID = 70, /* u64: the next job id (snapshots) */
	JOBQ__JR_JOB_QUEUE = 71,  /* u32 qid, u32 paused, u32 parallel */
	JOBQ__JR_JOB_LAST = 127,
};

#define JOBQ__JOURNAL_VERSION 1u
#define JOBQ__JHDR_SIZE	      40u
#define JOBQ__JREC_OVERHEAD   20u /* header 16 + crc 4 */
#define JOBQ__JREC_MAX	      (1u << 30)

/*
 * One IO of an asynchronous commit. A WRITE writes @len bytes of @buf at
 * @off of @fd; a SYNC is fdatasync(2) of @fd. @tag goes back to
 * jobq__journal_done() with the result.
 */
enum { JOBQ__JOP_WRITE = 1, JOBQ__JOP_SYNC = 2 };

struct jobq__jop {
	int kind;
	int fd;
	const void *buf;
	size_t len;
	uint64_t off;
	uint32_t tag;
};

/*
 * The IO seam. Every function returns 0 (or a count) or -errno; @ctx is the
 * table's own. open() takes open(2) flags and returns an fd. sync() is
 * fdatasync(2); sync_dir() syncs the directory that holds @path, so that a
 * rename or a creation there is durable.
 */
struct jobq__jio {
	void *ctx;
	int (*open)(void *ctx, const char *path, int flags, mode_t mode);
	int (*close)(void *ctx, int fd);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len,
			 uint64_t off);
	ssize_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int n,
			   uint64_t off);
	int (*sync)(void *ctx, int fd);
	int (*truncate)(void *ctx, int fd, uint64_t len);
	int (*size)(void *ctx, int fd, uint64_t *len);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*unlink)(void *ctx, const char *path);
	int (*sync_dir)(void *ctx, const char *path);
	/*
	 * Optional, both or neither (without them every commit is a
	 * write): allocate() makes [@off, @off + @len) of @fd, past its
	 * data, zeros that hold their space, growing the file (after it no
	 * store into a mapping of that range can fail for want of space);
	 * map() maps
	 * @len bytes of @fd shared and writable (*@p), unmap() undoes it.
	 */
	int (*allocate)(void *ctx, int fd, uint64_t off, uint64_t len);
	int (*map)(void *ctx, int fd, uint64_t len, void **p);
	void (*unmap)(void *ctx, void *p, uint64_t len);
	/*
	 * Optional: swaps the names @a and @b, both of which exist, in
	 * one step (renameat2(2) RENAME_EXCHANGE). -EINVAL where the file
	 * system cannot. A mapped journal with it recycles its files.
	 */
	int (*exchange)(void *ctx, const char *a, const char *b);
	/*
	 * Optional: sees the result @res of an asynchronous write or sync
	 * (@op) before the journal does and returns the one to use, so that
	 * a test injects its faults into the ring's completions too.
	 */
	ssize_t (*complete)(void *ctx, const struct jobq__jop *op, ssize_t res);
};

/* Plain system calls (pwritev, fdatasync). */
extern const struct jobq__jio jobq__jio_posix;

/*
 * Replay: called once per record, in order, snapshot first, and with
 * JOBQ__JR_EOF after the last good record of each file. @p is valid until
 * that call. Returns 0, or -errno when the record cannot be applied (the
 * start fails, naming it).
 */
typedef int (*jobq__replay_fn)(void *arg, uint16_t type, const uint8_t *p,
			       uint32_t len);

/* What a start found (jobq__journal_open fills it). */
struct jobq__replay_info {
	uint64_t snap_records, journal_records;
	uint64_t snap_bytes;
	bool stale_journal;  /* an older journal was ignored */
	bool cut;	     /* the journal's tail was cut */
	uint64_t cut_offset; /* where: the first byte not replayed */
	uint64_t cut_bytes;  /* how many bytes were dropped */
	char cut_why[64];
};

/* A unit of a commit: bytes [off, off + len) of its buffer, written up to
 * done; synced before the next unit when sync is set. */
struct jobq__junit {
	size_t off, len, done;
	bool sync, synced;
};

struct jobq__journal {
	const struct jobq__jio *io;
	int mode; /* enum jobq__fsync_mode */
	char path[PATH_MAX];
	char snap_path[PATH_MAX + 8];
	char tmp_path[PATH_MAX + 8];
	char snap_tmp_path[PATH_MAX + 16];
	char spare_path[PATH_MAX + 8];
	int fd;	       /* the journal, -1 when none is open */
	uint64_t gen;  /* generation of the journal and its snapshot */
	uint64_t size; /* bytes of the journal file written */
	/*
	 * --fsync none: the journal file mapped shared, its first map_len
	 * bytes allocated (zeros past size). Commits that sync nothing
	 * copy their records here instead of writing them: the page cache
	 * holds them once copied, which is all NONE promises. NULL until
	 * the first such commit, and in the other modes.
	 */
	uint8_t *map;
	uint64_t map_len; /* bytes of the file allocated */
	uint64_t map_cap; /* bytes of address space mapped */
	/*
	 * The journal before the current one, kept as FILE.spare with its
	 * pages allocated, cached and mapped, to be the next journal after
	 * the next snapshot (NONE with a seam that can map and exchange):
	 * a new file would cost a page allocation and a fault per 4 KiB of
	 * records, the old one's pages freed when it is deleted, which is
	 * most of what journaling a batched put costs. -1 and NULL when
	 * there is none; no_exchange once the file system refused the swap.
	 */
	int spare_fd;
	uint8_t *spare_map;
	uint64_t spare_len, spare_cap;
	bool no_exchange;
	uint64_t seq;	 /* the next record's sequence number */
	uint8_t *buf;	 /* records appended, not yet written */
	size_t len, cap; /* bytes in buf, its size */
	/*
	 * In place (NONE, mapped, nothing else going on): buf is the
	 * mapping at size, so records are built where they stay and a
	 * commit only moves size past them; the heap buffer waits in hbuf.
	 * Records there before their commit are in the file already, as
	 * an unacknowledged request's effect may be after a crash; each is
	 * followed by an end mark, and one dropped gets the mark back at
	 * size. Left (the records copied to the heap buffer) before a
	 * write, a cut, a snapshot or a failure.
	 */
	bool inplace;
	bool turn_open;	   /* buf starts with a JR_TURN still zero */
	uint64_t turn_seq; /* its sequence number */
	uint8_t *hbuf;
	size_t hcap;
	uint32_t nbuf;	       /* records in buf */
	bool force;	       /* the next commit syncs in any mode */
	int err;	       /* 0, or why the journal is failed */
	int last_err;	       /* the latest error ever, 0: none */
	uint64_t errors;       /* failed writes, syncs and snapshots */
	uint64_t last_sync_ns; /* CLOCK_REALTIME of the last good sync */
	uint64_t snap_size;    /* bytes of the latest snapshot */
	uint64_t compact_min;  /* no snapshot below this (0: the default) */
	/* The live state's size as the manager measures it (the store's
	 * heap in use), now and when the latest snapshot was written (0: not
	 * known, as after a start): jobq__journal_want_snapshot() scales
	 * snap_size by their ratio to tell what a snapshot would take now. */
	uint64_t live_now, live_at_snap;
	uint64_t snapshots; /* written since start */
	/* While a snapshot is written: its fd, offset, records, error. */
	int sfd;
	uint64_t soff, srecs;
	int serr;
	/* Units cut in buf so far (jobq__journal_cut()). */
	struct jobq__junit *units;
	uint32_t nunits, ucap;
	/*
	 * The commit in flight: its records (ibuf, ilen bytes, to be written
	 * at ibase), its units, the first unit not yet done, the IO submitted
	 * and not completed, its first error. busy from begin to the last
	 * result.
	 */
	bool busy;
	uint8_t *ibuf;
	size_t ilen, icap;
	uint64_t ibase;
	struct jobq__junit *iunits;
	uint32_t niunits, iucap, icur, iops;
	int ierr;
};

/*
 * jobq__journal_open - open the journal at @path (FILE.snap beside it),
 * replay snapshot and journal through @fn, cut a bad tail, and leave the
 * journal ready for appends (creating the files when there are none).
 * @j is filled from scratch. Returns 0, or -errno with a sentence in @err
 * (-EBADMSG: a snapshot or a journal header that does not verify, or a
 * journal newer than its snapshot; the error of @fn for a record it
 * refused). @info may be NULL.
 */
int jobq__journal_open(struct jobq__journal *j, const struct jobq__jio *io,
		       const char *path, int mode, jobq__replay_fn fn,
		       void *arg, struct jobq__replay_info *info, char *err,
		       size_t errlen);

/* Closes the files and frees the buffer; what was not committed is lost. */
void jobq__journal_close(struct jobq__journal *j);

/*
 * jobq__journal_add - append a record of @type whose payload is the @n
 * pieces of @iov, to be written by the next commit (or into the snapshot
 * being written). Returns 0, -E2BIG (over JOBQ__JREC_MAX), -ENOMEM. A
 * failed journal still takes records: they are dropped by the next commit,
 * which fails, and the snapshot that repairs the journal holds their
 * effect.
 */
int jobq__journal_add(struct jobq__journal *j, uint16_t type,
		      const struct iovec *iov, int n);

/*
 * jobq__journal_reserve - begin a record of @type with @plen bytes of
 * payload that the caller writes at the pointer returned, then seals with
 * jobq__journal_seal() before any other call on @j: a record built in
 * place, without gathering pieces. NULL on -E2BIG or -ENOMEM (*@err).
 */
uint8_t *jobq__journal_reserve(struct jobq__journal *j, uint16_t type,
			       uint64_t plen, int *err);
void jobq__journal_seal(struct jobq__journal *j);

/* Whether anything waits for a commit. */
static inline bool jobq__journal_pending(const struct jobq__journal *j)
{
	return j->len > 0 || j->nunits > 0;
}

/* Whether commits that sync nothing copy into a mapping of the file
 * (NONE, with a seam that can map): they need no IO to hand out. */
static inline bool jobq__journal_maps(const struct jobq__journal *j)
{
	return j->mode == JOBQ__FSYNC_NONE && j->io->map && j->io->allocate;
}

/* Whether a commit is in flight (begun, its last result not yet in). */
static inline bool jobq__journal_busy(const struct jobq__journal *j)
{
	return j->busy;
}

/*
 * jobq__journal_cut - close a unit over the records added since the last
 * cut: the next commit writes it, and with @sync syncs it (unless the mode
 * is NONE and no sync is forced) before the units after it. With nothing
 * added, a forced @sync makes a unit that only syncs. Returns 0 or
 * -ENOMEM (the journal is then failed).
 */
int jobq__journal_cut(struct jobq__journal *j, bool sync);

/* Whether a commit begun now with @sync would sync. */
static inline bool jobq__journal_will_sync(const struct jobq__journal *j,
					   bool sync)
{
	if (sync && (j->mode != JOBQ__FSYNC_NONE || j->force))
		return true;
	for (uint32_t i = 0; i < j->nunits; i++)
		if (j->units[i].sync)
			return true;
	return false;
}

/*
 * jobq__journal_begin - make the records added so far (the units cut, and
 * the rest as one more unit synced as @sync asks) the commit in flight.
 * Returns 0 (get its IO from jobq__journal_ops()), 1 when there was
 * nothing to write or sync, -EBUSY while another commit is in flight, or
 * the journal's error when it is failed (the records are dropped, as by
 * jobq__journal_commit()).
 */
int jobq__journal_begin(struct jobq__journal *j, bool sync);

/*
 * jobq__journal_ops - the IO of the commit in flight to submit now, at
 * most @max of them into @op, in order: each must run after the one
 * before it has completed whole (an io_uring link chain; a short write
 * breaks the chain, and what was cancelled comes back later). Returns how
 * many; 0 while IO handed out earlier has not all completed.
 */
int jobq__journal_ops(struct jobq__journal *j, struct jobq__jop *op, int max);

/*
 * jobq__journal_done - the IO tagged @tag completed with @res (bytes
 * written, 0 for a sync, or -errno; -ECANCELED for one cancelled by a
 * broken chain). Returns -EINPROGRESS while the commit goes on (IO still
 * in flight, or more to submit: ask jobq__journal_ops() again), 0 once
 * every record of it is written and synced as asked, or -errno when it
 * failed: the journal is then failed, as by jobq__journal_commit().
 */
int jobq__journal_done(struct jobq__journal *j, uint32_t tag, ssize_t res);

/*
 * jobq__journal_commit - write the records added since the last commit
 * (one write per unit, through the seam, now), and with @sync sync them
 * unless the mode is NONE. -EBUSY while an asynchronous commit is in
 * flight. Without
 * @sync the records are written, not synced: for records no answer waits
 * for, whose loss in a power cut costs a duplicate, never a loss (a take);
 * the next synced commit makes them durable too. Returns 0 once they are
 * as durable as asked, or -errno (also when the journal was already
 * failed): the records are then dropped and the journal is failed until a
 * snapshot succeeds.
 */
int jobq__journal_commit(struct jobq__journal *j, bool sync);

/*
 * jobq__journal_snapshot - write a snapshot of the live state and start an
 * empty journal after it. @produce adds one record per piece of live state
 * with jobq__journal_add() and returns 0 or -errno. Records added before
 * and not committed are dropped: the live state holds their effect. On
 * success the journal is no longer failed. Returns 0 or -errno (-EBUSY
 * while a commit is in flight); on error
 * the files are as before (the old snapshot and journal still replay to
 * the state they held) and the journal is failed.
 */
int jobq__journal_snapshot(struct jobq__journal *j,
			   int (*produce)(void *arg, struct jobq__journal *j),
			   void *arg);

/* What jobqd --compact-min is by default. A snapshot rewrites the whole
 * live state, so a small state that changes fast would be rewritten very
 * often under a small floor (Redis's auto-aof-rewrite-min-size is 64 MB). */
#define JOBQ__COMPACT_MIN (16ull << 20)

/*
 * Whether the journal has grown enough past the live state that a
 * snapshot should compact it: to twice what a snapshot would take now
 * (and past compact_min). What a snapshot would take is the latest
 * snapshot's size, scaled by how the live state grew or shrank since
 * (live_now / live_at_snap) when both are known.
 */
bool jobq__journal_want_snapshot(const struct jobq__journal *j);

const char *jobq__fsync_name(int mode);

#endif
