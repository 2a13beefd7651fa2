/* SPDX-License-Identifier: MIT */
/*
 * test_journal.c - the journal module through its IO seam: round trips,
 * torn tails cut at every byte, bit flips, ENOSPC and EIO at the nth write
 * and sync, and power losses that keep only what was synced. Asynchronous
 * commits are driven as the manager's ring drives them (link chains, short
 * writes, faults injected into the completions).
 *
 * The seam here is a small in-memory file system. Each file has its
 * current bytes and its synced bytes; names have a current table and a
 * synced one (sync_dir copies the first into the second). A power loss
 * puts every file and name back to its synced version, which is what a
 * machine that loses power keeps of a file system that honours fsync.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

/* ------------------------------------------------------------------------
 * The in-memory file system.
 */
#define MAXF 16

struct mfile {
	uint8_t *cur, *dur;
	size_t clen, dlen;
	bool used;
};

struct mname {
	char name[PATH_MAX + 16];
	int ino; /* -1: none */
};

static struct {
	struct mfile ino[MAXF];
	struct mname names[MAXF], dnames[MAXF];
	int fd_ino[MAXF];
	/* Faults: the nth write / sync (1-based) fails with the error, and
	 * with sticky every later one too, until cleared. */
	int write_n, sync_n, fail_write_at, fail_sync_at, err;
	bool sticky;
	/* A crash: from the nth operation on, everything fails. */
	int ops, crash_at;
} fs;

static void fs_reset(void)
{
	for (int i = 0; i < MAXF; i++) {
		free(fs.ino[i].cur);
		free(fs.ino[i].dur);
	}
	memset(&fs, 0, sizeof(fs));
	for (int i = 0; i < MAXF; i++) {
		fs.names[i].ino = fs.dnames[i].ino = -1;
		fs.fd_ino[i] = -1;
	}
}

static bool crashed(void)
{
	fs.ops++;
	return fs.crash_at && fs.ops >= fs.crash_at;
}

static struct mname *lookup(struct mname *t, const char *name)
{
	for (int i = 0; i < MAXF; i++)
		if (t[i].ino >= 0 && !strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

static struct mname *name_slot(struct mname *t)
{
	for (int i = 0; i < MAXF; i++)
		if (t[i].ino < 0)
			return &t[i];
	abort();
}

static bool ino_referenced(int ino)
{
	for (int i = 0; i < MAXF; i++)
		if (fs.names[i].ino == ino || fs.dnames[i].ino == ino ||
		    fs.fd_ino[i] == ino)
			return true;
	return false;
}

static void ino_gc(int ino)
{
	if (ino >= 0 && !ino_referenced(ino)) {
		free(fs.ino[ino].cur);
		free(fs.ino[ino].dur);
		memset(&fs.ino[ino], 0, sizeof(fs.ino[ino]));
	}
}

static int m_open(void *ctx, const char *path, int flags, mode_t mode)
{
	struct mname *n;
	int ino = -1, fd;

	if (crashed())
		return -EIO;
	n = lookup(fs.names, path);
	if (n) {
		ino = n->ino;
	} else {
		if (!(flags & O_CREAT))
			return -ENOENT;
		for (int i = 0; i < MAXF; i++)
			if (!fs.ino[i].used) {
				ino = i;
				break;
			}
		assert_true(ino >= 0);
		fs.ino[ino].used = true;
		n = name_slot(fs.names);
		snprintf(n->name, sizeof(n->name), "%s", path);
		n->ino = ino;
	}
	if (flags & O_TRUNC)
		fs.ino[ino].clen = 0;
	for (fd = 0; fd < MAXF; fd++)
		if (fs.fd_ino[fd] < 0)
			break;
	assert_true(fd < MAXF);
	fs.fd_ino[fd] = ino;
	return fd + 3;
}

static struct mfile *fdf(int fd)
{
	assert_true(fd >= 3 && fd < MAXF + 3 && fs.fd_ino[fd - 3] >= 0);
	return &fs.ino[fs.fd_ino[fd - 3]];
}

static int m_close(void *ctx, int fd)
{
	int ino;

	fdf(fd);
	ino = fs.fd_ino[fd - 3];
	fs.fd_ino[fd - 3] = -1;
	ino_gc(ino);
	return 0;
}

static ssize_t m_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	struct mfile *f = fdf(fd);

	if (crashed())
		return -EIO;
	if (off >= f->clen)
		return 0;
	if (len > f->clen - off)
		len = f->clen - off;
	memcpy(buf, f->cur + off, len);
	return (ssize_t)len;
}

static void grow(struct mfile *f, size_t len)
{
	if (len > f->clen) {
		f->cur = realloc(f->cur, len);
		memset(f->cur + f->clen, 0, len - f->clen);
		f->clen = len;
	}
}

static ssize_t m_pwritev(void *ctx, int fd, const struct iovec *iov, int n,
			 uint64_t off)
{
	struct mfile *f = fdf(fd);
	size_t at = off;

	if (crashed())
		return -EIO;
	fs.write_n++;
	if (fs.fail_write_at && (fs.write_n == fs.fail_write_at ||
				 (fs.sticky && fs.write_n > fs.fail_write_at)))
		return -fs.err;
	for (int i = 0; i < n; i++) {
		grow(f, at + iov[i].iov_len);
		memcpy(f->cur + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	return (ssize_t)(at - off);
}

static int m_sync(void *ctx, int fd)
{
	struct mfile *f = fdf(fd);

	if (crashed())
		return -EIO;
	fs.sync_n++;
	if (fs.fail_sync_at && (fs.sync_n == fs.fail_sync_at ||
				(fs.sticky && fs.sync_n > fs.fail_sync_at)))
		return -fs.err;
	free(f->dur);
	f->dur = malloc(f->clen ? f->clen : 1);
	if (f->clen)
		memcpy(f->dur, f->cur, f->clen);
	f->dlen = f->clen;
	return 0;
}

static int m_truncate(void *ctx, int fd, uint64_t len)
{
	struct mfile *f = fdf(fd);

	if (crashed())
		return -EIO;
	if (len < f->clen)
		f->clen = len;
	else
		grow(f, len);
	return 0;
}

static int m_size(void *ctx, int fd, uint64_t *len)
{
	*len = fdf(fd)->clen;
	return 0;
}

static int m_rename(void *ctx, const char *from, const char *to)
{
	struct mname *a, *b;
	int old = -1;

	if (crashed())
		return -EIO;
	a = lookup(fs.names, from);
	if (!a)
		return -ENOENT;
	b = lookup(fs.names, to);
	if (b) {
		old = b->ino;
		b->ino = a->ino;
	} else {
		b = name_slot(fs.names);
		snprintf(b->name, sizeof(b->name), "%s", to);
		b->ino = a->ino;
	}
	a->ino = -1;
	ino_gc(old);
	return 0;
}

static int m_unlink(void *ctx, const char *path)
{
	struct mname *a = lookup(fs.names, path);
	int ino;

	if (crashed())
		return -EIO;
	if (!a)
		return -ENOENT;
	ino = a->ino;
	a->ino = -1;
	ino_gc(ino);
	return 0;
}

static int m_sync_dir(void *ctx, const char *path)
{
	int old[MAXF];

	if (crashed())
		return -EIO;
	for (int i = 0; i < MAXF; i++)
		old[i] = fs.dnames[i].ino;
	memcpy(fs.dnames, fs.names, sizeof(fs.names));
	for (int i = 0; i < MAXF; i++)
		ino_gc(old[i]);
	return 0;
}

static const struct jobq__jio mio = {
    .open = m_open,
    .close = m_close,
    .pread = m_pread,
    .pwritev = m_pwritev,
    .sync = m_sync,
    .truncate = m_truncate,
    .size = m_size,
    .rename = m_rename,
    .unlink = m_unlink,
    .sync_dir = m_sync_dir,
};

/*
 * The machine loses power: open files are gone with the process, every
 * file is what its last sync left, every name what the last sync_dir
 * left. A file created and never synced is empty; one never named durably
 * is gone.
 */
static void power_loss(void)
{
	for (int i = 0; i < MAXF; i++)
		fs.fd_ino[i] = -1;
	memcpy(fs.names, fs.dnames, sizeof(fs.names));
	for (int i = 0; i < MAXF; i++) {
		struct mfile *f = &fs.ino[i];

		if (!f->used)
			continue;
		free(f->cur);
		f->cur = malloc(f->dlen ? f->dlen : 1);
		if (f->dlen)
			memcpy(f->cur, f->dur, f->dlen);
		f->clen = f->dlen;
		ino_gc(i);
	}
	fs.crash_at = 0;
}

/* The process dies (kill -9): files keep what was written. */
static void process_death(struct jobq__journal *j)
{
	for (int i = 0; i < MAXF; i++) {
		int ino = fs.fd_ino[i];

		fs.fd_ino[i] = -1;
		ino_gc(ino);
	}
	free(j->buf);
	free(j->ibuf);
	free(j->units);
	free(j->iunits);
	j->buf = j->ibuf = NULL;
	j->units = j->iunits = NULL;
	fs.crash_at = 0;
}

static struct mfile *file(const char *name)
{
	struct mname *n = lookup(fs.names, name);

	return n ? &fs.ino[n->ino] : NULL;
}

/* Gives file @name the contents @img of @len bytes. */
static void set_file(const char *name, const uint8_t *img, size_t len)
{
	struct mfile *f = file(name);

	assert_non_null(f);
	f->cur = realloc(f->cur, len ? len : 1);
	memcpy(f->cur, img, len);
	f->clen = len;
}

/* ------------------------------------------------------------------------
 * A model state: a set of ids. PUT adds one, DEL removes it.
 */
#define MAXID 4096
#define T_PUT 18
#define T_DEL 19

struct model {
	bool has[MAXID];
	uint32_t n;
	/* What replay delivered, in order. */
	uint32_t got[8 * MAXID];
	uint16_t got_type[8 * MAXID];
	uint32_t ngot;
	bool reject; /* refuse every record */
};

static int apply(void *arg, uint16_t type, const uint8_t *p, uint32_t len)
{
	struct model *m = arg;
	uint32_t id;

	if (type == JOBQ__JR_EOF)
		return 0;
	if (m->reject)
		return -EINVAL;
	assert_int_equal(len, 4 + (type == T_PUT ? 12 : 0));
	memcpy(&id, p, 4);
	assert_true(id < MAXID);
	if (type == T_PUT) {
		/* The payload is a pattern of the id. */
		for (uint32_t i = 4; i < len; i++)
			assert_int_equal(p[i], (uint8_t)(id + i));
		m->n += !m->has[id];
		m->has[id] = true;
	} else {
		m->n -= m->has[id];
		m->has[id] = false;
	}
	if (m->ngot < 8 * MAXID) {
		m->got[m->ngot] = id;
		m->got_type[m->ngot++] = type;
	}
	return 0;
}

static int add(struct jobq__journal *j, uint16_t type, uint32_t id)
{
	uint8_t b[16];
	struct iovec v = {.iov_base = b, .iov_len = type == T_PUT ? 16 : 4};

	memcpy(b, &id, 4);
	for (uint32_t i = 4; i < 16; i++)
		b[i] = (uint8_t)(id + i);
	return jobq__journal_add(j, type, &v, 1);
}

/* Applies an op to a model as the caller's live state. */
static void model_op(struct model *m, uint16_t type, uint32_t id)
{
	uint8_t b[16];

	memcpy(b, &id, 4);
	for (uint32_t i = 4; i < 16; i++)
		b[i] = (uint8_t)(id + i);
	apply(m, type, b, type == T_PUT ? 16 : 4);
}

static int produce(void *arg, struct jobq__journal *j)
{
	struct model *m = arg;
	int ret = 0;

	for (uint32_t id = 0; id < MAXID && !ret; id++)
		if (m->has[id])
			ret = add(j, T_PUT, id);
	return ret;
}

static int open_j(struct jobq__journal *j, int mode, struct model *m,
		  struct jobq__replay_info *info)
{
	char err[PATH_MAX + 256];
	int ret;

	memset(m, 0, sizeof(*m));
	ret = jobq__journal_open(j, &mio, "/d/journal", mode, apply, m, info,
				 err, sizeof(err));
	if (ret)
		print_message("open: %s\n", err);
	return ret;
}

static bool same(const struct model *a, const struct model *b)
{
	return !memcmp(a->has, b->has, sizeof(a->has));
}

static struct model *new_model(void)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	return m;
}

static int setup(void **state)
{
	fs_reset();
	return 0;
}

/* ------------------------------------------------------------------------
 * Tests.
 */
static void test_round_trip(void **state)
{
	struct model *m = new_model(), *live = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j;

	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, &info), 0);
	assert_int_equal(info.journal_records, 0);
	for (uint32_t id = 0; id < 300; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		if (id % 3 == 0) {
			assert_int_equal(add(&j, T_DEL, id / 2), 0);
			model_op(live, T_DEL, id / 2);
		}
		if (id % 17 == 0)
			assert_int_equal(jobq__journal_commit(&j, true), 0);
	}
	assert_int_equal(jobq__journal_commit(&j, true), 0);
	jobq__journal_close(&j);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, &info), 0);
	assert_false(info.cut);
	assert_int_equal(info.journal_records, 400);
	assert_true(same(m, live));

	/* A snapshot compacts: the journal restarts empty, and the state
	 * is the snapshot's plus what came after. */
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	assert_int_equal(j.size, JOBQ__JHDR_SIZE);
	assert_int_equal(add(&j, T_PUT, 4000), 0);
	model_op(live, T_PUT, 4000);
	assert_int_equal(jobq__journal_commit(&j, true), 0);
	jobq__journal_close(&j);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, &info), 0);
	assert_int_equal(info.snap_records, live->n - 1);
	assert_int_equal(info.journal_records, 1);
	assert_true(same(m, live));
	jobq__journal_close(&j);
	free(m);
	free(live);
}

/*
 * When compaction is due: at twice what a snapshot would take now, which
 * is the latest snapshot's size scaled by how the live state changed since
 * it was written. A backlog that doubled the state leaves nothing to
 * compact; a state that emptied compacts past the floor.
 */
static void test_want_snapshot(void **state)
{
	struct jobq__journal j = {0};

	(void)state;
	j.snap_size = 1 << 20;
	j.size = 15 << 20;
	assert_false(jobq__journal_want_snapshot(&j)); /* under the default */
	j.size = (16 << 20) + 1;
	assert_true(jobq__journal_want_snapshot(&j));
	j.compact_min = 4 << 20;
	j.snap_size = 10 << 20;
	j.size = (20 << 20) + 1;
	assert_true(jobq__journal_want_snapshot(&j)); /* live not known */
	j.live_at_snap = 100 << 20;
	j.live_now = 100 << 20;
	assert_true(jobq__journal_want_snapshot(&j));
	j.live_now = 200 << 20; /* grew to twice: a snapshot of 20 MiB */
	assert_false(jobq__journal_want_snapshot(&j));
	j.size = (40 << 20) + 1;
	assert_true(jobq__journal_want_snapshot(&j));
	j.live_now = 1 << 20; /* shrank: a snapshot of 100 KiB */
	j.size = 3 << 20;
	assert_false(jobq__journal_want_snapshot(&j)); /* under the floor */
	j.size = (4 << 20) + 1;
	assert_true(jobq__journal_want_snapshot(&j));
	j.live_now = 200 << 20;
	j.err = -EIO; /* a failed journal is repaired by a snapshot */
	assert_true(jobq__journal_want_snapshot(&j));
}

/* Builds a journal of @n puts; returns the offset of the last record. */
static uint64_t build(struct jobq__journal *j, uint32_t n)
{
	struct model *m = new_model();
	uint64_t last = 0;

	assert_int_equal(open_j(j, JOBQ__FSYNC_NONE, m, NULL), 0);
	for (uint32_t id = 0; id < n; id++) {
		last = j->size;
		assert_int_equal(add(j, T_PUT, id), 0);
		assert_int_equal(jobq__journal_commit(j, true), 0);
	}
	jobq__journal_close(j);
	free(m);
	return last;
}

static void test_torn_tail_every_offset(void **state)
{
	struct model *m = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j;
	uint64_t last = build(&j, 10), full;
	uint8_t *img;

	full = file("/d/journal")->clen;
	img = malloc(full);
	memcpy(img, file("/d/journal")->cur, full);
	for (uint64_t cut = last; cut < full; cut++) {
		set_file("/d/journal", img, cut);
		assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, &info), 0);
		/* Only the last record is lost, and the cut says where. */
		assert_int_equal(info.journal_records, 9);
		assert_int_equal(m->n, 9);
		assert_false(m->has[9]);
		assert_int_equal(info.cut, cut > last);
		if (cut > last) {
			assert_int_equal(info.cut_offset, last);
			assert_int_equal(info.cut_bytes, cut - last);
		}
		/* Appends continue right after the last good record. */
		assert_int_equal(add(&j, T_PUT, 100), 0);
		assert_int_equal(jobq__journal_commit(&j, true), 0);
		jobq__journal_close(&j);
		assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, &info), 0);
		assert_false(info.cut);
		assert_int_equal(m->n, 10);
		assert_true(m->has[100]);
		jobq__journal_close(&j);
	}
	free(img);
	free(m);
}

static void test_bit_flips_journal(void **state)
{
	struct model *m = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j;
	uint64_t full;
	uint8_t *img;

	build(&j, 20);
	full = file("/d/journal")->clen;
	img = malloc(full);
	memcpy(img, file("/d/journal")->cur, full);
	for (uint64_t at = 0; at < full; at++) {
		set_file("/d/journal", img, full);
		file("/d/journal")->cur[at] ^= (uint8_t)(1u << (at % 8));
		if (at < JOBQ__JHDR_SIZE) {
			char err[PATH_MAX + 256] = "";

			/* Which records a damaged header heads is unknown:
			 * refused, not started empty. */
			assert_int_equal(
			    jobq__journal_open(&j, &mio, "/d/journal",
					       JOBQ__FSYNC_NONE, apply, m,
					       &info, err, sizeof(err)),
			    -EBADMSG);
			assert_non_null(strstr(err, "corrupt"));
			continue;
		}
		assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, &info), 0);
		/* Detected: replay stops before the damaged record, and
		 * what it delivered is a prefix of what was written. */
		assert_true(info.cut);
		assert_true(info.cut_offset <= at);
		for (uint32_t i = 0; i < m->ngot; i++) {
			assert_int_equal(m->got[i], i);
			assert_int_equal(m->got_type[i], T_PUT);
		}
		assert_true(m->ngot < 20);
		jobq__journal_close(&j);
	}
	free(img);
	free(m);
}

static void test_bit_flips_snapshot(void **state)
{
	struct model *m = new_model(), *live = new_model();
	struct jobq__journal j;
	char err[PATH_MAX + 256];
	uint64_t full;
	uint8_t *img;

	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	for (uint32_t id = 0; id < 30; id++)
		model_op(live, T_PUT, id);
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	jobq__journal_close(&j);
	full = file("/d/journal.snap")->clen;
	img = malloc(full);
	memcpy(img, file("/d/journal.snap")->cur, full);
	for (uint64_t at = 0; at < full; at++) {
		set_file("/d/journal.snap", img, full);
		file("/d/journal.snap")->cur[at] ^= (uint8_t)(1u << (at % 8));
		memset(m, 0, sizeof(*m));
		err[0] = '\0';
		/* Refused, never an empty or partial state taken as whole. */
		assert_int_equal(jobq__journal_open(&j, &mio, "/d/journal",
						    JOBQ__FSYNC_BATCH, apply, m,
						    NULL, err, sizeof(err)),
				 -EBADMSG);
		assert_non_null(strstr(err, "corrupt"));
	}
	/* A snapshot cut short is refused too. */
	set_file("/d/journal.snap", img, full - 1);
	assert_int_equal(jobq__journal_open(&j, &mio, "/d/journal",
					    JOBQ__FSYNC_BATCH, apply, m, NULL,
					    err, sizeof(err)),
			 -EBADMSG);
	free(img);
	free(m);
	free(live);
}

/*
 * A fault at the nth write or sync: the commit fails with it, the journal
 * takes nothing more, and a snapshot after the fault is lifted brings it
 * back; nothing acknowledged (committed with 0) is lost.
 */
static void fault_case(bool on_sync, int n, int err)
{
	struct model *m = new_model(), *live = new_model(),
		     *acked = new_model();
	struct jobq__journal j;
	bool failed = false;
	int ret;

	fs_reset();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	fs.write_n = fs.sync_n = 0;
	fs.err = err;
	fs.sticky = true;
	if (on_sync)
		fs.fail_sync_at = n;
	else
		fs.fail_write_at = n;
	for (uint32_t id = 0; id < 40; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		ret = jobq__journal_commit(&j, true);
		if (ret) {
			assert_int_equal(ret, -err);
			assert_int_equal(j.err, -err);
			failed = true;
		} else {
			/* Once failed, never quietly fine again. */
			assert_false(failed);
			memcpy(acked->has, live->has, sizeof(live->has));
		}
	}
	assert_true(failed);
	/* Still failing: the snapshot cannot be written either. */
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), -err);
	assert_int_equal(jobq__journal_commit(&j, true), -err);
	/* Space is back. */
	fs.fail_write_at = fs.fail_sync_at = 0;
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	assert_int_equal(j.err, 0);
	assert_int_equal(j.last_err, -err);
	assert_int_equal(add(&j, T_DEL, 0), 0);
	model_op(live, T_DEL, 0);
	assert_int_equal(jobq__journal_commit(&j, true), 0);
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_true(same(m, live));
	jobq__journal_close(&j);
	free(m);
	free(live);
	free(acked);
}

static void test_enospc_eio(void **state)
{
	/* Write 1 and sync 1 are the first journal's header. */
	for (int n = 2; n < 12; n++) {
		fault_case(false, n, ENOSPC);
		fault_case(false, n, EIO);
		fault_case(true, n, EIO);
		fault_case(true, n, ENOSPC);
	}
}

/*
 * Power loss at every point of a workload of puts, deletes, commits and
 * snapshots: after it, replay gives exactly what was acknowledged (every
 * commit that returned 0), nothing more.
 */
static void power_loss_case(int mode, int crash_at)
{
	struct model *m = new_model(), *live = new_model(),
		     *acked = new_model();
	struct jobq__journal j;
	uint32_t id = 0;
	bool dead = false;

	fs_reset();
	assert_int_equal(open_j(&j, mode, m, NULL), 0);
	fs.ops = 0;
	fs.crash_at = crash_at;
	for (int c = 0; c < 60 && !dead; c++) {
		for (int k = 0; k < 1 + c % 4; k++, id++) {
			assert_int_equal(add(&j, T_PUT, id), 0);
			model_op(live, T_PUT, id);
			if (id % 3 == 1) {
				assert_int_equal(add(&j, T_DEL, id - 1), 0);
				model_op(live, T_DEL, id - 1);
			}
		}
		if (jobq__journal_commit(&j, true)) {
			dead = true;
			break;
		}
		memcpy(acked->has, live->has, sizeof(live->has));
		if (c % 15 == 14) {
			if (jobq__journal_snapshot(&j, produce, live))
				dead = true;
		}
	}
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, mode, m, NULL), 0);
	if (!same(m, acked))
		fail_msg("crash at op %d: replay differs from what was "
			 "acknowledged",
			 crash_at);
	jobq__journal_close(&j);
	free(m);
	free(live);
	free(acked);
}

static void test_power_loss(void **state)
{
	for (int at = 1; at < 400; at++) {
		power_loss_case(JOBQ__FSYNC_BATCH, at);
		power_loss_case(JOBQ__FSYNC_ALWAYS, at);
	}
}

/* A commit without sync (takes nobody waits for) is written, survives
 * the process, and is made durable by the next synced commit. */
static void test_commit_without_sync(void **state)
{
	struct model *m = new_model();
	struct jobq__journal j;
	int syncs;

	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_int_equal(add(&j, T_PUT, 1), 0);
	assert_int_equal(add(&j, T_PUT, 2), 0);
	assert_int_equal(jobq__journal_commit(&j, true), 0);
	syncs = fs.sync_n;
	assert_int_equal(add(&j, T_DEL, 1), 0);
	assert_int_equal(jobq__journal_commit(&j, false), 0);
	assert_int_equal(fs.sync_n, syncs);
	/* The process dies: the take was written. */
	process_death(&j);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_false(m->has[1]);
	assert_true(m->has[2]);
	/* The power goes: a take never synced comes undone, a duplicate. */
	assert_int_equal(add(&j, T_DEL, 2), 0);
	assert_int_equal(jobq__journal_commit(&j, false), 0);
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_true(m->has[2]);
	/* A synced commit after it makes it durable too. */
	assert_int_equal(add(&j, T_DEL, 2), 0);
	assert_int_equal(jobq__journal_commit(&j, false), 0);
	assert_int_equal(add(&j, T_PUT, 3), 0);
	assert_int_equal(jobq__journal_commit(&j, true), 0);
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_false(m->has[2]);
	assert_true(m->has[3]);
	jobq__journal_close(&j);
	free(m);
}

/* kill -9 with --fsync none: what was written survives, unsynced. */
static void test_process_death_none(void **state)
{
	struct model *m = new_model();
	struct jobq__journal j;

	assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, NULL), 0);
	for (uint32_t id = 0; id < 50; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		assert_int_equal(jobq__journal_commit(&j, true), 0);
	}
	assert_int_equal(fs.sync_n, 0);
	process_death(&j);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, NULL), 0);
	assert_int_equal(m->n, 50);
	jobq__journal_close(&j);
	free(m);
}

/* Opens the real journal at @path with --fsync none, replaying into @m. */
static void open_real(struct jobq__journal *j, const char *path,
		      struct model *m, struct jobq__replay_info *info)
{
	char err[PATH_MAX + 256];

	if (jobq__journal_open(j, &jobq__jio_posix, path, JOBQ__FSYNC_NONE,
			       apply, m, info, err, sizeof(err)))
		fail_msg("open %s: %s", path, err);
}

/*
 * --fsync none with the system calls on a real file: commits copy into a
 * mapping allocated a chunk ahead, so a manager that dies leaves zeros
 * after its records. Replay takes them as the clean end (no cut), a torn
 * record before zeros is still cut, and a clean close leaves the file at
 * its records' length.
 */
static void test_mapped_none_real_file(void **state)
{
	char dir[] = "/tmp/jobq-jmap-XXXXXX", path[64];
	struct model *m = new_model(), *m2 = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j, j2;
	uint8_t torn[256] = {0x30, 0, 0, 0, 0x12, 0};
	struct stat sb;
	uint64_t used;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	open_real(&j, path, m, NULL);
	for (uint32_t id = 0; id < 50; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		assert_int_equal(jobq__journal_commit(&j, true), 0);
	}
	assert_non_null(j.map);
	used = j.size;
	assert_int_equal(stat(path, &sb), 0);
	assert_true((uint64_t)sb.st_size > used);

	/* The manager died: its mapping is left as it was. */
	open_real(&j2, path, m2, &info);
	assert_int_equal(m2->n, 50);
	assert_false(info.cut);
	assert_int_equal(j2.size, used);
	jobq__journal_close(&j2);
	jobq__journal_close(&j);

	/* A copy cut short, then zeros: cut and reported. */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, torn, sizeof(torn), (off_t)used),
			 (ssize_t)sizeof(torn));
	close(fd);
	memset(m2, 0, sizeof(*m2));
	open_real(&j2, path, m2, &info);
	assert_int_equal(m2->n, 50);
	assert_true(info.cut);
	assert_int_equal(info.cut_offset, used);

	/* A clean close trims the zeros the mapping allocated. */
	assert_int_equal(add(&j2, T_PUT, 50), 0);
	assert_int_equal(jobq__journal_commit(&j2, true), 0);
	assert_non_null(j2.map);
	used = j2.size;
	jobq__journal_close(&j2);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, used);

	unlink(path);
	rmdir(dir);
	free(m);
	free(m2);
}

/* Removes a real journal's files and their directory @dir. */
static void rm_journal_dir(const char *dir)
{
	static const char *const names[] = {"journal", "journal.snap",
					    "journal.spare", "journal.tmp"};
	char path[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/*
 * --fsync none recycles journal files where names can be swapped: after
 * a snapshot the old journal becomes FILE.spare, and the next snapshot
 * makes that file the journal again, its header rewritten and an older
 * journal's records left after an end mark. A manager that dies then
 * replays exactly what was written since (no cut, none of the older
 * records); a clean close trims the file and drops the spare.
 */
static void test_recycled_none_real_file(void **state)
{
	char dir[] = "/tmp/jobq-jrec-XXXXXX", path[64], spare[80];
	struct model *m = new_model(), *live = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j, j2;
	struct stat sb, first;
	uint32_t id = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(spare, sizeof(spare), "%s.spare", path);
	open_real(&j, path, m, NULL);
	assert_int_equal(stat(path, &first), 0);
	/* Three journals: the first two long, the third short, so that
	 * the third's file (the first's) holds older records after its
	 * own. */
	for (int round = 0; round < 3; round++) {
		uint32_t n = round < 2 ? 600 : 40;

		for (uint32_t k = 0; k < n; k++, id++) {
			assert_int_equal(add(&j, T_PUT, id % MAXID), 0);
			model_op(live, T_PUT, id % MAXID);
			if (k % 4 == 0) {
				assert_int_equal(add(&j, T_DEL, id / 2), 0);
				model_op(live, T_DEL, id / 2);
			}
			assert_int_equal(jobq__journal_commit(&j, true), 0);
		}
		if (round < 2)
			assert_int_equal(
			    jobq__journal_snapshot(&j, produce, live), 0);
		if (round == 0) {
			/* The first journal is the spare now. */
			assert_int_equal(stat(spare, &sb), 0);
			assert_int_equal(sb.st_ino, first.st_ino);
		}
	}
	/* The third journal is the first's file again. */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_ino, first.st_ino);
	assert_true((uint64_t)sb.st_size > j.size);

	/* The manager died: replay stops at the end mark. */
	open_real(&j2, path, m, &info);
	assert_false(info.cut);
	assert_false(info.stale_journal);
	assert_int_equal(info.journal_records, 50);
	assert_true(same(m, live));
	/* A start trims the older records and drops the spare. */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, j2.size);
	assert_int_equal(stat(spare, &sb), -1);
	jobq__journal_close(&j2);
	jobq__journal_close(&j);
	assert_int_equal(stat(spare, &sb), -1);

	rm_journal_dir(dir);
	free(m);
	free(live);
}

/*
 * In place: with --fsync none on a mapped file, records are built in the
 * mapping. A forced (--durable) commit among them writes and syncs the
 * same bytes; records a snapshot drops before their commit never replay;
 * and the end mark keeps replay from reading past the last record.
 */
static void test_inplace_none_real_file(void **state)
{
	char dir[] = "/tmp/jobq-jinp-XXXXXX", path[64];
	struct model *m = new_model(), *live = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j, j2;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	open_real(&j, path, m, NULL);
	for (uint32_t id = 0; id < 100; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		if (id == 50) {
			/* A --durable request: written and synced. */
			j.force = true;
			assert_int_equal(jobq__journal_commit(&j, true), 0);
			j.force = false;
			assert_false(j.inplace);
		} else {
			assert_int_equal(jobq__journal_commit(&j, true), 0);
			assert_true(j.inplace);
		}
	}
	/* Added, then dropped by a snapshot that holds the live state. */
	for (uint32_t id = 100; id < 110; id++)
		assert_int_equal(add(&j, T_PUT, id), 0);
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	for (uint32_t id = 200; id < 210; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		assert_int_equal(jobq__journal_commit(&j, true), 0);
	}
	/* The manager died in the middle of a turn: its records are in the
	 * mapping, sealed, not committed. None of them replays, so a request
	 * and its session's answer come back together or not at all. */
	for (uint32_t id = 300; id < 303; id++)
		assert_int_equal(add(&j, T_PUT, id), 0);
	open_real(&j2, path, m, &info);
	assert_false(info.cut);
	assert_int_equal(info.journal_records, 10);
	assert_true(same(m, live));
	jobq__journal_close(&j2);
	jobq__journal_close(&j);
	rm_journal_dir(dir);
	free(m);
	free(live);
}

/* A stale journal beside a newer snapshot (a crash between the two) is
 * ignored; a record replay refuses stops the start. */
static void test_stale_and_refused(void **state)
{
	struct model *m = new_model(), *live = new_model();
	struct jobq__replay_info info;
	struct jobq__journal j;
	uint8_t *old;
	size_t olen;
	char err[PATH_MAX + 256];

	build(&j, 5);
	olen = file("/d/journal")->clen;
	old = malloc(olen);
	memcpy(old, file("/d/journal")->cur, olen);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	memcpy(live->has, m->has, sizeof(m->has));
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	jobq__journal_close(&j);
	/* Put the old journal back, as if the new one never got there. */
	set_file("/d/journal", old, olen);
	free(old);
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, &info), 0);
	assert_true(info.stale_journal);
	assert_int_equal(m->n, 5);
	assert_true(same(m, live));
	jobq__journal_close(&j);

	memset(m, 0, sizeof(*m));
	m->reject = true;
	assert_int_equal(jobq__journal_open(&j, &mio, "/d/journal",
					    JOBQ__FSYNC_BATCH, apply, m, NULL,
					    err, sizeof(err)),
			 -EBADMSG);
	free(m);
	free(live);
}

/* ------------------------------------------------------------------------
 * Asynchronous commits, driven here as the manager's ring drives them.
 */

/* Results the "ring" gives: the nth write (1-based, counting from the
 * test's start) comes back short, with @short_by bytes missing. */
static struct {
	int writes, short_at;
	size_t short_by;
	int syncs, fail_sync_at, err; /* through complete() */
} ring;

static ssize_t m_complete(void *ctx, const struct jobq__jop *op, ssize_t res)
{
	if (op->kind == JOBQ__JOP_SYNC && res == 0 &&
	    ++ring.syncs == ring.fail_sync_at)
		return -ring.err;
	return res;
}

static struct jobq__jio mio_async;

/*
 * Runs the IO handed out as a link chain would: in order, a failure or a
 * short write cancelling the rest. Returns what the last done() said.
 */
static int ring_round(struct jobq__journal *j, int *nops)
{
	struct jobq__jop op[8];
	int n = jobq__journal_ops(j, op, 8), ret = -EINPROGRESS;
	bool broken = false;

	*nops = n;
	for (int k = 0; k < n; k++) {
		ssize_t r = -ECANCELED;

		if (!broken && op[k].kind == JOBQ__JOP_WRITE) {
			struct iovec v = {.iov_base = (void *)op[k].buf,
					  .iov_len = op[k].len};

			if (++ring.writes == ring.short_at)
				v.iov_len -= ring.short_by;
			r = m_pwritev(NULL, op[k].fd, &v, 1, op[k].off);
			if (r != (ssize_t)op[k].len)
				broken = true;
		} else if (!broken) {
			r = m_sync(NULL, op[k].fd);
			if (r)
				broken = true;
		}
		ret = jobq__journal_done(j, op[k].tag, r);
	}
	return ret;
}

static int ring_run(struct jobq__journal *j)
{
	int ret, n;

	do
		ret = ring_round(j, &n);
	while (ret == -EINPROGRESS && n);
	return ret;
}

/*
 * Records added while a commit is in flight go to the next one; a short
 * write is continued and the sync linked to it comes again; power loss
 * keeps exactly the commits that ended.
 */
static void test_async_group_commit(void **state)
{
	struct model *m = new_model(), *acked = new_model();
	struct jobq__journal j;
	int n, syncs;

	memset(&ring, 0, sizeof(ring));
	mio_async = mio;
	mio_async.complete = m_complete;
	assert_int_equal(jobq__journal_open(&j, &mio_async, "/d/journal",
					    JOBQ__FSYNC_BATCH, apply, m, NULL,
					    (char[256]){0}, 256),
			 0);
	for (uint32_t id = 0; id < 10; id++)
		assert_int_equal(add(&j, T_PUT, id), 0);
	assert_int_equal(jobq__journal_begin(&j, true), 0);
	assert_true(jobq__journal_busy(&j));
	assert_int_equal(jobq__journal_begin(&j, true), -EBUSY);
	/* Meanwhile: the next commit's records. */
	for (uint32_t id = 10; id < 15; id++)
		assert_int_equal(add(&j, T_PUT, id), 0);
	assert_true(jobq__journal_pending(&j));
	/* The write comes back short: the linked sync is cancelled, and
	 * the next round writes the rest and syncs. */
	ring.short_at = 1;
	ring.short_by = 7;
	syncs = fs.sync_n;
	assert_int_equal(ring_round(&j, &n), -EINPROGRESS);
	assert_int_equal(n, 2);
	assert_int_equal(fs.sync_n, syncs);
	assert_int_equal(ring_run(&j), 0);
	assert_int_equal(fs.sync_n, syncs + 1);
	assert_false(jobq__journal_busy(&j));
	for (uint32_t id = 0; id < 10; id++)
		model_op(acked, T_PUT, id);
	/* The second commit begins, and the power goes while it runs. */
	assert_int_equal(jobq__journal_begin(&j, true), 0);
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_BATCH, m, NULL), 0);
	assert_true(same(m, acked));
	jobq__journal_close(&j);
	free(m);
	free(acked);
}

/* --fsync always: a unit per request, each written and synced before
 * the next; a sync that fails (injected into the completion) fails the
 * commit and the journal, and a snapshot repairs it. */
static void test_async_units_and_faults(void **state)
{
	struct model *m = new_model(), *live = new_model();
	struct jobq__journal j;
	int syncs, n;

	memset(&ring, 0, sizeof(ring));
	mio_async = mio;
	mio_async.complete = m_complete;
	assert_int_equal(jobq__journal_open(&j, &mio_async, "/d/journal",
					    JOBQ__FSYNC_ALWAYS, apply, m, NULL,
					    (char[256]){0}, 256),
			 0);
	for (uint32_t id = 0; id < 3; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		assert_int_equal(jobq__journal_cut(&j, true), 0);
	}
	/* Nothing added since the last cut: no unit. */
	assert_int_equal(jobq__journal_cut(&j, true), 0);
	assert_true(jobq__journal_will_sync(&j, false));
	syncs = fs.sync_n;
	assert_int_equal(jobq__journal_begin(&j, false), 0);
	assert_int_equal(ring_round(&j, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(fs.sync_n, syncs + 3);

	/* The second sync of the next commit fails. */
	for (uint32_t id = 3; id < 6; id++) {
		assert_int_equal(add(&j, T_PUT, id), 0);
		model_op(live, T_PUT, id);
		assert_int_equal(jobq__journal_cut(&j, true), 0);
	}
	ring.syncs = 0;
	ring.fail_sync_at = 2;
	ring.err = EIO;
	assert_int_equal(jobq__journal_begin(&j, false), 0);
	assert_int_equal(ring_run(&j), -EIO);
	assert_int_equal(j.err, -EIO);
	assert_false(jobq__journal_busy(&j));
	/* Failed: no more commits until a snapshot. */
	assert_int_equal(add(&j, T_PUT, 6), 0);
	model_op(live, T_PUT, 6);
	assert_int_equal(jobq__journal_begin(&j, true), -EIO);
	assert_int_equal(jobq__journal_snapshot(&j, produce, live), 0);
	assert_int_equal(j.err, 0);
	process_death(&j);
	power_loss();
	assert_int_equal(open_j(&j, JOBQ__FSYNC_ALWAYS, m, NULL), 0);
	assert_true(same(m, live));
	jobq__journal_close(&j);
	free(m);
	free(live);
}

/* --fsync none: a commit writes, never syncs, even when asked. */
static void test_async_none_writes_only(void **state)
{
	struct model *m = new_model();
	struct jobq__journal j;
	int n;

	assert_int_equal(open_j(&j, JOBQ__FSYNC_NONE, m, NULL), 0);
	assert_int_equal(add(&j, T_PUT, 1), 0);
	assert_false(jobq__journal_will_sync(&j, true));
	assert_int_equal(jobq__journal_begin(&j, true), 0);
	assert_int_equal(ring_round(&j, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fs.sync_n, 0);
	/* Forced (a --durable request), it syncs, even with nothing new. */
	j.force = true;
	assert_true(jobq__journal_will_sync(&j, true));
	assert_int_equal(jobq__journal_begin(&j, true), 0);
	assert_int_equal(ring_round(&j, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fs.sync_n, 1);
	j.force = false;
	/* Nothing to do: 1. */
	assert_int_equal(jobq__journal_begin(&j, true), 1);
	jobq__journal_close(&j);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_want_snapshot),
	    cmocka_unit_test_setup(test_round_trip, setup),
	    cmocka_unit_test_setup(test_torn_tail_every_offset, setup),
	    cmocka_unit_test_setup(test_bit_flips_journal, setup),
	    cmocka_unit_test_setup(test_bit_flips_snapshot, setup),
	    cmocka_unit_test_setup(test_enospc_eio, setup),
	    cmocka_unit_test_setup(test_power_loss, setup),
	    cmocka_unit_test_setup(test_process_death_none, setup),
	    cmocka_unit_test_setup(test_mapped_none_real_file, setup),
	    cmocka_unit_test_setup(test_recycled_none_real_file, setup),
	    cmocka_unit_test_setup(test_inplace_none_real_file, setup),
	    cmocka_unit_test_setup(test_commit_without_sync, setup),
	    cmocka_unit_test_setup(test_stale_and_refused, setup),
	    cmocka_unit_test_setup(test_async_group_commit, setup),
	    cmocka_unit_test_setup(test_async_units_and_faults, setup),
	    cmocka_unit_test_setup(test_async_none_writes_only, setup),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);

	fs_reset();
	return ret;
}
