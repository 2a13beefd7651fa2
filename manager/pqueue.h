/* SPDX-License-Identifier: MIT */
/*
 * pqueue.h - the manager's one priority queue: an indexed binary heap.
 *
 * (Not to be confused with heap.c, which is the store's memory allocator.)
 *
 * JOBQ__PQUEUE_DEFINE(name, type, before, moved) defines static inline
 * functions over an array `type h[n]` kept in heap order: no entry goes
 * before its parent, so h[0] is the first to come out. The user keeps the
 * array and its count and says two things about its entries:
 *
 *   bool before(const type *a, const type *b)
 *	whether @a must come out before @b: a strict order (false for equal
 *	keys), so entries that tie are never swapped for nothing;
 *   void moved(type *e, uint32_t i)
 *	entry @e now lives at h[i]. The user notes @i where it can find it
 *	again (a waiter's tidx, a job's priv[].pos), so that an entry can be
 *	removed or re-keyed in O(log n) without a search.
 *
 * Both are called on hot paths (every job goes through a lane and, while
 * it runs, through the timer queue), so they should be static inline
 * functions or macros: the compiler then specialises every function below
 * for its user, as if it had been written out by hand.
 *
 * The functions, n being the count of entries:
 *
 *   name_push(h, &n, e)	adds @e; room for h[n] must exist
 *   name_remove(h, &n, i)	takes out h[i]
 *   name_update(h, n, i)	restores the order after h[i]'s key changed
 *   name_up(h, i), name_down(h, n, i)
 *				move h[i] toward the root or the leaves as
 *				far as the order needs; up returns where it
 *				ended
 *   name_resize(&h, &cap, ncap)
 *				reallocates the array to @ncap entries (at
 *				least n): 0 or -ENOMEM, *h unchanged then
 *
 * Removal does not fill the hole with the last entry and sift it down from
 * there (two comparisons per level). The hole first sinks to a leaf along
 * the better children, one comparison per level, and the last entry then
 * fills it and rises. The last entry is usually among the worst (the lanes'
 * ids grow, timers are mostly set in deadline order), so it rises little:
 * about half the comparisons, and each comparison may be a cache miss
 * (the lanes compare job records in the store).
 */
#ifndef JOBQD_PQUEUE_H
#define JOBQD_PQUEUE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define JOBQ__PQUEUE_DEFINE(name, type, before, moved)                         \
	static inline __attribute__((unused))                                  \
	uint32_t name##_up(type *h, uint32_t i)                                \
	{                                                                      \
		type e = h[i];                                                 \
                                                                               \
		while (i > 0) {                                                \
			uint32_t p = (i - 1) / 2;                              \
                                                                               \
			if (!before(&e, &h[p]))                                \
				break;                                         \
			h[i] = h[p];                                           \
			moved(&h[i], i);                                       \
			i = p;                                                 \
		}                                                              \
		h[i] = e;                                                      \
		moved(&h[i], i);                                               \
		return i;                                                      \
	}                                                                      \
                                                                               \
	static inline __attribute__((unused)) void name##_down(                \
	    type *h, uint32_t n, uint32_t i)                                   \
	{                                                                      \
		type e = h[i];                                                 \
                                                                               \
		for (;;) {                                                     \
			uint32_t c = 2 * i + 1;                                \
                                                                               \
			if (c >= n)                                            \
				break;                                         \
			if (c + 1 < n && before(&h[c + 1], &h[c]))             \
				c++;                                           \
			if (!before(&h[c], &e))                                \
				break;                                         \
			h[i] = h[c];                                           \
			moved(&h[i], i);                                       \
			i = c;                                                 \
		}                                                              \
		h[i] = e;                                                      \
		moved(&h[i], i);                                               \
	}                                                                      \
                                                                               \
	static inline __attribute__((unused)) void name##_push(                \
	    type *h, uint32_t *n, type e)                                      \
	{                                                                      \
		h[*n] = e;                                                     \
		name##_up(h, (*n)++);                                          \
	}                                                                      \
                                                                               \
	static inline __attribute__((unused)) void name##_remove(              \
	    type *h, uint32_t *n, uint32_t i)                                  \
	{                                                                      \
		uint32_t m = --*n;                                             \
		type last = h[m];                                              \
                                                                               \
		if (i == m)                                                    \
			return;                                                \
		for (;;) {                                                     \
			uint32_t c = 2 * i + 1;                                \
                                                                               \
			if (c >= m)                                            \
				break;                                         \
			if (c + 1 < m && before(&h[c + 1], &h[c]))             \
				c++;                                           \
			h[i] = h[c];                                           \
			moved(&h[i], i);                                       \
			i = c;                                                 \
		}                                                              \
		h[i] = last;                                                   \
		name##_up(h, i);                                               \
	}                                                                      \
                                                                               \
	static inline __attribute__((unused)) void name##_update(              \
	    type *h, uint32_t n, uint32_t i)                                   \
	{                                                                      \
		if (name##_up(h, i) == i)                                      \
			name##_down(h, n, i);                                  \
	}                                                                      \
                                                                               \
	static inline __attribute__((unused)) int name##_resize(               \
	    type **h, uint32_t *cap, uint32_t ncap)                            \
	{                                                                      \
		type *nh = realloc(*h, (size_t)ncap * sizeof(type));           \
                                                                               \
		if (!nh && ncap)                                               \
			return -ENOMEM;                                        \
		*h = nh;                                                       \
		*cap = ncap;                                                   \
		return 0;                                                      \
	}

#endif
