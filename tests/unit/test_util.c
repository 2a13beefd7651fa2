/* SPDX-License-Identifier: MIT */
/*
 * test_util.c - the helpers every tool leans on: size parsing, timeouts,
 * error text, time and size formatting, name checks and the instance
 * directory rule.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

/* ------------------------------------------------------------------------
 * jobq_parse_size
 */
static void expect_size(const char *s, uint64_t want)
{
	uint64_t got = 12345;
	int rc = jobq_parse_size(s, &got);

	if (rc != 0 || got != want)
		fail_msg("jobq_parse_size(\"%s\"): rc %d, %llu; want 0, %llu",
			 s, rc, (unsigned long long)got,
			 (unsigned long long)want);
}

static void expect_bad_size(const char *s)
{
	uint64_t got = 12345;
	int rc = jobq_parse_size(s, &got);

	/* A refused string leaves the output alone. */
	if (rc != -EINVAL || got != 12345)
		fail_msg("jobq_parse_size(\"%s\"): rc %d, %llu; want -EINVAL, "
			 "untouched",
			 s ? s : "(null)", rc, (unsigned long long)got);
}

static void test_parse_size_plain(void **state)
{
	(void)state;
	expect_size("0", 0);
	expect_size("1", 1);
	expect_size("123", 123);
	expect_size("0010", 10);
	expect_size("100B", 100);
	expect_size("100b", 100);
	expect_size("18446744073709551615", UINT64_MAX);
}

static void test_parse_size_suffixes(void **state)
{
	(void)state;
	/* Powers of 1024, in either case, with or without "B" or "iB". */
	expect_size("64K", 64ull << 10);
	expect_size("64k", 64ull << 10);
	expect_size("64KB", 64ull << 10);
	expect_size("64KiB", 64ull << 10);
	expect_size("64kib", 64ull << 10);
	expect_size("16M", 16ull << 20);
	expect_size("16MiB", 16ull << 20);
	expect_size("256m", 256ull << 20);
	expect_size("1G", 1ull << 30);
	expect_size("3gb", 3ull << 30);
	expect_size("2T", 2ull << 40);
	expect_size("0K", 0);
	/* The largest that still fits in 64 bits, per suffix. */
	expect_size("16777215T", 16777215ull << 40);
	expect_size("17179869183G", 17179869183ull << 30);
	expect_size("18014398509481983K", 18014398509481983ull << 10);
}

static void test_parse_size_overflow(void **state)
{
	(void)state;
	expect_bad_size("18446744073709551616"); /* 2^64 */
	expect_bad_size("99999999999999999999999");
	expect_bad_size("16777216T");	       /* 2^64 */
	expect_bad_size("17179869184G");       /* 2^64 */
	expect_bad_size("18014398509481984K"); /* 2^64 */
	expect_bad_size("18446744073709551615K");
}

static void test_parse_size_garbage(void **state)
{
	(void)state;
	expect_bad_size(NULL);
	expect_bad_size("");
	expect_bad_size("K");
	expect_bad_size("B");
	expect_bad_size("-1");
	expect_bad_size("+1");
	expect_bad_size(" 1");
	expect_bad_size("1 ");
	expect_bad_size("1 K");
	expect_bad_size("1.5M");
	expect_bad_size("1X");
	expect_bad_size("1KK");
	expect_bad_size("1KBB");
	expect_bad_size("1iB"); /* "i" only after a unit */
	expect_bad_size("1P");	/* no suffix beyond T */
	expect_bad_size("0x10");
	expect_bad_size("ten");
}

/* ------------------------------------------------------------------------
 * jobq__timeout_ns
 */
static void test_timeout_ns(void **state)
{
	(void)state;
	/* Negative and NaN wait forever. */
	assert_int_equal(jobq__timeout_ns(-1), -1);
	assert_int_equal(jobq__timeout_ns(-0.001), -1);
	assert_int_equal(jobq__timeout_ns(-INFINITY), -1);
	assert_true(jobq__timeout_ns(NAN) == JOBQ__TIMEOUT_BAD);
	assert_true(jobq__timeout_ns(-NAN) == JOBQ__TIMEOUT_BAD);
	/* Zero tries once, whatever its sign. */
	assert_int_equal(jobq__timeout_ns(0), 0);
	assert_int_equal(jobq__timeout_ns(-0.0), 0);
	assert_int_equal(jobq__timeout_ns(1), 1000000000);
	assert_int_equal(jobq__timeout_ns(0.25), 250000000);
	assert_int_equal(jobq__timeout_ns(2.5), 2500000000);
	assert_int_equal(jobq__timeout_ns(1e-6), 1000);
	/* A positive timeout never rounds down to "try once". */
	assert_int_equal(jobq__timeout_ns(1e-9), 1);
	assert_int_equal(jobq__timeout_ns(1e-12), 1);
	assert_int_equal(jobq__timeout_ns(5e-324), 1);
	/* Beyond what int64 nanoseconds hold is as good as forever. */
	assert_int_equal(jobq__timeout_ns(9e9), 9000000000000000000);
	assert_int_equal(jobq__timeout_ns(1e10), -1);
	assert_int_equal(jobq__timeout_ns(1e300), -1);
	assert_int_equal(jobq__timeout_ns(INFINITY), -1);
}

/* ------------------------------------------------------------------------
 * jobq_strerror
 */
static void test_strerror_jobq(void **state)
{
	static const int codes[] = {
	    JOBQ_ENOMANAGER, JOBQ_EVERSION, JOBQ_EMISMATCH, JOBQ_EKIND,
	    JOBQ_ENOTNUM,    JOBQ_ECLOSED,  JOBQ_EFULL,	    JOBQ_ELIMIT,
	    JOBQ_EJOBFAILED, JOBQ_EFORKED,  JOBQ_ELOST,	    JOBQ_EQUOTA,
	};
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	(void)state;
	/* Every code between the base and the end has text of its own. */
	assert_int_equal(n, JOBQ_EBASE - JOBQ_ELAST - 1);
	for (size_t i = 0; i < n; i++) {
		const char *s = jobq_strerror(codes[i]);

		assert_non_null(s);
		assert_true(strlen(s) > 0);
		assert_null(strstr(s, "unknown"));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(s, jobq_strerror(codes[j]));
	}
	assert_string_equal(jobq_strerror(JOBQ_ENOMANAGER),
			    "no manager is running there");
	assert_string_equal(jobq_strerror(JOBQ_EFULL), "the store is full");
}

static void test_strerror_errno(void **state)
{
	(void)state;
	assert_string_equal(jobq_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(jobq_strerror(-EAGAIN), strerror(EAGAIN));
	assert_string_equal(jobq_strerror(-ETIMEDOUT), strerror(ETIMEDOUT));
	assert_string_equal(jobq_strerror(-EDEADLK), strerror(EDEADLK));
	assert_string_equal(jobq_strerror(0), "success");
}

static void test_strerror_out_of_range(void **state)
{
	(void)state;
	/* Never NULL, whatever comes in. */
	assert_string_equal(jobq_strerror(JOBQ_EBASE), "unknown jobq error");
	assert_string_equal(jobq_strerror(JOBQ_ELAST), "unknown error");
	assert_string_equal(jobq_strerror(JOBQ_ELAST - 1), "unknown error");
	assert_string_equal(jobq_strerror(INT_MIN), "unknown error");
	assert_string_equal(jobq_strerror(1), "unknown error");
	assert_string_equal(jobq_strerror(ENOENT), "unknown error");
	assert_non_null(jobq_strerror(-9999));
}

/* ------------------------------------------------------------------------
 * jobq__format_time
 */
static void expect_time(uint64_t ns, const char *want)
{
	char buf[32];

	memset(buf, 'x', sizeof(buf));
	jobq__format_time(ns, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_format_time(void **state)
{
	const uint64_t s = JOBQ__NSEC_PER_SEC;
	char small[11];

	(void)state;
	expect_time(0, "1970-01-01T00:00:00.000000Z");
	expect_time(1795614845ull * s + 123456789,
		    "2026-11-25T13:54:05.123456Z");
	/* Microseconds are cut, not rounded: the second never rolls over. */
	expect_time(1795614845ull * s + 999999999,
		    "2026-11-25T13:54:05.999999Z");
	expect_time(1795614845ull * s + 999, "2026-11-25T13:54:05.000000Z");
	expect_time(1795614845ull * s + 1000, "2026-11-25T13:54:05.000001Z");
	expect_time(951782400ull * s, "2000-02-29T00:00:00.000000Z");
	expect_time(1709251199ull * s + 500000000,
		    "2024-02-29T23:59:59.500000Z");
	expect_time(4102444799ull * s, "2099-12-31T23:59:59.000000Z");

	/* A short buffer gets a terminated prefix. */
	jobq__format_time(1795614845ull * s, small, sizeof(small));
	assert_string_equal(small, "2026-11-25");
}

/* ------------------------------------------------------------------------
 * jobq__format_size
 */
static void expect_fsize(uint64_t bytes, const char *want)
{
	char buf[32];

	jobq__format_size(bytes, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_format_size(void **state)
{
	char small[4];

	(void)state;
	expect_fsize(0, "0 B");
	expect_fsize(1, "1 B");
	expect_fsize(100, "100 B");
	expect_fsize(1023, "1023 B");
	expect_fsize(1024, "1 KiB");
	expect_fsize(1536, "1.5 KiB");
	expect_fsize(1025, "1.0 KiB");
	expect_fsize(512ull << 10, "512 KiB");
	expect_fsize(16ull << 20, "16 MiB");
	expect_fsize(256ull << 20, "256 MiB");
	expect_fsize(3ull << 29, "1.5 GiB");
	expect_fsize(1ull << 30, "1 GiB");
	expect_fsize(5ull << 40, "5 TiB");
	/* TiB is the largest unit. */
	expect_fsize(1ull << 50, "1024 TiB");
	expect_fsize(UINT64_MAX, "16777216 TiB");

	jobq__format_size(16ull << 20, small, sizeof(small));
	assert_string_equal(small, "16 ");
}

/* ------------------------------------------------------------------------
 * jobq__check_name
 */
static void test_check_name(void **state)
{
	char name[JOBQ_NAME_MAX + 2];

	(void)state;
	assert_int_equal(jobq__check_name("emails"), 0);
	assert_int_equal(jobq__check_name("a"), 0);
	assert_int_equal(jobq__check_name("my queue/2 ~!"), 0);
	assert_int_equal(jobq__check_name("caf\xc3\xa9"), 0); /* UTF-8 */

	assert_int_equal(jobq__check_name(NULL), -EINVAL);
	assert_int_equal(jobq__check_name(""), -EINVAL);
	assert_int_equal(jobq__check_name("a\tb"), -EINVAL);
	assert_int_equal(jobq__check_name("line\n"), -EINVAL);
	assert_int_equal(jobq__check_name("\x1b[31m"), -EINVAL);
	assert_int_equal(jobq__check_name("del\x7f"), -EINVAL);

	/* 63 bytes is the longest. */
	memset(name, 'q', JOBQ_NAME_MAX);
	name[JOBQ_NAME_MAX] = '\0';
	assert_int_equal(jobq__check_name(name), 0);
	name[JOBQ_NAME_MAX] = 'q';
	name[JOBQ_NAME_MAX + 1] = '\0';
	assert_int_equal(jobq__check_name(name), -EINVAL);

	/* Not UTF-8, or a C1 control: refused too. */
	assert_int_equal(jobq__check_name("bad\xffname"), -EINVAL);
	assert_int_equal(jobq__check_name("caf\xc3"), -EINVAL);
	assert_int_equal(jobq__check_name("\xc2\x85next line"), -EINVAL);
}

/* ------------------------------------------------------------------------
 * jobq__utf8_char and jobq__check_text
 */
static void test_utf8(void **state)
{
	uint32_t cp = 0;

	(void)state;
	assert_int_equal(jobq__utf8_char("a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(jobq__utf8_char("\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(jobq__utf8_char("\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(jobq__utf8_char("\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);

	assert_int_equal(jobq__utf8_char("", 0, &cp), 0);
	assert_int_equal(jobq__utf8_char("\xc3\xa9", 1, &cp), 0); /* cut */
	assert_int_equal(jobq__utf8_char("\x80", 1, &cp), 0);
	assert_int_equal(jobq__utf8_char("\xff", 1, &cp), 0);
	assert_int_equal(jobq__utf8_char("\xc0\xaf", 2, &cp), 0); /* overlong */
	assert_int_equal(jobq__utf8_char("\xe0\x80\xaf", 3, &cp), 0);
	assert_int_equal(jobq__utf8_char("\xed\xa0\x80", 3, &cp), 0); /* D800 */
	assert_int_equal(jobq__utf8_char("\xf4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(jobq__utf8_char("\xc3\x28", 2, &cp), 0);

	assert_int_equal(jobq__check_text("caf\xc3\xa9 \xe2\x82\xac", 9), 0);
	assert_int_equal(jobq__check_text("", 0), 0);
	assert_int_equal(jobq__check_text("a\0b", 3), -EINVAL);
	assert_int_equal(jobq__check_text("a\x7f", 2), -EINVAL);
	assert_int_equal(jobq__check_text("\xc2\x9f", 2), -EINVAL);
	assert_int_equal(jobq__check_text("\xc2\xa0", 2), 0); /* NBSP */
	assert_int_equal(jobq__check_text("bad\xffname", 8), -EINVAL);
}

/* ------------------------------------------------------------------------
 * jobq_default_dir and jobq__resolve_dir. Each test starts with neither
 * variable set (env_clear) and puts the environment back afterwards.
 */
static char *saved_jobq_dir, *saved_xdg;

static char *dup_env(const char *name)
{
	const char *v = getenv(name);

	return v ? strdup(v) : NULL;
}

static void put_env(const char *name, const char *value)
{
	if (value)
		assert_int_equal(setenv(name, value, 1), 0);
	else
		assert_int_equal(unsetenv(name), 0);
}

static int env_clear(void **state)
{
	(void)state;
	saved_jobq_dir = dup_env("JOBQ_DIR");
	saved_xdg = dup_env("XDG_RUNTIME_DIR");
	unsetenv("JOBQ_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	return 0;
}

static int env_restore(void **state)
{
	(void)state;
	put_env("JOBQ_DIR", saved_jobq_dir);
	put_env("XDG_RUNTIME_DIR", saved_xdg);
	free(saved_jobq_dir);
	free(saved_xdg);
	saved_jobq_dir = saved_xdg = NULL;
	return 0;
}

static void test_default_dir_jobq_dir(void **state)
{
	char buf[256];

	(void)state;
	put_env("JOBQ_DIR", "/nonexistent/instance");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/instance");
	/* It wins over XDG_RUNTIME_DIR. */
	put_env("XDG_RUNTIME_DIR", "/nonexistent/runtime");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/instance");
	/* Relative paths are taken as they are. */
	put_env("JOBQ_DIR", "rel/dir");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "rel/dir");
}

static void test_default_dir_xdg(void **state)
{
	char buf[256];

	(void)state;
	put_env("XDG_RUNTIME_DIR", "/nonexistent/runtime");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/runtime/jobq");
	/* An empty JOBQ_DIR counts as unset. */
	put_env("JOBQ_DIR", "");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/runtime/jobq");
}

static void test_default_dir_neither(void **state)
{
	char buf[256], want[64];

	(void)state;
	snprintf(want, sizeof(want), "/tmp/jobq-%u", (unsigned)getuid());
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	/* Empty variables count as unset. */
	put_env("JOBQ_DIR", "");
	put_env("XDG_RUNTIME_DIR", "");
	assert_int_equal(jobq_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void test_default_dir_too_long(void **state)
{
	char buf[32];

	(void)state;
	put_env("JOBQ_DIR", "/nonexistent/x"); /* 14 bytes */
	assert_int_equal(jobq_default_dir(buf, 15), 0);
	assert_string_equal(buf, "/nonexistent/x");
	assert_int_equal(jobq_default_dir(buf, 14), -ENAMETOOLONG);
	assert_int_equal(jobq_default_dir(buf, 1), -ENAMETOOLONG);

	unsetenv("JOBQ_DIR");
	put_env("XDG_RUNTIME_DIR", "/nonexistent/x"); /* + "/jobq" */
	assert_int_equal(jobq_default_dir(buf, 20), 0);
	assert_string_equal(buf, "/nonexistent/x/jobq");
	assert_int_equal(jobq_default_dir(buf, 19), -ENAMETOOLONG);
}

static void test_resolve_dir(void **state)
{
	char buf[64];

	(void)state;
	put_env("JOBQ_DIR", "/nonexistent/env");
	assert_int_equal(jobq__resolve_dir("/nonexistent/arg", buf, 64), 0);
	assert_string_equal(buf, "/nonexistent/arg");
	assert_int_equal(jobq__resolve_dir(NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/env");
	assert_int_equal(jobq__resolve_dir("", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/nonexistent/env");
	assert_int_equal(jobq__resolve_dir("/nonexistent/arg", buf, 16),
			 -ENAMETOOLONG);
	assert_int_equal(jobq__resolve_dir("/nonexistent/arg", buf, 17), 0);
}

/* ------------------------------------------------------------------------
 * Clocks.
 */
static void test_clocks(void **state)
{
	uint64_t a, b, wall;

	(void)state;
	a = jobq__now_ns();
	b = jobq__now_ns();
	assert_true(b >= a);
	wall = jobq__realtime_ns() / JOBQ__NSEC_PER_SEC;
	assert_true(wall + 2 >= (uint64_t)time(NULL));
	assert_true(wall <= (uint64_t)time(NULL));
}

/* ------------------------------------------------------------------------
 * jobq__grow
 */
static void test_grow(void **state)
{
	uint32_t *v = NULL;
	size_t cap = 0;

	(void)state;
	assert_int_equal(jobq__grow((void **)&v, &cap, 3, sizeof(*v), 4), 0);
	assert_int_equal(cap, 4);
	v[3] = 7;
	assert_int_equal(jobq__grow((void **)&v, &cap, 4, sizeof(*v), 4), 0);
	assert_int_equal(cap, 4);
	assert_int_equal(jobq__grow((void **)&v, &cap, 9, sizeof(*v), 4), 0);
	assert_int_equal(cap, 16);
	assert_int_equal(v[3], 7);
	/* Past SIZE_MAX, in elements or in bytes: refused, nothing moved. */
	assert_int_equal(jobq__grow((void **)&v, &cap, SIZE_MAX, 1, 4),
			 -ENOMEM);
	assert_int_equal(
	    jobq__grow((void **)&v, &cap, SIZE_MAX / 4, sizeof(*v), 4),
	    -ENOMEM);
	assert_int_equal(cap, 16);
	assert_int_equal(v[3], 7);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_parse_size_plain),
	    cmocka_unit_test(test_parse_size_suffixes),
	    cmocka_unit_test(test_parse_size_overflow),
	    cmocka_unit_test(test_parse_size_garbage),
	    cmocka_unit_test(test_timeout_ns),
	    cmocka_unit_test(test_strerror_jobq),
	    cmocka_unit_test(test_strerror_errno),
	    cmocka_unit_test(test_strerror_out_of_range),
	    cmocka_unit_test(test_format_time),
	    cmocka_unit_test(test_format_size),
	    cmocka_unit_test(test_check_name),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test_setup_teardown(test_default_dir_jobq_dir,
					    env_clear, env_restore),
	    cmocka_unit_test_setup_teardown(test_default_dir_xdg, env_clear,
					    env_restore),
	    cmocka_unit_test_setup_teardown(test_default_dir_neither, env_clear,
					    env_restore),
	    cmocka_unit_test_setup_teardown(test_default_dir_too_long,
					    env_clear, env_restore),
	    cmocka_unit_test_setup_teardown(test_resolve_dir, env_clear,
					    env_restore),
	    cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
