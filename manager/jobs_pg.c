/* SPDX-License-Identifier: MIT */
/*
 * jobs_pg.c - the job handlers of jobqd --backend: jobs live in
 * PostgreSQL (pg_jobs.c), shared by every host's manager, and this host's
 * store holds mirrors of their rows, so that clients and workers read jobs
 * exactly as they do from a local manager.
 *
 * A handler sends its statement and returns JOBQ__NOREPLY; the statement's
 * callback answers the client once PostgreSQL committed it, if the client
 * still holds its slot (the generation it had when it asked). What is
 * shared and what is not: the jobs (their rows, leases, queue pause and
 * parallel limits) are; the queues of objects, the key/value store and the
 * locks stay per host.
 *
 * Mirrors. A record is made or refreshed from a row (jobq__jobs_mirror())
 * when this host submits a job, reserves one, finishes one, and by the
 * sync: a query for the rows with ids above the highest seen (new jobs of
 * any host) and the rows named by a jobq_done notification (jobs made
 * final anywhere). The sync runs on every notification (one in flight,
 * the next coalescing what came meanwhile) and every second, when it also
 * refreshes every mirror not final and re-reads the ids of the last two
 * seconds, since ids are drawn before their transactions commit and a
 * smaller one can commit after a larger one was read. A JOB_WAIT waiter
 * parks on the mirror as on a local job and wakes when the sync makes it
 * final.
 *
 * Reservations. A worker's W_RESERVE is a reserve statement with its
 * types; the rows become mirrors held by that worker (its running list,
 * tok[] the lease token its answer is sent with). With no row it parks as
 * on a local manager; a jobq_ready notification or the one-second tick
 * sends the reserve again for every parked worker (one statement in flight
 * per worker). Rows that come back for a reserver that left meanwhile are
 * given back (jobq__pg_unreserve()), their attempt uncounted.
 *
 * Submits. A turn's plain submits leave together as one statement; a
 * submit made while a worker of this host waits for its type may be
 * reserved for that worker by its own statement and handed to it when it
 * commits, without a reserve of its own (both under "Submit" below).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs.h"
#include "pg.h"

/* Rows a sync reads at once; a full answer sends the next at once. */
#define SYNC_ROWS 2000
/* Ids one periodic sync reads at most. */
#define SYNC_IDS 2000
/* Ticks (seconds) between two refreshes of the mirrors not final. */
#define REFRESH_TICKS 3

enum {
	K_SUBMIT,
	K_RESERVE,
	K_DONE,
	K_FAIL,
	K_EXTEND,
	K_CANCEL,
	K_QUEUE,
	K_RETRY,
	K_KICK,
	K_WAIT
};

/* A request waiting for its statement's answer. */
struct preq {
	struct jobq__client *c;
	uint32_t gen; /* c->gen when it asked */
	int kind;
	struct jobq_sqe sqe;
	uint64_t id, token;
	uint32_t rec;
	int tries;
	/* K_SUBMIT: the statement (sent again after a cut when --unique)
	 * and what the new job's mirror needs. */
	struct jobq__pg_submit sub;
	char type[JOBQ_TYPE_MAX + 1], queue[JOBQ_NAME_MAX + 1];
	char key[JOBQ_KEY_MAX + 1];
	uint64_t after[64];
	uint64_t lease_ns;
	/* K_RESERVE: the parked waiter served (NULL: the request itself),
	 * its parking number, the ready notifications seen when sent.
	 * K_SUBMIT with a hand-out: the parked waiter of worker @hslot
	 * (NONE: no hand-out), its client as it was when asked. */
	struct jobq__waiter *w;
	uint64_t park, ready_seq;
	uint32_t hslot, hgen;
	struct jobq__client *hc;
	const char *names[64];
	char owner[128];
	bool final; /* K_FAIL: no retry (JOBQ_SQE_FINAL) */
	/* K_QUEUE */
	int paused;
	int64_t parallel;
	/* K_DONE/K_FAIL: the result or error text; K_SUBMIT: the args. */
	uint32_t len, dtype;
	uint8_t data[];
};

static struct {
	uint64_t *tok;	    /* [max_jobs] lease token of a held mirror, 0 */
	uint64_t *park;	    /* [max_clients] reservers parked so far */
	bool *rsv_busy;	    /* [max_clients] a reserve in flight */
	uint64_t ready_seq; /* jobq_ready notifications so far */
	uint64_t after;	    /* highest id mirrored */
	uint64_t lo[2];	    /* g.after at the last two ticks */
	uint64_t ticks;
	uint32_t scan; /* the record the next refresh of mirrors starts at */
	bool busy, again, again_all;
	uint64_t *ids; /* named by jobq_done, to be read by the next sync */
	uint32_t nids, cap;
	char host[64];
} g;

static void poke_slot(uint32_t slot);
static void ignore_cb(void *arg, int err, const PGresult *res);

static bool is_final(unsigned st)
{
	return st == JOBQ_JS_SUCCEEDED || st == JOBQ_JS_DEAD ||
	       st == JOBQ_JS_CANCELLED;
}

static int init(void)
{
	if (g.tok)
		return 0;
	g.tok = calloc(jobq__hdr()->max_jobs, sizeof(*g.tok));
	g.park = calloc(jobq__m.o.max_clients, sizeof(*g.park));
	g.rsv_busy = calloc(jobq__m.o.max_clients, sizeof(*g.rsv_busy));
	if (!g.tok || !g.park || !g.rsv_busy) {
		free(g.tok);
		free(g.park);
		free(g.rsv_busy);
		g.tok = g.park = NULL;
		g.rsv_busy = NULL;
		return -ENOMEM;
	}
	if (gethostname(g.host, sizeof(g.host) - 1))
		snprintf(g.host, sizeof(g.host), "host");
	return 0;
}

static struct preq *preq_new(struct jobq__client *c, const struct jobq_sqe *s,
			     int kind, size_t extra)
{
	struct preq *p;

	if (init())
		return NULL;
	p = calloc(1, sizeof(*p) + extra);
	if (!p)
		return NULL;
	p->c = c;
	p->gen = c->gen;
	p->kind = kind;
	p->sqe = *s;
	p->hslot = NONE;
	return p;
}

/* The owner string of worker @slot's leases: "host:pid:slot". */
static void owner_of(char *buf, size_t len, uint32_t slot)
{
	snprintf(buf, len, "%s:%d:%u", g.host, (int)getpid(), slot);
}

/* Whether the client that asked still holds its slot. */
static bool asker_alive(const struct preq *p)
{
	return p->c->gen == p->gen && jobq__client_alive(p->c);
}

static void reply(struct preq *p, int32_t res, uint64_t val)
{
	if (asker_alive(p))
		jobq__post(p->c, p->sqe.user_data, res, 0, val, 0, 0);
}

/* The error a client gets for a statement that failed. */
static int sql_error(const char *what, int err, const PGresult *res)
{
	if (err == -EPROTO) {
		jobq__log(JOBQ__LOG_WARN, "backend: %s: %s", what,
			  PQresultErrorMessage(res));
		return -EIO;
	}
	return err == -ECANCELED ? JOBQ_ECLOSED : err;
}

/* ------------------------------------------------------------------------
 * Rows into mirrors.
 */
/* A bytea column, unescaped (PQfreemem), NULL for SQL NULL. */
static unsigned char *col_bytes(const PGresult *res, int row, int col,
				size_t *len)
{
	*len = 0;
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col),
			       len);
}

/* Fills @m from the record @r holds now. */
static void from_rec(struct jobq__mirror *m, uint32_t r)
{
	const struct jobq_job_rec *j = job_rec(r);

	memset(m, 0, sizeof(*m));
	m->id = j->id;
	m->type = jobq__m.st.types[j->type_id].name;
	m->queue = j->queue_id < load_relaxed(&jobq__hdr()->nqueues)
		       ? jobq__m.st.queues[j->queue_id].name
		       : NULL;
	m->state = j->state;
	m->priority = j->priority;
	m->attempts = j->attempts;
	m->max_attempts = j->max_attempts;
	m->progress = -1;
	m->created_ns = j->created_ns;
	m->started_ns = j->started_ns;
	m->finished_ns = j->finished_ns;
	m->run_at_ns = j->run_at_ns;
	m->lease_ns = j->lease_ns;
}

/* The held job record @r's worker is told its job was cancelled. */
static void tell_cancel(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (j->flags & JOBQ_JF_CANCELLING)
		return;
	seq_write_begin(&j->seq);
	j->flags |= JOBQ_JF_CANCELLING;
	seq_write_end(&j->seq);
	if (j->worker_client < jobq__m.o.max_clients)
		jobq__post(&jobq__m.clients[j->worker_client], JOBQ_UD_NOTICE,
			   JOBQ_NOTICE_CANCEL, JOBQ_CQE_NOTICE, j->id, 0, 0);
}

/* Mirrors row @i of a sync's answer (pg.h: jobq__pg_sync()). */
static void mirror_row(const PGresult *res, int i)
{
	uint64_t id = (uint64_t)jobq__pg_int(res, i, 0);
	unsigned st = (unsigned)jobq__pg_int(res, i, 3);
	uint64_t token = (uint64_t)jobq__pg_int(res, i, 11);
	uint32_t r = jobq__jobidx_lookup(id);
	struct jobq__mirror m = {0};
	unsigned char *args, *result = NULL;
	size_t alen, rlen = 0;

	if (id > g.after)
		g.after = id;
	if (r != NONE && g.tok[r]) {
		/* Held by a worker of ours: its answer settles it. */
		if (st == JOBQ_JS_CANCELLED)
			tell_cancel(r);
		if (st != JOBQ_JS_RUNNING || token != g.tok[r])
			return;
	}
	/* A final row changes only when it runs again (retry, kick), which
	 * this read may see at any later state, final too; a final record
	 * still in its state keeps the result a client may be reading. */
	if (r != NONE && is_final(job_rec(r)->state) && job_rec(r)->state == st)
		return;
	args = r == NONE ? col_bytes(res, i, 7, &alen) : NULL;
	m.id = id;
	m.type = PQgetvalue(res, i, 1);
	m.queue = PQgetvalue(res, i, 2);
	m.state = st;
	m.priority = (int32_t)jobq__pg_int(res, i, 4);
	m.attempts = (uint32_t)jobq__pg_int(res, i, 5);
	m.max_attempts = (uint32_t)jobq__pg_int(res, i, 6);
	if (r == NONE) {
		m.args = args ? (const void *)args : (const void *)"";
		m.args_len = (uint32_t)alen;
		m.args_type = alen ? JOBQ_T_JSON : JOBQ_T_NONE;
	}
	if (st == JOBQ_JS_SUCCEEDED) {
		result = col_bytes(res, i, 8, &rlen);
		m.result = result ? (const void *)result : (const void *)"";
		m.result_len = (uint32_t)rlen;
		m.result_type = rlen ? JOBQ_T_JSON : JOBQ_T_NONE;
	} else if (!PQgetisnull(res, i, 9)) {
		m.result = PQgetvalue(res, i, 9);
		m.result_len = (uint32_t)PQgetlength(res, i, 9);
		m.result_type = JOBQ_T_TEXT;
	}
	m.progress = PQgetisnull(res, i, 10)
			 ? -1
			 : (int32_t)(atof(PQgetvalue(res, i, 10)) * 10000);
	m.created_ns = (uint64_t)jobq__pg_int(res, i, 12) * 1000;
	m.started_ns = (uint64_t)jobq__pg_int(res, i, 13) * 1000;
	m.finished_ns = (uint64_t)jobq__pg_int(res, i, 14) * 1000;
	m.run_at_ns = st == JOBQ_JS_DELAYED || st == JOBQ_JS_FAILED
			  ? (uint64_t)jobq__pg_int(res, i, 15) * 1000
			  : 0;
	m.lease_ns = (uint64_t)jobq__pg_int(res, i, 16) * 1000000;
	if (jobq__jobs_mirror(&m) == NONE)
		jobq__log(JOBQ__LOG_WARN,
			  "backend: no record free for job %" PRIu64, id);
	PQfreemem(args);
	PQfreemem(result);
}

static void sync_send(bool all);

static void sync_cb(void *arg, int err, const PGresult *res)
{
	int n;

	g.busy = false;
	if (err) {
		if (err == -EPROTO)
			jobq__log(JOBQ__LOG_WARN, "backend: sync: %s",
				  PQresultErrorMessage(res));
		return;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		mirror_row(res, i);
	if (n >= SYNC_ROWS)
		g.again = true;
	if (g.again) {
		bool all = g.again_all;

		g.again = g.again_all = false;
		sync_send(all);
	}
}

/* Adds @id to the ids the next sync reads; false when out of memory. */
static bool ids_add(uint32_t *n, uint64_t id)
{
	if (*n == g.cap) {
		uint32_t nc = g.cap ? 2 * g.cap : 256;
		uint64_t *v = realloc(g.ids, nc * sizeof(*v));

		if (!v)
			return false;
		g.ids = v;
		g.cap = nc;
	}
	g.ids[(*n)++] = id;
	return true;
}

/*
 * Reads new rows and those named since the last sync. With @all (every
 * REFRESH_TICKS ticks) also up to SYNC_IDS mirrors not final, from where
 * the last such sync stopped (their hand-outs and progress elsewhere come
 * without a notification), and the ids of the last two ticks that have no
 * mirror: an id drawn before a larger one may commit after the larger one
 * was read.
 */
static void sync_send(bool all)
{
	struct jobq__pg *pg = jobq__backend_pg();
	uint32_t hwm = jobq__jobs_hwm(), n = g.nids, seen = 0;

	if (!pg || init())
		return;
	if (g.busy) {
		g.again = true;
		g.again_all |= all;
		return;
	}
	if (all) {
		for (uint64_t id = g.lo[0] + 1; id <= g.after && n < SYNC_IDS;
		     id++)
			if (jobq__jobidx_lookup(id) == NONE && !ids_add(&n, id))
				break;
		if (g.scan >= hwm)
			g.scan = 0;
		for (; seen < hwm && n < SYNC_IDS; seen++) {
			const struct jobq_job_rec *j = job_rec(g.scan);

			g.scan = g.scan + 1 < hwm ? g.scan + 1 : 0;
			if (j->id && !is_final(j->state) && !ids_add(&n, j->id))
				break;
		}
	}
	if (!jobq__pg_sync(pg, g.after, g.ids, n, SYNC_ROWS, sync_cb, NULL)) {
		g.busy = true;
		g.nids = 0;
	}
}

/* Job @id is to be read by the next sync (without memory: by a tick's). */
static void sync_id(uint64_t id)
{
	ids_add(&g.nids, id);
}

/* ------------------------------------------------------------------------
 * Submit.
 *
 * The hand-out with the submit. A job submitted here while a worker of
 * this host waits in its reserve for that type is inserted already
 * reserved for it, in the submit's own statement, when a reserve of that
 * worker would take it (pg_jobs.c: no dependency, no delay, a queue
 * neither paused nor limited, no runnable job of its types as good or
 * better), and handed to it when that commits: one commit and one
 * notification between hosts fewer a job. The worker is chosen when the
 * submit is sent and marked as having a statement out (rsv_busy), so no
 * reserve of its own races the hand-out and no other submit picks it
 * meanwhile. When the answer comes and the worker no longer waits (it
 * left, stopped, or filled its slots), the run is given back
 * (jobq__pg_unreserve()), as a reserve's rows are. A submit whose outcome
 * a cut connection made unknown and that cannot be sent again (no session,
 * no key) leaves its run as a reserve's lost answer does: it returns to
 * ready when its lease ends.
 */
/* A worker of this host parked in its reserve with a free slot and no
 * statement out that takes jobs of @type: its slot with its types in
 * @names (*@ntypes), or NONE. Workers take turns. */
static uint32_t parked_worker(const char *type, const char **names,
			      uint32_t *ntypes)
{
	static uint32_t next;
	uint32_t max = jobq__m.o.max_clients, free_slots;
	bool stopping;

	for (uint32_t i = 0; i < max; i++) {
		uint32_t slot = (next + i) % max;
		struct jobq__waiter *w = jobq__jobs_parked(slot);

		if (!w || g.rsv_busy[slot] || !jobq__client_alive(w->c) ||
		    !jobq__jobs_worker(slot, &free_slots, &stopping, names,
				       ntypes) ||
		    stopping || !free_slots)
			continue;
		for (uint32_t t = 0; t < *ntypes; t++) {
			if (!strcmp(names[t], type)) {
				next = slot + 1;
				return slot;
			}
		}
	}
	return NONE;
}

/* The hand-out of @p is over: its worker may reserve again. */
static void handout_end(struct preq *p)
{
	uint32_t slot = p->hslot;

	if (slot == NONE)
		return;
	p->hslot = NONE;
	g.rsv_busy[slot] = false;
	/* Its worker may have parked again, or a notification passed it by
	 * while the submit was out. */
	poke_slot(slot);
}

/* Whether @p's worker still waits for the job its submit reserved. */
static bool handout_waits(const struct preq *p)
{
	uint32_t slot = p->hslot, free_slots, ntypes;
	const char *names[64];
	bool stopping;

	return p->hc->gen == p->hgen && jobq__client_alive(p->hc) &&
	       jobq__jobs_parked(slot) == p->w && g.park[slot] == p->park &&
	       jobq__jobs_worker(slot, &free_slots, &stopping, names,
				 &ntypes) &&
	       !stopping && free_slots;
}

/*
 * Job @id was reserved by @p's statement for its worker with lease
 * @token: gives it to that worker as reserve_cb() would, or back to ready
 * when the worker no longer waits. @m is the job's mirror as submitted.
 */
static void handout(struct preq *p, struct jobq__mirror *m, uint64_t token)
{
	uint32_t r = jobq__jobidx_lookup(m->id);
	uint64_t ud;

	if (r != NONE && g.tok[r])
		return; /* held already: this run is its */
	if (!handout_waits(p)) {
		jobq__pg_unreserve(jobq__backend_pg(), m->id, token, ignore_cb,
				   NULL);
		m->state = JOBQ_JS_READY;
		jobq__jobs_mirror(m);
		return;
	}
	m->state = JOBQ_JS_RUNNING;
	m->attempts = 1;
	m->started_ns = jobq__realtime_ns();
	r = jobq__jobs_mirror(m);
	if (r == NONE) {
		jobq__pg_unreserve(jobq__backend_pg(), m->id, token, ignore_cb,
				   NULL);
		return;
	}
	jobq__jobs_mirror_hold(r, p->hc);
	g.tok[r] = token;
	ud = p->w->sqe.user_data;
	jobq__post(p->hc, ud, 0, JOBQ_CQE_JOB, m->id, job_rec(r)->attempts,
		   job_rec(r)->type_id);
	jobq__wait_free(p->w);
	p->w = NULL;
}

/* The mirror of job @id, made in state @st by @p's submit. */
static void mirror_new(const struct preq *p, uint64_t id, unsigned st)
{
	struct jobq__mirror m = {0};
	uint64_t real = jobq__realtime_ns();

	m.id = id;
	m.type = p->type;
	m.queue = p->queue;
	m.state = st;
	m.priority = p->sub.priority;
	m.max_attempts = (uint32_t)p->sub.max_attempts;
	m.args = p->data;
	m.args_len = p->len;
	m.args_type = p->dtype;
	m.progress = 0;
	m.created_ns = real;
	m.run_at_ns =
	    p->sub.delay_ms ? real + (uint64_t)p->sub.delay_ms * 1000000 : 0;
	m.lease_ns = p->lease_ns;
	if (m.state == JOBQ_JS_DEAD) {
		m.result = "dependency failed";
		m.result_len = (uint32_t)strlen(m.result);
		m.result_type = JOBQ_T_TEXT;
		m.finished_ns = real;
	}
	jobq__jobs_mirror(&m);
	jobq__count(submitted);
}

static void submit_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;
	struct jobq__mirror m = {0};
	uint64_t id, token, real = jobq__realtime_ns();
	bool created, again, mirrored = false;

	/* Exact when sent again: a key returns the job holding it, a
	 * request id the job this request made. A unique violation on the
	 * request index is this request's other copy committing first. */
	if ((err == -ECONNRESET ||
	     (err == -EPROTO && jobq__pg_sqlstate(res, "23505") &&
	      p->sub.session)) &&
	    (p->sub.unique || p->sub.session) && p->tries++ < 5 &&
	    !jobq__pg_submit(jobq__backend_pg(), &p->sub, submit_cb, p))
		return;
	if (err) {
		reply(p,
		      jobq__pg_sqlstate(res, "23503")
			  ? -ENOENT
			  : sql_error("submit", err, res),
		      0);
		handout_end(p);
		free(p);
		return;
	}
	if (PQntuples(res) < 1) {
		reply(p, -ENOENT, 0); /* a dependency does not exist */
		handout_end(p);
		free(p);
		return;
	}
	id = (uint64_t)jobq__pg_int(res, 0, 0);
	created = !strcmp(PQgetvalue(res, 0, 1), "t");
	again = !strcmp(PQgetvalue(res, 0, 4), "t");
	token = (uint64_t)jobq__pg_int(res, 0, 5);
	/* Reserved for our worker by this request: by this statement, or by
	 * its first copy when this one was sent again (a key's holder that
	 * another request made is not ours to hand out). */
	if (token && p->hslot != NONE && (created || p->tries)) {
		m.id = id;
		m.type = p->type;
		m.queue = p->queue;
		m.priority = p->sub.priority;
		m.max_attempts = (uint32_t)p->sub.max_attempts;
		m.args = p->data;
		m.args_len = p->len;
		m.args_type = p->dtype;
		m.created_ns = real;
		m.lease_ns = p->lease_ns;
		handout(p, &m, token);
		if (created)
			jobq__count(submitted);
		mirrored = true;
	}
	if (created && !mirrored)
		mirror_new(p, id, (unsigned)jobq__pg_int(res, 0, 3));
	/* The sync makes the whole row (or the holder of the key) a
	 * mirror. */
	sync_id(id);
	sync_send(false);
	/* A request made again answers as it did the first time: it made
	 * the job (a --unique one that found a holder made none, and its
	 * key answers for it). */
	reply(p, created || again ? 0 : 1, id);
	handout_end(p);
	free(p);
}

/*
 * Plain submits (no key, no dependency, no hand-out) gathered in a turn
 * leave together at its end (jobq__jobs_pg_turn()) as one statement
 * (jobq__pg_submit_many()); any other submit sends them first, so that
 * ids keep the order requests came in. A request the statement made
 * nothing for (its request id made a job before), or whose statement
 * failed, is sent again alone, which is exact as submit_cb() says.
 */
#define SUBMIT_BATCH 512
/* Args bytes of one such statement at most (sent as hex, twice that): a
 * submit with more goes alone, and the batch leaves before it grows past
 * this, far below PostgreSQL's 1 GB a message. */
#define SUBMIT_BATCH_BYTES (1u << 20)

static struct {
	struct preq *v[SUBMIT_BATCH];
	uint32_t n;
	size_t bytes;
} sb;

struct sbatch {
	uint32_t n;
	struct preq *p[];
};

/* Sends @p's submit alone; on failure answers it. */
static void submit_alone(struct preq *p)
{
	int ret = jobq__pg_submit(jobq__backend_pg(), &p->sub, submit_cb, p);

	if (ret) {
		reply(p, ret, 0);
		handout_end(p);
		free(p);
	}
}

static void submit_many_cb(void *arg, int err, const PGresult *res)
{
	struct sbatch *b = arg;
	uint32_t row = 0, n = err ? 0 : (uint32_t)PQntuples(res);

	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: submit: %s",
			  PQresultErrorMessage(res));
	for (uint32_t i = 0; i < b->n; i++) {
		struct preq *p = b->p[i];
		uint64_t id;

		if (row < n &&
		    jobq__pg_int(res, (int)row, 0) == (int64_t)i + 1) {
			id = (uint64_t)jobq__pg_int(res, (int)row, 1);
			mirror_new(p, id,
				   (unsigned)jobq__pg_int(res, (int)row, 2));
			row++;
			sync_id(id);
			reply(p, 0, id);
			free(p);
			continue;
		}
		/* Made before, or rolled back: alone it is exact. Cut: only
		 * a request id finds what the statement may have made. */
		if (!err || err == -EPROTO ||
		    (err == -ECONNRESET && p->sub.session)) {
			submit_alone(p);
			continue;
		}
		reply(p, sql_error("submit", err, res), 0);
		free(p);
	}
	sync_send(false);
	free(b);
}

/* Sends the submits gathered so far. */
static void submit_flush(void)
{
	const struct jobq__pg_submit *subs[SUBMIT_BATCH];
	struct sbatch *b;
	uint32_t n = sb.n;
	int ret = -ENOMEM;

	if (!n)
		return;
	sb.n = 0;
	sb.bytes = 0;
	if (n == 1) {
		submit_alone(sb.v[0]);
		return;
	}
	b = malloc(sizeof(*b) + n * sizeof(b->p[0]));
	if (b) {
		b->n = n;
		for (uint32_t i = 0; i < n; i++) {
			b->p[i] = sb.v[i];
			subs[i] = &sb.v[i]->sub;
		}
		ret = jobq__pg_submit_many(jobq__backend_pg(), subs, n,
					   submit_many_cb, b);
		if (!ret)
			return;
		free(b);
	}
	for (uint32_t i = 0; i < n; i++) {
		reply(sb.v[i], ret, 0);
		free(sb.v[i]);
	}
}

static void waits_flush(void);

void jobq__jobs_pg_turn(void)
{
	submit_flush();
	waits_flush();
}

int jobq__jobs_pg_submit(struct jobq__client *c, const struct jobq_sqe *s)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_submit_wire wv;
	uint64_t aoff;
	struct preq *p;
	int ret;

	ret = jobq__submit_read(s, a, &wv, &aoff);
	if (ret)
		return ret;
	p = preq_new(c, s, K_SUBMIT, wv.args_len);
	if (!p)
		return -ENOMEM;
	/* Copied once: the client may change its arena meanwhile. */
	memcpy(p->type, a + sizeof(wv), wv.type_len);
	memcpy(p->key, a + sizeof(wv) + wv.type_len, wv.unique_len);
	memcpy(p->after, a + aoff, 8ull * wv.nafter);
	memcpy(p->data, a + aoff + 8ull * wv.nafter, wv.args_len);
	if (strlen(p->type) != wv.type_len || strlen(p->key) != wv.unique_len ||
	    jobq__check_text(p->type, wv.type_len)) {
		free(p);
		return -EINVAL;
	}
	snprintf(p->queue, sizeof(p->queue), "%s",
		 jobq__m.st.queues[wv.queue_id].name);
	p->len = wv.args_len;
	p->dtype = s->type;
	p->lease_ns = (uint64_t)wv.lease_ns;
	p->sub = (struct jobq__pg_submit){
	    .type = p->type,
	    .queue = p->queue,
	    .args = p->data,
	    .args_len = p->len,
	    .priority = wv.priority,
	    /* Rounded up: a delay is never shorter than asked. */
	    .delay_ms = (wv.delay_ns + 999999) / 1000000,
	    .max_attempts = (int32_t)wv.max_attempts,
	    .timeout_ms = (wv.lease_ns + 999999) / 1000000,
	    .unique = wv.unique_len ? p->key : NULL,
	    .after = p->after,
	    .nafter = wv.nafter,
	    /* The pair names this request on every host for the handle's
	     * life (proto.h); a handle without a session sends none. */
	    .session = c->sess ? c->hello.session : 0,
	    .rid = jobq_ud_rid(s->user_data),
	};
	if (!wv.nafter && !p->sub.delay_ms) {
		uint32_t ntypes = 0,
			 slot = parked_worker(p->type, p->names, &ntypes);

		if (slot != NONE) {
			p->hslot = slot;
			p->w = jobq__jobs_parked(slot);
			p->park = g.park[slot];
			p->hc = p->w->c;
			p->hgen = p->hc->gen;
			owner_of(p->owner, sizeof(p->owner), slot);
			p->sub.owner = p->owner;
			p->sub.types = p->names;
			p->sub.ntypes = ntypes;
		}
	}
	if (p->hslot == NONE && !p->sub.unique && !p->sub.nafter &&
	    p->len <= SUBMIT_BATCH_BYTES) {
		if (sb.bytes + p->len > SUBMIT_BATCH_BYTES)
			submit_flush();
		sb.v[sb.n++] = p;
		sb.bytes += p->len;
		if (sb.n == SUBMIT_BATCH)
			submit_flush();
		return JOBQ__NOREPLY;
	}
	submit_flush();
	ret = jobq__pg_submit(jobq__backend_pg(), &p->sub, submit_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	if (p->hslot != NONE)
		g.rsv_busy[p->hslot] = true;
	return JOBQ__NOREPLY;
}

/* ------------------------------------------------------------------------
 * Wait.
 *
 * A wait must not be answered from a copy older than what its client has
 * seen: after `jobq retry ID` answered on host C, `jobq wait ID` on host
 * A waits for the new run, even when A has not heard of the retry yet
 * (its notification may still be on its way). So a wait is answered or
 * parked only from a copy at least as new as a row read after the wait
 * arrived:
 *
 *  - A job this host has no record of, or holds as final, is read first
 *    (one statement through the pipeline; the loop goes on meanwhile).
 *    A final copy cannot be trusted on its own, even one this host's
 *    worker finished and no retry was heard of since: nothing local
 *    tells a retry that was not heard of yet from none.
 *  - A job not final parks at once, with no statement, when none is in
 *    flight on the connection: the copy is then made final only by the
 *    answer of a statement sent after the wait arrived (the connection
 *    answers in the order it sends). With statements in flight, one of
 *    them may carry a row read before the retry (a sync) and make the
 *    copy final from it: the row is read first then too.
 *
 * The common wait stays free: one for a job running or queued, on an
 * idle connection. Costs: a read for a wait on a final job, or on a busy
 * connection, shared by every such wait of the turn (one statement a
 * turn, below). With a backend the client does not answer a
 * wait from a final state in its store either, but asks (src/job.c,
 * jobs_shared). Still open: a worker of this host that answers a job
 * cancelled meanwhile makes its copy cancelled without a statement
 * (jobq__jobs_pg_done()), so a wait parked on it after a retry of the
 * cancelled job gets "cancelled".
 *
 * The waits whose rows are to be read: gathered during a turn and read in
 * one statement at its end (jobq__jobs_pg_turn()), so that a client
 * waiting for thousands of finished jobs costs one statement a turn, not
 * one a job, and a wait does not queue one read behind another.
 */
static struct {
	struct preq **v;
	uint32_t n, cap;
} waitq;

/* A statement's worth of waits. */
struct wbatch {
	uint32_t n;
	struct preq *p[];
};

static void wait_send(struct preq *p)
{
	if (waitq.n == waitq.cap) {
		uint32_t ncap = waitq.cap ? 2 * waitq.cap : 64;
		struct preq **nv = realloc(waitq.v, ncap * sizeof(*nv));

		if (!nv) {
			reply(p, -ENOMEM, 0);
			free(p);
			return;
		}
		waitq.v = nv;
		waitq.cap = ncap;
	}
	waitq.v[waitq.n++] = p;
}

static void waits_cb(void *arg, int err, const PGresult *res)
{
	struct wbatch *b = arg;

	if (!err)
		for (int i = 0; i < PQntuples(res); i++)
			mirror_row(res, i);
	for (uint32_t i = 0; i < b->n; i++) {
		struct preq *p = b->p[i];
		int ret;

		/* A read is safe to send again; a wait must not fail for a
		 * cut that the reconnect mends. */
		if (err == -ECONNRESET && p->tries++ < 5 && asker_alive(p)) {
			wait_send(p);
			continue;
		}
		if (err) {
			reply(p, sql_error("wait", err, res), 0);
			free(p);
			continue;
		}
		if (asker_alive(p)) {
			ret = jobq__job_wait_here(p->c, &p->sqe);
			if (ret != JOBQ__NOREPLY)
				jobq__post(p->c, p->sqe.user_data, ret, 0, 0, 0,
					   0);
		}
		free(p);
	}
	free(b);
}

/* Sends one read of the rows of every wait gathered. */
static void waits_flush(void)
{
	uint32_t n = waitq.n;
	struct wbatch *b;
	uint64_t *ids;
	int ret = -ENOMEM;

	if (!n)
		return;
	waitq.n = 0;
	b = malloc(sizeof(*b) + n * sizeof(b->p[0]));
	ids = malloc(n * sizeof(*ids));
	if (b && ids) {
		b->n = n;
		for (uint32_t i = 0; i < n; i++) {
			b->p[i] = waitq.v[i];
			ids[i] = waitq.v[i]->sqe.arg0;
		}
		/* Above every id: only the ones named are read. */
		ret = jobq__pg_sync(jobq__backend_pg(), INT64_MAX, ids, n, n,
				    waits_cb, b);
	}
	free(ids);
	if (ret) {
		for (uint32_t i = 0; i < n; i++) {
			struct preq *p = b ? b->p[i] : waitq.v[i];

			reply(p, ret, 0);
			free(p);
		}
		free(b);
	}
}

int jobq__jobs_pg_wait(struct jobq__client *c, const struct jobq_sqe *s)
{
	uint32_t r = jobq__jobidx_lookup(s->arg0);
	struct jobq__pg *pg = jobq__backend_pg();
	struct preq *p;

	if (!pg)
		return JOBQ_ECLOSED;
	if (r != NONE && !is_final(job_rec(r)->state) && !jobq__pg_pending(pg))
		return jobq__job_wait_here(c, s);
	p = preq_new(c, s, K_WAIT, 0);
	if (!p)
		return -ENOMEM;
	wait_send(p);
	return JOBQ__NOREPLY;
}

/* ------------------------------------------------------------------------
 * Cancel, pause, parallel.
 */
static void cancel_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;

	if (err)
		reply(p, sql_error("cancel", err, res), 0);
	else if (PQntuples(res) < 1)
		reply(p, -ENOENT, 0);
	else
		reply(p,
		      jobq__pg_int(res, 0, 0) == JOBQ_JS_CANCELLED ? 0
								   : -EALREADY,
		      0);
	sync_id(p->sqe.arg0);
	sync_send(false);
	free(p);
}

int jobq__jobs_pg_cancel(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct preq *p = preq_new(c, s, K_CANCEL, 0);
	int ret;

	if (!p)
		return -ENOMEM;
	ret = jobq__pg_cancel(jobq__backend_pg(), s->arg0, cancel_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	return JOBQ__NOREPLY;
}

/* Retry, kick of one job (K_RETRY, K_KICK) and of every dead one
 * (K_KICK with arg0 0). */
static void retry_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;
	int n = err ? 0 : PQntuples(res);

	if (err) {
		reply(p, sql_error("retry", err, res), 0);
	} else if (p->kind == K_KICK && !p->sqe.arg0) {
		for (int i = 0; i < n; i++)
			sync_id((uint64_t)jobq__pg_int(res, i, 0));
		reply(p, n, 0);
	} else if (n < 1) {
		reply(p, -ENOENT, 0);
	} else if (jobq__pg_int(res, 0, 0) < 1) {
		reply(p, -EALREADY, 0);
	} else {
		sync_id(p->sqe.arg0);
		reply(p, p->kind == K_KICK ? 1 : 0, 0);
	}
	sync_send(false);
	free(p);
}

int jobq__jobs_pg_retry(struct jobq__client *c, const struct jobq_sqe *s,
			bool kick)
{
	struct preq *p = preq_new(c, s, kick ? K_KICK : K_RETRY, 0);
	int ret;

	if (!p)
		return -ENOMEM;
	if (kick && !s->arg0)
		ret = jobq__pg_kick_all(jobq__backend_pg(), retry_cb, p);
	else
		ret = jobq__pg_retry(jobq__backend_pg(), s->arg0, kick,
				     retry_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	return JOBQ__NOREPLY;
}

static void queue_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;
	struct jobq_queue_rec *q = &jobq__m.st.queues[p->rec];

	if (err) {
		reply(p, sql_error("queue", err, res), 0);
		free(p);
		return;
	}
	/* This host's record shows what it set. */
	seq_write_begin(&q->seq);
	if (p->paused >= 0)
		q->paused = (uint32_t)p->paused;
	if (p->parallel >= 0)
		q->parallel = (uint32_t)p->parallel;
	seq_write_end(&q->seq);
	reply(p, 0, 0);
	free(p);
}

int jobq__jobs_pg_queue(struct jobq__client *c, const struct jobq_sqe *s,
			uint32_t qid, int paused, int64_t parallel)
{
	struct preq *p = preq_new(c, s, K_QUEUE, 0);
	int ret;

	if (!p)
		return -ENOMEM;
	p->rec = qid;
	p->paused = paused;
	p->parallel = parallel;
	ret =
	    jobq__pg_queue_set(jobq__backend_pg(), jobq__m.st.queues[qid].name,
			       paused, (int32_t)parallel, queue_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	return JOBQ__NOREPLY;
}

/* ------------------------------------------------------------------------
 * Reserve.
 */
static void ignore_cb(void *arg, int err, const PGresult *res)
{
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: %s",
			  PQresultErrorMessage(res));
}

static int reserve_send(struct preq *p, uint64_t want);
static void poke_slot(uint32_t slot);

/* Whether @p's reserver still waits for what its statement brings. */
static bool reserver_waits(const struct preq *p)
{
	uint32_t slot = p->c->slot;

	if (!asker_alive(p))
		return false;
	if (p->w)
		return jobq__jobs_parked(slot) == p->w &&
		       g.park[slot] == p->park;
	return true;
}

static void reserve_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;
	struct jobq__client *c = p->c;
	uint32_t slot = c->slot, free_slots = 0, ntypes, n, got = 0;
	uint32_t prev = NONE;
	const char *names[64];
	bool stopping = true, waits = reserver_waits(p);
	/* A parked waiter is freed with its client: read only while it
	 * still waits (its user_data is used only then). */
	uint64_t ud = !p->w   ? p->sqe.user_data
		      : waits ? p->w->sqe.user_data
			      : 0;

	g.rsv_busy[slot] = false;
	if (waits &&
	    !jobq__jobs_worker(slot, &free_slots, &stopping, names, &ntypes))
		waits = false;
	n = err ? 0 : (uint32_t)PQntuples(res);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = (uint64_t)jobq__pg_int(res, (int)i, 0);
		uint64_t token = (uint64_t)jobq__pg_int(res, (int)i, 1);
		struct jobq__mirror m;
		uint32_t r = NONE;
		unsigned char *args;
		size_t alen;

		if (waits && !stopping && got < free_slots) {
			r = jobq__jobidx_lookup(id);
			if (r != NONE && g.tok[r])
				r = NONE; /* cannot be: a token is one run */
			else if (r != NONE)
				from_rec(&m, r);
			else
				memset(&m, 0, sizeof(m));
		}
		if (r == NONE && !(waits && !stopping && got < free_slots)) {
			jobq__pg_unreserve(jobq__backend_pg(), id, token,
					   ignore_cb, NULL);
			continue;
		}
		args = col_bytes(res, (int)i, 4, &alen);
		m.id = id;
		m.type = PQgetvalue(res, (int)i, 2);
		m.queue = PQgetvalue(res, (int)i, 3);
		m.state = JOBQ_JS_RUNNING;
		m.attempts = (uint32_t)jobq__pg_int(res, (int)i, 5);
		/* A job's args never change: a record keeps the ones it has
		 * (a client may be reading them). */
		if (r == NONE) {
			m.args = args ? (const void *)args : (const void *)"";
			m.args_len = (uint32_t)alen;
			m.args_type = alen ? JOBQ_T_JSON : JOBQ_T_NONE;
		}
		m.progress = 0;
		m.started_ns = jobq__realtime_ns();
		m.finished_ns = 0;
		m.run_at_ns = 0;
		r = jobq__jobs_mirror(&m);
		PQfreemem(args);
		if (r == NONE) {
			jobq__pg_unreserve(jobq__backend_pg(), id, token,
					   ignore_cb, NULL);
			continue;
		}
		jobq__jobs_mirror_hold(r, c);
		g.tok[r] = token;
		/* Its priority, limits and times come with the tick's
		 * sync, which reads every mirror not final. */
		got++;
		/* All but the last with MORE, as a local hand-out. */
		if (prev != NONE)
			jobq__post(c, ud, 0, JOBQ_CQE_JOB | JOBQ_CQE_MORE,
				   job_rec(prev)->id, job_rec(prev)->attempts,
				   job_rec(prev)->type_id);
		prev = r;
	}
	if (got) {
		jobq__post(c, ud, 0, JOBQ_CQE_JOB, job_rec(prev)->id,
			   job_rec(prev)->attempts, job_rec(prev)->type_id);
		if (p->w)
			jobq__wait_free(p->w);
		free(p);
		return;
	}
	if (err && err != -ECONNRESET && err != -ECANCELED)
		(void)sql_error("reserve", err, res);
	if (!waits) {
		bool gone = !asker_alive(p);

		if (!p->w && !gone)
			jobq__post(c, ud, stopping ? JOBQ_ECLOSED : -EAGAIN, 0,
				   0, 0, 0);
		free(p);
		/* The slot's new client may have parked behind this one. */
		if (gone)
			poke_slot(slot);
		return;
	}
	if (err == -ECANCELED) {
		free(p);
		return;
	}
	/* Nothing now. Work announced while we asked: ask again. */
	if (g.ready_seq != p->ready_seq && !reserve_send(p, 0))
		return;
	if (!p->w) {
		int ret = jobq__jobs_park_reserve(c, &p->sqe);

		if (ret == JOBQ__NOREPLY)
			g.park[slot]++;
		else
			jobq__post(c, ud, ret, 0, 0, 0, 0);
	}
	free(p);
}

/* Sends @p's reserve for up to @want jobs (0: what its request asks),
 * within its worker's free slots. 0 or -errno (then @p is the caller's). */
static int reserve_send(struct preq *p, uint64_t want)
{
	uint32_t slot = p->c->slot, free_slots, ntypes;
	const char *names[64];
	char owner[128];
	bool stopping;
	int ret;

	if (!jobq__jobs_worker(slot, &free_slots, &stopping, names, &ntypes))
		return -EINVAL;
	if (!want)
		want = p->w ? p->w->sqe.arg0 : p->sqe.arg0;
	if (!want)
		want = 1;
	if (want > free_slots)
		want = free_slots;
	if (stopping || !want || g.rsv_busy[slot])
		return -EBUSY;
	owner_of(owner, sizeof(owner), slot);
	p->ready_seq = g.ready_seq;
	ret = jobq__pg_reserve(jobq__backend_pg(), owner, names, ntypes,
			       (uint32_t)want, reserve_cb, p);
	if (!ret)
		g.rsv_busy[slot] = true;
	return ret;
}

int jobq__jobs_pg_reserve(struct jobq__client *c, const struct jobq_sqe *s)
{
	struct preq *p = preq_new(c, s, K_RESERVE, 0);
	int ret;

	if (!p)
		return -ENOMEM;
	ret = reserve_send(p, 0);
	if (!ret)
		return JOBQ__NOREPLY;
	free(p);
	if (ret != -EBUSY)
		return ret;
	/* No free slot: it waits, as on a local manager. Or the statement
	 * of the slot's previous client is still out (it went with a
	 * reserve unanswered): it waits for that answer (reserve_cb()). */
	ret = jobq__jobs_park_reserve(c, s);
	if (ret == JOBQ__NOREPLY)
		g.park[c->slot]++;
	return ret;
}

/* The reserver parked on @slot, if any, asks again. */
static void poke_slot(uint32_t slot)
{
	struct jobq__waiter *w = jobq__jobs_parked(slot);
	struct preq *p;

	if (!w || g.rsv_busy[slot])
		return;
	p = preq_new(w->c, &w->sqe, K_RESERVE, 0);
	if (!p)
		return;
	p->w = w;
	p->park = g.park[slot];
	if (reserve_send(p, 0))
		free(p);
}

/* Every parked reserver asks again (work was announced, or a second
 * passed: delays and backoffs end without a notification). */
static void poke(void)
{
	for (uint32_t slot = 0; slot < jobq__m.o.max_clients; slot++)
		poke_slot(slot);
}

/* ------------------------------------------------------------------------
 * A worker's answers: done, fail, progress, extend; its loss.
 */
static void done_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;
	uint32_t r = p->rec;
	bool fail = p->kind == K_FAIL;
	struct jobq__mirror m;

	if (err == -ECONNRESET && p->tries++ < 5) {
		/* Safe twice: the token makes a second run find no row. */
		if (!(fail ? jobq__pg_fail_final(
				 jobq__backend_pg(), p->id, p->token,
				 (const char *)p->data, p->final, done_cb, p)
			   : jobq__pg_complete(jobq__backend_pg(), p->id,
					       p->token, p->data, p->len,
					       done_cb, p)))
			return;
	}
	if (err) {
		reply(p, sql_error(fail ? "fail" : "done", err, res), 0);
		sync_id(p->id);
		free(p);
		return;
	}
	if (job_rec(r)->id == p->id && g.tok[r] == p->token) {
		jobq__jobs_mirror_unhold(r);
		g.tok[r] = 0;
		if (PQntuples(res) > 0) {
			from_rec(&m, r);
			m.state = (unsigned)jobq__pg_int(res, 0, 0);
			m.result = p->data;
			m.result_len = p->len;
			m.result_type = fail ? JOBQ_T_TEXT : p->dtype;
			if (m.state == JOBQ_JS_SUCCEEDED)
				m.progress = 10000;
			if (is_final(m.state))
				m.finished_ns = jobq__realtime_ns();
			jobq__jobs_mirror(&m);
			if (fail)
				jobq__count(failed);
			else
				jobq__count(done);
		}
	}
	if (PQntuples(res) < 1 || !is_final(job_rec(r)->state))
		sync_id(p->id);
	reply(p, PQntuples(res) > 0 ? 0 : -ESTALE, 0);
	/* Its worker's next reserve, sent with this result, found no free
	 * slot and parked: it asks now, not at the next tick (no
	 * notification comes once the submitters are quiet). */
	if (asker_alive(p))
		poke_slot(p->c->slot);
	free(p);
}

int jobq__jobs_pg_done(struct jobq__client *c, const struct jobq_sqe *s,
		       uint32_t r)
{
	const uint8_t *a = jobq__arena(c, s->arena_off);
	struct jobq_job_rec *j = job_rec(r);
	bool fail = s->flags & JOBQ_SQE_FAIL;
	struct jobq__mirror m;
	struct preq *p;
	int ret;

	if (j->flags & JOBQ_JF_CANCELLING) {
		/* Cancelled in the backend already: its row says so. */
		jobq__jobs_mirror_unhold(r);
		g.tok[r] = 0;
		from_rec(&m, r);
		m.state = JOBQ_JS_CANCELLED;
		m.result = "cancelled";
		m.result_len = 9;
		m.result_type = JOBQ_T_TEXT;
		m.finished_ns = jobq__realtime_ns();
		jobq__jobs_mirror(&m);
		return 0;
	}
	if (s->arena_len > jobq__m.o.max_object)
		return -E2BIG;
	p = preq_new(c, s, fail ? K_FAIL : K_DONE, s->arena_len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p->data, a, s->arena_len);
	p->data[s->arena_len] = '\0';
	/* Text ends at its first NUL, which PostgreSQL's text refuses. */
	p->len = fail ? (uint32_t)strlen((char *)p->data) : s->arena_len;
	p->dtype = s->type;
	p->rec = r;
	p->id = j->id;
	p->token = g.tok[r];
	p->final = s->flags & JOBQ_SQE_FINAL;
	ret = fail ? jobq__pg_fail_final(jobq__backend_pg(), p->id, p->token,
					 (const char *)p->data, p->final,
					 done_cb, p)
		   : jobq__pg_complete(jobq__backend_pg(), p->id, p->token,
				       p->data, p->len, done_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	return JOBQ__NOREPLY;
}

void jobq__jobs_pg_progress(struct jobq__client *c, const struct jobq_sqe *s,
			    uint32_t r)
{
	/* Not waited for: the local record is updated as ever, and a
	 * progress lost with a cut connection is overtaken by the next. */
	jobq__pg_progress(jobq__backend_pg(), job_rec(r)->id, g.tok[r],
			  (s->id > 10000 ? 10000 : s->id) / 10000.0, ignore_cb,
			  NULL);
}

static void extend_cb(void *arg, int err, const PGresult *res)
{
	struct preq *p = arg;

	if (err)
		reply(p, sql_error("extend", err, res), 0);
	else
		reply(p, PQntuples(res) > 0 ? 0 : -ESTALE, 0);
	free(p);
}

int jobq__jobs_pg_extend(struct jobq__client *c, const struct jobq_sqe *s,
			 uint32_t r)
{
	struct preq *p;
	int ret;

	/* A cancel's grace period is not the worker's to extend. */
	if (job_rec(r)->flags & JOBQ_JF_CANCELLING)
		return 0;
	p = preq_new(c, s, K_EXTEND, 0);
	if (!p)
		return -ENOMEM;
	ret = jobq__pg_extend(jobq__backend_pg(), job_rec(r)->id, g.tok[r],
			      extend_cb, p);
	if (ret) {
		free(p);
		return ret;
	}
	return JOBQ__NOREPLY;
}

void jobq__jobs_pg_lost(uint32_t r)
{
	struct jobq_job_rec *j = job_rec(r);

	if (!(j->flags & JOBQ_JF_CANCELLING) && g.tok[r])
		jobq__pg_fail(jobq__backend_pg(), j->id, g.tok[r],
			      "worker died", ignore_cb, NULL);
	g.tok[r] = 0;
	sync_id(j->id);
	sync_send(false);
}

/* ------------------------------------------------------------------------
 * What pg_mgr.c hears.
 */
void jobq__jobs_pg_notify(const char *channel, const char *payload)
{
	if (init())
		return;
	if (!strcmp(channel, JOBQ__PG_DONE_CHANNEL)) {
		sync_id(strtoull(payload, NULL, 10));
	} else {
		g.ready_seq++;
		poke();
	}
	sync_send(false);
}

void jobq__jobs_pg_tick(void)
{
	if (init())
		return;
	sync_send(++g.ticks % REFRESH_TICKS == 0);
	g.lo[0] = g.lo[1];
	g.lo[1] = g.after;
	poke();
}
