/* SPDX-License-Identifier: MIT */
/*
 * test_heap.c - the store's allocator: alignment, exhaustion, merging of
 * neighbours, a long random torture run checked against a shadow copy of
 * every block's bytes, and the accounting the manager publishes.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "heap.h"

/* What the allocator promises about a block of @size bytes: 16 bytes of
 * header, rounded up to 16, never below 32. */
static uint64_t block_cost(uint64_t size)
{
	uint64_t b = (size + 16 + 15) & ~(uint64_t)15;

	return b < 32 ? 32 : b;
}

/* A mapping stand-in: page aligned, like the store's mmap. */
static unsigned char *map_new(size_t size)
{
	unsigned char *p = aligned_alloc(4096, size);

	assert_non_null(p);
	memset(p, 0xa5, size);
	return p;
}

/* xorshift64*: deterministic across runs, so a failure can be replayed. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void fill(unsigned char *p, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seed + i * 131);
}

static int intact(const unsigned char *p, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(seed + i * 131))
			return 0;
	return 1;
}

static void test_create_limits(void **state)
{
	unsigned char *m = map_new(8192);
	struct jobq__heap *h;
	uint64_t a;

	(void)state;
	/* One 32-byte block and the 16-byte sentinel is the least. */
	assert_null(jobq__heap_create(m, 16, 47));
	assert_null(jobq__heap_create(m, 16, 0));
	assert_null(jobq__heap_create(m + 8, 16, 4096));
	assert_null(jobq__heap_create(m, UINT64_MAX - 8, 64));
	h = jobq__heap_create(m, 16, 48);
	assert_non_null(h);
	assert_int_equal(jobq__heap_capacity(h), 32);
	assert_int_equal(jobq__heap_largest_free(h), 16);
	a = jobq__heap_alloc(h, 16);
	assert_int_equal(a, 32);
	assert_int_equal(jobq__heap_alloc(h, 0), 0);
	jobq__heap_free(h, a);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);

	/* Offset 0 means "none", so a range there starts a little later. */
	assert_null(jobq__heap_create(m, 0, 63));
	h = jobq__heap_create(m, 0, 64);
	assert_non_null(h);
	assert_int_equal(jobq__heap_capacity(h), 32);
	a = jobq__heap_alloc(h, 0);
	assert_int_equal(a, 32);
	jobq__heap_free(h, a);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);

	/* An unaligned range is trimmed inward to 16-byte boundaries. */
	h = jobq__heap_create(m, 7, 1000);
	assert_non_null(h);
	assert_int_equal(jobq__heap_capacity(h), (1007 & ~15) - 16 - 16);
	a = jobq__heap_alloc(h, 1);
	assert_int_equal(a, 32);
	jobq__heap_free(h, a);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);
	free(m);
}

static void test_alignment(void **state)
{
	enum { N = 600, OFF = 4096, SIZE = 1 << 20 };
	unsigned char *m = map_new(OFF + SIZE);
	struct jobq__heap *h = jobq__heap_create(m, OFF, SIZE);
	uint64_t offs[N];

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < N; i++) {
		uint64_t len = (uint64_t)i % 300;

		offs[i] = jobq__heap_alloc(h, len);
		assert_int_not_equal(offs[i], 0);
		assert_int_equal(offs[i] % 16, 0);
		assert_true(offs[i] >= OFF && offs[i] + len <= OFF + SIZE);
		fill(m + offs[i], len, (uint64_t)i);
	}
	/* Blocks do not overlap: each still holds what was written. */
	for (int i = 0; i < N; i++)
		assert_true(
		    intact(m + offs[i], (uint64_t)i % 300, (uint64_t)i));
	assert_int_equal(jobq__heap_check(h), 0);
	for (int i = 0; i < N; i++)
		jobq__heap_free(h, offs[i]);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);
	free(m);
}

static void test_alloc_zero(void **state)
{
	unsigned char *m = map_new(4096);
	struct jobq__heap *h = jobq__heap_create(m, 0, 4096);
	uint64_t a, b;

	(void)state;
	a = jobq__heap_alloc(h, 0);
	b = jobq__heap_alloc(h, 0);
	assert_int_not_equal(a, 0);
	assert_int_not_equal(b, 0);
	assert_int_not_equal(a, b);
	assert_int_equal(jobq__heap_used(h), 2 * 32);
	/* Freeing offset 0 is allowed and changes nothing. */
	jobq__heap_free(h, 0);
	assert_int_equal(jobq__heap_used(h), 2 * 32);
	jobq__heap_free(h, a);
	jobq__heap_free(h, b);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);
	free(m);
}

static void test_overhead(void **state)
{
	unsigned char *m = map_new(65536);
	struct jobq__heap *h = jobq__heap_create(m, 0, 65536);
	uint64_t a;

	(void)state;
	/* A queued 64-byte object costs one 80-byte block. */
	a = jobq__heap_alloc(h, 64);
	assert_int_equal(jobq__heap_used(h), 80);
	jobq__heap_free(h, a);
	for (uint64_t len = 0; len < 2000; len++) {
		a = jobq__heap_alloc(h, len);
		assert_int_equal(jobq__heap_used(h), block_cost(len));
		jobq__heap_free(h, a);
	}
	assert_int_equal(jobq__heap_used(h), 0);
	jobq__heap_destroy(h);
	free(m);
}

static void test_exhaust(void **state)
{
	enum { SIZE = 64 * 1024, MAX = SIZE / 80 + 1 };
	unsigned char *m = map_new(SIZE);
	struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
	uint64_t cap = jobq__heap_capacity(h), offs[MAX], again;
	int n = 0;

	(void)state;
	while ((offs[n] = jobq__heap_alloc(h, 64)) != 0) {
		n++;
		assert_true(n < MAX);
	}
	/* Full means full: every 80-byte block that fits was handed out. */
	assert_int_equal(n, cap / 80);
	assert_true(jobq__heap_largest_free(h) < 64);
	assert_int_equal(jobq__heap_alloc(h, 64), 0);
	assert_int_equal(jobq__heap_alloc(h, cap), 0);
	assert_int_equal(jobq__heap_alloc(h, UINT64_MAX), 0);
	assert_int_equal(jobq__heap_check(h), 0);

	/* One block back, and the same room is found again. */
	jobq__heap_free(h, offs[n / 2]);
	again = jobq__heap_alloc(h, 64);
	assert_int_equal(again, offs[n / 2]);
	assert_int_equal(jobq__heap_alloc(h, 64), 0);

	for (int i = 0; i < n; i++)
		jobq__heap_free(h, offs[i]);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_largest_free(h), cap - 16);
	assert_int_equal(jobq__heap_check(h), 0);
	/* And the whole capacity is one block again. */
	offs[0] = jobq__heap_alloc(h, cap - 16);
	assert_int_not_equal(offs[0], 0);
	assert_int_equal(jobq__heap_used(h), cap);
	jobq__heap_free(h, offs[0]);
	jobq__heap_destroy(h);
	free(m);
}

/* Every order of freeing three neighbours merges them into one block. */
static void test_coalesce(void **state)
{
	static const int orders[6][3] = {
	    {0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0},
	};
	enum { SIZE = 1 << 16 };
	unsigned char *m = map_new(SIZE);
	uint64_t lens[3] = {100, 1000, 5000};

	(void)state;
	for (int guard = 0; guard < 2; guard++) {
		for (int o = 0; o < 6; o++) {
			struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
			uint64_t cap = jobq__heap_capacity(h), offs[3], g = 0;
			uint64_t span = 0, whole;

			for (int i = 0; i < 3; i++) {
				offs[i] = jobq__heap_alloc(h, lens[i]);
				assert_int_not_equal(offs[i], 0);
				span += block_cost(lens[i]);
			}
			/* With the rest of the heap taken by a guard block,
			 * the three can only merge with each other. */
			if (guard) {
				g = jobq__heap_alloc(
				    h, jobq__heap_largest_free(h));
				assert_int_not_equal(g, 0);
				assert_int_equal(jobq__heap_largest_free(h), 0);
			}
			for (int i = 0; i < 3; i++) {
				jobq__heap_free(h, offs[orders[o][i]]);
				assert_int_equal(jobq__heap_check(h), 0);
			}
			if (guard) {
				assert_int_equal(jobq__heap_largest_free(h),
						 span - 16);
				whole = jobq__heap_alloc(h, span - 16);
				assert_int_equal(whole, offs[0]);
				jobq__heap_free(h, whole);
				jobq__heap_free(h, g);
			}
			assert_int_equal(jobq__heap_used(h), 0);
			assert_int_equal(jobq__heap_largest_free(h), cap - 16);
			assert_int_equal(jobq__heap_check(h), 0);
			jobq__heap_destroy(h);
		}
	}
	free(m);
}

/*
 * largest_free is exact: a request of that size succeeds and one byte more
 * fails, in heaps fragmented every which way.
 */
static void test_largest_free(void **state)
{
	enum { SIZE = 1 << 20, N = 2000 };
	unsigned char *m = map_new(SIZE);
	struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
	uint64_t *offs = calloc(N, sizeof(*offs));

	(void)state;
	assert_non_null(offs);
	rng_state = 0x1234567;
	for (int round = 0; round < 3000; round++) {
		int i = (int)(rng() % N);
		uint64_t lf, a;

		if (offs[i]) {
			jobq__heap_free(h, offs[i]);
			offs[i] = 0;
		} else {
			offs[i] = jobq__heap_alloc(h, rng() % 3000);
		}
		lf = jobq__heap_largest_free(h);
		if (lf) {
			a = jobq__heap_alloc(h, lf);
			assert_int_not_equal(a, 0);
			jobq__heap_free(h, a);
		}
		assert_int_equal(jobq__heap_alloc(h, lf + 1), 0);
	}
	assert_int_equal(jobq__heap_check(h), 0);
	for (int i = 0; i < N; i++)
		jobq__heap_free(h, offs[i]);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_check(h), 0);
	free(offs);
	jobq__heap_destroy(h);
	free(m);
}

/* Mostly small objects, some medium, a few up to 64 KiB. */
static uint64_t torture_size(void)
{
	uint64_t r = rng() % 100;

	if (r < 70)
		return rng() % 257;
	if (r < 95)
		return rng() % 4097;
	return rng() % (64 * 1024 + 1);
}

static void test_torture(void **state)
{
	enum { SIZE = 4 << 20, SLOTS = 4096, OPS = 200000 };
	unsigned char *m = map_new(SIZE);
	struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
	struct slot {
		uint64_t off, len, seed;
	} *s = calloc(SLOTS, sizeof(*s));
	uint64_t cap = jobq__heap_capacity(h), used = 0, fails = 0, peak = 0;

	(void)state;
	assert_non_null(s);
	rng_state = 0x9e3779b97f4a7c15ull;
	for (int op = 0; op < OPS; op++) {
		struct slot *x = &s[rng() % SLOTS];

		if (x->off) {
			assert_true(intact(m + x->off, x->len, x->seed));
			jobq__heap_free(h, x->off);
			used -= block_cost(x->len);
			x->off = 0;
		} else {
			uint64_t len = torture_size();
			uint64_t lf = jobq__heap_largest_free(h);

			x->off = jobq__heap_alloc(h, len);
			/* It fails exactly when largest_free said so. */
			if (len > lf) {
				assert_int_equal(x->off, 0);
				fails++;
				continue;
			}
			assert_int_not_equal(x->off, 0);
			assert_int_equal(x->off % 16, 0);
			assert_true(x->off + len <= SIZE);
			x->len = len;
			x->seed = rng();
			fill(m + x->off, len, x->seed);
			/* A block may be a little bigger than asked (a
			 * remainder too small to split stays with it). */
			used += block_cost(len);
		}
		assert_true(jobq__heap_used(h) >= used);
		assert_true(jobq__heap_used(h) - used < 32 * SLOTS);
		if (jobq__heap_used(h) > peak)
			peak = jobq__heap_used(h);
		if (op % 1000 == 0)
			assert_int_equal(jobq__heap_check(h), 0);
	}
	assert_int_equal(jobq__heap_check(h), 0);
	for (int i = 0; i < SLOTS; i++) {
		if (!s[i].off)
			continue;
		assert_true(intact(m + s[i].off, s[i].len, s[i].seed));
		jobq__heap_free(h, s[i].off);
	}
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_capacity(h), cap);
	assert_int_equal(jobq__heap_largest_free(h), cap - 16);
	assert_int_equal(jobq__heap_check(h), 0);
	print_message("torture: %d ops, %llu allocs refused as full, "
		      "peak use %llu of %llu bytes\n",
		      OPS, (unsigned long long)fails, (unsigned long long)peak,
		      (unsigned long long)cap);
	free(s);
	jobq__heap_destroy(h);
	free(m);
}

/* used and capacity: the figures the manager publishes in the store. */
static void test_accounting(void **state)
{
	enum { SIZE = 1 << 18, N = 100 };
	unsigned char *m = map_new(SIZE);
	struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
	uint64_t cap = jobq__heap_capacity(h), offs[N], sum = 0;

	(void)state;
	assert_int_equal(cap, SIZE - 32);
	assert_int_equal(jobq__heap_used(h), 0);
	for (int i = 0; i < N; i++) {
		offs[i] = jobq__heap_alloc(h, (uint64_t)i * 7);
		sum += block_cost((uint64_t)i * 7);
		assert_int_equal(jobq__heap_used(h), sum);
	}
	for (int i = N - 1; i >= 0; i -= 2) {
		jobq__heap_free(h, offs[i]);
		sum -= block_cost((uint64_t)i * 7);
		assert_int_equal(jobq__heap_used(h), sum);
	}
	for (int i = N - 2; i >= 0; i -= 2)
		jobq__heap_free(h, offs[i]);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_capacity(h), cap);
	assert_int_equal(jobq__heap_check(h), 0);
	jobq__heap_destroy(h);
	free(m);
}

/* The manager's bugs must not corrupt the store quietly: a double free or a
 * wild offset stops the process. Run in a child so the abort is observed. */
static void expect_abort(uint64_t first, uint64_t second)
{
	unsigned char *m = map_new(4096);
	struct jobq__heap *h = jobq__heap_create(m, 0, 4096);
	uint64_t a = jobq__heap_alloc(h, 10);
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, 2);
		jobq__heap_free(h, first ? first : a);
		jobq__heap_free(h, second ? second : a);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	jobq__heap_destroy(h);
	free(m);
}

static void test_bad_free(void **state)
{
	(void)state;
	expect_abort(0, 0);	    /* the same block twice */
	expect_abort(0, 4096 + 16); /* past the end */
	expect_abort(0, 24);	    /* not 16-byte aligned */
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not a pass/fail test: how long an alloc+free pair of 64 bytes takes,
 * alone and with 10000 objects live in shuffled order. */
static void test_speed(void **state)
{
	enum { SIZE = 64 << 20, PAIRS = 2000000, LIVE = 10000 };
	unsigned char *m = map_new(SIZE);
	struct jobq__heap *h = jobq__heap_create(m, 0, SIZE);
	uint64_t *offs = calloc(LIVE, sizeof(*offs));
	double t;

	(void)state;
	assert_non_null(offs);
	t = now_s();
	for (int i = 0; i < PAIRS; i++)
		jobq__heap_free(h, jobq__heap_alloc(h, 64));
	t = now_s() - t;
	print_message("speed: %.1f ns per 64-byte alloc+free pair\n",
		      t * 1e9 / PAIRS);

	rng_state = 42;
	for (int i = 0; i < LIVE; i++)
		offs[i] = jobq__heap_alloc(h, 64);
	t = now_s();
	for (int i = 0; i < PAIRS; i++) {
		int k = (int)(rng() % LIVE);

		jobq__heap_free(h, offs[k]);
		offs[k] = jobq__heap_alloc(h, 64);
		assert_true(offs[k] != 0);
	}
	t = now_s() - t;
	print_message("speed: %.1f ns per pair with %d objects live, "
		      "random order (rng included)\n",
		      t * 1e9 / PAIRS, LIVE);
	for (int i = 0; i < LIVE; i++)
		jobq__heap_free(h, offs[i]);
	assert_int_equal(jobq__heap_used(h), 0);
	assert_int_equal(jobq__heap_check(h), 0);
	free(offs);
	jobq__heap_destroy(h);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_limits),
	    cmocka_unit_test(test_alignment),
	    cmocka_unit_test(test_alloc_zero),
	    cmocka_unit_test(test_overhead),
	    cmocka_unit_test(test_exhaust),
	    cmocka_unit_test(test_coalesce),
	    cmocka_unit_test(test_largest_free),
	    cmocka_unit_test(test_torture),
	    cmocka_unit_test(test_accounting),
	    cmocka_unit_test(test_bad_free),
	    cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
