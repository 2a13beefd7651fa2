/* SPDX-License-Identifier: MIT */
/*
 * queues_pg.c - queues of objects with jobqd --backend: every host's
 * manager keeps the objects of every named queue in PostgreSQL
 * (jobq_queue_items, migration 4), so that an object put on one host is
 * got on any. A queue's record in this host's store (its name, its
 * waiters) stays this host's; it holds only the objects fetched for this
 * host's getters, and a copy of what PostgreSQL holds for the listing.
 *
 * Put, put_many. One INSERT of every object of the request (one row each,
 * in order, ids from one sequence, so FIFO across hosts is by id), which
 * also sends the queue's name on JOBQ__PG_QUEUE_CHANNEL when it commits.
 * The client is answered from the callback: after the commit. Sizes are
 * checked before anything is sent, as without a backend. A put cut with
 * its statement sent is sent again (five times at most, then -EIO): its
 * outcome was unknown, so an object may then be stored twice; a put is
 * at-least-once across a cut connection, never lost once answered.
 *
 * Get. A get that finds this host's record empty parks (timeout 0 too)
 * and the queue is fetched: one statement moves up to what the queue's
 * getters here ask for in all from jobq_queue_items (oldest first, FOR
 * UPDATE SKIP LOCKED, so two hosts never take one row) to
 * jobq_queue_taken under this fetch's name, and returns them. Their rows
 * become objects of the record (queues.c, jobq__queue_inject(); each
 * object's oid is its row id), handed to the getters as the local path
 * hands them, so the library reads them unchanged. One fetch per queue is
 * in flight; a notification for the queue that comes while it is (the
 * lost wake-up: the row committed after the fetch's snapshot) makes it
 * run again once answered. Without a notification (one lost across a
 * reconnect, a host that died) queues with getters are fetched every
 * POLL_NS. Getters with timeout 0 are answered -EAGAIN after a fetch that
 * did not serve them.
 *
 * Never lost. The object's row stays in jobq_queue_taken until the
 * client acknowledged the object (its completion ring's head passed it),
 * when this host deletes it (a batch per turn). A fetch cut with its
 * statement sent reads its rows again by its name. Objects the getters
 * here did not take (a getter that left while the fetch was in flight,
 * one whose client died before acknowledging) go back: their taken rows
 * are moved back to jobq_queue_items with their ids, so at their place
 * in the order, and the queue is notified. A host killed with objects
 * handed and unacknowledged leaves their rows in jobq_queue_taken; any
 * host moves rows taken more than TAKEN_MAX_MS ago back, so those
 * objects come back then (at-least-once: an object whose acknowledgement
 * was lost with its host is got again).
 *
 * Shared too (migration 5, one row of jobq_object_queues a queue):
 *
 *  - Limits. `jobq queue set --max-depth`, jobq_queue_open() with limits:
 *    answered once the row holds them, for every host. A put goes
 *    through jobq_queue_put(), which locks the row and counts the queue's
 *    rows waiting (jobq_queue_items; objects fetched for getters do not
 *    count, as a local queue does not count objects handed out) after
 *    the lock, so that puts of two hosts never pass a bound together.
 *    Every put adds to the row's unfinished count, so puts of one queue
 *    take turns on that row's lock until they commit, over all hosts.
 *    What does not fit waits as without a backend: timeout 0 answers
 *    -EAGAIN; else the put parks as a putter here and its oldest putter
 *    is sent again when room may have come: a fetch that took rows from
 *    a bounded queue, or new limits, notify 'r' on
 *    JOBQ__PG_QEVENT_CHANNEL; the poll covers a lost notification.
 *  - task_done and join. The row counts the queue's unfinished objects
 *    (put adds, task_done takes away, never below 0: -EINVAL as without
 *    a backend). A join reads it and, when not 0, parks; a task_done
 *    that brings it to 0 notifies 'j', on which every host's joiners
 *    read it again. They return only on a 0 they read: a put that
 *    follows the last task_done at once may keep them waiting where a
 *    local queue would have let them go. A task_done
 *    cut with its statement sent is not sent again (twice would let a
 *    join return early): its client gets -EIO.
 *  - Removal. `jobq queue rm` on a host removes its record as without a
 *    backend (waiters -EIDRM) and deletes the queue's rows of the three
 *    tables, answering how many objects went; it notifies 'x', on which
 *    every other host removes its record of the queue too, its getters,
 *    putters and joiners failing with -EIDRM, unless jobs of that host
 *    name it (then the record stays there). A put on another host that
 *    races the removal may make the queue again, as a put after it does.
 *  - The listing. Each host counts every queue's rows in PostgreSQL each
 *    POLL_NS and writes the counts into its records (shared_depth,
 *    shared_bytes, which libjobq adds to depth and bytes; the limits;
 *    unfinished): `jobq queues` on any host shows the queue as a second
 *    ago at most, without asking the manager. A queue of another host
 *    gets a record here (owned by no client) while at least half the
 *    table is free, so that it is listed too. The count reads every waiting row
 *    once a second per host: cheap for queues that are drained, not for
 *    millions of rows waiting.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "jobqd.h"
#include "pg.h"

/* Objects one fetch asks for at most, and one give-back names. */
#define FETCH_MAX 256
/* How often queues with getters are fetched without a notification. */
#define POLL_NS (1 * JOBQ__NSEC_PER_SEC)
/* Taken rows older than this go back to their queue (their host died
 * or lost the acknowledgement), checked every SWEEP_NS. */
#define TAKEN_MAX_MS (5 * 60 * 1000)
#define SWEEP_NS     (30 * JOBQ__NSEC_PER_SEC)
/* Tries of a statement cut with its answer unknown. */
#define TRIES 5

/* How many of the leading objects went in (migration 5 says why this is
 * a function). */
static const char sql_put[] =
    "SELECT jobq_queue_put($1::text, $2::integer[], $3::integer[],"
    " $4::bytea, '" JOBQ__PG_QUEUE_CHANNEL "')";

static const char sql_fetch[] =
    "WITH d AS (DELETE FROM jobq_queue_items WHERE id IN"
    " (SELECT id FROM jobq_queue_items WHERE queue = $1::text"
    " ORDER BY id LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
    " RETURNING id, queue, type, data),"
    " k AS (INSERT INTO jobq_queue_taken (id, fetched_by, queue, type, data)"
    " SELECT id, $3::text, queue, type, data FROM d),"
    /* Rows taken from a bounded queue make room: its putters on every
     * host are told (evaluated once, and only when d has rows). */
    " r AS (SELECT pg_notify('" JOBQ__PG_QEVENT_CHANNEL "', 'r' || $1::text)"
    " FROM jobq_object_queues WHERE queue = $1::text"
    " AND (max_depth > 0 OR max_bytes > 0))"
    " SELECT id, type, data, (SELECT count(*) FROM r) FROM d ORDER BY id";

static const char sql_recover[] =
    "SELECT id, type, data FROM jobq_queue_taken WHERE fetched_by = $1::text"
    " ORDER BY id";

static const char sql_acked[] =
    "DELETE FROM jobq_queue_taken WHERE id = ANY($1::bigint[])";

/* Safe to run twice: a second run finds no taken row. */
#define BACK(where)                                                            \
	"WITH t AS (DELETE FROM jobq_queue_taken WHERE " where                 \
	" RETURNING id, queue, type, data),"                                   \
	" b AS (INSERT INTO jobq_queue_items (id, queue, type, data)"          \
	" SELECT id, queue, type, data FROM t ON CONFLICT (id) DO NOTHING"     \
	" RETURNING queue)"                                                    \
	" SELECT pg_notify('" JOBQ__PG_QUEUE_CHANNEL "', q)"                   \
	" FROM (SELECT DISTINCT queue AS q FROM b) s"

static const char sql_back[] = BACK("id = ANY($1::bigint[])");
static const char sql_sweep[] =
    BACK("taken_at < now() - $1::integer * interval '1 millisecond'");

/* Limits: NULL leaves one as it is. Putters may fit now. */
static const char sql_limits[] =
    "WITH u AS (INSERT INTO jobq_object_queues (queue, max_depth, max_bytes)"
    " VALUES ($1::text, coalesce($2::bigint, 0), coalesce($3::bigint, 0))"
    " ON CONFLICT (queue) DO UPDATE SET"
    " max_depth = coalesce($2::bigint, jobq_object_queues.max_depth),"
    " max_bytes = coalesce($3::bigint, jobq_object_queues.max_bytes)"
    " RETURNING 1)"
    " SELECT count(*), pg_notify('" JOBQ__PG_QEVENT_CHANNEL
    "', 'r' || $1::text)"
    " FROM u";

/* task_done: no row when it would go below 0 (or no object was ever put);
 * at 0 the joiners of every host are told. */
static const char sql_done[] =
    "WITH u AS (UPDATE jobq_object_queues SET unfinished = unfinished -"
    " $2::bigint WHERE queue = $1::text AND unfinished >= $2::bigint"
    " RETURNING unfinished),"
    " n AS (SELECT pg_notify('" JOBQ__PG_QEVENT_CHANNEL "', 'j' || $1::text)"
    " FROM u WHERE unfinished = 0)"
    " SELECT unfinished, (SELECT count(*) FROM n) FROM u";

static const char sql_unfinished[] =
    "SELECT coalesce((SELECT unfinished FROM jobq_object_queues"
    " WHERE queue = $1::text), 0)";

/* Every row of the queue goes (data-modifying CTEs run whether read or
 * not); $2 names this host, which knows already. */
static const char sql_remove[] =
    "WITH a AS (DELETE FROM jobq_queue_items WHERE queue = $1::text"
    " RETURNING 1),"
    " b AS (DELETE FROM jobq_queue_taken WHERE queue = $1::text RETURNING 1),"
    " s AS (DELETE FROM jobq_object_queues WHERE queue = $1::text"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM a), pg_notify('" JOBQ__PG_QEVENT_CHANNEL
    "', 'x' || $2::text || ':' || $1::text)";

/* What every queue holds in PostgreSQL, for the records' shared_depth,
 * shared_bytes, limits and unfinished. */
static const char sql_counts[] =
    "SELECT coalesce(s.queue, i.queue), coalesce(i.n, 0), coalesce(i.b, 0),"
    " coalesce(s.max_depth, 0), coalesce(s.max_bytes, 0),"
    " coalesce(s.unfinished, 0)"
    " FROM jobq_object_queues s FULL JOIN (SELECT queue, count(*) AS n,"
    " sum(octet_length(data)) AS b FROM jobq_queue_items GROUP BY queue) i"
    " ON i.queue = s.queue";

/* Per queue record: its fetch, its putters' and joiners' statements. */
struct qf {
	bool busy;	 /* a fetch is in flight */
	bool again;	 /* fetch again once it is answered */
	bool putting;	 /* a parked putter is sent again */
	bool joining;	 /* its joiners' check is in flight */
	uint64_t room;	 /* room notifications so far */
	uint64_t joined; /* "unfinished is 0" notifications so far */
};

/* A statement in flight and what it needs when answered. */
struct qreq {
	struct jobq__client *c; /* the client to answer, NULL: none */
	uint32_t gen;		/* c->gen when it asked */
	uint64_t user_data;
	int op; /* R_* */
	int tries;
	uint32_t qid, qgen; /* the record and its generation */
	uint32_t n;	    /* put: objects; fetch: asked for */
	char *p[4];	    /* the statement's parameters */
	int np;
	/* Put and join: the request, to park it when it must wait; its
	 * deadline (CLOCK_MONOTONIC, 0: none); a put of a parked putter;
	 * the record's notifications when it was sent. */
	struct jobq_sqe sqe;
	uint64_t deadline, seen;
	bool retry;
	int32_t res; /* limits: what the client is answered */
	uint64_t dropped;
};

enum {
	R_PUT,
	R_PUT_MANY,
	R_FETCH,
	R_RECOVER,
	R_ACKED,
	R_BACK,
	R_SWEEP,
	R_LIMITS,
	R_DONE,
	R_JOIN,
	R_JCHECK,
	R_REMOVE,
	R_COUNTS,
};

static struct {
	struct qf *qf; /* max_queues of them */
	uint64_t nonce, nfetch;
	/* Ids acknowledged this turn, sent at its end. */
	int64_t *acked;
	uint32_t nacked, capacked;
	uint64_t poll_at, sweep_at;
	bool sweeping, counting;
	/* Changes this host sent to the counts (limits, task_done,
	 * removal): a count sent before one of them is not written. */
	uint64_t changes;
} q;

static struct jobq_queue_rec *rec(uint32_t qid)
{
	return &jobq__m.st.queues[qid];
}

static struct qf *qf_of(uint32_t qid)
{
	if (!q.qf) {
		q.qf = calloc(jobq__hdr()->max_queues, sizeof(*q.qf));
		if (!q.qf)
			return NULL;
	}
	return &q.qf[qid];
}

static void req_free(struct qreq *r)
{
	for (int i = 0; i < r->np; i++)
		free(r->p[i]);
	free(r);
}

static int req_send(struct qreq *r);

static void answer(struct qreq *r, int32_t res)
{
	if (r->c && r->c->gen == r->gen && jobq__client_alive(r->c))
		jobq__post(r->c, r->user_data, res, 0, 0, 0, 0);
}

/* Whether the record still holds the queue @r was sent for. */
static bool rec_valid(const struct qreq *r)
{
	return rec(r->qid)->in_use && rec(r->qid)->gen == r->qgen;
}

/* Whether @r's client still waits for its answer. */
static bool waiting(const struct qreq *r)
{
	return r->c && r->c->gen == r->gen && jobq__client_alive(r->c);
}

/* A statement that met another transaction (a deadlock between two hosts'
 * batches, a serialization failure) was undone: sent again, alone. */
static bool resend(struct qreq *r, int err, const PGresult *res)
{
	if (err != -EPROTO || r->tries >= TRIES ||
	    !(jobq__pg_sqlstate(res, "40P01") ||
	      jobq__pg_sqlstate(res, "40001")))
		return false;
	r->tries++;
	return !req_send(r);
}

/* What is left of @r's timeout: -1 for none, 0 when it is over. */
static int64_t time_left(const struct qreq *r)
{
	uint64_t now = jobq__now_ns();

	if (!r->deadline)
		return -1;
	return now >= r->deadline ? 0 : (int64_t)(r->deadline - now);
}

/* ------------------------------------------------------------------------
 * Puts. A put that finds its queue at a limit in PostgreSQL (nothing of
 * it went in) waits here as a putter of the record (queues.c), first in
 * line when it was first already; the oldest putter is sent again when
 * room may have come (a get anywhere, limits changed: a notification; or
 * the poll), one at a time, so in order. While sent it is no waiter: its
 * timeout cannot answer it while its rows may be committing; it is
 * parked again with what is left of it.
 */
static int put_send(struct jobq__client *c, const struct jobq_sqe *s,
		    uint32_t qid, uint64_t deadline, bool retry);

/* @r put nothing: the queue is at a limit. */
static void put_full(struct qreq *r)
{
	struct qf *f = qf_of(r->qid);
	int64_t left = time_left(r);
	int ret;

	if (!waiting(r))
		return;
	if (!rec_valid(r)) {
		/* Removed meanwhile, as its parked putters were. */
		answer(r, -EIDRM);
		return;
	}
	if (r->sqe.timeout_ns == 0 || left == 0) {
		answer(r, r->sqe.timeout_ns == 0 ? -EAGAIN : -ETIMEDOUT);
		return;
	}
	ret = jobq__queue_park(r->c, &r->sqe, r->qid, JOBQ__W_PUT, left,
			       r->retry);
	if (ret)
		answer(r, ret);
	else if (f && f->room != r->seen)
		/* Room came while it was sent: not waited for again. */
		jobq__queues_pg_room(r->qid);
}

static void put_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;
	struct qf *f = qf_of(r->qid);
	int64_t k = -1;

	/* Cut with the answer unknown: sent again (at-least-once). */
	if (err == -ECONNRESET && r->tries++ < TRIES && !req_send(r))
		return;
	if (resend(r, err, res))
		return;
	if (r->retry && f)
		f->putting = false;
	if (!err) {
		k = jobq__pg_int(res, 0, 0);
		if (k > 0)
			answer(r, r->op == R_PUT_MANY ? (int32_t)k : 0);
		else
			put_full(r);
	} else if (err == -EPROTO) {
		jobq__log(JOBQ__LOG_WARN, "backend: put: %s",
			  PQresultErrorMessage(res));
		answer(r, -EIO);
	} else {
		answer(r, err == -ECANCELED ? JOBQ_ECLOSED : -EIO);
	}
	/* The next putter's turn, once this one went in. */
	if (r->retry && k > 0 && rec_valid(r))
		jobq__queues_pg_room(r->qid);
	req_free(r);
}

void jobq__queues_pg_room(uint32_t qid)
{
	struct qf *f = qf_of(qid);
	struct jobq__waiter *w;

	if (!f)
		return;
	f->room++;
	if (f->putting)
		return; /* put_cb looks at f->room */
	while ((w = jobq__queue_first_putter(qid))) {
		struct jobq__client *c = w->c;
		struct jobq_sqe sqe = w->sqe;
		uint64_t deadline = w->deadline;
		int ret;

		jobq__wait_free(w);
		ret = put_send(c, &sqe, qid, deadline, true);
		if (ret == JOBQ__NOREPLY) {
			f->putting = true;
			return;
		}
		jobq__post(c, sqe.user_data, ret, 0, 0, 0, 0);
	}
}

int jobq__queues_pg_put(struct jobq__client *c, const struct jobq_sqe *s,
			uint32_t qid)
{
	struct qf *f = qf_of(qid);
	uint64_t deadline = 0;
	int ret;

	if (!jobq__backend_pg())
		return JOBQ_ECLOSED;
	/* FIFO: behind the putters waiting here. */
	if (f && (f->putting || jobq__queue_first_putter(qid))) {
		if (s->timeout_ns == 0)
			return -EAGAIN;
		ret = jobq__queue_park(c, s, qid, JOBQ__W_PUT, s->timeout_ns,
				       false);
		return ret ? ret : JOBQ__NOREPLY;
	}
	if (s->timeout_ns > 0)
		deadline = jobq__now_ns() + (uint64_t)s->timeout_ns;
	return put_send(c, s, qid, deadline, false);
}

static const char hexd[] = "0123456789abcdef";

/* Sends put or put_many @s of @c to queue @qid: JOBQ__NOREPLY (put_cb
 * answers) or what the client is answered now. */
static int put_send(struct jobq__client *c, const struct jobq_sqe *s,
		    uint32_t qid, uint64_t deadline, bool retry)
{
	const uint8_t *base = jobq__arena(c, s->arena_off);
	uint64_t max = jobq__hdr()->max_object, pos = 0, end = s->arena_len;
	uint64_t want = s->op == JOBQ_OP_Q_PUT_MANY ? s->arg0 : 1, bytes = 0;
	struct qreq *r;
	int64_t *types, *lens;
	uint32_t n = 0;
	char *hex;
	int ret = 0;

	types = calloc(want, sizeof(*types));
	lens = calloc(want, sizeof(*lens));
	r = calloc(1, sizeof(*r));
	if (!types || !lens || !r) {
		ret = -ENOMEM;
		goto out;
	}
	/* Read the records once, and stop at the first that cannot go
	 * (as put_run() in queues.c: the leading run goes in). */
	if (s->op != JOBQ_OP_Q_PUT_MANY) {
		types[0] = s->type;
		lens[0] = s->arena_len;
		bytes = s->arena_len;
		n = 1;
	} else {
		while (n < want) {
			struct jobq_put_rec h;

			if (pos > end || end - pos < sizeof(h)) {
				ret = n ? 0 : jobq__bad(-EINVAL);
				break;
			}
			memcpy(&h, base + pos, sizeof(h));
			if (h.len > max) {
				ret = n ? 0 : -E2BIG;
				break;
			}
			if (h.len > end - pos - sizeof(h)) {
				ret = n ? 0 : jobq__bad(-EINVAL);
				break;
			}
			types[n] = h.type;
			lens[n] = h.len;
			bytes += h.len;
			n++;
			pos = (pos + sizeof(h) + h.len + 7) & ~(uint64_t)7;
		}
		if (ret)
			goto out;
	}
	/* One bytea of every payload back to back, in hex. */
	hex = malloc(3 + 2 * bytes);
	if (!hex) {
		ret = -ENOMEM;
		goto out;
	}
	hex[0] = '\\';
	hex[1] = 'x';
	{
		size_t at = 2;

		pos = 0;
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *d;

			if (s->op == JOBQ_OP_Q_PUT_MANY) {
				d = base + pos + sizeof(struct jobq_put_rec);
				pos = (pos + sizeof(struct jobq_put_rec) +
				       (uint64_t)lens[i] + 7) &
				      ~(uint64_t)7;
			} else {
				d = base;
			}
			for (int64_t j = 0; j < lens[i]; j++) {
				hex[at++] = hexd[d[j] >> 4];
				hex[at++] = hexd[d[j] & 15];
			}
		}
		hex[at] = '\0';
	}
	r->p[3] = hex;
	r->p[0] = strdup(rec(qid)->name);
	r->p[1] = jobq__pg_int_array(types, NULL, n);
	r->p[2] = jobq__pg_int_array(lens, NULL, n);
	r->np = 4;
	if (!r->p[0] || !r->p[1] || !r->p[2]) {
		ret = -ENOMEM;
		goto out;
	}
	r->c = c;
	r->gen = c->gen;
	r->user_data = s->user_data;
	r->op = s->op == JOBQ_OP_Q_PUT_MANY ? R_PUT_MANY : R_PUT;
	r->n = n;
	r->qid = qid;
	r->qgen = rec(qid)->gen;
	r->sqe = *s;
	r->deadline = deadline;
	r->retry = retry;
	r->seen = qf_of(qid) ? qf_of(qid)->room : 0;
	ret = req_send(r);
	if (!ret) {
		r = NULL;
		ret = JOBQ__NOREPLY;
	} else if (ret == -E2BIG) {
		ret = -EAGAIN;
	}
out:
	if (r)
		req_free(r);
	free(types);
	free(lens);
	return ret;
}

/* ------------------------------------------------------------------------
 * Fetches.
 */
static void back_ids(const int64_t *ids, uint32_t n);

/* Rows (id, type, data) of a fetch or a recover into queue @r->qid. */
static void take_rows(struct qreq *r, const PGresult *res)
{
	int nrows = PQntuples(res);

	for (int at = 0; at < nrows;) {
		uint32_t lens[FETCH_MAX], types[FETCH_MAX], k = 0, got = 0;
		const uint8_t *datas[FETCH_MAX];
		unsigned char *raw[FETCH_MAX];
		int64_t ids[FETCH_MAX];

		while (at < nrows && k < FETCH_MAX) {
			size_t len = 0;

			raw[k] = PQunescapeBytea(
			    (const unsigned char *)PQgetvalue(res, at, 2),
			    &len);
			ids[k] = jobq__pg_int(res, at, 0);
			types[k] = (uint32_t)jobq__pg_int(res, at, 1);
			lens[k] = (uint32_t)len;
			datas[k] = raw[k];
			at++;
			if (!raw[k]) {
				/* Out of memory: the row goes back. */
				back_ids(&ids[k], 1);
				continue;
			}
			k++;
		}
		/* The record still holds the queue that asked. */
		if (rec(r->qid)->in_use && rec(r->qid)->gen == r->qgen)
			got = jobq__queue_inject(r->qid, k, lens, types, datas,
						 ids);
		if (got < k) {
			if (got == 0 || rec(r->qid)->gen == r->qgen)
				jobq__log(JOBQ__LOG_WARN,
					  "backend: %u objects of queue \"%s\" "
					  "go back to PostgreSQL: no room in "
					  "this host's store (jobqd --memory)",
					  k - got, rec(r->qid)->name);
			back_ids(ids + got, k - got);
		}
		for (uint32_t i = 0; i < k; i++)
			PQfreemem(raw[i]);
	}
}

static void fetch_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;
	struct qf *f = qf_of(r->qid);
	bool valid = rec(r->qid)->in_use && rec(r->qid)->gen == r->qgen;

	if (err == -ECONNRESET && r->tries++ < TRIES) {
		/* The rows may have moved: read them again by the fetch's
		 * name (pointless for a recover to know the difference). */
		r->op = R_RECOVER;
		if (!req_send(r))
			return;
	}
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: get from queue \"%s\": %s",
			  r->p[0], PQresultErrorMessage(res));
	else if (err == -ECONNRESET)
		jobq__log(JOBQ__LOG_WARN,
			  "backend: get from queue \"%s\": cut five times; its "
			  "objects, if any, come back within %d s",
			  r->p[0], TAKEN_MAX_MS / 1000);
	if (!err)
		take_rows(r, res);
	if (f)
		f->busy = false;
	if (valid && err != -ECANCELED) {
		/* Hands what came; what no getter takes goes back. */
		jobq__queue_serve(r->qid);
		if (f && (f->again || (!err && PQntuples(res) >= (int)r->n &&
				       jobq__queue_getters_want(r->qid)))) {
			f->again = false;
			jobq__queues_pg_fetch(r->qid);
		} else {
			/* Every getter parked before this fetch was sent had
			 * its look. */
			jobq__queue_getters_once(r->qid);
		}
	}
	req_free(r);
}

void jobq__queues_pg_fetch(uint32_t qid)
{
	struct qf *f = qf_of(qid);
	uint64_t want = jobq__queue_getters_want(qid);
	struct qreq *r;
	char num[24], key[48];

	if (!f || !want)
		return;
	if (f->busy) {
		f->again = true;
		return;
	}
	if (want > FETCH_MAX)
		want = FETCH_MAX;
	while (!q.nonce)
		if (getrandom(&q.nonce, sizeof(q.nonce), 0) < 0)
			q.nonce = jobq__now_ns() ^ (uint64_t)getpid();
	snprintf(num, sizeof(num), "%" PRIu64, want);
	snprintf(key, sizeof(key), "%016" PRIx64 ":%" PRIu64, q.nonce,
		 ++q.nfetch);
	r = calloc(1, sizeof(*r));
	if (!r)
		return; /* the poll tries again */
	r->op = R_FETCH;
	r->qid = qid;
	r->qgen = rec(qid)->gen;
	r->n = (uint32_t)want;
	r->p[0] = strdup(rec(qid)->name);
	r->p[1] = strdup(num);
	r->p[2] = strdup(key);
	r->np = 3;
	if (!r->p[0] || !r->p[1] || !r->p[2] || req_send(r)) {
		req_free(r);
		return;
	}
	f->busy = true;
	f->again = false;
}

void jobq__queues_pg_notify(const char *name)
{
	uint32_t qid = jobq__queue_by_name(name);

	if (qid != UINT32_MAX)
		jobq__queues_pg_fetch(qid);
}

/* Fetches every queue that has getters here. */
static void fetch_all(void)
{
	uint32_t n = load_relaxed(&jobq__hdr()->nqueues);

	for (uint32_t i = 0; i < n; i++)
		if (rec(i)->in_use && rec(i)->getters)
			jobq__queues_pg_fetch(i);
}

void jobq__queues_pg_up(void)
{
	fetch_all();
}

/* ------------------------------------------------------------------------
 * What every host shares about a queue (migration 5's jobq_object_queues):
 * its limits, its unfinished count, and what the listing shows.
 */
static struct qreq *req_new(int op, uint32_t qid, struct jobq__client *c,
			    const struct jobq_sqe *s)
{
	struct qreq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->op = op;
	r->qid = qid;
	r->qgen = rec(qid)->gen;
	if (c) {
		r->c = c;
		r->gen = c->gen;
		r->user_data = s->user_data;
		r->sqe = *s;
		if (s->timeout_ns > 0)
			r->deadline = jobq__now_ns() + (uint64_t)s->timeout_ns;
	}
	return r;
}

/* Sends @r with its @n parameters set: JOBQ__NOREPLY, or -ENOMEM or
 * -EAGAIN (@r freed). */
static int req_go(struct qreq *r, int n)
{
	int ret = -ENOMEM;

	r->np = n;
	for (int i = 0; i < n; i++)
		if (!r->p[i] && !(r->op == R_LIMITS && i > 0))
			goto fail;
	ret = req_send(r);
	if (!ret)
		return JOBQ__NOREPLY;
	if (ret == -E2BIG)
		ret = -EAGAIN;
fail:
	req_free(r);
	return ret;
}

static char *u64_str(uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	return strdup(b);
}

/* Writes the record's unfinished count as PostgreSQL said it. */
static void set_unfinished(uint32_t qid, uint64_t v)
{
	struct jobq_queue_rec *x = rec(qid);

	seq_write_begin(&x->seq);
	x->unfinished = v;
	seq_write_end(&x->seq);
}

/* Answers of statements that only change rows: answered once committed;
 * what was undone for meeting another transaction is sent again. */
static void change_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;

	if ((err == -ECONNRESET && r->op != R_DONE && r->tries++ < TRIES &&
	     !req_send(r)) ||
	    resend(r, err, res))
		return;
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: queue \"%s\": %s", r->p[0],
			  PQresultErrorMessage(res));
	if (err) {
		/* A task_done cut with its statement sent is not sent
		 * again: it may have counted, and twice would let a join
		 * return early. Its client is told -EIO. */
		answer(r, err == -ECANCELED ? JOBQ_ECLOSED : -EIO);
	} else if (r->op == R_DONE) {
		if (PQntuples(res) != 1) {
			answer(r, -EINVAL);
		} else {
			uint64_t v = (uint64_t)jobq__pg_int(res, 0, 0);

			if (rec_valid(r)) {
				set_unfinished(r->qid, v);
				if (!v)
					jobq__queue_joined(r->qid, 0);
			}
			answer(r, 0);
		}
	} else if (r->op == R_REMOVE) {
		uint64_t n = r->dropped + (uint64_t)jobq__pg_int(res, 0, 0);

		answer(r, n > INT32_MAX ? INT32_MAX : (int32_t)n);
	} else {
		answer(r, r->res);
	}
	req_free(r);
}

int jobq__queues_pg_limits(struct jobq__client *c, const struct jobq_sqe *s,
			   uint32_t qid, int32_t res)
{
	struct qreq *r = req_new(R_LIMITS, qid, c, s);

	if (!r)
		return -ENOMEM;
	r->res = res;
	r->p[0] = strdup(rec(qid)->name);
	/* UINT64_MAX leaves a limit as it is: NULL. */
	if (s->arg0 != UINT64_MAX)
		r->p[1] = u64_str(s->arg0);
	if (s->arg1 != UINT64_MAX)
		r->p[2] = u64_str(s->arg1);
	if ((s->arg0 != UINT64_MAX && !r->p[1]) ||
	    (s->arg1 != UINT64_MAX && !r->p[2])) {
		req_free(r);
		return -ENOMEM;
	}
	q.changes++;
	return req_go(r, 3);
}

int jobq__queues_pg_task_done(struct jobq__client *c, const struct jobq_sqe *s,
			      uint32_t qid)
{
	struct qreq *r = req_new(R_DONE, qid, c, s);

	if (!r)
		return -ENOMEM;
	r->p[0] = strdup(rec(qid)->name);
	r->p[1] = u64_str(s->arg0);
	q.changes++;
	return req_go(r, 2);
}

int jobq__queues_pg_remove(struct jobq__client *c, const struct jobq_sqe *s,
			   const char *name, uint64_t dropped)
{
	struct qreq *r = calloc(1, sizeof(*r));
	char me[24];

	if (!r)
		return -ENOMEM;
	while (!q.nonce)
		if (getrandom(&q.nonce, sizeof(q.nonce), 0) < 0)
			q.nonce = jobq__now_ns() ^ (uint64_t)getpid();
	snprintf(me, sizeof(me), "%016" PRIx64, q.nonce);
	r->op = R_REMOVE;
	r->c = c;
	r->gen = c->gen;
	r->user_data = s->user_data;
	r->dropped = dropped;
	r->p[0] = strdup(name);
	r->p[1] = strdup(me);
	q.changes++;
	return req_go(r, 2);
}

/*
 * Join. A join asks for the queue's unfinished count and, when it is not
 * 0, waits as a joiner of the record; the joiners of a queue are
 * answered when a check (one at a time, sent on a 'j' notification and
 * by the poll) finds 0. A notification that came while the join's own
 * statement was out sends a check once it is parked.
 */
static void join_check(uint32_t qid)
{
	struct qf *f = qf_of(qid);
	struct qreq *r;

	if (!f || f->joining || !jobq__queue_has_joiners(qid))
		return;
	r = req_new(R_JCHECK, qid, NULL, NULL);
	if (!r)
		return; /* the poll tries again */
	r->p[0] = strdup(rec(qid)->name);
	r->seen = f->joined;
	if (req_go(r, 1) == JOBQ__NOREPLY)
		f->joining = true;
}

static void join_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;
	struct qf *f = qf_of(r->qid);
	int64_t left = time_left(r);
	uint64_t v;

	/* A read: safe to send again. */
	if ((err == -ECONNRESET && r->tries++ < TRIES && !req_send(r)) ||
	    resend(r, err, res))
		return;
	if (r->op == R_JCHECK && f)
		f->joining = false;
	if (err) {
		if (err == -EPROTO)
			jobq__log(JOBQ__LOG_WARN, "backend: join \"%s\": %s",
				  r->p[0], PQresultErrorMessage(res));
		answer(r, err == -ECANCELED ? JOBQ_ECLOSED : -EIO);
		req_free(r);
		return;
	}
	v = (uint64_t)jobq__pg_int(res, 0, 0);
	if (!rec_valid(r)) {
		answer(r, -EIDRM);
	} else {
		set_unfinished(r->qid, v);
		if (!v) {
			jobq__queue_joined(r->qid, 0);
			answer(r, 0);
		} else if (r->op == R_JOIN && waiting(r)) {
			int ret =
			    r->sqe.timeout_ns == 0 ? -EAGAIN
			    : left == 0
				? -ETIMEDOUT
				: jobq__queue_park(r->c, &r->sqe, r->qid,
						   JOBQ__W_JOIN, left, false);

			if (ret)
				answer(r, ret);
		}
		if (v && f && f->joined != r->seen)
			join_check(r->qid);
	}
	req_free(r);
}

int jobq__queues_pg_join(struct jobq__client *c, const struct jobq_sqe *s,
			 uint32_t qid)
{
	struct qreq *r = req_new(R_JOIN, qid, c, s);
	struct qf *f = qf_of(qid);

	if (!r)
		return -ENOMEM;
	r->p[0] = strdup(rec(qid)->name);
	r->seen = f ? f->joined : 0;
	return req_go(r, 1);
}

/*
 * The listing. Every POLL_NS this host counts what every queue holds in
 * PostgreSQL, in one statement, and writes it into the records it has:
 * shared_depth and shared_bytes (the rows waiting, which the library adds
 * to the objects fetched here), the limits and the unfinished count. So
 * `jobq queues` reads the store as without a backend, at most a second
 * and a round trip behind. A count sent before a change of this host
 * (limits, task_done, removal) is not written: it would show the state
 * before it for a second.
 */
static void counts_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;
	uint32_t n;
	bool *seen;

	q.counting = false;
	if (err || r->seen != q.changes) {
		req_free(r);
		return;
	}
	seen = calloc(jobq__hdr()->max_queues, sizeof(*seen));
	for (int i = 0; seen && i < PQntuples(res); i++) {
		/* Another host's queue gets a record here, to be listed. */
		uint32_t qid = jobq__queue_adopt(PQgetvalue(res, i, 0));
		struct jobq_queue_rec *x;

		if (qid == UINT32_MAX)
			continue;
		x = rec(qid);
		seen[qid] = true;
		seq_write_begin(&x->seq);
		x->shared_depth = (uint64_t)jobq__pg_int(res, i, 1);
		x->shared_bytes = (uint64_t)jobq__pg_int(res, i, 2);
		x->max_depth = (uint64_t)jobq__pg_int(res, i, 3);
		x->max_bytes = (uint64_t)jobq__pg_int(res, i, 4);
		x->unfinished = (uint64_t)jobq__pg_int(res, i, 5);
		seq_write_end(&x->seq);
	}
	/* A queue PostgreSQL has no row of holds nothing there. */
	n = load_relaxed(&jobq__hdr()->nqueues);
	for (uint32_t i = 0; seen && i < n; i++) {
		struct jobq_queue_rec *x = rec(i);

		if (seen[i] || !x->in_use)
			continue;
		seq_write_begin(&x->seq);
		x->shared_depth = x->shared_bytes = 0;
		x->max_depth = x->max_bytes = x->unfinished = 0;
		seq_write_end(&x->seq);
	}
	free(seen);
	req_free(r);
}

static void counts_send(void)
{
	struct qreq *r;

	if (q.counting)
		return;
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->op = R_COUNTS;
	r->seen = q.changes;
	if (!req_send(r))
		q.counting = true;
	else
		req_free(r);
}

/*
 * jobq__queues_pg_event - a notification on JOBQ__PG_QEVENT_CHANNEL:
 *   r NAME       room may have come in queue NAME (a get of a bounded
 *                queue, limits set): its oldest putter here is sent again;
 *   j NAME       its unfinished count reached 0: its joiners check;
 *   x HOST:NAME  host HOST removed it: unless HOST is this one, its record
 *                here goes too, its waiters answered -EIDRM, as on HOST.
 */
void jobq__queues_pg_event(const char *payload)
{
	const char *name = payload + 1, *colon;
	struct qf *f;
	uint32_t qid;

	if (payload[0] == 'x') {
		char me[24];

		colon = strchr(name, ':');
		if (!colon)
			return;
		/* A count sent before it would make its record again. */
		q.changes++;
		snprintf(me, sizeof(me), "%016" PRIx64, q.nonce);
		if (!q.nonce || (size_t)(colon - name) != strlen(me) ||
		    memcmp(name, me, strlen(me)))
			jobq__queue_drop(colon + 1);
		return;
	}
	qid = jobq__queue_by_name(name);
	if (qid == UINT32_MAX || !(f = qf_of(qid)))
		return;
	if (payload[0] == 'r') {
		jobq__queues_pg_room(qid);
	} else if (payload[0] == 'j') {
		f->joined++;
		join_check(qid);
	}
}

/* ------------------------------------------------------------------------
 * Acknowledgements and objects going back.
 */
static void plain_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;

	/* Both are safe to run twice. */
	if (err == -ECONNRESET && r->tries++ < TRIES && !req_send(r))
		return;
	if (r->op == R_SWEEP)
		q.sweeping = false;
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: queue objects: %s",
			  PQresultErrorMessage(res));
	else if (err == -ECONNRESET)
		jobq__log(JOBQ__LOG_WARN,
			  "backend: queue objects: cut five times; taken rows "
			  "go back within %d s",
			  TAKEN_MAX_MS / 1000);
	req_free(r);
}

static void ids_send(int op, const int64_t *ids, uint32_t n)
{
	struct qreq *r = calloc(1, sizeof(*r));

	if (!r)
		goto fail;
	r->op = op;
	r->p[0] = jobq__pg_int_array(ids, NULL, n);
	r->np = 1;
	if (r->p[0] && !req_send(r))
		return;
	req_free(r);
fail:
	jobq__log(JOBQ__LOG_WARN,
		  "backend: %u queue objects not %s now: out of memory; their "
		  "rows go back within %d s",
		  n, op == R_ACKED ? "acknowledged" : "given back",
		  TAKEN_MAX_MS / 1000);
}

static void back_ids(const int64_t *ids, uint32_t n)
{
	if (n)
		ids_send(R_BACK, ids, n);
}

void jobq__queues_pg_acked(uint64_t id)
{
	if (q.nacked == q.capacked) {
		uint32_t nc = q.capacked ? 2 * q.capacked : 256;
		int64_t *a = realloc(q.acked, nc * sizeof(*a));

		if (!a) {
			ids_send(R_ACKED, (const int64_t *)&id, 1);
			return;
		}
		q.acked = a;
		q.capacked = nc;
	}
	q.acked[q.nacked++] = (int64_t)id;
}

void jobq__queues_pg_settle(uint32_t qid)
{
	int64_t ids[FETCH_MAX];
	uint32_t n;

	if (!rec(qid)->depth || jobq__queue_getters_want(qid))
		return;
	while ((n = jobq__queue_take_back(qid, ids, FETCH_MAX)))
		back_ids(ids, n);
}

void jobq__queues_pg_turn(void)
{
	if (!q.nacked)
		return;
	for (uint32_t at = 0; at < q.nacked; at += 4096)
		ids_send(R_ACKED, q.acked + at,
			 q.nacked - at < 4096 ? q.nacked - at : 4096);
	q.nacked = 0;
}

void jobq__queues_pg_tick(void)
{
	uint64_t now = jobq__now_ns();
	struct jobq__pg *pg = jobq__backend_pg();

	if (!pg || !jobq__pg_up(pg))
		return;
	if (now >= q.poll_at) {
		uint32_t n = load_relaxed(&jobq__hdr()->nqueues);

		q.poll_at = now + POLL_NS;
		fetch_all();
		/* Notifications lost (a reconnect, a host that died) cost
		 * putters and joiners a second at most. */
		for (uint32_t i = 0; i < n; i++) {
			if (!rec(i)->in_use)
				continue;
			if (rec(i)->putters)
				jobq__queues_pg_room(i);
			join_check(i);
		}
		counts_send();
	}
	if (now >= q.sweep_at && !q.sweeping) {
		struct qreq *r = calloc(1, sizeof(*r));
		char ms[24];

		q.sweep_at = now + SWEEP_NS;
		if (!r)
			return;
		snprintf(ms, sizeof(ms), "%d", TAKEN_MAX_MS);
		r->op = R_SWEEP;
		r->p[0] = strdup(ms);
		r->np = 1;
		if (r->p[0] && !req_send(r))
			q.sweeping = true;
		else
			req_free(r);
	}
}

static int req_send(struct qreq *r)
{
	struct jobq__pg *pg = jobq__backend_pg();
	const char *sql;
	jobq__pg_cb cb = plain_cb;
	const char *v[4];
	int n = r->np;

	if (!pg)
		return JOBQ_ECLOSED;
	switch (r->op) {
	case R_PUT:
	case R_PUT_MANY:
		sql = sql_put;
		cb = put_cb;
		break;
	case R_FETCH:
		sql = sql_fetch;
		cb = fetch_cb;
		break;
	case R_RECOVER:
		sql = sql_recover;
		cb = fetch_cb;
		/* By the fetch's name alone. */
		v[0] = r->p[2];
		return jobq__pg_query(pg, sql, 1, v, cb, r);
	case R_ACKED:
		sql = sql_acked;
		break;
	case R_BACK:
		sql = sql_back;
		break;
	case R_SWEEP:
		sql = sql_sweep;
		break;
	case R_LIMITS:
		sql = sql_limits;
		cb = change_cb;
		break;
	case R_DONE:
		sql = sql_done;
		cb = change_cb;
		break;
	case R_REMOVE:
		sql = sql_remove;
		cb = change_cb;
		break;
	case R_JOIN:
	case R_JCHECK:
		sql = sql_unfinished;
		cb = join_cb;
		break;
	default:
		sql = sql_counts;
		cb = counts_cb;
		break;
	}
	for (int i = 0; i < n; i++)
		v[i] = r->p[i];
	return jobq__pg_query(pg, sql, n, v, cb, r);
}
