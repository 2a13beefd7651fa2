/* SPDX-License-Identifier: MIT */
/*
 * chash.c - the two chained hash tables of the job machinery, in the
 * manager's own memory:
 *
 *   unique keys   key -> the record of the live job that holds it
 *                 (JOBQ_JF_UNIQUE), until that job becomes final;
 *   dependencies  job id -> the jobs that wait for it (--after), one
 *                 entry per (dependency, waiter), until the dependency
 *                 becomes final.
 *
 * Each node starts with its next pointer; a bucket is a singly linked list
 * with the newest node first. A table doubles when it holds as many nodes
 * as buckets, up to 2^24 buckets (a unique key's bucket is found again from
 * the 24 bits of its hash that jobs.c keeps per record). When it cannot
 * grow it stays as it is, only slower.
 *
 * A dependency entry names its waiter by id and record: the record may
 * have been freed and reused by the time the dependency ends, which the
 * caller of jobq__dep_take() checks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"

/* A live unique key. */
struct uq {
	struct uq *next;
	uint32_t rec, hash, len;
	char key[];
};

/* Job @waiter waits for job @dep. */
struct dep {
	struct dep *next;
	uint64_t dep, waiter;
	uint32_t wrec;
};

/* A chained hash table of either of the two above, by a 32-bit hash. */
struct chash {
	void **b;
	uint32_t mask, n;
};

static struct chash uq, deps;

static int ch_init(struct chash *h, uint32_t n)
{
	h->b = calloc(n, sizeof(*h->b));
	h->mask = n - 1;
	h->n = 0;
	return h->b ? 0 : -ENOMEM;
}

static void ch_fini(struct chash *h)
{
	for (uint32_t i = 0; h->b && i <= h->mask; i++) {
		void *p = h->b[i];

		while (p) {
			void *nx = *(void **)p;

			free(p);
			p = nx;
		}
	}
	free(h->b);
	memset(h, 0, sizeof(*h));
}

/* @hash_of gives a node's hash. A table never passes 2^24 buckets:
 * jobq__uq_drop() gets 24 bits of a hash. */
static void ch_grow(struct chash *h, uint32_t (*hash_of)(void *))
{
	uint32_t nb = 2 * (h->mask + 1);
	void **b;

	if (h->n < h->mask + 1 || nb > (1u << 24))
		return;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i <= h->mask; i++) {
		void *p = h->b[i];

		while (p) {
			void *nx = *(void **)p;
			uint32_t k = hash_of(p) & (nb - 1);

			*(void **)p = b[k];
			b[k] = p;
			p = nx;
		}
	}
	free(h->b);
	h->b = b;
	h->mask = nb - 1;
}

int jobq__chash_init(void)
{
	if (ch_init(&uq, 1024) || ch_init(&deps, 1024)) {
		jobq__chash_fini();
		return -ENOMEM;
	}
	return 0;
}

void jobq__chash_fini(void)
{
	ch_fini(&uq);
	ch_fini(&deps);
}

/* ------------------------------------------------------------------------
 * Unique keys.
 */
static uint32_t uq_hash_of(void *p)
{
	return ((struct uq *)p)->hash;
}

uint32_t jobq__uq_find(const char *key, uint32_t len, uint32_t hash)
{
	for (struct uq *u = uq.b[hash & uq.mask]; u; u = u->next)
		if (u->hash == hash && u->len == len &&
		    !memcmp(u->key, key, len))
			return u->rec;
	return NONE;
}

int jobq__uq_add(uint32_t r, const char *key, uint32_t len, uint32_t hash)
{
	struct uq *u = malloc(sizeof(*u) + len);

	if (!u)
		return -ENOMEM;
	u->rec = r;
	u->len = len;
	u->hash = hash;
	memcpy(u->key, key, len);
	u->next = uq.b[u->hash & uq.mask];
	uq.b[u->hash & uq.mask] = u;
	uq.n++;
	ch_grow(&uq, uq_hash_of);
	return 0;
}

void jobq__uq_drop(uint32_t r, uint32_t hash24)
{
	struct uq **pp = (struct uq **)&uq.b[hash24 & uq.mask];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->rec == r) {
			struct uq *u = *pp;

			*pp = u->next;
			free(u);
			uq.n--;
			return;
		}
	}
}

/* ------------------------------------------------------------------------
 * Dependencies.
 */
static uint32_t dep_hash(uint64_t id)
{
	return jobq__job_hash(id);
}

static uint32_t dep_hash_of(void *p)
{
	return dep_hash(((struct dep *)p)->dep);
}

int jobq__dep_add(uint64_t dep, uint64_t waiter, uint32_t wrec)
{
	struct dep *d = malloc(sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->dep = dep;
	d->waiter = waiter;
	d->wrec = wrec;
	d->next = deps.b[dep_hash(dep) & deps.mask];
	deps.b[dep_hash(dep) & deps.mask] = d;
	deps.n++;
	ch_grow(&deps, dep_hash_of);
	return 0;
}

bool jobq__deps_any(void)
{
	return deps.n != 0;
}

bool jobq__dep_take(uint64_t dep, uint64_t *waiter, uint32_t *wrec)
{
	struct dep **pp = (struct dep **)&deps.b[dep_hash(dep) & deps.mask];

	for (; *pp; pp = &(*pp)->next) {
		struct dep *d = *pp;

		if (d->dep != dep)
			continue;
		*pp = d->next;
		deps.n--;
		*waiter = d->waiter;
		*wrec = d->wrec;
		free(d);
		return true;
	}
	return false;
}

void jobq__uq_each(void (*fn)(void *arg, uint32_t rec, const char *key,
			      uint32_t len),
		   void *arg)
{
	for (uint32_t i = 0; uq.b && i <= uq.mask; i++)
		for (struct uq *u = uq.b[i]; u; u = u->next)
			fn(arg, u->rec, u->key, u->len);
}

void jobq__dep_each(void (*fn)(void *arg, uint64_t dep, uint64_t waiter),
		    void *arg)
{
	for (uint32_t i = 0; deps.b && i <= deps.mask; i++)
		for (struct dep *d = deps.b[i]; d; d = d->next)
			fn(arg, d->dep, d->waiter);
}
