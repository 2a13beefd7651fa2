/* SPDX-License-Identifier: MIT */
/*
 * clients.c - what each connection uses of the manager, and how much it
 * may.
 *
 * Every table of the manager is shared by all its clients, so one client
 * that makes names without end (a bug, or random bytes that happen to be
 * valid entries) would leave nothing for the others. Each connection
 * therefore has quotas: queues it made and did not remove, locks it made,
 * requests it has parked at once, jobs it submitted that are not final
 * (jobs.c), locks its owners hold at once (locks.c), and with jobqd
 * --client-max-bytes the payload bytes of its puts still queued (objects
 * handed straight to a getter never count). A request over a quota
 * fails with JOBQ_EQUOTA and changes nothing; the client's record says which
 * quota it met, so that libjobq and `jobq stats --clients` can name it. The
 * defaults (store.c) are a quarter of a table, so that a few runaway
 * clients still leave room, and far above what a working client uses.
 * What a process made on earlier connections counts against a new one
 * (by pid), so that reconnecting does not reset a quota. Jobs and held
 * locks are counted on the connection alone: a job lives on after its
 * submitter closes (a `jobq submit` closes at once) and a closed
 * connection holds no lock, so both counts go with the record. Only the client
 * over its quota is refused: the others are not slowed.
 *
 * A connection's refused entries are counted in its record (and in the
 * global bad_requests); one that sends more than quota_bad of them is
 * dropped, with a line in the log naming its pid and the count.
 *
 * The record (struct jobq_client_rec) is the public view, written only
 * here, inside its seqlock.
 */
#include <string.h>

#include "jobqd.h"

static struct jobq_client_rec *crec(const struct jobq__client *c)
{
	return &jobq__m.st.clients[c->slot];
}

void jobq__clients_attach(struct jobq__client *c)
{
	struct jobq_client_rec *r = crec(c);

	seq_write_begin(&r->seq);
	memset((char *)r + sizeof(r->seq), 0, sizeof(*r) - sizeof(r->seq));
	r->in_use = 1;
	/* Read before the client has its region: nobody else wrote it. */
	r->client_id = c->hdr->client_id;
	r->pid = c->pid;
	r->uid = c->uid;
	r->connected_ns = jobq__realtime_ns();
	/* What its process made on earlier connections counts: a client
	 * cannot escape its quota by connecting again. */
	r->queues = jobq__queues_made_by(c->pid);
	r->locks = jobq__locks_made_by(c->pid);
	memcpy(r->name, c->name, sizeof(r->name) - 1);
	seq_write_end(&r->seq);
}

void jobq__clients_detach(struct jobq__client *c)
{
	struct jobq_client_rec *r = crec(c);

	if (!r->in_use)
		return;
	seq_write_begin(&r->seq);
	r->in_use = 0;
	seq_write_end(&r->seq);
}

bool jobq__clients_request(struct jobq__client *c, bool bad)
{
	struct jobq_client_rec *r = crec(c);
	uint32_t limit = jobq__hdr()->quota_bad;

	seq_write_begin(&r->seq);
	r->requests++;
	if (bad)
		r->bad++;
	seq_write_end(&r->seq);
	if (!bad || !limit || r->bad <= limit)
		return false;
	jobq__log(JOBQ__LOG_WARN,
		  "client %u (pid %d, \"%s\"): %llu malformed entries, more "
		  "than %u; dropping it",
		  c->slot, (int)c->pid, c->name, (unsigned long long)r->bad,
		  limit);
	return true;
}

/* The count of @which in @r and the quota that bounds it. */
static uint32_t *quota_count(struct jobq_client_rec *r, int which,
			     uint32_t *limit)
{
	struct jobq_store_hdr *h = jobq__hdr();

	switch (which) {
	case JOBQ_QUOTA_WAITS:
		*limit = h->quota_waits;
		return &r->waits;
	case JOBQ_QUOTA_QUEUES:
		*limit = h->quota_queues;
		return &r->queues;
	case JOBQ_QUOTA_JOBS:
		*limit = h->quota_jobs;
		return &r->jobs;
	case JOBQ_QUOTA_HELD:
		*limit = h->quota_held;
		return &r->held;
	default:
		*limit = h->quota_locks;
		return &r->locks;
	}
}

int jobq__quota_take(struct jobq__client *c, int which)
{
	struct jobq_client_rec *r = crec(c);
	uint32_t limit, *n = quota_count(r, which, &limit);
	bool over = limit && *n >= limit;

	seq_write_begin(&r->seq);
	if (over) {
		r->refused++;
		r->quota_hit = (uint32_t)which;
	} else {
		(*n)++;
	}
	seq_write_end(&r->seq);
	if (over && r->refused == 1)
		jobq__log(JOBQ__LOG_WARN,
			  "client %u (pid %d, \"%s\") is at a quota (%u of "
			  "kind %d); refusing it more",
			  c->slot, (int)c->pid, c->name, limit, which);
	return over ? JOBQ_EQUOTA : 0;
}

void jobq__quota_give(struct jobq__client *c, int which)
{
	struct jobq_client_rec *r = crec(c);
	uint32_t limit, *n = quota_count(r, which, &limit);

	if (!*n)
		return;
	seq_write_begin(&r->seq);
	(*n)--;
	seq_write_end(&r->seq);
}

int jobq__quota_room(struct jobq__client *c, int which, uint32_t more)
{
	struct jobq_client_rec *r = crec(c);
	uint32_t limit, *n = quota_count(r, which, &limit);

	if (!limit || (*n <= limit && more <= limit - *n))
		return 0;
	seq_write_begin(&r->seq);
	r->refused++;
	r->quota_hit = (uint32_t)which;
	seq_write_end(&r->seq);
	return JOBQ_EQUOTA;
}

void jobq__quota_ref_add(uint64_t ref, int which, int delta)
{
	struct jobq__client *c = jobq__client_of(ref);
	struct jobq_client_rec *r;
	uint32_t limit, *n;

	if (!c || !delta)
		return;
	r = crec(c);
	n = quota_count(r, which, &limit);
	seq_write_begin(&r->seq);
	if (delta < 0 && (uint32_t)-delta > *n)
		*n = 0;
	else
		*n += (uint32_t)delta;
	seq_write_end(&r->seq);
}

int jobq__quota_bytes_room(struct jobq__client *c, uint64_t len)
{
	struct jobq_client_rec *r = crec(c);
	uint64_t limit = jobq__hdr()->quota_bytes;

	if (!limit || (r->bytes <= limit && len <= limit - r->bytes))
		return 0;
	seq_write_begin(&r->seq);
	r->refused++;
	r->quota_hit = JOBQ_QUOTA_BYTES;
	seq_write_end(&r->seq);
	return JOBQ_EQUOTA;
}

void jobq__quota_bytes_add(uint64_t ref, int64_t delta)
{
	struct jobq__client *c = jobq__client_of(ref);
	struct jobq_client_rec *r;

	if (!c || !delta)
		return;
	r = crec(c);
	seq_write_begin(&r->seq);
	if (delta < 0 && (uint64_t)-delta > r->bytes)
		r->bytes = 0;
	else
		r->bytes += (uint64_t)delta;
	seq_write_end(&r->seq);
}

uint64_t jobq__client_ref(const struct jobq__client *c)
{
	return (uint64_t)crec(c)->client_id << 32 | c->slot;
}

struct jobq__client *jobq__client_of(uint64_t ref)
{
	uint32_t slot = (uint32_t)ref;
	struct jobq__client *c;

	if (!ref || slot >= jobq__m.o.max_clients)
		return NULL;
	c = &jobq__m.clients[slot];
	if (c->state != JOBQ__C_LIVE || !crec(c)->in_use ||
	    crec(c)->client_id != ref >> 32)
		return NULL;
	return c;
}
