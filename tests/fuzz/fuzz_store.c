/* SPDX-License-Identifier: MIT */
/*
 * fuzz_store.c - libjobq taking a store whose bytes are anything: the
 * input is the whole store as a manager would map it. Its header is
 * checked as jobq_open() checks it (jobq__store_adopt); a store that
 * passes is then listed and read as a client reads jobqd's: keys and
 * their blobs, queues, locks, counters, jobs with their args and result
 * items, types and workers. Every offset and length followed comes from
 * the input; AddressSanitizer sees any read outside it. Sequence counts
 * are made even first, as a reader waits on an odd one (which
 * tests/unit/test_store_read.c covers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

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

/* Clears the low bit of the seqlock words of @n records of @stride bytes
 * at @off, as far as they lie inside the store and outside its header: the
 * header is what the library checked at adopt, and a manager never writes
 * its constants again. */
static void make_even(uint8_t *store, uint64_t size, uint64_t off, uint64_t n,
		      size_t stride)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t at = off + i * stride;
		uint32_t s;

		if (at > size || size - at < sizeof(s))
			return;
		if (at < sizeof(struct jobq_store_hdr) &&
		    at != offsetof(struct jobq_store_hdr, kv_gen))
			continue;
		memcpy(&s, store + at, sizeof(s));
		s &= ~1u;
		memcpy(store + at, &s, sizeof(s));
	}
}

static void read_all(jobq_t *q)
{
	struct jobq_queue_info *qs = NULL;
	struct jobq_lock_info *ls = NULL;
	struct jobq_job_info *js = NULL, ji;
	struct jobq_worker_info *ws = NULL;
	struct jobq_stats st;
	jobq_obj_t o = {0};
	char buf[64];
	size_t n;

	jobq_kv_list(q, NULL, on_key, NULL);
	jobq_kv_list(q, "k", on_key, NULL);
	if (!jobq_kv_get(q, "k", &o))
		jobq_obj_free(&o);
	jobq_kv_get_buf(q, "key", buf, sizeof(buf), NULL);
	if (!jobq_queues(q, &qs, &n)) {
		for (size_t i = 0; i < n; i++)
			if (strlen(qs[i].name) > JOBQ_NAME_MAX)
				abort();
		free(qs);
	}
	if (!jobq_locks(q, &ls, &n))
		free(ls);
	jobq_stats(q, &st);
	if (!jobq_jobs(q, 0, NULL, 16, &js, &n))
		free(js);
	if (!jobq_workers(q, &ws, &n))
		free(ws);
	for (uint64_t id = 1; id <= 4; id++) {
		if (!jobq_job_result(q, id, &o))
			jobq_obj_free(&o);
		if (!jobq_job_args_of(q, id, &o))
			jobq_obj_free(&o);
		jobq_job_info(q, id, &ji);
	}
	/* An object reference, as a completion gives one. The size the
	 * library adopted, not the header's: a table that overlaps the
	 * header (make_even() wrote to it) may have changed that. */
	if (q->store_size >= 12) {
		uint64_t off;
		uint32_t len;

		memcpy(&off, q->store + q->store_size - 12, sizeof(off));
		memcpy(&len, q->store + q->store_size - 4, sizeof(len));
		if (!jobq__copy_object(q, off, len, JOBQ_T_BYTES, &o))
			jobq_obj_free(&o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct jobq_store_hdr *h;
	struct jobq q;
	uint8_t *store;

	if (size < sizeof(struct jobq_store_hdr))
		return 0;
	/* Exactly the input's size, so that a read past it is one past the
	 * allocation (malloc aligns to 16, a mapping to a page). */
	store = malloc(size);
	if (!store)
		return 0;
	memcpy(store, data, size);
	memset(&q, 0, sizeof(q));
	q.pid = getpid();
	q.sock = q.sq_efd = q.cq_efd = -1;
	if (jobq__store_adopt(&q, store, size) == 0) {
		h = q.sh;
		/* The header's one sequence count, as a manager leaves it
		 * between writes (an odd one is a manager that died in a
		 * write: tested by the e2e tests, and 5 s per read here). */
		make_even(store, size, offsetof(struct jobq_store_hdr, kv_gen),
			  1, 0);
		make_even(store, size, h->kv_off, (uint64_t)q.kv_mask + 1,
			  sizeof(struct jobq_kv_slot));
		make_even(store, size, h->queues_off, h->max_queues,
			  sizeof(struct jobq_queue_rec));
		make_even(store, size, h->locks_off, h->max_locks,
			  sizeof(struct jobq_lock_rec));
		if (q.jobs_ok) {
			make_even(store, size, h->jobs_off, h->max_jobs,
				  sizeof(struct jobq_job_rec));
			make_even(store, size, h->types_off, h->max_types,
				  sizeof(struct jobq_type_rec));
			make_even(store, size, h->workers_off, h->max_clients,
				  sizeof(struct jobq_worker_rec));
		}
		read_all(&q);
	}
	free(store);
	return 0;
}
