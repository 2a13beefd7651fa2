/* SPDX-License-Identifier: MIT */
/*
 * test_pqueue.c - the manager's indexed binary heap (manager/pqueue.h):
 * the order entries come out in, the positions it reports through
 * moved(), and a long random run of pushes, removals from anywhere and key
 * changes checked against a plain array sorted at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pqueue.h"

#define NIDS 2048
#define NONE UINT32_MAX

/* An entry: a key and who it is; pos[id] is where the heap says it lives. */
struct ent {
	uint64_t key;
	uint32_t id;
};

static uint32_t pos[NIDS];

static inline bool ent_before(const struct ent *a, const struct ent *b)
{
	return a->key < b->key;
}

static inline void ent_moved(struct ent *e, uint32_t i)
{
	pos[e->id] = i;
}

JOBQ__PQUEUE_DEFINE(eq, struct ent, ent_before, ent_moved)

static struct ent *h;
static uint32_t n, cap;

static int setup(void **state)
{
	(void)state;
	h = NULL;
	n = cap = 0;
	for (uint32_t i = 0; i < NIDS; i++)
		pos[i] = NONE;
	assert_int_equal(eq_resize(&h, &cap, NIDS), 0);
	assert_int_equal(cap, NIDS);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(h);
	return 0;
}

/* Heap order holds and every entry is where moved() said. */
static void check(void)
{
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(pos[h[i].id], i);
		if (i)
			assert_false(ent_before(&h[i], &h[(i - 1) / 2]));
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Pops everything: the keys come out in the order of @want (sorted). */
static void drain(const uint64_t *want, uint32_t nwant)
{
	assert_int_equal(n, nwant);
	for (uint32_t k = 0; k < nwant; k++) {
		uint32_t id = h[0].id;

		assert_int_equal(h[0].key, want[k]);
		eq_remove(h, &n, 0);
		pos[id] = NONE;
		check();
	}
	assert_int_equal(n, 0);
}

static void test_order(void **state)
{
	static const uint64_t keys[] = {5, 3, 9, 1, 7, 3, 8, 2, 6, 4, 0, 9};
	enum { K = sizeof(keys) / sizeof(keys[0]) };
	uint64_t want[K];

	(void)state;
	for (uint32_t i = 0; i < K; i++) {
		eq_push(h, &n, (struct ent){.key = keys[i], .id = i});
		check();
	}
	memcpy(want, keys, sizeof(want));
	qsort(want, K, sizeof(want[0]), cmp_u64);
	drain(want, K);
}

/* Ties are never swapped: a pushed entry that equals its parent stays. */
static void test_ties_stay(void **state)
{
	(void)state;
	eq_push(h, &n, (struct ent){.key = 1, .id = 0});
	eq_push(h, &n, (struct ent){.key = 1, .id = 1});
	eq_push(h, &n, (struct ent){.key = 1, .id = 2});
	assert_int_equal(h[0].id, 0);
	assert_int_equal(h[1].id, 1);
	assert_int_equal(h[2].id, 2);
	eq_update(h, n, 1);
	assert_int_equal(pos[1], 1);
	check();
}

/* Removing the last entry, or the only one, leaves the rest alone. */
static void test_remove_edges(void **state)
{
	(void)state;
	eq_push(h, &n, (struct ent){.key = 4, .id = 0});
	eq_remove(h, &n, 0);
	assert_int_equal(n, 0);
	eq_push(h, &n, (struct ent){.key = 4, .id = 0});
	eq_push(h, &n, (struct ent){.key = 6, .id = 1});
	eq_push(h, &n, (struct ent){.key = 5, .id = 2});
	eq_remove(h, &n, pos[2]);
	pos[2] = NONE;
	assert_int_equal(n, 2);
	check();
	assert_int_equal(h[0].id, 0);
	assert_int_equal(h[1].id, 1);
}

/*
 * A long random run: pushes, removals of any entry (found through pos[]),
 * key changes up and down, pops of the first. After every step the first
 * entry's key is the least of the reference; at the end everything comes
 * out in the order of the reference sorted.
 */
static void test_random(void **state)
{
	static uint64_t ref[NIDS]; /* key of each id in the heap */
	static bool in[NIDS];
	static uint64_t want[NIDS];
	uint32_t nref = 0;

	(void)state;
	srand(12345);
	memset(in, 0, sizeof(in));
	for (uint32_t step = 0; step < 50000; step++) {
		uint32_t id = (uint32_t)rand() % NIDS;
		uint64_t key = (uint64_t)(rand() % 1000);
		int what = rand() % 8;

		if (!in[id] && what < 4) {
			eq_push(h, &n, (struct ent){.key = key, .id = id});
			in[id] = true;
			ref[id] = key;
			nref++;
		} else if (in[id] && what < 6) {
			h[pos[id]].key = key;
			eq_update(h, n, pos[id]);
			ref[id] = key;
		} else if (in[id] && what == 6) {
			eq_remove(h, &n, pos[id]);
			pos[id] = NONE;
			in[id] = false;
			nref--;
		} else if (n && what == 7) {
			uint32_t first = h[0].id;

			eq_remove(h, &n, 0);
			pos[first] = NONE;
			in[first] = false;
			nref--;
		}
		assert_int_equal(n, nref);
		if (n) {
			uint64_t least = UINT64_MAX;

			for (uint32_t i = 0; i < NIDS; i++)
				if (in[i] && ref[i] < least)
					least = ref[i];
			assert_int_equal(h[0].key, least);
		}
		if (step % 101 == 0)
			check();
	}
	check();
	nref = 0;
	for (uint32_t i = 0; i < NIDS; i++)
		if (in[i])
			want[nref++] = ref[i];
	qsort(want, nref, sizeof(want[0]), cmp_u64);
	drain(want, nref);
}

/* resize keeps the entries and their places. */
static void test_resize(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < 100; i++)
		eq_push(h, &n, (struct ent){.key = 100 - i, .id = i});
	assert_int_equal(eq_resize(&h, &cap, 128), 0);
	assert_int_equal(cap, 128);
	check();
	assert_int_equal(h[0].key, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ties_stay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_edges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
