/* SPDX-License-Identifier: MIT */
/*
 * jobidx.c - the job index: a job's record by its id.
 *
 * The index lives in the store (src/proto.h gives its layout), so clients
 * find a job without asking the manager: each slot is one 64-bit word,
 * (id << 24) | (record + 1), 0 when empty and IDX_TOMB when deleted,
 * probed linearly from jobq__job_hash(id). Only the manager writes it, a
 * slot at a time with a release store; a reader probing at the same time
 * must never miss a live entry. So entries never move: a delete leaves a
 * tombstone that probes go past, and tombstones become empty slots again
 * only where no probe can need them (jobq__jobidx_delete, idx_sweep).
 *
 * The store sizes the index at twice max_jobs or more (a power of two), so
 * live entries fill at most half of it; tombstones are kept under 3/8, so
 * an eighth or more of the slots stays empty and every probe ends.
 */
#include <string.h>

#include "jobs.h"

#define IDX_TOMB UINT64_MAX

static struct {
	uint32_t max_jobs;
	uint32_t tombs;	     /* tombstones in the index */
	uint32_t tombs_kept; /* tombstones the last sweep kept */
} idx;

void jobq__jobidx_init(void)
{
	memset(&idx, 0, sizeof(idx));
	idx.max_jobs = jobq__hdr()->max_jobs;
}

static uint32_t idx_mask(void)
{
	return jobq__hdr()->jobidx_slots - 1;
}

void jobq__jobidx_insert(uint64_t id, uint32_t r)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = jobq__job_hash(id) & m;

	for (;;) {
		uint64_t v = load_relaxed(&x[i]);

		if (v == 0)
			break;
		if (v == IDX_TOMB) {
			idx.tombs--;
			break;
		}
		i = (i + 1) & m;
	}
	store_release(&x[i], id << 24 | (uint64_t)(r + 1));
}

/* The slot of @id, or NONE. */
static uint32_t idx_slot(uint64_t id)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = jobq__job_hash(id) & m;

	for (uint32_t k = 0; k <= m; k++) {
		uint64_t v = load_relaxed(&x[i]);

		if (v == 0)
			return NONE;
		if (v != IDX_TOMB && v >> 24 == (id & ((1ull << 40) - 1)))
			return i;
		i = (i + 1) & m;
	}
	return NONE;
}

/* The record of a live job @id, or NONE. */
uint32_t jobq__jobidx_lookup(uint64_t id)
{
	uint32_t i;
	uint32_t r;

	if (id == 0)
		return NONE;
	i = idx_slot(id);
	if (i == NONE)
		return NONE;
	r = (uint32_t)(load_relaxed(&jobq__m.st.jobidx[i]) & 0xffffff) - 1;
	if (r >= idx.max_jobs || job_rec(r)->id != id)
		return NONE;
	return r;
}

/*
 * idx_sweep - turn every tombstone that no probe needs back into an empty
 * slot. A live entry at q, d = q - home(q) slots from its home, is found
 * by probes that cross q-d..q, so a tombstone is needed only when such a
 * span covers it. Walking backwards from an empty slot, c is how far the
 * spans of the entries seen since the last empty slot still reach; a
 * tombstone where c < 0 is crossed by no live entry's probe, and emptying
 * it cannot hide an entry from a reader probing at the same time. O(slots),
 * run when tombstones pass an eighth of the slots (there is always an
 * empty slot then: live entries are at most half of them).
 */
static void idx_sweep(void)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), e0 = 0;
	int64_t c = -1;

	while (load_relaxed(&x[e0]) != 0)
		if (++e0 > m)
			return;
	for (uint32_t k = 1; k <= m; k++) {
		uint32_t p = (e0 - k) & m;
		uint64_t v = load_relaxed(&x[p]);

		if (v == 0) {
			c = -1;
		} else if (v == IDX_TOMB) {
			if (c < 0) {
				store_release(&x[p], 0);
				idx.tombs--;
			}
		} else {
			int64_t d = (p - jobq__job_hash(v >> 24)) & m;

			if (d > c)
				c = d;
		}
		if (c >= 0)
			c--;
	}
	idx.tombs_kept = idx.tombs;
}

/*
 * Whether the index wants a sweep: an eighth of the slots in tombstones
 * more than the last sweep had to keep. A full table (live entries at half
 * the slots) keeps about a quarter of the slots in tombstones that probes
 * cross, so a fixed limit of an eighth would sweep all slots at every
 * delete; counting from what was kept makes a sweep cost at most eight
 * slot visits per delete. Tombstones stay under 3/8 of the slots, so with
 * live entries at most half, an eighth or more stays empty and probes end.
 */
static bool idx_wants_sweep(uint32_t m)
{
	uint32_t eighth = (m + 1) / 8, limit = idx.tombs_kept + eighth;

	if (limit > 3 * eighth)
		limit = 3 * eighth;
	return idx.tombs > limit;
}

/*
 * jobq__jobidx_delete - remove @id. The slot becomes a tombstone, unless
 * the next slot is empty: then no probe can need it (nothing lies behind it
 * in its cluster), and it and the tombstones right before it become empty
 * again, which keeps probe lengths short without moving live entries under
 * readers.
 */
void jobq__jobidx_delete(uint64_t id)
{
	_Atomic uint64_t *x = jobq__m.st.jobidx;
	uint32_t m = idx_mask(), i = idx_slot(id);

	if (i == NONE)
		return;
	if (load_relaxed(&x[(i + 1) & m]) != 0) {
		store_release(&x[i], IDX_TOMB);
		idx.tombs++;
		if (idx_wants_sweep(m))
			idx_sweep();
		return;
	}
	store_release(&x[i], 0);
	for (uint32_t k = 0; k < m; k++) {
		i = (i - 1) & m;
		if (load_relaxed(&x[i]) != IDX_TOMB)
			break;
		store_release(&x[i], 0);
		idx.tombs--;
	}
}
