/* SPDX-License-Identifier: MIT */
/*
 * queues_pg.c - queues of objects with jobqd --backend: every host's
 * manager keeps the objects of every named queue in PostgreSQL
 * (jobq_queue_items, migration 4), so that an object put on one host is
 * got on any. A queue's record in this host's store (its name, limits,
 * waiters) stays this host's; it holds only the objects fetched for this
 * host's getters.
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
 * Not shared (yet): the limits of bounded queues (each host's record has
 * its own and they are not checked against PostgreSQL's rows: a put with
 * --backend never waits for room), task_done/join counts, and the depth
 * `jobq queues` shows, which is this host's record (objects fetched and
 * not yet handed), not the rows waiting in PostgreSQL.
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

static const char sql_put[] =
    "WITH r AS (SELECT i, t, l, sum(l) OVER (ORDER BY i) - l AS o"
    " FROM unnest($2::integer[], $3::integer[]) WITH ORDINALITY"
    " AS u(t, l, i)),"
    " w AS (INSERT INTO jobq_queue_items (queue, type, data)"
    " SELECT $1::text, t, substring($4::bytea FROM (o + 1)::integer FOR l)"
    " FROM r ORDER BY i RETURNING id)"
    " SELECT count(*), pg_notify('" JOBQ__PG_QUEUE_CHANNEL "', $1::text)"
    " FROM w";

static const char sql_fetch[] =
    "WITH d AS (DELETE FROM jobq_queue_items WHERE id IN"
    " (SELECT id FROM jobq_queue_items WHERE queue = $1::text"
    " ORDER BY id LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
    " RETURNING id, queue, type, data),"
    " k AS (INSERT INTO jobq_queue_taken (id, fetched_by, queue, type, data)"
    " SELECT id, $3::text, queue, type, data FROM d)"
    " SELECT id, type, data FROM d ORDER BY id";

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

/* Per queue record: its fetch. */
struct qf {
	bool busy;  /* a fetch is in flight */
	bool again; /* fetch again once it is answered */
};

/* A statement in flight and what it needs when answered. */
struct qreq {
	struct jobq__client *c; /* put: the client to answer */
	uint32_t gen;		/* c->gen when it asked */
	uint64_t user_data;
	int op; /* R_* */
	int tries;
	uint32_t qid, qgen; /* fetch: the record and its generation */
	uint32_t n;	    /* put: objects; fetch: asked for */
	char *p[4];	    /* the statement's parameters */
	int np;
};

enum { R_PUT, R_PUT_MANY, R_FETCH, R_RECOVER, R_ACKED, R_BACK, R_SWEEP };

static struct {
	struct qf *qf; /* max_queues of them */
	uint64_t nonce, nfetch;
	/* Ids acknowledged this turn, sent at its end. */
	int64_t *acked;
	uint32_t nacked, capacked;
	uint64_t poll_at, sweep_at;
	bool sweeping;
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

/* "{1,2,3}" for a text array parameter. */
static char *int_array(const int64_t *v, uint32_t n)
{
	size_t cap = 3 + (size_t)n * 21, at = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	s[at++] = '{';
	for (uint32_t i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, cap - at, "%s%" PRId64,
				       i ? "," : "", v[i]);
	s[at++] = '}';
	s[at] = '\0';
	return s;
}

/* ------------------------------------------------------------------------
 * Puts.
 */
static void put_cb(void *arg, int err, const PGresult *res)
{
	struct qreq *r = arg;

	/* Cut with the answer unknown: sent again (at-least-once). */
	if (err == -ECONNRESET && r->tries++ < TRIES && !req_send(r))
		return;
	if (!err)
		answer(r, r->op == R_PUT_MANY ? (int32_t)r->n : 0);
	else if (err == -EPROTO) {
		jobq__log(JOBQ__LOG_WARN, "backend: put: %s",
			  PQresultErrorMessage(res));
		answer(r, -EIO);
	} else
		answer(r, err == -ECANCELED ? JOBQ_ECLOSED : -EIO);
	req_free(r);
}

static const char hexd[] = "0123456789abcdef";

int jobq__queues_pg_put(struct jobq__client *c, const struct jobq_sqe *s,
			uint32_t qid)
{
	const uint8_t *base = jobq__arena(c, s->arena_off);
	uint64_t max = jobq__hdr()->max_object, pos = 0, end = s->arena_len;
	uint64_t want = s->op == JOBQ_OP_Q_PUT_MANY ? s->arg0 : 1, bytes = 0;
	struct qreq *r;
	int64_t *types, *lens;
	uint32_t n = 0;
	char *hex;
	int ret = 0;

	if (!jobq__backend_pg())
		return JOBQ_ECLOSED;
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
	r->p[1] = int_array(types, n);
	r->p[2] = int_array(lens, n);
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
	r->p[0] = int_array(ids, n);
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
		q.poll_at = now + POLL_NS;
		fetch_all();
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
	default:
		sql = sql_sweep;
		break;
	}
	for (int i = 0; i < n; i++)
		v[i] = r->p[i];
	return jobq__pg_query(pg, sql, n, v, cb, r);
}
