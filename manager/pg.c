/* SPDX-License-Identifier: MIT */
/*
 * pg.c - one asynchronous PostgreSQL connection: libpq in non-blocking
 * pipeline mode, driven by its owner's event loop (pg.h has the contract).
 *
 * The connection is a small state machine:
 *
 *   DOWN ──(backoff ran out)──> CONNECTING ──(PQconnectPoll OK)──> OPEN
 *     ^                              |                               |
 *     └───────────(failed, or the socket broke: fail what was sent)──┘
 *
 * Queries live on two FIFO lists. "waiting" holds those not sent yet (all
 * of them while the connection is not OPEN); "sent" holds those written
 * to the pipeline and not answered. Every query is sent as one statement
 * followed by a pipeline sync, which makes it its own implicit transaction:
 * an error in one rolls back that one only, and the sync's answer
 * (PGRES_PIPELINE_SYNC) is sent by the server after it committed. The
 * callback runs on that answer, never on the statement's result alone, so
 * 0 in a callback means committed (pg.h).
 *
 * Invariants:
 *  - the head of "sent" is the query the next result belongs to: libpq
 *    and the server answer a pipeline in order;
 *  - a query is on exactly one list, or none once its callback ran;
 *  - when the connection breaks, every query on "sent" is failed with
 *    -ECONNRESET (its outcome is unknown) and "waiting" is kept for the
 *    next connection, so nothing is sent twice by pg.c itself;
 *  - the LISTENs are the first queries of every connection, so that a
 *    NOTIFY committed after "up" was reported is never missed. One sent
 *    between the cut and "up" may be: the owner treats "up" as "look for
 *    work once", which covers it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

#define BACKOFF_MIN_NS (100ull * 1000 * 1000)
#define BACKOFF_MAX_NS (5000ull * 1000 * 1000)
/* libpq's connect_timeout applies to its blocking connect only: a
 * non-blocking one that hangs (a host that drops packets) is ended here. */
#define CONNECT_TIMEOUT_NS (10000ull * 1000 * 1000)

enum { ST_DOWN, ST_CONNECTING, ST_OPEN };

struct pgq {
	struct pgq *next;
	const char *sql;
	int n;
	char **vals; /* [n], in the same allocation as the struct */
	jobq__pg_cb cb;
	void *arg;
	PGresult *res; /* the statement's result, kept until the sync */
	int err;
	bool got_null; /* PQgetResult said NULL once since the last result */
	bool last;     /* a pipeline sync follows it: its batch ends here */
	bool solo;     /* sent in a batch of its own (see batching) */
	bool aborted;  /* skipped: an earlier statement of its batch failed */
	bool prep;     /* the preparation of @sql, not a query of a caller */
};

/* Statements prepared on one connection, by their text's address (a
 * string literal: pg.h), so that the server plans each once. */
#define MAX_PREPARED 64

struct jobq__pg {
	char *conninfo;
	char **listen_sql; /* [nch] "LISTEN name", quoted */
	int nch;
	struct jobq__pg_hooks h;
	PGconn *conn;
	int st;
	PostgresPollingStatusType cpoll;
	int fd;
	uint32_t gen;
	bool want_write;
	bool up;
	int listens_left; /* LISTENs of this connection not answered yet */
	struct pgq *wait_head, *wait_tail;
	struct pgq *sent_head, *sent_tail;
	struct pgq *cur; /* on "sent": the query the next result is for */
	uint32_t nwait, nsent;
	bool batching; /* jobq__pg_batching() */
	bool sending;  /* a batch is half written: its sync is to come */
	const char *prepared[MAX_PREPARED]; /* on this connection */
	int nprepared;
	uint64_t retry_at, backoff_ns;
	uint64_t connect_by; /* CONNECTING: given up at this time */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct pgq *q_new(const char *sql, int n, const char *const *vals,
			 jobq__pg_cb cb, void *arg)
{
	size_t size = sizeof(struct pgq) + (size_t)n * sizeof(char *);
	struct pgq *q;
	char *p;

	for (int i = 0; i < n; i++)
		if (vals[i])
			size += strlen(vals[i]) + 1;
	q = calloc(1, size);
	if (!q)
		return NULL;
	q->sql = sql;
	q->n = n;
	q->cb = cb;
	q->arg = arg;
	q->vals = (char **)(q + 1);
	p = (char *)(q->vals + n);
	for (int i = 0; i < n; i++) {
		if (!vals[i])
			continue;
		q->vals[i] = p;
		p = stpcpy(p, vals[i]) + 1;
	}
	return q;
}

static void q_push(struct pgq **head, struct pgq **tail, struct pgq *q)
{
	q->next = NULL;
	if (*tail)
		(*tail)->next = q;
	else
		*head = q;
	*tail = q;
}

static struct pgq *q_pop(struct pgq **head, struct pgq **tail)
{
	struct pgq *q = *head;

	if (q) {
		*head = q->next;
		if (!*head)
			*tail = NULL;
		q->next = NULL;
	}
	return q;
}

/* Runs @q's callback with @err (and its result, if it has one) and frees
 * it. */
static void q_finish(struct pgq *q, int err)
{
	if (q->cb)
		q->cb(q->arg, err, err == 0 || err == -EPROTO ? q->res : NULL);
	PQclear(q->res);
	free(q);
}

static void start_connect(struct jobq__pg *pg);
static void listen_done(void *arg, int err, const PGresult *res);

/*
 * conn_drop - the connection failed (@why) or is closed: fail what was
 * sent, keep what waits, and schedule a reconnect. The callbacks run
 * after the state is DOWN, so a query they send waits for the next
 * connection.
 */
static void conn_drop(struct jobq__pg *pg, const char *why)
{
	struct pgq *sent = pg->sent_head, **pp = &pg->wait_head;
	bool was_up = pg->up;

	/* LISTENs not sent: the next connection queues its own. */
	pg->wait_tail = NULL;
	while (*pp) {
		struct pgq *q = *pp;

		if (q->cb == listen_done) {
			*pp = q->next;
			pg->nwait--;
			free(q);
			continue;
		}
		pg->wait_tail = q;
		pp = &q->next;
	}

	if (pg->conn)
		PQfinish(pg->conn);
	pg->conn = NULL;
	pg->st = ST_DOWN;
	pg->fd = -1;
	pg->gen++;
	pg->up = false;
	pg->want_write = false;
	pg->sent_head = pg->sent_tail = pg->cur = NULL;
	pg->sending = false;
	pg->nprepared = 0;
	pg->nsent = 0;
	pg->retry_at = now_ns() + pg->backoff_ns;
	pg->backoff_ns = pg->backoff_ns * 2 > BACKOFF_MAX_NS
			     ? BACKOFF_MAX_NS
			     : pg->backoff_ns * 2;
	if (pg->h.state && (was_up || why))
		pg->h.state(pg->h.ctx, false, why ? why : "closed");
	while (sent) {
		struct pgq *nx = sent->next;

		q_finish(sent, -ECONNRESET);
		sent = nx;
	}
}

/* The libpq error of the connection, one line. */
static const char *conn_error(struct jobq__pg *pg, char *buf, size_t len)
{
	const char *m = pg->conn ? PQerrorMessage(pg->conn) : "";

	snprintf(buf, len, "%s", *m ? m : "connection lost");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static void conn_fail(struct jobq__pg *pg)
{
	char buf[256];

	conn_drop(pg, conn_error(pg, buf, sizeof(buf)));
}

static void listen_done(void *arg, int err, const PGresult *res)
{
	struct jobq__pg *pg = arg;

	/* -ECONNRESET: conn_drop() already runs; nothing to add. */
	if (err == -EPROTO) {
		/* A LISTEN refused is a broken set-up, not a passing cut:
		 * report it and try again later. */
		char why[256];

		snprintf(why, sizeof(why), "LISTEN refused: %s",
			 PQresultErrorMessage(res));
		why[strcspn(why, "\n")] = '\0';
		conn_drop(pg, why);
		return;
	}
	if (err || --pg->listens_left > 0)
		return;
	pg->up = true;
	pg->backoff_ns = BACKOFF_MIN_NS;
	if (pg->h.state)
		pg->h.state(pg->h.ctx, true, NULL);
}

/* The name statement @sql is prepared under on this connection, or NULL
 * when it is not (yet). */
static const char *prepared_name(struct jobq__pg *pg, const char *sql,
				 char *buf, size_t len)
{
	for (int i = 0; i < pg->nprepared; i++)
		if (pg->prepared[i] == sql) {
			snprintf(buf, len, "jobq%d", i);
			return buf;
		}
	return NULL;
}

/*
 * prepare_waiting - prepares the statements of the waiting queries that
 * this connection has not prepared, each with a sync of its own, ahead of
 * them (never inside a batch: a sync there would end its transaction).
 * A statement is taken as prepared once its preparation is sent: the
 * server handles the pipeline in order. LISTENs and queries with an empty
 * text are sent as they are.
 */
static void prepare_waiting(struct jobq__pg *pg)
{
	char name[16];

	for (struct pgq *w = pg->wait_head; w; w = w->next) {
		struct pgq *q;

		if (w->cb == listen_done || pg->nprepared == MAX_PREPARED ||
		    prepared_name(pg, w->sql, name, sizeof(name)))
			continue;
		q = q_new(w->sql, 0, NULL, NULL, NULL);
		if (!q)
			return; /* sent unprepared */
		snprintf(name, sizeof(name), "jobq%d", pg->nprepared);
		if (!PQsendPrepare(pg->conn, name, w->sql, w->n, NULL) ||
		    !PQpipelineSync(pg->conn)) {
			free(q);
			conn_fail(pg);
			return;
		}
		pg->prepared[pg->nprepared++] = w->sql;
		q->prep = q->last = q->solo = true;
		q_push(&pg->sent_head, &pg->sent_tail, q);
		if (!pg->cur)
			pg->cur = q;
		pg->nsent++;
	}
}

/* Writes query @q into the pipeline, prepared when it can be. */
static int send_one(struct jobq__pg *pg, const struct pgq *q)
{
	char buf[16];
	const char *name = q->cb == listen_done
			       ? NULL
			       : prepared_name(pg, q->sql, buf, sizeof(buf));

	if (name)
		return PQsendQueryPrepared(pg->conn, name, q->n,
					   (const char *const *)q->vals, NULL,
					   NULL, 0);
	return PQsendQueryParams(pg->conn, q->sql, q->n, NULL,
				 (const char *const *)q->vals, NULL, NULL, 0);
}

/* Writes the waiting queries into the pipeline and pushes them out. */
static void send_waiting(struct jobq__pg *pg)
{
	struct pgq *q;
	int r;

	if (pg->st != ST_OPEN)
		return;
	prepare_waiting(pg);
	if (pg->st != ST_OPEN)
		return;
	/* Batching: the next batch leaves when the last one is answered,
	 * and takes everything that came meanwhile (a group commit: the
	 * busier, the larger the batches, one WAL flush each). */
	while ((q = pg->wait_head) && !(pg->batching && pg->nsent && !q->solo &&
					q->cb != listen_done && !pg->sending)) {
		struct pgq *nx = q->next;

		/* Batching: a sync after the last of a run of queries, so
		 * that they commit together; LISTENs and queries sent again
		 * after their batch failed go alone. */
		q->last = !pg->batching || q->solo || !nx || nx->solo ||
			  q->cb == listen_done || nx->cb == listen_done;
		if (!send_one(pg, q) ||
		    (q->last && !PQpipelineSync(pg->conn))) {
			conn_fail(pg);
			return;
		}
		q_pop(&pg->wait_head, &pg->wait_tail);
		pg->nwait--;
		q_push(&pg->sent_head, &pg->sent_tail, q);
		if (!pg->cur)
			pg->cur = q;
		pg->nsent++;
		pg->sending = !q->last;
	}
	r = PQflush(pg->conn);
	if (r < 0) {
		conn_fail(pg);
		return;
	}
	pg->want_write = r == 1;
}

static void on_connected(struct jobq__pg *pg)
{
	if (PQsetnonblocking(pg->conn, 1) || !PQenterPipelineMode(pg->conn)) {
		conn_fail(pg);
		return;
	}
	pg->st = ST_OPEN;
	pg->listens_left = pg->nch;
	/* The LISTENs go first, ahead of whatever waited. */
	for (int i = pg->nch - 1; i >= 0; i--) {
		struct pgq *q =
		    q_new(pg->listen_sql[i], 0, NULL, listen_done, pg);

		if (!q) {
			conn_drop(pg, "out of memory");
			return;
		}
		q->next = pg->wait_head;
		pg->wait_head = q;
		if (!pg->wait_tail)
			pg->wait_tail = q;
		pg->nwait++;
	}
	if (!pg->nch) {
		pg->up = true;
		pg->backoff_ns = BACKOFF_MIN_NS;
		if (pg->h.state)
			pg->h.state(pg->h.ctx, true, NULL);
	}
	send_waiting(pg);
}

static void connect_poll(struct jobq__pg *pg)
{
	pg->cpoll = PQconnectPoll(pg->conn);
	/* libpq may move to another socket (another host of the list). */
	if (PQsocket(pg->conn) != pg->fd) {
		pg->fd = PQsocket(pg->conn);
		pg->gen++;
	}
	if (pg->cpoll == PGRES_POLLING_OK)
		on_connected(pg);
	else if (pg->cpoll == PGRES_POLLING_FAILED)
		conn_fail(pg);
}

static void start_connect(struct jobq__pg *pg)
{
	pg->conn = PQconnectStart(pg->conninfo);
	if (!pg->conn) {
		conn_drop(pg, "out of memory");
		return;
	}
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		conn_fail(pg);
		return;
	}
	pg->st = ST_CONNECTING;
	pg->connect_by = now_ns() + CONNECT_TIMEOUT_NS;
	pg->fd = PQsocket(pg->conn);
	pg->gen++;
	/* libpq: behave as if the first poll had said WRITING. */
	pg->cpoll = PGRES_POLLING_WRITING;
}

int jobq__pg_open(struct jobq__pg **out, const char *conninfo,
		  const char *const *channels, int nchannels,
		  const struct jobq__pg_hooks *hooks, char *err, size_t errlen)
{
	struct jobq__pg *pg;
	PQconninfoOption *opts;
	char *msg = NULL;

	opts = PQconninfoParse(conninfo, &msg);
	if (!opts) {
		snprintf(err, errlen, "connection string: %s",
			 msg ? msg : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfreemem(msg);
		return msg ? -EINVAL : -ENOMEM;
	}
	PQconninfoFree(opts);
	pg = calloc(1, sizeof(*pg));
	if (!pg || !(pg->conninfo = strdup(conninfo)) ||
	    (nchannels &&
	     !(pg->listen_sql = calloc((size_t)nchannels, sizeof(char *)))))
		goto nomem;
	for (int i = 0; i < nchannels; i++) {
		/* Channel names are ours (pg.h), plain identifiers; quoted
		 * all the same. */
		size_t len = strlen(channels[i]) + 16;

		if (strchr(channels[i], '"')) {
			snprintf(err, errlen, "channel name %s: no quotes",
				 channels[i]);
			jobq__pg_close(pg);
			return -EINVAL;
		}
		pg->listen_sql[i] = malloc(len);
		if (!pg->listen_sql[i])
			goto nomem;
		pg->nch++;
		snprintf(pg->listen_sql[i], len, "LISTEN \"%s\"", channels[i]);
	}
	if (hooks)
		pg->h = *hooks;
	pg->fd = -1;
	pg->backoff_ns = BACKOFF_MIN_NS;
	start_connect(pg);
	*out = pg;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	jobq__pg_close(pg);
	return -ENOMEM;
}

void jobq__pg_close(struct jobq__pg *pg)
{
	struct pgq *q;

	if (!pg)
		return;
	pg->h.state = NULL;
	while ((q = q_pop(&pg->sent_head, &pg->sent_tail)))
		q_finish(q, -ECANCELED);
	while ((q = q_pop(&pg->wait_head, &pg->wait_tail)))
		q_finish(q, -ECANCELED);
	if (pg->conn)
		PQfinish(pg->conn);
	for (int i = 0; i < pg->nch; i++)
		free(pg->listen_sql[i]);
	free(pg->listen_sql);
	free(pg->conninfo);
	free(pg);
}

int jobq__pg_query(struct jobq__pg *pg, const char *sql, int n,
		   const char *const *vals, jobq__pg_cb cb, void *arg)
{
	struct pgq *q;

	if (pg->nwait + pg->nsent >= JOBQ__PG_MAX_QUEUED)
		return -E2BIG;
	q = q_new(sql, n, vals, cb, arg);
	if (!q)
		return -ENOMEM;
	/* Sent by the next jobq__pg_ready(): a turn's queries go out
	 * together, none waiting for another's answer. */
	q_push(&pg->wait_head, &pg->wait_tail, q);
	pg->nwait++;
	return 0;
}

/* A statement that failed only for meeting another transaction (a
 * deadlock, which batches of two hosts can run into, or a serialization
 * failure): it is sent again, alone. */
static bool transient(const struct pgq *q)
{
	const char *st = q->res && !q->aborted
			     ? PQresultErrorField(q->res, PG_DIAG_SQLSTATE)
			     : NULL;

	return st && (!strcmp(st, "40P01") || !strcmp(st, "40001"));
}

/*
 * batch_done - the sync after a batch (the queries on "sent" up to and
 * including @last) was answered. Without an error the batch committed and
 * every callback runs with its answer. With one, the transaction rolled
 * back: the statement that failed gets its error, and the others, which
 * either ran and were undone or never ran, go back to the head of
 * "waiting" to be sent again each alone, in their order.
 */
static void batch_done(struct jobq__pg *pg, struct pgq *last)
{
	struct pgq *q, *redo_head = NULL, *redo_tail = NULL;
	bool failed = false, more = true;

	for (q = pg->sent_head; q; q = q->next) {
		failed |= q->err && !q->aborted;
		if (q == last)
			break;
	}
	while (more && (q = q_pop(&pg->sent_head, &pg->sent_tail))) {
		more = q != last;
		pg->nsent--;
		if (failed && (q->aborted || !q->err || transient(q))) {
			PQclear(q->res);
			q->res = NULL;
			q->err = 0;
			q->aborted = q->got_null = false;
			q->solo = true;
			q_push(&redo_head, &redo_tail, q);
			continue;
		}
		q_finish(q, q->err);
		if (pg->st != ST_OPEN)
			break;
	}
	pg->cur = pg->sent_head;
	if (redo_head) {
		redo_tail->next = pg->wait_head;
		pg->wait_head = redo_head;
		if (!pg->wait_tail)
			pg->wait_tail = redo_tail;
		for (q = redo_head; q != redo_tail->next; q = q->next)
			pg->nwait++;
	}
}

/* Takes every answer that has arrived, in order. */
static void read_results(struct jobq__pg *pg)
{
	PGnotify *nt;

	while (pg->cur && !PQisBusy(pg->conn)) {
		struct pgq *q = pg->cur;
		PGresult *r = PQgetResult(pg->conn);

		if (!r) {
			/* The end of a statement's results; twice in a row
			 * means nothing more is there yet. */
			if (q->got_null)
				break;
			q->got_null = true;
			/* A statement inside a batch: the next one's
			 * results follow, the sync comes after the last. */
			if (!q->last && q->next)
				pg->cur = q->next;
			continue;
		}
		q->got_null = false;
		switch (PQresultStatus(r)) {
		case PGRES_PIPELINE_SYNC:
			PQclear(r);
			/* The batch is the oldest sent, up to its last. */
			for (q = pg->sent_head; q && !q->last; q = q->next)
				;
			batch_done(pg, q ? q : pg->sent_tail);
			break;
		case PGRES_FATAL_ERROR:
		case PGRES_NONFATAL_ERROR:
		case PGRES_BAD_RESPONSE:
			PQclear(q->res);
			q->res = r;
			q->err = -EPROTO;
			break;
		case PGRES_PIPELINE_ABORTED:
			/* An earlier statement of its batch failed: this one
			 * did not run. */
			if (!q->err) {
				PQclear(q->res);
				q->res = r;
				q->err = -EPROTO;
				q->aborted = true;
			} else {
				PQclear(r);
			}
			/* Which skipped statement it names matters not: all
			 * but the one that failed are sent again. */
			break;
		default:
			if (q->err) {
				PQclear(r);
				break;
			}
			PQclear(q->res);
			q->res = r;
			break;
		}
		if (pg->st != ST_OPEN)
			return;
	}
	while (pg->conn && (nt = PQnotifies(pg->conn))) {
		if (pg->h.notify)
			pg->h.notify(pg->h.ctx, nt->relname, nt->extra);
		PQfreemem(nt);
	}
}

void jobq__pg_batching(struct jobq__pg *pg, bool on)
{
	pg->batching = on;
}

short jobq__pg_events(struct jobq__pg *pg, int *fd, uint64_t *deadline_ns,
		      uint32_t *gen)
{
	*gen = pg->gen;
	*deadline_ns = 0;
	switch (pg->st) {
	case ST_DOWN:
		*fd = -1;
		*deadline_ns = pg->retry_at;
		return 0;
	case ST_CONNECTING:
		*fd = pg->fd;
		*deadline_ns = pg->connect_by;
		return pg->cpoll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	default:
		*fd = pg->fd;
		return POLLIN | (pg->want_write ? POLLOUT : 0);
	}
}

void jobq__pg_ready(struct jobq__pg *pg, short revents)
{
	switch (pg->st) {
	case ST_DOWN:
		return;
	case ST_CONNECTING:
		if (revents)
			connect_poll(pg);
		if (pg->st != ST_OPEN)
			return;
		break;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP)) {
		if (!PQconsumeInput(pg->conn)) {
			conn_fail(pg);
			return;
		}
		read_results(pg);
		if (pg->st != ST_OPEN)
			return;
	}
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		conn_fail(pg);
		return;
	}
	send_waiting(pg);
	/* Answers that came with what we read before the send. */
	if (pg->st == ST_OPEN && pg->sent_head && !PQisBusy(pg->conn))
		read_results(pg);
}

void jobq__pg_tick(struct jobq__pg *pg)
{
	uint64_t now = now_ns();

	if (pg->st == ST_DOWN && now >= pg->retry_at)
		start_connect(pg);
	else if (pg->st == ST_CONNECTING && now >= pg->connect_by)
		conn_drop(pg, "no answer to the connection within 10 s");
}

bool jobq__pg_up(const struct jobq__pg *pg)
{
	return pg->up;
}

uint32_t jobq__pg_pending(const struct jobq__pg *pg)
{
	return pg->nwait + pg->nsent;
}

int jobq__pg_backend_pid(const struct jobq__pg *pg)
{
	return pg->st == ST_OPEN ? PQbackendPID(pg->conn) : 0;
}

int jobq__pg_run(struct jobq__pg *pg, bool (*done)(void *arg), void *arg,
		 int timeout_ms)
{
	uint64_t end = timeout_ms < 0
			   ? UINT64_MAX
			   : now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd p = {.fd = -1};
		uint64_t dl, now, until;
		uint32_t gen;
		int ms;

		jobq__pg_ready(pg, 0);
		if (done && done(arg))
			return 0;
		p.events = jobq__pg_events(pg, &p.fd, &dl, &gen);
		now = now_ns();
		if (now >= end)
			return -ETIMEDOUT;
		until = end;
		if (dl && dl < until)
			until = dl;
		ms = until == UINT64_MAX
			 ? -1
			 : (int)((until - now + 999999) / 1000000);
		if (poll(&p, p.fd >= 0 ? 1 : 0, ms) < 0 && errno != EINTR)
			return -errno;
		if (p.fd >= 0 && p.revents)
			jobq__pg_ready(pg, p.revents);
		if (dl && now_ns() >= dl)
			jobq__pg_tick(pg);
	}
}

int64_t jobq__pg_int(const PGresult *res, int row, int col)
{
	if (!res || row >= PQntuples(res) || col >= PQnfields(res) ||
	    PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

char *jobq__pg_int_array(const int64_t *v, const bool *null, uint32_t n)
{
	size_t cap = 3 + (size_t)n * 21, at = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	s[at++] = '{';
	for (uint32_t i = 0; i < n; i++) {
		const char *sep = i ? "," : "";

		if (null && null[i])
			at += (size_t)snprintf(s + at, cap - at, "%sNULL", sep);
		else
			at += (size_t)snprintf(s + at, cap - at, "%s%" PRId64,
					       sep, v[i]);
	}
	s[at++] = '}';
	s[at] = '\0';
	return s;
}

bool jobq__pg_sqlstate(const PGresult *res, const char *state)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s && !strcmp(s, state);
}
