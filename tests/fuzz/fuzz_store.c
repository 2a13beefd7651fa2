/* SPDX-License-Identifier: MIT */
/*
 * fuzz_store.c - libjobq reading a store whose bytes are anything: the
 * input is laid over a store (header, key table, queue and lock tables,
 * heap) and the library lists and reads it as it reads jobqd's. Every
 * record header, key/value blob header and object reference it follows
 * comes from the input; it must stay inside the store and never crash.
 * Sequence counts are made even, as a reader would only wait on an odd
 * one (tests/unit/test_store_read.c covers that).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

#define KV_SLOTS 8u
#define NQUEUES	 4u
#define NLOCKS	 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_key(const char *key, const jobq_obj_t *v, void *arg)
{
	volatile uint8_t sink = 0;

	(void)arg;
	if (strlen(key) > JOBQ_KEY_MAX)
		abort();
	for (size_t i = 0; i < v->len; i++)
		sink ^= ((const uint8_t *)v->data)[i];
	(void)sink;
	return 0;
}

static void make_even(uint8_t *rec)
{
	uint32_t s;

	memcpy(&s, rec, sizeof(s));
	s &= ~1u;
	memcpy(rec, &s, sizeof(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t kv_off = (sizeof(struct jobq_store_hdr) + 63) & ~(size_t)63;
	size_t q_off = kv_off + KV_SLOTS * sizeof(struct jobq_kv_slot);
	size_t l_off = q_off + NQUEUES * sizeof(struct jobq_queue_rec);
	size_t min = l_off + NLOCKS * sizeof(struct jobq_lock_rec);
	size_t total = size > min ? size : min;
	struct jobq q;
	struct jobq_queue_info *qs = NULL;
	struct jobq_lock_info *ls = NULL;
	jobq_obj_t o = {0};
	char buf[64];
	uint8_t *store;
	size_t n;

	/* Eight-aligned, like a mapping, and no bigger than the input
	 * needs, so that a read past it is one past the allocation. */
	store = aligned_alloc(64, (total + 63) & ~(size_t)63);
	if (!store)
		return 0;
	memset(store, 0, total);
	memcpy(store, data, size);
	for (unsigned i = 0; i < KV_SLOTS; i++)
		make_even(store + kv_off + i * sizeof(struct jobq_kv_slot));
	for (unsigned i = 0; i < NQUEUES; i++)
		make_even(store + q_off + i * sizeof(struct jobq_queue_rec));
	for (unsigned i = 0; i < NLOCKS; i++)
		make_even(store + l_off + i * sizeof(struct jobq_lock_rec));

	memset(&q, 0, sizeof(q));
	q.pid = getpid();
	q.sock = q.sq_efd = q.cq_efd = -1;
	q.store = store;
	q.store_size = total;
	q.store_mapped = total;
	q.sh = (const void *)store;
	q.kv = (const void *)(store + kv_off);
	q.kv_mask = KV_SLOTS - 1;
	q.queues = (const void *)(store + q_off);
	q.max_queues = NQUEUES;
	q.locks = (const void *)(store + l_off);
	q.max_locks = NLOCKS;
	q.max_object = 1u << 20;

	jobq_kv_list(&q, NULL, on_key, NULL);
	jobq_kv_list(&q, "k", on_key, NULL);
	if (!jobq_kv_get(&q, "k", &o))
		jobq_obj_free(&o);
	jobq_kv_get_buf(&q, "key", buf, sizeof(buf), NULL);
	if (!jobq_queues(&q, &qs, &n)) {
		for (size_t i = 0; i < n; i++)
			if (strlen(qs[i].name) > JOBQ_NAME_MAX)
				abort();
		free(qs);
	}
	if (!jobq_locks(&q, &ls, &n))
		free(ls);
	/* An object reference as a completion or job record gives it. */
	if (size >= 12) {
		uint64_t off;
		uint32_t len;

		memcpy(&off, data + size - 12, sizeof(off));
		memcpy(&len, data + size - 4, sizeof(len));
		if (!jobq__copy_object(&q, off % (2 * total), len % (2 * total),
				       JOBQ_T_BYTES, &o))
			jobq_obj_free(&o);
	}
	free(store);
	return 0;
}
