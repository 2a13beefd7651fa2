/* SPDX-License-Identifier: MIT */
/*
 * journal_mgr.c - the journal of this manager: where it lives, replay at
 * start, one commit per turn of the loop (or per request with --fsync
 * always), compaction by snapshots, and recovery from write errors.
 *
 * Contract with the loop (loop.c). Op handlers journal what they change
 * with jobq__jlog(). The loop keeps every completion of a turn unpublished
 * (written to the client's cq, its tail not yet moved) until
 * jobq__durable_commit() returned at the end of the turn; the answers
 * that acknowledge journaled records then carry its error instead of their
 * success when it failed. So nothing is acknowledged before it is as
 * durable as the mode promises, and no client sees an object whose put is
 * not yet in the journal.
 *
 * Errors. A failed write or sync fails the journal (journal.c). The live
 * state is then ahead of the files, and only a snapshot brings them level
 * again: it is tried at once, then at most every RETRY_NS while requests
 * keep coming, and the loop wakes to retry while it is failed, so space
 * that comes back is noticed without any request. Until one succeeds,
 * every request that changes durable state answers the error; reads and
 * everything else keep working.
 *
 * Writes are plain pwritev()/fdatasync() from the loop's thread: one write
 * a turn, so the default mode costs one system call per turn, not per
 * request. Submitting them to the loop's io_uring instead is future work.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "jobqd.h"

#define RETRY_NS (500 * 1000000ull)

static struct {
	struct jobq__journal j;
	bool open;	  /* replay is over: records are journaled */
	bool replay_full; /* replay ran out of store or table room */
	int lock_fd;	  /* FILE.lock, flocked for life */
	int turn_err;	  /* an ALWAYS commit failed earlier in this turn */
	char start_msg[3][PATH_MAX + 160]; /* what replay found, for the log */
	uint64_t retry_at; /* CLOCK_MONOTONIC: next snapshot attempt */
	int logged_err;	   /* the snapshot error logged last */
	/* An answer waits for a record not yet committed: the commit syncs
	 * (batch, always). Takes alone are written, not synced: losing one
	 * to a power cut brings an object back, it loses none. */
	bool need_sync;
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
	    type == JOBQ__JR_Q_REMOVE || type == JOBQ__JR_EOF)
		ret = jobq__queues_replay(type, p, len);
	else if (type == JOBQ__JR_KV_SET || type == JOBQ__JR_KV_DEL)
		ret = jobq__kv_replay(type, p, len);
	else if (type >= JOBQ__JR_JOB_FIRST && type <= JOBQ__JR_JOB_LAST)
		ret = jobq__jobs_replay(type, p, len);
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
	return ret ? ret : jobq__jobs_snapshot(j);
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
	ret = jobq__journal_open(&dur.j, &jobq__jio_posix, path, o->fsync_mode,
				 replay, NULL, &info, err, errlen);
	if (ret && dur.replay_full)
		snprintf(err, errlen,
			 "the state in %s does not fit in this store: start "
			 "jobqd with the --memory it had before, or more",
			 path);
	if (ret)
		return ret;
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
	dur.open = true;
	publish_stats();
	return 0;
toolong:
	snprintf(err, errlen, "journal path too long");
	return -ENAMETOOLONG;
}

void jobq__durable_log_start(void)
{
	for (int i = 0; i < 3; i++)
		if (dur.start_msg[i][0])
			jobq__log(0, "%s", dur.start_msg[i]);
}

static int commit_now(void);

void jobq__durable_close(void)
{
	if (!dur.open)
		return;
	/*
	 * The last turn committed its records, but dropping the clients
	 * after it journaled the takes they had acknowledged: without this
	 * commit those objects would come back after a graceful stop.
	 */
	if ((jobq__journal_pending(&dur.j) || dur.j.err) && commit_now())
		jobq__log(JOBQ__LOG_ERROR,
			  "journal %s: the last changes were not written: %s",
			  dur.j.path, strerror(-dur.j.err));
	jobq__journal_close(&dur.j);
	dur.open = false;
	if (dur.lock_fd >= 0)
		close(dur.lock_fd);
	dur.lock_fd = -1;
}

void jobq__jlog(uint16_t type, const struct iovec *iov, int n, bool ack)
{
	if (!dur.open)
		return;
	if (jobq__journal_add(&dur.j, type, iov, n)) {
		/* A record lost: the file would lie from here on. */
		if (!dur.j.err) {
			dur.j.err = dur.j.last_err = -ENOMEM;
			dur.j.errors++;
		}
	}
	if (ack) {
		jobq__m.jdep = true;
		dur.need_sync = true;
	}
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

/* Tries the snapshot that repairs a failed journal (or compacts one). */
static int snapshot(void)
{
	int ret = jobq__journal_snapshot(&dur.j, produce, NULL);

	/* Said once per cause: the retries twice a second would flood the
	 * log while a disk stays full. */
	if (ret)
		jobq__log(ret == dur.logged_err ? JOBQ__LOG_DEBUG
						: JOBQ__LOG_ERROR,
			  "journal %s: snapshot failed: %s", dur.j.path,
			  strerror(-ret));
	dur.logged_err = ret;
	if (!ret)
		jobq__log(1, "journal %s: snapshot of %llu bytes written",
			  dur.j.path, (unsigned long long)dur.j.snap_size);
	return ret;
}

static int commit_or_snapshot(bool was_failed)
{
	int ret = 0;

	if (!dur.j.err && !jobq__journal_want_snapshot(&dur.j)) {
		ret = jobq__journal_commit(&dur.j, dur.need_sync);
		if (!ret)
			return 0;
		jobq__log(JOBQ__LOG_ERROR,
			  "journal %s: %s; changes fail until a snapshot "
			  "succeeds",
			  dur.j.path, strerror(-ret));
		dur.retry_at = 0;
	}
	if (dur.j.err && jobq__now_ns() < dur.retry_at) {
		/* Not yet: drop the records, the snapshot will hold them. */
		return jobq__journal_commit(&dur.j, dur.need_sync);
	}
	ret = snapshot();
	if (ret) {
		dur.retry_at = jobq__now_ns() + RETRY_NS;
		return ret;
	}
	if (was_failed)
		jobq__log(0, "journal %s: recovered by a snapshot", dur.j.path);
	return 0;
}

/* Commits (or snapshots) what the turn journaled; syncs only when an
 * answer waits for it. */
static int commit(void)
{
	int ret = commit_or_snapshot(dur.j.err != 0);

	dur.need_sync = false;
	dur.j.force = false;
	return ret;
}

/* At the end: one more try, whatever the retry delay says. */
static int commit_now(void)
{
	dur.retry_at = 0;
	dur.need_sync = true;
	return commit();
}

void jobq__durable_request_done(void)
{
	int ret;

	if (!dur.open || dur.j.mode != JOBQ__FSYNC_ALWAYS ||
	    !jobq__journal_pending(&dur.j))
		return;
	ret = commit();
	if (ret && !dur.turn_err)
		dur.turn_err = ret;
}

int jobq__durable_commit(void)
{
	int ret = 0;

	if (!dur.open)
		return 0;
	if (jobq__journal_pending(&dur.j) || dur.j.err || dur.j.force ||
	    jobq__journal_want_snapshot(&dur.j))
		ret = commit();
	/* A failure earlier in the turn fails its answers even when a later
	 * snapshot succeeded: they were answered with it in mind. */
	if (dur.turn_err && !ret)
		ret = dur.turn_err;
	dur.turn_err = 0;
	jobq__m.jdep = false;
	publish_stats();
	return ret;
}
