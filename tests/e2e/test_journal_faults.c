/* SPDX-License-Identifier: MIT */
/*
 * test_journal_faults.c - a disk that fails under a running jobqd, through
 * the journal's test seam (JOBQD_TEST_JOURNAL_FAULT=FILE: while FILE
 * exists every journal write and sync fails with the error it names), so
 * that the syncs that go through the manager's io_uring fail in their
 * completions, as a real EIO or ENOSPC would:
 *
 *  - puts and key changes answer the error (never success), gets and
 *    reads keep working, jobq stats shows it;
 *  - once the fault is lifted the manager recovers by itself (a
 *    snapshot), and after a kill -9 every acknowledged put is there, in
 *    order, and none that was taken; a put that failed may be there too
 *    (at least once), never twice.
 *
 * With --fsync batch and always, EIO and ENOSPC, in the syncs alone (on
 * ext4 and tmpfs only those go through the ring: writes are done from the
 * loop's thread), in the writes alone, and in both.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

static void put_num(jobq_t *q, int i, int want)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "obj %d", i);

	assert_rc(jobq_put(q, "f", JOBQ_T_BYTES, buf, (size_t)n, 5), want);
}

static void set_fault(const char *path, const char *err)
{
	int fd;

	if (!err) {
		assert_int_equal(unlink(path), 0);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, err, strlen(err)), (ssize_t)strlen(err));
	close(fd);
}

static void fault_case(const char *fsync, const char *what, int err)
{
	char jdir[PATH_MAX], jfile[PATH_MAX + 16], ffile[PATH_MAX + 16];
	const char *args[] = {"--journal", jfile, "--fsync", fsync, NULL};
	struct jobq_stats st;
	struct jqt_mgr m;
	jobq_obj_t o = {0};
	int acked = 0, failed = 0, next, extra = 0, n;
	double end;
	jobq_t *q;

	assert_int_equal(jqt_tmpdir(jdir, sizeof(jdir)), 0);
	snprintf(jfile, sizeof(jfile), "%s/jq.journal", jdir);
	snprintf(ffile, sizeof(ffile), "%s/fault", jdir);
	/* Inherited by the jobqd started next. */
	assert_int_equal(setenv("JOBQD_TEST_JOURNAL_FAULT", ffile, 1), 0);
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	for (; acked < 10; acked++)
		put_num(q, acked, 0);

	/* The disk fails: every change answers the error, from the first
	 * put on (its sync fails in its completion), until it heals. */
	set_fault(ffile, what);
	for (int i = 0; i < 4; i++, failed++)
		put_num(q, -1, -err);
	assert_rc(jobq_kv_set(q, "k", JOBQ_T_TEXT, "v", 1), -err);
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.journal_error, -err);
	assert_true(st.journal_errors >= 1);
	/* Gets and reads go on. */
	assert_rc(jobq_get(q, "f", &o, 5), 0);
	assert_memory_equal(o.data, "obj 0", 5);
	jobq_obj_free(&o);

	/* Healed: the manager snapshots by itself. */
	set_fault(ffile, NULL);
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.05);
		assert_rc(jobq_stats(q, &st), 0);
	} while (st.journal_error && jqt_now() < end);
	assert_int_equal(st.journal_error, 0);
	assert_int_equal(st.journal_last_error, -err);
	assert_true(st.journal_snapshots >= 1);
	put_num(q, acked++, 0);
	assert_rc(jobq_kv_set(q, "k", JOBQ_T_TEXT, "v", 1), 0);
	jobq_close(q);

	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	next = 1; /* obj 0 was taken */
	while (jobq_get(q, "f", &o, 0) == 0) {
		if (sscanf(o.data, "obj %d", &n) != 1)
			fail_msg("not an object of this test");
		if (n == next)
			next++;
		else if (n == -1)
			extra++;
		else
			fail_msg("object %d where %d was due", n, next);
		jobq_obj_free(&o);
	}
	assert_int_equal(next, acked);
	assert_true(extra <= failed);
	{
		char buf[8];

		assert_rc(jobq_kv_get_buf(q, "k", buf, sizeof(buf), NULL), 1);
	}
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
	unsetenv("JOBQD_TEST_JOURNAL_FAULT");
	jqt_rmtree(jdir);
}

static void test_batch_sync_eio(void **state)
{
	fault_case("batch", "EIO sync", EIO);
}

static void test_batch_write_enospc(void **state)
{
	fault_case("batch", "ENOSPC write", ENOSPC);
}

static void test_always_sync_enospc(void **state)
{
	fault_case("always", "ENOSPC sync", ENOSPC);
}

static void test_always_eio(void **state)
{
	fault_case("always", "EIO", EIO);
}

/*
 * --fsync none copies records into a mapping of the journal, allocated a
 * chunk ahead: the disk's failure shows when the file must grow. Puts go
 * on being acknowledged while the chunk has room, then fail with the
 * cause; after the fault is lifted and the manager repaired the journal,
 * a kill -9 loses none that was acknowledged.
 */
static void test_none_growth_enospc(void **state)
{
	char jdir[PATH_MAX], jfile[PATH_MAX + 16], ffile[PATH_MAX + 16];
	const char *args[] = {"--journal", jfile, NULL};
	static char big[64 << 10];
	struct jobq_stats st;
	struct jqt_mgr m;
	jobq_obj_t o = {0};
	int acked = 0, rc = 0, next = 0, n;
	double end;
	jobq_t *q;

	assert_int_equal(jqt_tmpdir(jdir, sizeof(jdir)), 0);
	snprintf(jfile, sizeof(jfile), "%s/jq.journal", jdir);
	snprintf(ffile, sizeof(ffile), "%s/fault", jdir);
	assert_int_equal(setenv("JOBQD_TEST_JOURNAL_FAULT", ffile, 1), 0);
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	for (; acked < 5; acked++)
		put_num(q, acked, 0);

	set_fault(ffile, "ENOSPC write");
	/* 64 KiB each: the chunk is full within a few dozen. */
	for (int i = 0; i < 64; i++) {
		snprintf(big, sizeof(big), "obj %d", acked);
		rc = jobq_put(q, "f", JOBQ_T_BYTES, big, sizeof(big), 5);
		if (rc)
			break;
		acked++;
	}
	assert_rc(rc, -ENOSPC);
	assert_rc(jobq_kv_set(q, "k", JOBQ_T_TEXT, "v", 1), -ENOSPC);
	assert_rc(jobq_stats(q, &st), 0);
	assert_int_equal(st.journal_error, -ENOSPC);

	set_fault(ffile, NULL);
	end = jqt_now() + 10;
	do {
		jqt_sleep(0.05);
		assert_rc(jobq_stats(q, &st), 0);
	} while (st.journal_error && jqt_now() < end);
	assert_int_equal(st.journal_error, 0);
	put_num(q, acked++, 0);
	jobq_close(q);

	kill(m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	while (jobq_get(q, "f", &o, 0) == 0) {
		if (sscanf(o.data, "obj %d", &n) != 1)
			fail_msg("not an object of this test");
		/* The put that failed may be there (at least once). */
		if (n == next)
			next++;
		else if (n != next - 1 || n != acked - 1)
			fail_msg("object %d where %d was due", n, next);
		jobq_obj_free(&o);
	}
	assert_int_equal(next, acked);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
	unsetenv("JOBQD_TEST_JOURNAL_FAULT");
	jqt_rmtree(jdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_sync_eio),
	    cmocka_unit_test(test_batch_write_enospc),
	    cmocka_unit_test(test_always_sync_enospc),
	    cmocka_unit_test(test_always_eio),
	    cmocka_unit_test(test_none_growth_enospc),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
