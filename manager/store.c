/* SPDX-License-Identifier: MIT */
/*
 * store.c - the shared-memory store: one sealed memfd laid out as
 *
 *   [struct jobq_store_hdr][queue table][lock table][kv table]
 *   [job table][job index][type table][worker table][client table][heap]
 *
 * jobqd maps it read-write and is its only writer. Clients get a separate
 * read-only descriptor (a reopening of the memfd through /proc/self/fd), so
 * the descriptor they hold cannot be mapped writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobqd.h"
#include "spin.h"

/* Linux 5.1; older headers lack the name, the kernel says if it has it. */
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

/* The defaults of --max-queues and --max-locks. */
#define JOBQ__MAX_QUEUES 4096
#define JOBQ__MAX_LOCKS	 4096
#define JOBQ__MAX_TYPES	 1024
/* Requests one client may have parked at once (each costs the manager a
 * few hundred bytes), and malformed entries it may send before it is
 * dropped: far more than any working client meets. */
#define JOBQ__QUOTA_WAITS 16384
#define JOBQ__QUOTA_BAD	  1000
/* An index slot holds the record number + 1 in 24 bits. */
#define JOBQ__MAX_JOBS ((1u << 24) - 2)

/* The job table's size: --max-jobs, else one record per KiB of store
 * (a multiple of 1024), at least 1024. */
static uint32_t max_jobs_of(const struct jobq__opts *o)
{
	uint64_t n = o->max_jobs;

	if (!n)
		n = (o->memory / 1024) & ~(uint64_t)1023;
	if (n < 1024)
		n = 1024;
	if (n > JOBQ__MAX_JOBS)
		n = JOBQ__MAX_JOBS;
	return (uint32_t)n;
}

/* The smallest power of two >= @v. */
static uint32_t pow2_at_least(uint64_t v)
{
	uint32_t p = 1;

	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

static uint64_t random64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = jobq__now_ns() ^ ((uint64_t)getpid() << 32);
	return v;
}

/*
 * jobq__store_create - create, size, seal and map the store, lay out its
 * tables and start the heap. Returns 0, or -errno with a message in @err.
 */
int jobq__store_create(const struct jobq__opts *o, char *err, size_t errlen)
{
	struct jobq__store *st = &jobq__m.st;
	struct jobq_store_hdr *h;
	uint64_t off, kv_slots, max_jobs, jobidx_slots;
	uint32_t max_queues = o->max_queues ? o->max_queues : JOBQ__MAX_QUEUES;
	uint32_t max_locks = o->max_locks ? o->max_locks : JOBQ__MAX_LOCKS;
	uint32_t max_types = o->max_types ? o->max_types : JOBQ__MAX_TYPES;
	char path[64];
	int ret;

	st->fd = st->ro_fd = -1;
	st->size = ALIGN_UP(o->memory, 4096);
	st->fd = memfd_create("jobq-store", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (st->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return ret;
	}
	if (ftruncate(st->fd, (off_t)st->size) < 0) {
		ret = -errno;
		snprintf(err, errlen, "sizing the store to %llu bytes: %s",
			 (unsigned long long)st->size, strerror(errno));
		return ret;
	}
	/*
	 * memfd_create() makes the file mode 0777, so that anyone who can
	 * reach the descriptor through /proc could open it read-write. We
	 * never open it again for writing, and our own read-only reopening
	 * below needs only the owner's read bit.
	 */
	if (fchmod(st->fd, 0400) < 0) {
		ret = -errno;
		snprintf(err, errlen, "making the store read-only: %s",
			 strerror(errno));
		return ret;
	}
	/* Sealed against size changes: nobody can truncate it under us. */
	if (fcntl(st->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		ret = -errno;
		snprintf(err, errlen, "sealing the store: %s", strerror(errno));
		return ret;
	}
	st->base =
	    mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
	if (st->base == MAP_FAILED) {
		ret = -errno;
		st->base = NULL;
		snprintf(err, errlen, "mapping the store: %s", strerror(errno));
		return ret;
	}
	/*
	 * Our mapping exists; from now on no new writable mapping can be
	 * made and write() fails, so even a client that reopened its
	 * descriptor through /proc (root can, whatever the mode) cannot
	 * write. That is what makes the manager the only writer: without the
	 * seal (a kernel older than 5.1) we refuse to start.
	 */
	if (fcntl(st->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
		ret = -errno;
		snprintf(err, errlen,
			 "sealing the store against writes by clients "
			 "(F_SEAL_FUTURE_WRITE, Linux 5.1): %s",
			 strerror(errno));
		return ret;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", st->fd);
	st->ro_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (st->ro_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "reopening the store read-only (%s): %s",
			 path, strerror(errno));
		return ret;
	}

	kv_slots = pow2_at_least(st->size / 2048);
	if (kv_slots < 1024)
		kv_slots = 1024;

	h = st->hdr = (struct jobq_store_hdr *)st->base;
	off = ALIGN_UP(sizeof(*h), JOBQ_CACHELINE);
	h->queues_off = off;
	off =
	    ALIGN_UP(off + (uint64_t)max_queues * sizeof(struct jobq_queue_rec),
		     JOBQ_CACHELINE);
	h->locks_off = off;
	off = ALIGN_UP(off + (uint64_t)max_locks * sizeof(struct jobq_lock_rec),
		       JOBQ_CACHELINE);
	h->kv_off = off;
	off = ALIGN_UP(off + kv_slots * sizeof(struct jobq_kv_slot),
		       JOBQ_CACHELINE);
	max_jobs = max_jobs_of(o);
	jobidx_slots = pow2_at_least(2 * max_jobs);
	h->jobs_off = off;
	off = ALIGN_UP(off + max_jobs * sizeof(struct jobq_job_rec),
		       JOBQ_CACHELINE);
	h->jobidx_off = off;
	off = ALIGN_UP(off + jobidx_slots * sizeof(uint64_t), JOBQ_CACHELINE);
	h->types_off = off;
	off = ALIGN_UP(off + (uint64_t)max_types * sizeof(struct jobq_type_rec),
		       JOBQ_CACHELINE);
	h->workers_off = off;
	off = ALIGN_UP(off + (uint64_t)o->max_clients *
				 sizeof(struct jobq_worker_rec),
		       JOBQ_CACHELINE);
	h->clients_off = off;
	off = ALIGN_UP(off + (uint64_t)o->max_clients *
				 sizeof(struct jobq_client_rec),
		       4096);
	h->heap_off = off;
	if (off + (1u << 20) > st->size) {
		snprintf(err, errlen,
			 "--memory %llu is too small for the tables "
			 "(need more than %llu bytes)",
			 (unsigned long long)o->memory,
			 (unsigned long long)(off + (1u << 20)));
		return -EINVAL;
	}
	h->heap_size = st->size - off;
	h->max_queues = max_queues;
	h->max_locks = max_locks;
	h->kv_slots = (uint32_t)kv_slots;
	h->max_jobs = (uint32_t)max_jobs;
	h->jobidx_slots = (uint32_t)jobidx_slots;
	h->max_types = max_types;
	h->keep_ns = o->keep_ns;
	store_relaxed(&h->next_job_id, 1);
	h->size = st->size;
	h->generation = random64();
	h->max_object = o->max_object;
	h->manager_pid = getpid();
	h->max_clients = o->max_clients;
	h->started_ns = jobq__realtime_ns();
	h->wake_ns = jobq__wake_cost_ns(64);
	h->hdr_size = sizeof(*h);
	h->version = JOBQ_LAYOUT_VERSION;

	st->queues = (struct jobq_queue_rec *)(st->base + h->queues_off);
	st->locks = (struct jobq_lock_rec *)(st->base + h->locks_off);
	st->kv = (struct jobq_kv_slot *)(st->base + h->kv_off);
	st->jobs = (struct jobq_job_rec *)(st->base + h->jobs_off);
	st->jobidx = (_Atomic uint64_t *)(st->base + h->jobidx_off);
	st->types = (struct jobq_type_rec *)(st->base + h->types_off);
	st->workers = (struct jobq_worker_rec *)(st->base + h->workers_off);
	st->clients = (struct jobq_client_rec *)(st->base + h->clients_off);
	/* Quotas: one client may take a quarter of a table, so that a few
	 * runaway ones leave room for the others; a client that sends this
	 * many malformed entries is broken or hostile, and is dropped. */
	h->quota_queues = max_queues / 4;
	h->quota_locks = max_locks / 4;
	h->quota_waits = JOBQ__QUOTA_WAITS;
	/* Off unless asked: one producer filling the store is a normal use
	 * (a blocking put then waits for room). */
	h->quota_bytes = o->client_max_bytes;
	/* Half the job table: a client that submits a big batch (jobq run
	 * --from) meets it only when the batch alone would leave the others
	 * less than half. Held locks: as many as it may make. */
	h->quota_jobs =
	    o->client_max_jobs ? o->client_max_jobs : (uint32_t)(max_jobs / 2);
	h->quota_held =
	    o->client_max_held ? o->client_max_held : h->quota_locks;
	h->quota_bad = JOBQ__QUOTA_BAD;
	h->jobs_shared = o->backend ? 1 : 0;
	st->heap = jobq__heap_create(st->base, h->heap_off, h->heap_size);
	if (!st->heap) {
		snprintf(err, errlen, "cannot start the heap over %llu bytes",
			 (unsigned long long)h->heap_size);
		return -ENOMEM;
	}
	store_relaxed(&h->heap_used, jobq__heap_used(st->heap));
	/* The magic goes last: a reader that sees it sees the layout. */
	atomic_thread_fence(memory_order_release);
	h->magic = JOBQ_STORE_MAGIC;
	return 0;
}

void jobq__store_destroy(void)
{
	struct jobq__store *st = &jobq__m.st;

	if (st->heap)
		jobq__heap_destroy(st->heap);
	if (st->base)
		munmap(st->base, st->size);
	if (st->ro_fd >= 0)
		close(st->ro_fd);
	if (st->fd >= 0)
		close(st->fd);
	memset(st, 0, sizeof(*st));
	st->fd = st->ro_fd = -1;
}

uint64_t jobq__alloc(uint64_t size)
{
	struct jobq__store *st = &jobq__m.st;
	uint64_t off = jobq__heap_alloc(st->heap, size);

	if (off)
		store_relaxed(&st->hdr->heap_used, jobq__heap_used(st->heap));
	return off;
}

void jobq__free(uint64_t off)
{
	struct jobq__store *st = &jobq__m.st;

	if (!off)
		return;
	jobq__heap_free(st->heap, off);
	store_relaxed(&st->hdr->heap_used, jobq__heap_used(st->heap));
	st->freed = true;
}
