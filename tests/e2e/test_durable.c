/* SPDX-License-Identifier: MIT */
/*
 * test_durable.c - queues and keys survive the manager's death:
 *
 *  - put objects, take some, set, delete, increment and swap keys;
 *    kill -9 jobqd; a new one on the same directory has everything that
 *    was acknowledged, and the objects taken are not back. With the
 *    default --fsync none, with --journal FILE --fsync batch, and always;
 *  - enough of that for snapshots to compact the journal, which then
 *    stays proportional to the live state;
 *  - a torn tail is cut and reported, a damaged snapshot is refused;
 *  - the queue checker: producers put numbered objects, consumers take
 *    them, the manager is killed with SIGKILL at random moments 20+ times
 *    and restarted; every acknowledged put is received (lost must be 0),
 *    nothing is received that was never put, duplicates are reported.
 *    Producers and consumers reconnect by opening a new handle; and again
 *    with handles that reconnect by themselves (jobq_open_ex()), the
 *    producers and consumers just calling on: then no call may fail, and
 *    a put is never doubled (request ids): duplicates come from gets
 *    alone, an object received whose taking had not reached the journal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* A manager with the journal options of one mode. @jdir holds --journal
 * FILE when the mode has one (it lives outside the instance directory, so
 * a failed start that removes the instance leaves it). */
struct dmgr {
	struct jqt_mgr m;
	char jdir[PATH_MAX];
	char jfile[PATH_MAX + 16];
	const char *args[10];
};

static void dmgr_start(struct dmgr *d, const char *fsync, bool file)
{
	int n = 0;

	memset(d, 0, sizeof(*d));
	if (file) {
		assert_int_equal(jqt_tmpdir(d->jdir, sizeof(d->jdir)), 0);
		snprintf(d->jfile, sizeof(d->jfile), "%s/jq.journal", d->jdir);
		d->args[n++] = "--journal";
		d->args[n++] = d->jfile;
	}
	if (fsync) {
		d->args[n++] = "--fsync";
		d->args[n++] = fsync;
	}
	/* Compaction after a few MB of records, not the default 16. */
	d->args[n++] = "--compact-min";
	d->args[n++] = "4M";
	d->args[n] = NULL;
	assert_int_equal(jqt_mgr_start(&d->m, d->args), 0);
	if (!file)
		snprintf(d->jfile, sizeof(d->jfile), "%s/journal", d->m.dir);
}

/* kill -9 the manager and start another on the same directory. */
static int dmgr_crash_restart(struct dmgr *d)
{
	kill(d->m.pid, SIGKILL);
	if (jqt_mgr_wait_exit(&d->m, 10))
		return -1;
	return jqt_mgr_restart(&d->m, d->args);
}

static void dmgr_stop(struct dmgr *d)
{
	jqt_mgr_stop(&d->m);
	if (d->jdir[0])
		jqt_rmtree(d->jdir);
}

static void put_num(jobq_t *q, const char *queue, int i, size_t pad)
{
	char buf[1 << 15];
	int n = snprintf(buf, sizeof(buf), "obj %d ", i);

	assert_true(pad < sizeof(buf));
	if ((size_t)n < pad) {
		memset(buf + n, 'x', pad - (size_t)n);
		n = (int)pad;
	}
	assert_rc(jobq_put(q, queue, JOBQ_T_BYTES, buf, (size_t)n, 5), 0);
}

static void expect_num(jobq_t *q, const char *queue, int i)
{
	jobq_obj_t o = {0};
	char want[32];
	int n = snprintf(want, sizeof(want), "obj %d ", i);

	assert_rc(jobq_get(q, queue, &o, 5), 0);
	assert_true(o.len >= (size_t)n);
	assert_memory_equal(o.data, want, (size_t)n);
	jobq_obj_free(&o);
}

static void expect_kv(jobq_t *q, const char *key, const char *val)
{
	char buf[64];
	ssize_t n = jobq_kv_get_buf(q, key, buf, sizeof(buf), NULL);

	if (!val) {
		assert_rc(n, -ENOENT);
		return;
	}
	assert_rc(n, (ssize_t)strlen(val));
	assert_memory_equal(buf, val, (size_t)n);
}

static uint64_t depth(jobq_t *q, const char *queue)
{
	struct jobq_queue_info qi;

	assert_rc(jobq_queue_info(q, queue, &qi), 0);
	return qi.depth;
}

static void restart_case(const char *fsync, bool file)
{
	struct dmgr d;
	struct jobq_queue_opts lim = {.max_depth = 500};
	jobq_t *q;
	char key[32], val[32];
	int64_t v;

	dmgr_start(&d, fsync, file);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_rc(jobq_queue_open(q, "bounded", &lim), 0);
	for (int i = 0; i < 100; i++)
		put_num(q, "d", i, 0);
	for (int i = 0; i < 50; i++)
		put_num(q, "e", i, 100);
	put_num(q, "bounded", 7, 0);
	for (int i = 0; i < 30; i++)
		expect_num(q, "d", i);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		assert_rc(jobq_kv_set(q, key, JOBQ_T_TEXT, val, strlen(val)),
			  0);
	}
	assert_rc(jobq_kv_del(q, "k3"), 0);
	assert_rc(jobq_kv_set(q, "k4", JOBQ_T_TEXT, "again", 5), 0);
	for (int i = 0; i < 7; i++)
		assert_rc(jobq_kv_incr(q, "ctr", 3, &v), 0);
	assert_rc(jobq_kv_cas(q, "k5", "v5", 2, JOBQ_T_TEXT, "swapped", 7), 0);
	/*
	 * A take is journaled when the manager sees it acknowledged: at its
	 * next look at this client's ring, which the next request brings,
	 * and that request's answer waits for the journal.
	 */
	assert_rc(jobq_kv_set(q, "last", JOBQ_T_TEXT, "1", 1), 0);
	jobq_close(q);

	assert_int_equal(dmgr_crash_restart(&d), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_int_equal(depth(q, "d"), 70);
	assert_int_equal(depth(q, "e"), 50);
	{
		struct jobq_queue_info qi;

		assert_rc(jobq_queue_info(q, "bounded", &qi), 0);
		assert_int_equal(qi.max_depth, 500);
		assert_int_equal(qi.depth, 1);
	}
	for (int i = 30; i < 100; i++)
		expect_num(q, "d", i);
	for (int i = 0; i < 50; i++)
		expect_num(q, "e", i);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		expect_kv(q, key,
			  i == 3   ? NULL
			  : i == 4 ? "again"
			  : i == 5 ? "swapped"
				   : val);
	}
	expect_kv(q, "ctr", "21");
	assert_rc(jobq_kv_incr(q, "ctr", 1, &v), 0);
	assert_int_equal(v, 22);
	/* The second life's changes survive a second death too. */
	assert_rc(jobq_kv_set(q, "last", JOBQ_T_TEXT, "2", 1), 0);
	jobq_close(q);
	assert_int_equal(dmgr_crash_restart(&d), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	expect_kv(q, "last", "2");
	expect_kv(q, "ctr", "22");
	assert_int_equal(depth(q, "d"), 0);
	assert_int_equal(depth(q, "e"), 0);
	expect_num(q, "bounded", 7);
	jobq_close(q);
	dmgr_stop(&d);
}

static void test_restart_none(void **state)
{
	restart_case(NULL, false);
}

/*
 * Takes are journaled lazily, with the next commit something else begins
 * (restart_case() ends with a kv set for that): with nothing after them,
 * they still reach the journal before the manager goes to sleep. The
 * handle stays open across the kill, so no goodbye commits them. A take
 * is the client's cq head moving past the object, which the manager sees
 * at its next turn; the head moves after the answer was read, which on a
 * loaded machine can be after the manager went to sleep (it asks for
 * no wake-up on a head that moves: that would cost every get a second
 * system call). A lock taken and given back is a request that journals
 * nothing: its turn sees the head as it is after the last get.
 */
static void takes_case(const char *fsync, bool file)
{
	struct dmgr d;
	jobq_t *q;

	dmgr_start(&d, fsync, file);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	for (int i = 0; i < 20; i++)
		put_num(q, "t", i, 0);
	for (int i = 0; i < 12; i++)
		expect_num(q, "t", i);
	assert_rc(jobq_lock_acquire(q, "seen", 5), 0);
	assert_rc(jobq_lock_release(q, "seen"), 0);
	/* Far beyond the manager's spin window before it sleeps. */
	usleep(300 * 1000);
	assert_int_equal(dmgr_crash_restart(&d), 0);
	jobq_close(q);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_int_equal(depth(q, "t"), 8);
	expect_num(q, "t", 12);
	jobq_close(q);
	dmgr_stop(&d);
}

static void test_takes_none(void **state)
{
	takes_case(NULL, false);
}

static void test_takes_batch(void **state)
{
	takes_case("batch", true);
}

static void run_jobqd(const char *dir, const char *jfile, struct jqt_out *o);

static void test_restart_batch(void **state)
{
	restart_case("batch", true);
}

/* Two managers never share a journal. */
static void test_journal_in_use(void **state)
{
	char dir2[PATH_MAX];
	struct jqt_out o;
	struct dmgr d;

	dmgr_start(&d, "batch", true);
	assert_int_equal(jqt_tmpdir(dir2, sizeof(dir2)), 0);
	run_jobqd(dir2, d.jfile, &o);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "in use by another jobqd"));
	jqt_out_free(&o);
	jqt_rmtree(dir2);
	dmgr_stop(&d);
}

static void test_restart_always(void **state)
{
	restart_case("always", true);
}

/*
 * Snapshots keep the journal proportional to the live state: 60 MB of
 * puts and takes through a queue that never holds more than 104 objects
 * of 32 KB (3.3 MB) leave files of a few MB, and the state comes back
 * from them.
 */
static void test_compaction(void **state)
{
	struct dmgr d;
	struct jobq_stats st;
	struct stat sb;
	jobq_t *q;
	int next_put = 0, next_get = 0;

	dmgr_start(&d, "batch", true);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	for (int round = 0; round < 30; round++) {
		for (int i = 0; i < 64; i++)
			put_num(q, "big", next_put++, 32000);
		while (next_put - next_get > 40)
			expect_num(q, "big", next_get++);
	}
	assert_rc(jobq_kv_set(q, "sync", JOBQ_T_TEXT, "1", 1), 0);
	assert_rc(jobq_stats(q, &st), 0);
	assert_true(st.journal_snapshots >= 1);
	assert_int_equal(st.journal_mode, 1);
	assert_int_equal(st.journal_error, 0);
	assert_true(st.journal_last_sync_ns > 0);
	assert_int_equal(stat(d.jfile, &sb), 0);
	print_message("journal %lld bytes, snapshot %llu bytes, %llu "
		      "snapshots, after 60 MB of puts and takes\n",
		      (long long)sb.st_size,
		      (unsigned long long)st.journal_snapshot_size,
		      (unsigned long long)st.journal_snapshots);
	/* At most 4 MiB of journal past a snapshot of the live state. */
	assert_true(sb.st_size < (10 << 20));
	jobq_close(q);

	assert_int_equal(dmgr_crash_restart(&d), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_int_equal(depth(q, "big"), (uint64_t)(next_put - next_get));
	while (next_get < next_put)
		expect_num(q, "big", next_get++);
	jobq_close(q);
	dmgr_stop(&d);
}

/*
 * A store filled to the last byte by batches restarts in the same
 * --memory: replay must not take more heap than the puts did.
 */
static void test_full_store_restarts(void **state)
{
	const char *args[] = {"--memory", "8M", NULL};
	jobq_obj_t objs[64];
	char buf[64][64];
	struct jqt_mgr m;
	uint64_t n = 0;
	jobq_t *q;
	int rc;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	for (;;) {
		for (int i = 0; i < 64; i++) {
			memset(buf[i], 'a' + i % 26, sizeof(buf[i]));
			objs[i] = (jobq_obj_t){
			    .type = JOBQ_T_BYTES, .data = buf[i], .len = 64};
		}
		rc = jobq_put_many(q, "full", objs, 64, 0);
		if (rc <= 0)
			break;
		n += (uint64_t)rc;
	}
	assert_rc(rc, JOBQ_EFULL);
	assert_int_equal(depth(q, "full"), n);
	jobq_close(q);
	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_int_equal(depth(q, "full"), n);
	jobq_close(q);
	jqt_mgr_stop(&m);
}

/* Runs `jobqd --dir DIR --journal FILE` in the foreground for a moment
 * and returns what it said (code -1 when it kept running: it started). */
static void run_jobqd(const char *dir, const char *jfile, struct jqt_out *o)
{
	const char *argv[] = {
	    jqt_jobqd_path(), "--dir", dir, "--journal", jfile,
	    "--memory",	      "16M",   NULL};

	assert_int_equal(jqt_run(argv[0], argv, NULL, 0, 2, o), 0);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void test_torn_tail_and_bad_snapshot(void **state)
{
	struct dmgr d;
	char snap[PATH_MAX + 32], dir2[PATH_MAX];
	struct jqt_out o;
	struct stat sb;
	jobq_t *q;
	int fd;

	dmgr_start(&d, "batch", true);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	for (int i = 0; i < 10; i++)
		put_num(q, "t", i, 0);
	jobq_close(q);
	kill(d.m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&d.m, 10), 0);

	/* Half a record of garbage at the end: cut, reported, started. */
	fd = open(d.jfile, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x30\0\0\0\x12\0\0\0garbage", 15), 15);
	close(fd);
	assert_int_equal(stat(d.jfile, &sb), 0);
	assert_int_equal(jqt_tmpdir(dir2, sizeof(dir2)), 0);
	run_jobqd(dir2, d.jfile, &o);
	assert_int_equal(o.code, -1);
	assert_non_null(strstr(o.err, "cut at byte"));
	jqt_out_free(&o);

	/* Nothing before the cut was lost. Then enough puts for a
	 * compaction, so that there is a snapshot to damage. */
	assert_int_equal(jqt_mgr_restart(&d.m, d.args), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_int_equal(depth(q, "t"), 10);
	/* Enough for a compaction. */
	for (int i = 0; i < 200; i++)
		put_num(q, "s", i, 30000);
	assert_rc(jobq_kv_set(q, "sync", JOBQ_T_TEXT, "1", 1), 0);
	jobq_close(q);
	kill(d.m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&d.m, 10), 0);
	snprintf(snap, sizeof(snap), "%s.snap", d.jfile);
	assert_int_equal(stat(snap, &sb), 0);
	flip_byte(snap, sb.st_size / 2);
	run_jobqd(dir2, d.jfile, &o);
	assert_int_equal(o.code, 1);
	assert_non_null(strstr(o.err, "corrupt"));
	assert_non_null(strstr(o.err, snap));
	jqt_out_free(&o);
	jqt_rmtree(dir2);
	dmgr_stop(&d);
}

/* Reads a whole file into a malloc'd buffer; *len gets its size. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	b = malloc((size_t)sb.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

static void spew(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/*
 * The length of the records of journal image @b (@len bytes): a journal
 * in --fsync none mode is a mapping allocated ahead, so a killed manager
 * leaves zeros after its last record. Walks the records' lengths (u32 at
 * each record's start, 20 bytes of header and crc around the payload)
 * from the 40-byte header to the first that is zero or runs past the end.
 */
static size_t records_len(const uint8_t *b, size_t len)
{
	size_t off = 40;

	while (off + 20 <= len) {
		uint32_t rlen = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
				(uint32_t)b[off + 2] << 16 |
				(uint32_t)b[off + 3] << 24;

		if ((!rlen && !b[off + 4] && !b[off + 8]) ||
		    rlen > len - off - 20)
			break;
		off += 20 + rlen;
	}
	return off;
}

/*
 * The journal cut at every byte offset of its last record in turn (a
 * crash in the middle of its write or copy): the manager starts every
 * time, with everything before that record and without it. The image is
 * cut after the records: a zero tail after them is tested elsewhere.
 */
static void test_torn_tail_every_offset(void **state)
{
	char dir2[PATH_MAX];
	struct dmgr d;
	struct jqt_out o;
	size_t before, full, whole;
	uint8_t *img;
	jobq_t *q;

	dmgr_start(&d, NULL, true);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	for (int i = 0; i < 5; i++)
		put_num(q, "tt", i, 0);
	jobq_close(q);
	img = slurp(d.jfile, &before);
	before = records_len(img, before);
	free(img);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	assert_rc(jobq_kv_set(q, "last", JOBQ_T_TEXT, "x", 1), 0);
	jobq_close(q);
	kill(d.m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&d.m, 10), 0);
	img = slurp(d.jfile, &whole);
	full = records_len(img, whole);
	assert_true(full > before);
	for (size_t cut = before; cut < full; cut++) {
		spew(d.jfile, img, cut);
		assert_int_equal(jqt_mgr_restart(&d.m, d.args), 0);
		assert_rc(jobq_open(&q, d.m.dir), 0);
		assert_int_equal(depth(q, "tt"), 5);
		expect_kv(q, "last", NULL);
		jobq_close(q);
		kill(d.m.pid, SIGKILL);
		assert_int_equal(jqt_mgr_wait_exit(&d.m, 10), 0);
	}
	/* The file as the kill left it, zeros after the records in
	 * --fsync none: a clean end, not a cut. */
	spew(d.jfile, img, whole);
	assert_int_equal(jqt_tmpdir(dir2, sizeof(dir2)), 0);
	run_jobqd(dir2, d.jfile, &o);
	assert_null(strstr(o.err, "cut at byte"));
	jqt_out_free(&o);
	jqt_rmtree(dir2);
	spew(d.jfile, img, whole);
	assert_int_equal(jqt_mgr_restart(&d.m, d.args), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	expect_kv(q, "last", "x");
	jobq_close(q);
	free(img);
	/* A manager stopped cleanly leaves its records and nothing after. */
	jqt_mgr_stop(&d.m);
	img = slurp(d.jfile, &whole);
	assert_int_equal(records_len(img, whole), whole);
	free(img);
	if (d.jdir[0])
		jqt_rmtree(d.jdir);
}

/*
 * Write errors are never swallowed. A file size limit on jobqd
 * (RLIMIT_FSIZE, with SIGXFSZ ignored) makes its journal writes fail with
 * EFBIG as a full disk would with ENOSPC: puts fail with that error, gets
 * and reads keep working, jobq stats says so, and once the limit is lifted
 * the manager recovers by itself, losing nothing it acknowledged.
 */
static void set_fsize(pid_t pid, rlim_t cur)
{
	struct rlimit rl = {.rlim_cur = cur, .rlim_max = RLIM_INFINITY};

	assert_int_equal(prlimit(pid, RLIMIT_FSIZE, &rl, NULL), 0);
}

static void test_write_errors(void **state)
{
	struct dmgr d;
	struct jobq_stats st;
	struct stat sb;
	jobq_t *q;
	int acked = 0, failed = 0, rc;
	double end;

	signal(SIGXFSZ, SIG_IGN); /* inherited by the jobqd started next */
	dmgr_start(&d, "batch", true);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	for (; acked < 20; acked++)
		put_num(q, "w", acked, 1000);
	assert_int_equal(stat(d.jfile, &sb), 0);
	set_fsize(d.m.pid, (rlim_t)sb.st_size + 1500);
	for (int i = 0; i < 5; i++) {
		char buf[1000] = "obj -1 ";

		rc = jobq_put(q, "w", JOBQ_T_BYTES, buf, sizeof(buf), 5);
		if (rc == 0) {
			/* One more fits under the limit; keep it in order. */
			assert_int_equal(failed, 0);
			continue;
		}
		assert_rc(rc, -EFBIG);
		failed++;
	}
	assert_true(failed >= 3);
	assert_rc(jobq_kv_set(q, "k", JOBQ_T_TEXT, "v", 1), -EFBIG);
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.journal_error, -EFBIG);
	assert_int_equal(st.journal_last_error, -EFBIG);
	assert_true(st.journal_errors >= 1);
	/* Reads and gets keep working. */
	expect_num(q, "w", 0);
	assert_true(depth(q, "w") >= 19);

	set_fsize(d.m.pid, RLIM_INFINITY);
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.05);
		assert_rc(jobq_stats(q, &st), 0);
	} while (st.journal_error && jqt_now() < end);
	assert_int_equal(st.journal_error, 0);
	assert_true(st.journal_snapshots >= 1);
	put_num(q, "w", acked++, 1000);
	assert_rc(jobq_kv_set(q, "k", JOBQ_T_TEXT, "v", 1), 0);
	jobq_close(q);

	/* Every acknowledged put is there after a crash; a put that failed
	 * may be there too (at least once), never one that was taken. */
	assert_int_equal(dmgr_crash_restart(&d), 0);
	assert_rc(jobq_open(&q, d.m.dir), 0);
	expect_kv(q, "k", "v");
	{
		jobq_obj_t o = {0};
		int next = 1, extra = 0, n;

		while (jobq_get(q, "w", &o, 0) == 0) {
			if (sscanf(o.data, "obj %d", &n) == 1 && n == next)
				next++;
			else if (n == -1)
				extra++;
			else
				fail_msg("object %d where %d was due", n, next);
			jobq_obj_free(&o);
		}
		assert_int_equal(next, acked);
		assert_true(extra <= 5);
	}
	jobq_close(q);
	dmgr_stop(&d);
	signal(SIGXFSZ, SIG_DFL);
}

/* ------------------------------------------------------------------------
 * The queue checker.
 */
#define NPROD  2
#define NCONS  2
#define MAXSEQ (1 << 18)
#define KILLS  22

struct checker {
	_Atomic int stop_producers, stop_consumers;
	_Atomic uint32_t acked[NPROD];	   /* puts acknowledged: 0..acked-1 */
	_Atomic uint32_t attempted[NPROD]; /* puts sent: 0..attempted-1 */
	_Atomic uint32_t received[NPROD][MAXSEQ];
	_Atomic uint32_t bogus; /* received, never put */
	_Atomic uint64_t reconnects;
	_Atomic uint32_t failed; /* calls that failed in the automatic mode */
	bool autoreconnect;
	char dir[PATH_MAX];
};

/* Opens a handle, retrying while the manager is away (at most 30 s). */
static jobq_t *reopen(struct checker *k)
{
	struct jobq_open_opts o = {.reconnect = 30};
	double end = jqt_now() + 30;
	jobq_t *q = NULL;

	while (jobq_open_ex(&q, k->dir, k->autoreconnect ? &o : NULL)) {
		if (jqt_now() > end)
			return NULL;
		jqt_sleep(0.01);
	}
	k->reconnects++;
	return q;
}

static int producer(int idx, void *arg)
{
	struct checker *k = arg;
	jobq_t *q = reopen(k);
	uint32_t seq = 0;
	char buf[64];

	CK(q);
	while (!k->stop_producers && seq < MAXSEQ) {
		int n = snprintf(buf, sizeof(buf), "%d %u", idx, seq), rc;

		k->attempted[idx] = seq + 1;
		rc = jobq_put(q, "chk", JOBQ_T_TEXT, buf, (size_t)n, 5);
		if (rc == 0) {
			k->acked[idx] = ++seq;
			continue;
		}
		if (k->autoreconnect) {
			fprintf(stderr, "producer %d: put %u: %s\n", idx, seq,
				jobq_strerror(rc));
			k->failed++;
			continue;
		}
		/* The manager went away mid-put: the put may or may not have
		 * happened. Sent again, it may be received twice. */
		jobq_close(q);
		q = reopen(k);
		CK(q);
	}
	jobq_close(q);
	return 0;
}

static int consumer(int idx, void *arg)
{
	struct checker *k = arg;
	jobq_t *q = reopen(k);

	CK(q);
	while (!k->stop_consumers) {
		jobq_obj_t o = {0};
		unsigned p, seq;
		int rc = jobq_get(q, "chk", &o, 0.2);

		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			continue;
		if (rc && k->autoreconnect) {
			fprintf(stderr, "consumer %d: get: %s\n", idx,
				jobq_strerror(rc));
			k->failed++;
			jqt_sleep(0.01);
			continue;
		}
		if (rc) {
			jobq_close(q);
			q = reopen(k);
			CK(q);
			continue;
		}
		if (sscanf(o.data, "%u %u", &p, &seq) != 2 || p >= NPROD ||
		    seq >= k->attempted[p])
			k->bogus++;
		else
			k->received[p][seq]++;
		jobq_obj_free(&o);
	}
	jobq_close(q);
	return 0;
}

static bool all_received(struct checker *k)
{
	for (int p = 0; p < NPROD; p++)
		for (uint32_t s = 0; s < k->acked[p]; s++)
			if (!k->received[p][s])
				return false;
	return true;
}

static void checker_case(const char *fsync, bool file, bool autoreconnect)
{
	struct checker *k = jqt_shared(sizeof(*k));
	pid_t prod[NPROD], cons[NCONS];
	uint64_t seed = (uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL);
	uint64_t lost = 0, dups = 0, total = 0;
	struct dmgr d;
	double end;

	print_message("checker --fsync %s: seed %llu\n", fsync ? fsync : "none",
		      (unsigned long long)seed);
	dmgr_start(&d, fsync, file);
	snprintf(k->dir, sizeof(k->dir), "%s", d.m.dir);
	k->autoreconnect = autoreconnect;
	for (int i = 0; i < NPROD; i++)
		prod[i] = jqt_fork(producer, i, k);
	for (int i = 0; i < NCONS; i++)
		cons[i] = jqt_fork(consumer, i, k);
	for (int kill_no = 0; kill_no < KILLS; kill_no++) {
		jqt_sleep(0.03 + (double)(jqt_rand(&seed) % 170) / 1000);
		assert_int_equal(dmgr_crash_restart(&d), 0);
	}
	jqt_sleep(0.2);
	k->stop_producers = 1;
	assert_int_equal(jqt_wait_all(prod, NPROD, 30, NULL), 0);
	end = jqt_now() + 30;
	while (!all_received(k) && jqt_now() < end)
		jqt_sleep(0.05);
	k->stop_consumers = 1;
	assert_int_equal(jqt_wait_all(cons, NCONS, 30, NULL), 0);

	for (int p = 0; p < NPROD; p++) {
		for (uint32_t s = 0; s < k->attempted[p]; s++) {
			uint32_t r = k->received[p][s];

			if (s < k->acked[p] && !r)
				lost++;
			if (r > 1)
				dups += r - 1;
			total += r;
		}
	}
	print_message("checker --fsync %s%s: %d kills, %u + %u puts "
		      "acknowledged, %llu received, lost %llu, duplicated "
		      "%llu, never put %u, %llu opens, %u failed calls\n",
		      fsync ? fsync : "none",
		      autoreconnect ? " (reconnecting handles)" : "", KILLS,
		      k->acked[0], k->acked[1], (unsigned long long)total,
		      (unsigned long long)lost, (unsigned long long)dups,
		      k->bogus, (unsigned long long)k->reconnects, k->failed);
	assert_int_equal(lost, 0);
	assert_int_equal(k->failed, 0);
	assert_int_equal(k->bogus, 0);
	assert_true(k->acked[0] > 0 && k->acked[1] > 0);
	dmgr_stop(&d);
}

static void test_checker_none(void **state)
{
	checker_case(NULL, false, false);
}

static void test_checker_batch(void **state)
{
	checker_case("batch", true, false);
}

static void test_checker_always(void **state)
{
	checker_case("always", true, false);
}

static void test_checker_auto_none(void **state)
{
	checker_case(NULL, false, true);
}

static void test_checker_auto_batch(void **state)
{
	checker_case("batch", true, true);
}

static void test_checker_auto_always(void **state)
{
	checker_case("always", true, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_restart_none),
	    cmocka_unit_test(test_restart_batch),
	    cmocka_unit_test(test_restart_always),
	    cmocka_unit_test(test_takes_none),
	    cmocka_unit_test(test_takes_batch),
	    cmocka_unit_test(test_journal_in_use),
	    cmocka_unit_test(test_compaction),
	    cmocka_unit_test(test_full_store_restarts),
	    cmocka_unit_test(test_torn_tail_and_bad_snapshot),
	    cmocka_unit_test(test_torn_tail_every_offset),
	    cmocka_unit_test(test_write_errors),
	    cmocka_unit_test(test_checker_none),
	    cmocka_unit_test(test_checker_batch),
	    cmocka_unit_test(test_checker_always),
	    cmocka_unit_test(test_checker_auto_none),
	    cmocka_unit_test(test_checker_auto_batch),
	    cmocka_unit_test(test_checker_auto_always),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
