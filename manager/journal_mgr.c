/* SPDX-License-Identifier: MIT */
/*
 * journal_mgr.c - the journal of this manager: where it lives, replay at
 * start, one commit per turn of the loop (or per request with --fsync
 * always), compaction by snapshots, and recovery from write errors.
 *
 * Contract with the loop (loop.c). Op handlers journal what they change
 * with jobq__jlog(). At the end of a turn jobq__durable_commit() begins a
 * commit of what was journaled, unless one is in flight: then the records
 * wait, and every record that arrives while that commit's write and sync
 * run shares the next one (group commit). The loop keeps each completion
 * unpublished (written to the client's cq, its tail not moved) until the
 * commit that holds everything journaled before it has ended, which
 * jobq__loop_committed() tells it; jobq__durable_need() names that
 * commit. The answers that acknowledge journaled records carry the
 * commit's error instead of their success when it failed. So nothing is
 * acknowledged before it is as durable as the mode promises, no client
 * sees an object whose put is not yet in the journal, and the loop serves
 * requests while a sync runs.
 *
 * Lazy records. A take is journaled once its getter acknowledged the
 * object (queues.c), and no answer depends on its record: lost, it brings
 * the object back, as a getter that had not acknowledged it yet would.
 * Such records (jobq__jlog_lazy()) begin no commit of their own and hold
 * no answer: they go with the next commit that something else begins,
 * with the one the loop begins before it sleeps (jobq__durable_flush()),
 * or once LAZY_MAX bytes wait. One producer and one consumer, one object
 * at a time, otherwise pay two writes per object (the put's turn and the
 * turn that sees the take), each about 1 us of the manager's time on the
 * path of both clients' round trips; with takes lazy, one.
 *
 * IO. The syncs of a commit go to the loop's io_uring: one fdatasync SQE
 * when an answer waits for one (batch, always, --durable); with --fsync
 * always one per request, in one link chain. Its writes go there too,
 * each linked before its sync, where the file system takes a buffered
 * write without blocking (xfs, btrfs: io_uring then does it inline). On
 * ext4 and tmpfs io_uring would run each write on a worker thread, 5-10
 * us a turn for a copy into the page cache that pwritev() does in 1, and
 * the sync behind it would start later: there the writes are done from
 * the loop's thread, all of a batch before any of its syncs is submitted
 * (see submit_io() and ring_writes). A commit that does not sync (--fsync
 * none, takes alone) is then a pwritev() and nothing else; with --fsync
 * none not even that: it is a copy into a shared mapping of the journal
 * (journal.c), on any file system, and a system call only when the file
 * grows by a chunk. A --durable request's commit still writes and syncs
 * through the file, whose page cache the mapping shares. A short write
 * is continued: journal.c hands out the rest again. If the kernel's
 * io_uring cannot write or sync files, every commit runs through
 * pwritev()/fdatasync() from the loop's thread, said once at start.
 * Replay and snapshots are synchronous.
 *
 * Errors. A failed write or sync fails the journal (journal.c). The live
 * state is then ahead of the files, and only a snapshot brings them level
 * again: it is tried at once, then at most every RETRY_NS while requests
 * keep coming, and the loop wakes to retry while it is failed, so space
 * that comes back is noticed without any request. Until one succeeds,
 * every request that changes durable state answers the error; reads and
 * everything else keep working.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "jobqd.h"

#define RETRY_NS (500 * 1000000ull)
/* The longest a batch commit waits for its group (see gather()). */
#define GATHER_MAX_NS (2 * 1000 * 1000ull)
/* Lazy records waiting beyond this begin a commit by themselves: a getter
 * that drains a long queue gets its takes written in pieces this size. */
#define LAZY_MAX (64 * 1024u)

static struct {
	struct jobq__journal j;
	bool open;	  /* replay is over: records are journaled */
	bool replay_full; /* replay ran out of store or table room */
	int lock_fd;	  /* FILE.lock, flocked for life */
	bool ring;	  /* commits go through the loop's io_uring */
	/* The file system takes a write without blocking (RWF_NOWAIT), so
	 * io_uring does it inline: writes go to the ring too. Otherwise
	 * (ext4, tmpfs) the ring would hand each one to a worker thread, 5-10
	 * us for a copy into the page cache that pwritev() does in 1: they
	 * are done from the loop's thread. */
	bool ring_writes;
	/* Commits are numbered from 1: the next to begin, the one in flight
	 * (0: none), the last that ended. They end in order. */
	uint64_t next_id, busy_id, done_id;
	/* Group commit (gather()): answers journaled since the last commit
	 * began that wait for a sync, and as many in the last synced one;
	 * when that one began and ended. */
	uint32_t acks, acks_last;
	uint64_t begun_ns, ended_ns, sync_ns;
	char start_msg[3][PATH_MAX + 160]; /* what replay found, for the log */
	uint64_t retry_at; /* CLOCK_MONOTONIC: next snapshot attempt */
	int logged_err;	   /* the snapshot error logged last */
	/* An answer waits for a record not yet committed: the commit syncs
	 * (batch, always). Takes alone are written, not synced: losing one
	 * to a power cut brings an object back, it loses none. */
	bool need_sync;
	/* A record journaled since the last commit began is not lazy: the
	 * turn's end begins a commit, and answers made meanwhile wait. */
	bool urgent;
	/* The loop goes to sleep: lazy records are committed now. */
	bool flush;
	/* The journal is on a file system in memory (tmpfs, ramfs): a sync
	 * reaches no disk, so a --durable request is refused. */
	bool in_memory;
} dur;

static void publish_stats(void)
{
	struct jobq_store_hdr *h = jobq__hdr();
	const struct jobq__journal *j = &dur.j;

	store_relaxed(&h->journal_mode, (uint32_t)j->mode);
	store_relaxed(&h->journal_error, j->err);
	store_relaxed(&h->journal_last_error, j->last_err);
	store_relaxed(&h->journal_size, j->size);
	store_relaxed(&h->journal_snap_size, j->snap_size);
	store_relaxed(&h->journal_last_sync_ns, j->last_sync_ns);
	store_relaxed(&h->journal_errors, j->errors);
	store_relaxed(&h->journal_snapshots, j->snapshots);
}

static int replay(void *arg, uint16_t type, const uint8_t *p, uint32_t len)
{
	int ret = -EPROTO; /* a type a newer manager wrote */

	if ((type >= JOBQ__JR_Q_CREATE && type <= JOBQ__JR_Q_DEL) ||
	    type == JOBQ__JR_Q_PUTS || type == JOBQ__JR_Q_REMOVE ||
	    type == JOBQ__JR_EOF)
		ret = jobq__queues_replay(type, p, len);
	else if (type == JOBQ__JR_KV_SET || type == JOBQ__JR_KV_DEL)
		ret = jobq__kv_replay(type, p, len);
	else if (type >= JOBQ__JR_JOB_FIRST && type <= JOBQ__JR_JOB_LAST)
		ret = jobq__jobs_replay(type, p, len);
	else if (type >= JOBQ__JR_SESS_OPEN && type <= JOBQ__JR_SESS_END)
		ret = jobq__sessions_replay(type, p, len);
	if (ret == JOBQ_EFULL || ret == JOBQ_ELIMIT) {
		/* Said by jobq__durable_open(), in the store's terms. */
		dur.replay_full = true;
		ret = -ENOSPC;
	}
	return ret;
}

static int produce(void *arg, struct jobq__journal *j)
{
	int ret = jobq__queues_snapshot(j);

	if (!ret)
		ret = jobq__kv_snapshot(j);
	if (!ret)
		ret = jobq__jobs_snapshot(j);
	return ret ? ret : jobq__sessions_snapshot(j);
}

/*
 * lock_journal - one manager per journal. The instance lock does not
 * cover a --journal FILE that two instances might name, and two writers
 * would interleave records that replay then cuts as corrupt.
 */
static int lock_journal(const char *path, char *err, size_t errlen)
{
	char lpath[PATH_MAX + 8];
	int ret;

	snprintf(lpath, sizeof(lpath), "%s.lock", path);
	dur.lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (dur.lock_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "journal lock %s: %s", lpath,
			 strerror(-ret));
		return ret;
	}
	if (flock(dur.lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	ret = -errno;
	if (ret == -EWOULDBLOCK)
		snprintf(err, errlen,
			 "journal %s is in use by another jobqd (give each "
			 "instance its own --journal)",
			 path);
	else
		snprintf(err, errlen, "locking %s: %s", lpath, strerror(-ret));
	close(dur.lock_fd);
	dur.lock_fd = -1;
	return ret;
}

/*
 * The test seam (JOBQD_TEST_JOURNAL_FAULT=FILE in jobqd's environment):
 * while FILE exists, journal writes and syncs fail with the error it
 * names (EIO, ENOSPC; EIO when it names none), only the syncs when it
 * says "sync", only the writes when it says "write": on the ring's
 * completions (the seam's complete()) and on the synchronous path alike,
 * snapshots included. An end-to-end test makes the disk fail and heal
 * with it, through the same code as a real failure.
 */
static const char *fault_file;

static int fault(int kind)
{
	char b[32] = "";
	ssize_t n;
	int fd = open(fault_file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	b[n > 0 ? n : 0] = '\0';
	if ((kind == JOBQ__JOP_WRITE && strstr(b, "sync")) ||
	    (kind == JOBQ__JOP_SYNC && strstr(b, "write")))
		return 0;
	return strstr(b, "ENOSPC") ? -ENOSPC : -EIO;
}

static ssize_t ft_pwritev(void *ctx, int fd, const struct iovec *iov, int n,
			  uint64_t off)
{
	int err = fault(JOBQ__JOP_WRITE);

	return err ? err : jobq__jio_posix.pwritev(ctx, fd, iov, n, off);
}

static int ft_sync(void *ctx, int fd)
{
	int err = fault(JOBQ__JOP_SYNC);

	return err ? err : jobq__jio_posix.sync(ctx, fd);
}

/* A mapped journal's growth stands for its writes (--fsync none). */
static int ft_allocate(void *ctx, int fd, uint64_t off, uint64_t len)
{
	int err = fault(JOBQ__JOP_WRITE);

	return err ? err : jobq__jio_posix.allocate(ctx, fd, off, len);
}

static ssize_t ft_complete(void *ctx, const struct jobq__jop *op, ssize_t res)
{
	int err = res >= 0 ? fault(op->kind) : 0;

	return err ? err : res;
}

static struct jobq__jio fault_io;

/* The seam jobqd uses: the system calls, or the test's. */
static const struct jobq__jio *journal_io(void)
{
	fault_file = getenv("JOBQD_TEST_JOURNAL_FAULT");
	if (!fault_file || !*fault_file)
		return &jobq__jio_posix;
	fault_io = jobq__jio_posix;
	fault_io.pwritev = ft_pwritev;
	fault_io.sync = ft_sync;
	fault_io.allocate = ft_allocate;
	fault_io.complete = ft_complete;
	return &fault_io;
}

/*
 * nowait_writes - whether the file system of @fd takes buffered writes
 * with RWF_NOWAIT (xfs, btrfs do; ext4 and tmpfs answer EOPNOTSUPP). The
 * probe writes the header over itself with the same bytes.
 */
static bool nowait_writes(int fd)
{
	uint8_t h[JOBQ__JHDR_SIZE];
	struct iovec v = {.iov_base = h, .iov_len = sizeof(h)};

	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return false;
	return pwritev2(fd, &v, 1, 0, RWF_NOWAIT) == (ssize_t)sizeof(h);
}

int jobq__durable_open(char *err, size_t errlen)
{
	const struct jobq__opts *o = &jobq__m.o;
	struct jobq__replay_info info;
	char path[PATH_MAX];
	uint64_t t0 = jobq__now_ns();
	int ret;

	if (o->journal) {
		if (snprintf(path, sizeof(path), "%s", o->journal) >=
		    (int)sizeof(path) - 16)
			goto toolong;
	} else if (snprintf(path, sizeof(path), "%s/journal", o->dir) >=
		   (int)sizeof(path) - 16) {
		goto toolong;
	}
	ret = lock_journal(path, err, errlen);
	if (ret)
		return ret;
	ret = jobq__journal_open(&dur.j, journal_io(), path, o->fsync_mode,
				 replay, NULL, &info, err, errlen);
	dur.j.compact_min = o->compact_min;
	if (ret && dur.replay_full)
		snprintf(err, errlen,
			 "the state in %s does not fit in this store: start "
			 "jobqd with the --memory it had before, or more",
			 path);
	if (ret)
		return ret;
	jobq__sessions_replay_done();
	ret = jobq__queues_replay_done();
	if (!ret)
		ret = jobq__jobs_replay_done();
	if (ret) {
		snprintf(err, errlen, "out of memory replaying %s", path);
		jobq__journal_close(&dur.j);
		return ret;
	}
	/* Logged once the manager is ready: a --daemon's parent is still
	 * waiting now, and the log must not go to its terminal. */
	if (info.stale_journal)
		snprintf(dur.start_msg[0], sizeof(dur.start_msg[0]),
			 "journal %s: older than its snapshot (a crash during "
			 "compaction); its records are in the snapshot",
			 path);
	if (info.cut)
		snprintf(dur.start_msg[1], sizeof(dur.start_msg[1]),
			 "journal %s: cut at byte %llu (%s): %llu bytes after "
			 "the last good record dropped",
			 path, (unsigned long long)info.cut_offset,
			 info.cut_why, (unsigned long long)info.cut_bytes);
	snprintf(dur.start_msg[2], sizeof(dur.start_msg[2]),
		 "journal %s (--fsync %s): replayed %llu snapshot and %llu "
		 "journal records in %.3f s",
		 path, jobq__fsync_name(o->fsync_mode),
		 (unsigned long long)info.snap_records,
		 (unsigned long long)info.journal_records,
		 (double)(jobq__now_ns() - t0) / 1e9);
	{
		struct statfs sf;

		dur.in_memory =
		    fstatfs(dur.j.fd, &sf) == 0 &&
		    (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
	}
	dur.ring_writes = nowait_writes(dur.j.fd);
	dur.next_id = 1;
	dur.open = true;
	publish_stats();
	return 0;
toolong:
	snprintf(err, errlen, "journal path too long");
	return -ENAMETOOLONG;
}

void jobq__durable_log_start(void)
{
	if (dur.open && !dur.ring)
		jobq__log(JOBQ__LOG_WARN,
			  "journal %s: this kernel's io_uring cannot write and "
			  "sync files (Linux 5.6 can); commits use pwritev() "
			  "and fdatasync(), and requests wait while they run",
			  dur.j.path);
	else if (dur.open && !dur.ring_writes)
		jobq__log(1,
			  "journal %s: commits without a sync are written with "
			  "pwritev(): io_uring would hand each to a worker "
			  "thread on this file system",
			  dur.j.path);
	for (int i = 0; i < 3; i++)
		if (dur.start_msg[i][0])
			jobq__log(0, "%s", dur.start_msg[i]);
}

static int commit_sync(void);

void jobq__durable_close(void)
{
	if (!dur.open)
		return;
	/*
	 * The last turn committed its records, but dropping the clients
	 * after it journaled the takes they had acknowledged: without this
	 * commit those objects would come back after a graceful stop. The
	 * loop waited for the commit in flight (jobq__durable_busy()).
	 */
	if ((jobq__journal_pending(&dur.j) || dur.j.err) && commit_sync())
		jobq__log(JOBQ__LOG_ERROR,
			  "journal %s: the last changes were not written: %s",
			  dur.j.path, strerror(-dur.j.err));
	jobq__journal_close(&dur.j);
	dur.open = false;
	if (dur.lock_fd >= 0)
		close(dur.lock_fd);
	dur.lock_fd = -1;
}

/* A record lost: the file would lie from here on. */
static void lost(int err)
{
	if (!dur.j.err) {
		dur.j.err = dur.j.last_err = err;
		dur.j.errors++;
	}
}

static void add(uint16_t type, const struct iovec *iov, int n)
{
	int err = jobq__journal_add(&dur.j, type, iov, n);

	if (err)
		lost(err);
}

/* What a record an answer may wait for asks of the next commit. */
static void added(bool ack)
{
	dur.urgent = true;
	if (ack) {
		jobq__m.jdep = true;
		dur.need_sync = true;
		dur.acks++;
	}
}

void jobq__jlog_lazy(uint16_t type, const struct iovec *iov, int n)
{
	if (dur.open)
		add(type, iov, n);
}

void jobq__jlog(uint16_t type, const struct iovec *iov, int n, bool ack)
{
	if (!dur.open)
		return;
	add(type, iov, n);
	added(ack);
}

uint8_t *jobq__jlog_reserve(uint16_t type, uint64_t plen)
{
	uint8_t *p;
	int err;

	if (!dur.open)
		return NULL;
	p = jobq__journal_reserve(&dur.j, type, plen, &err);
	if (!p)
		lost(err);
	return p;
}

void jobq__jlog_seal(bool ack)
{
	jobq__journal_seal(&dur.j);
	added(ack);
}

int jobq__durable_want_sync(void)
{
	if (!dur.open)
		return -EOPNOTSUPP;
	if (dur.in_memory)
		return -EOPNOTSUPP;
	if (dur.j.err)
		return dur.j.err;
	dur.j.force = true;
	dur.need_sync = true;
	return 0;
}

bool jobq__durable_failed(void)
{
	return dur.open && dur.j.err;
}

/* Tells the journal the live state's size now: the store's heap in use,
 * which it sets beside its latest snapshot's size (journal.h). */
static void see_live(void)
{
	dur.j.live_now = load_relaxed(&jobq__hdr()->heap_used);
}

/* Whether the journal should be compacted, judged against the live
 * state's size now. */
static bool want_snapshot(void)
{
	see_live();
	return jobq__journal_want_snapshot(&dur.j);
}

/* Tries the snapshot that repairs a failed journal (or compacts one). */
static int snapshot(void)
{
	uint64_t t0 = jobq__now_ns();
	int ret;

	see_live();
	ret = jobq__journal_snapshot(&dur.j, produce, NULL);

	/* Said once per cause: the retries twice a second would flood the
	 * log while a disk stays full. */
	if (ret)
		jobq__log(ret == dur.logged_err ? JOBQ__LOG_DEBUG
						: JOBQ__LOG_ERROR,
			  "journal %s: snapshot failed: %s", dur.j.path,
			  strerror(-ret));
	dur.logged_err = ret;
	if (!ret)
		jobq__log(
		    1, "journal %s: snapshot of %llu bytes written in %.3f s",
		    dur.j.path, (unsigned long long)dur.j.snap_size,
		    (double)(jobq__now_ns() - t0) / 1e9);
	return ret;
}

/*
 * repair - snapshot a failed journal (or compact a grown one). While a
 * failed one waits for its next try, what the turn journaled is dropped
 * and fails: the snapshot will hold its effect.
 */
static int repair(void)
{
	bool was_failed = dur.j.err != 0;
	int ret;

	if (was_failed && jobq__now_ns() < dur.retry_at)
		return jobq__journal_commit(&dur.j, false);
	ret = snapshot();
	if (ret) {
		dur.retry_at = jobq__now_ns() + RETRY_NS;
		return ret;
	}
	if (was_failed)
		jobq__log(0, "journal %s: recovered by a snapshot", dur.j.path);
	return 0;
}

/* Commit @id ended with @err: its answers can go. */
static void ended(uint64_t id, int err)
{
	if (id == dur.busy_id && dur.begun_ns) {
		dur.ended_ns = jobq__now_ns();
		dur.sync_ns = dur.ended_ns - dur.begun_ns;
		dur.begun_ns = 0;
	}
	dur.done_id = id;
	dur.busy_id = 0;
	publish_stats();
	jobq__loop_committed(id, err);
}

/* A commit's write or sync failed: the journal is failed, and the
 * snapshot that repairs it is tried at the next turn. */
static void commit_failed(int err)
{
	jobq__log(JOBQ__LOG_ERROR,
		  "journal %s: %s; changes fail until a snapshot succeeds",
		  dur.j.path, strerror(-err));
	dur.retry_at = 0;
}

static void io_result(int ret);

/*
 * submit_io - hand the IO of the commit in flight to the loop's ring. The
 * syncs always go there (they wait for the disk). The writes too where the
 * file system takes them without blocking (ring_writes); elsewhere a write
 * is a copy into the page cache that io_uring would run on a worker
 * thread, a hand-off that costs more than the copy and delays the sync
 * behind it, so it is done here, now, through the seam. Every write of
 * the batch is done before any of its syncs is submitted, which keeps
 * each unit written before the sync that its answers wait for.
 */
static void submit_io(void)
{
	const struct jobq__jio *io = dur.j.io;
	struct jobq__jop op[32], ring[32];
	int n, ret = -EINPROGRESS;

	while ((n = jobq__journal_ops(&dur.j, op, 32)) > 0) {
		bool broken = false;
		int k = 0;

		for (int i = 0; i < n; i++) {
			struct iovec v = {.iov_base = (void *)op[i].buf,
					  .iov_len = op[i].len};
			ssize_t r = -ECANCELED;

			if (dur.ring_writes || op[i].kind != JOBQ__JOP_WRITE) {
				if (!broken) {
					ring[k++] = op[i];
					continue;
				}
			} else if (!broken) {
				r = io->pwritev(io->ctx, op[i].fd, &v, 1,
						op[i].off);
			}
			/* As in a link chain: a failed or short write
			 * cancels what comes after it. */
			if (r != (ssize_t)op[i].len)
				broken = true;
			ret = jobq__journal_done(&dur.j, op[i].tag, r);
		}
		if (k) {
			jobq__loop_journal_io(ring, k);
			return;
		}
		if (ret != -EINPROGRESS)
			break;
	}
	if (ret != -EINPROGRESS)
		io_result(ret);
}

/* The commit in flight ended with @ret (0 or -errno). */
static void io_result(int ret)
{
	if (ret)
		commit_failed(ret);
	ended(dur.busy_id, ret);
}

/* Runs what is journaled to its end, now, through the seam. */
static int commit_sync(void)
{
	int ret;

	dur.retry_at = 0;
	if (dur.j.err || want_snapshot())
		ret = repair();
	else
		ret = jobq__journal_commit(&dur.j, true);
	dur.need_sync = false;
	dur.urgent = dur.flush = false;
	dur.j.force = false;
	return ret;
}

void jobq__durable_request_done(void)
{
	/* --fsync always: each request's records are a unit of their own,
	 * written and synced before the next request's. */
	if (!dur.open || dur.j.mode != JOBQ__FSYNC_ALWAYS)
		return;
	jobq__journal_cut(&dur.j, dur.need_sync);
	dur.need_sync = false;
	dur.j.force = false;
}

/*
 * gather - whether a --fsync batch commit should wait a little before it
 * begins. When a synced commit ends, it releases every client whose answer
 * it held, at once; each then needs a moment (a wake-up, a request) before
 * its next record is here. Begun at once, the next commit would carry the
 * one or two records that made it in time, and the rest would wait a
 * whole sync for the one after: groups alternate between small and
 * large, and the disk does about twice the syncs (16 producers, one put
 * at a time each: 8 answers a sync instead of 16). So a synced commit
 * waits until as many answers as the last one carried are journaled
 * again, but never longer after the last one ended than that one's sync
 * took (GATHER_MAX_NS at most): a request that comes just after a commit
 * began waits as long already. A lone client, whose group is one, never
 * waits. The loop serves meanwhile; a timer ends the wait when nothing
 * else does. (Measured, 16 producers on a disk syncing in 0.2-0.3 ms:
 * 8.4 answers a sync without the wait, 16 with it, and 1.3x the puts/s;
 * a quarter of a sync was too short to gather them.)
 */
static bool gather(void)
{
	uint64_t until, wait = dur.sync_ns, now;

	if (dur.j.mode != JOBQ__FSYNC_BATCH || dur.acks >= dur.acks_last ||
	    dur.j.force)
		return false;
	if (wait > GATHER_MAX_NS)
		wait = GATHER_MAX_NS;
	until = dur.ended_ns + wait;
	now = jobq__now_ns();
	if (now >= until)
		return false;
	jobq__timer_arm(JOBQ__TIMER_JOURNAL, until);
	return true;
}

void jobq__durable_commit(void)
{
	bool syncs, repair_now;
	uint64_t id;
	int ret;

	jobq__m.jdep = false;
	if (!dur.open || dur.j.busy)
		return;
	if (!jobq__journal_pending(&dur.j) && !dur.j.force &&
	    !(dur.j.err && jobq__now_ns() >= dur.retry_at) && !want_snapshot())
		return;
	repair_now = dur.j.err || want_snapshot();
	/* Only lazy records wait: they go with a later commit. */
	if (!repair_now && !dur.urgent && !dur.flush && !dur.j.force &&
	    dur.j.len < LAZY_MAX)
		return;
	syncs = jobq__journal_will_sync(&dur.j, dur.need_sync);
	if (!repair_now && dur.ring && syncs && gather())
		return;
	id = dur.next_id++;
	/* Whatever begins now takes every record journaled so far. */
	dur.urgent = dur.flush = false;
	if (repair_now) {
		ret = repair();
		dur.need_sync = false;
		dur.j.force = false;
		ended(id, ret);
		return;
	}
	if (!dur.ring || (!dur.ring_writes && !syncs) ||
	    (jobq__journal_maps(&dur.j) && !syncs)) {
		ret = jobq__journal_commit(&dur.j, dur.need_sync);
		dur.need_sync = false;
		dur.j.force = false;
		if (ret)
			commit_failed(ret);
		ended(id, ret);
		return;
	}
	ret = jobq__journal_begin(&dur.j, dur.need_sync);
	dur.need_sync = false;
	dur.j.force = false;
	if (ret) {
		if (ret < 0)
			commit_failed(ret);
		ended(id, ret > 0 ? 0 : ret);
		return;
	}
	dur.busy_id = id;
	if (syncs) {
		dur.begun_ns = jobq__now_ns();
		dur.acks_last = dur.acks;
		jobq__timer_arm(JOBQ__TIMER_JOURNAL, 0);
	}
	dur.acks = 0;
	submit_io();
}

void jobq__durable_io_done(uint32_t tag, int res)
{
	int ret;

	if (!dur.open || !dur.j.busy)
		return;
	ret = jobq__journal_done(&dur.j, tag, res);
	if (ret == -EINPROGRESS)
		submit_io();
	else
		io_result(ret);
}

void jobq__durable_use_ring(bool on)
{
	dur.ring = on;
}

bool jobq__durable_busy(void)
{
	return dur.open && dur.j.busy;
}

uint64_t jobq__durable_next_id(void)
{
	return dur.next_id;
}

bool jobq__durable_flush(void)
{
	uint64_t id = dur.next_id;

	if (!dur.open || dur.j.busy || !jobq__journal_pending(&dur.j))
		return false;
	dur.flush = true;
	jobq__durable_commit();
	return dur.next_id != id;
}

uint64_t jobq__durable_need(void)
{
	if (!dur.open)
		return 0;
	/* Lazy records alone hold no answer. */
	if ((jobq__journal_pending(&dur.j) && dur.urgent) || dur.j.force)
		return dur.next_id;
	if (dur.j.busy)
		return dur.busy_id;
	return dur.done_id;
}

uint64_t jobq__durable_done_id(void)
{
	return dur.done_id;
}
