/* SPDX-License-Identifier: MIT */
/*
 * pg.h - jobqd --backend postgresql://...: the manager's PostgreSQL client
 * (pg.c), the schema (pg_schema.c) and the job operations as SQL
 * (pg_jobs.c).
 *
 * Nothing here blocks. A connection is driven by whoever owns it: the
 * manager's io_uring loop polls jobq__pg_events()'s fd and calls
 * jobq__pg_ready() when it is ready and jobq__pg_tick() at the deadline
 * jobq__pg_events() names; a test or `jobqd --migrate` drives it with
 * jobq__pg_run(), a poll(2) loop. Every query goes through the same
 * pipeline: a turn's queries are sent together without waiting for each
 * other's answers, which come back in order. (libpq 15's PQpipelineSync
 * flushes, so each query is still one write(2); the round trips are what
 * the pipeline saves.)
 *
 * The promise every caller builds on: a query's callback says 0 only once
 * PostgreSQL has committed it. Each query is its own implicit transaction
 * (one statement, followed by a pipeline sync), and its callback runs when
 * the sync's answer arrives, which the server sends after the COMMIT. An
 * acknowledgement sent to a client from that callback is therefore never
 * lost; a callback that says -ECONNRESET means the outcome is unknown (the
 * connection was cut after the query left), and the caller retries with a
 * statement that is safe to run twice or reports the error.
 *
 * Wiring the job handlers of jobs.c (the next step; pg_mgr.c owns the
 * connection, jobq__backend_*() in jobqd.h): each handler, when
 * jobq__m.o.backend is set, sends its statement and returns
 * JOBQ__NOREPLY; the callback posts the completion (if the client's slot
 * still has the generation it had) once the statement committed.
 *   submit   jobq__pg_submit(); val = id, res = 1 when !created. After
 *            -ECONNRESET a submit is sent again, exact: a --unique one
 *            by its key, any other by the client's (session, request
 *            id), stored on the row under a unique index (migration 2),
 *            which also makes a resend from the client after a manager
 *            restart return the first job.
 *   reserve  jobq__pg_reserve(owner "host:pid:slot", the worker's type
 *            names, capacity - running). Each row becomes a local mirror
 *            record (RUNNING, this worker, attempts from the row, args
 *            copied into the store), so that the worker reads its job as
 *            today; the mirror keeps the row's id and lease token. No row:
 *            park the reserver; a NOTIFY naming one of its types (or '')
 *            or the jobq__pg_next_run() timer sends the reserve again.
 *   done     held() as today, then jobq__pg_complete()/jobq__pg_fail()
 *            with the mirror's token; no row means -ESTALE.
 *   progress, extend, cancel, pause, parallel: one call each.
 *   wait, show, ls, stats: read the rows (jobq__pg_show()); a waiter is
 *            woken by the NOTIFY on JOBQ__PG_DONE_CHANNEL that complete,
 *            fail, cancel and expire send for each job made final.
 * A host that dies leaves its leases to end: any host's maintenance
 * (jobq__pg_expire()) puts those jobs back to ready.
 */
#ifndef JOBQD_PG_H
#define JOBQD_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct jobq__pg;

/*
 * A query's answer. @err is 0 with @res the statement's result (tuples or
 * command status; committed), -EPROTO with @res the server's error (the
 * transaction rolled back: PQresultErrorField(res, PG_DIAG_SQLSTATE) says
 * why), -ECONNRESET with @res NULL when the connection was cut with the
 * query sent and unanswered (outcome unknown), -ECANCELED with @res NULL
 * when the connection is closed by jobq__pg_close(). @res belongs to pg.c
 * and is freed when the callback returns. The callback may send new
 * queries; it must not close the connection.
 */
typedef void (*jobq__pg_cb)(void *arg, int err, const PGresult *res);

/* What the owner of a connection hears about besides answers. All may be
 * NULL. */
struct jobq__pg_hooks {
	/* A NOTIFY on a channel this connection LISTENs to. */
	void (*notify)(void *ctx, const char *channel, const char *payload);
	/* The connection came up (@up: LISTEN done, queries flow) or went
	 * down (@why says why; a reconnect is scheduled). */
	void (*state)(void *ctx, bool up, const char *why);
	void *ctx;
};

/*
 * jobq__pg_open - start connecting to @conninfo (a libpq connection string
 * or postgresql:// URI) without blocking, LISTENing on the @nchannels
 * channels named by @channels once connected. Queries sent before the
 * connection is up wait for it. Returns 0 with *@out set, -ENOMEM, or
 * -EINVAL with a message in @err when libpq refuses the string itself.
 * A server that cannot be reached is not an error here: the connection
 * retries with backoff (100 ms doubling to 5 s) and says so through
 * hooks->state.
 */
int jobq__pg_open(struct jobq__pg **out, const char *conninfo,
		  const char *const *channels, int nchannels,
		  const struct jobq__pg_hooks *hooks, char *err, size_t errlen);

/* Fails every query not answered yet with -ECANCELED (their callbacks
 * run now), closes the connection and frees @pg. NULL is fine. */
void jobq__pg_close(struct jobq__pg *pg);

/*
 * jobq__pg_query - send @sql (one statement, $1..$n placeholders) with the
 * @n text parameters @vals (NULL elements are SQL NULL; copied, so they
 * need not outlive the call) and call @cb(@arg, ...) once with its answer,
 * as the typedef says. Answers come in the order queries were sent.
 * Returns 0 (the callback will run exactly once), -ENOMEM or -E2BIG (too
 * many queries waiting: JOBQ__PG_MAX_QUEUED; the callback will never run).
 * @sql must stay valid until the callback has run (a string literal).
 */
#define JOBQ__PG_MAX_QUEUED 65536
int jobq__pg_query(struct jobq__pg *pg, const char *sql, int n,
		   const char *const *vals, jobq__pg_cb cb, void *arg);

/*
 * jobq__pg_events - what to wait for: returns POLLIN and/or POLLOUT for
 * the socket in *@fd (-1 and 0 while no socket is open), and in
 * *@deadline_ns the CLOCK_MONOTONIC time at which jobq__pg_tick() is due
 * (0: none; a time past is due now). The fd changes across reconnects: a poll
 * armed on an older one must be cancelled before the connection is replaced, so
 * the owner compares *@gen with the one it armed for (pg.c closes a socket only
 * through jobq__pg_ready() or jobq__pg_tick(), and bumps *@gen then).
 */
short jobq__pg_events(struct jobq__pg *pg, int *fd, uint64_t *deadline_ns,
		      uint32_t *gen);

/* The socket is ready (@revents from poll) or, with 0, the owner only
 * wants pending output flushed: reads answers and notifications, runs
 * callbacks, writes what is queued. */
void jobq__pg_ready(struct jobq__pg *pg, short revents);

/* Time-driven work: a reconnect whose backoff ran out, a connection
 * attempt that took too long (10 s). */
void jobq__pg_tick(struct jobq__pg *pg);

/*
 * jobq__pg_batching - with @on, the queries sent together (a turn's) form
 * one transaction: one sync after the last, so one commit, and one flush
 * of the server's WAL, for all of them. Each callback still says 0 only
 * after that commit. When one statement fails, its callback gets the
 * error and the others (undone with it) are sent again, each alone, so
 * that another's error never becomes theirs. Statements of one batch must
 * not depend on each other's effects being separately committed. Off by
 * default: one query, one transaction.
 */
void jobq__pg_batching(struct jobq__pg *pg, bool on);

/* Whether the connection is up (LISTEN done). */
bool jobq__pg_up(const struct jobq__pg *pg);

/* Queries sent and not answered, plus those waiting to be sent. */
uint32_t jobq__pg_pending(const struct jobq__pg *pg);

/* The server's pid for this connection (for pg_terminate_backend in the
 * tests), 0 while down. */
int jobq__pg_backend_pid(const struct jobq__pg *pg);

/*
 * jobq__pg_run - drive @pg with poll(2) until @done(@arg) says true or
 * @timeout_ms passes (-1: no limit). For `jobqd --migrate`, start-up
 * checks before the loop runs, and the tests. Returns 0 or -ETIMEDOUT.
 */
int jobq__pg_run(struct jobq__pg *pg, bool (*done)(void *arg), void *arg,
		 int timeout_ms);

/* ------------------------------------------------------------------------
 * pg_schema.c: the schema and its migrations.
 */
/* The schema this binary writes and reads. */
#define JOBQ__PG_SCHEMA_VERSION 6

enum jobq__pg_schema_mode {
	JOBQ__PG_CHECK,	  /* refuse any schema but ours */
	JOBQ__PG_CREATE,  /* create it in an empty database, else check */
	JOBQ__PG_MIGRATE, /* create or migrate forward */
};

/*
 * jobq__pg_schema - bring the database behind @pg to our schema as @mode
 * allows, blocking the caller (it runs before the loop, with
 * jobq__pg_run()) for at most @timeout_ms. Returns 0 (*@found holds the
 * version found before, 0 for none), or -errno with a message in @err:
 * -EPROTONOSUPPORT for a schema newer than this binary (both versions
 * named), -ESTALE for an older one without --migrate, -ETIMEDOUT, -EIO
 * for a server error, -ECONNRESET when the connection was cut five times
 * in a row. Migrations hold an advisory lock, so managers
 * starting together migrate once.
 */
int jobq__pg_schema(struct jobq__pg *pg, int mode, int timeout_ms, int *found,
		    char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * pg_jobs.c: the job operations, one statement each.
 *
 * Every function sends one statement and calls @cb once with its answer
 * (as jobq__pg_cb; the result's rows are described at each function) and
 * returns 0, or returns -errno and never calls @cb. States are the
 * JOBQ_JS_* numbers of proto.h. Times are the server's clock, so that
 * hosts with skewed clocks agree on delays and leases. The NOTIFY that
 * wakes other hosts' workers is part of the statement that made a job
 * ready, so it is sent exactly when that commits.
 */
#define JOBQ__PG_CHANNEL "jobq_ready"
/* Jobs that became final (succeeded, dead, cancelled): payload the id. */
#define JOBQ__PG_DONE_CHANNEL "jobq_done"

struct jobq__pg_submit {
	const char *type;
	const char *queue;   /* NULL: "default" */
	const uint8_t *args; /* bytes, stored as bytea; may be NULL */
	size_t args_len;
	int32_t priority;      /* higher first */
	int64_t delay_ms;      /* run no earlier than now + delay */
	int32_t max_attempts;  /* runs before dead; 0: 4 (3 retries) */
	int64_t timeout_ms;    /* the lease of one run; 0: 60 s */
	const char *unique;    /* NULL: none */
	const uint64_t *after; /* jobs that must succeed first */
	uint32_t nafter;
	/* The client's session and request id (0: none): a second submit
	 * with the same pair returns the job the first one made. */
	uint64_t session, rid;
	/* A worker of this host that waits for work (NULL: none), its owner
	 * string as jobq__pg_reserve() takes it, and its @ntypes types
	 * @types: the job is made RUNNING for it at once, as that worker's
	 * reserve would, when such a reserve committed now would take it
	 * (the conditions: pg_jobs.c). */
	const char *owner;
	const char *const *types;
	uint32_t ntypes;
};

/* Submit: one row (id bigint, created boolean, notified bigint, state
 * smallint, again boolean, token bigint): token, never NULL but with an
 * owner, is the lease token of job id when it is RUNNING for that owner:
 * this statement reserved it (attempts 1, lease as a reserve sets it), or
 * the first copy of a request sent again did, or (created false) the key's
 * holder runs for that owner already. Created false means the unique key
 * was held by live job id, which is returned instead, with its state; again
 * true means this (session, request id) made job id before: the request was
 * sent again after its answer was lost, and made nothing now. A
 * dependency that is already dead or cancelled makes the job dead at
 * once ("dependency N failed"); one that does not exist fails with
 * SQLSTATE 23503. */
int jobq__pg_submit(struct jobq__pg *pg, const struct jobq__pg_submit *s,
		    jobq__pg_cb cb, void *arg);

/*
 * Submit many: the @n plain submits @s (no unique key, no dependency, no
 * owner: -EINVAL) in one statement, ids drawn in their order. Rows (o
 * bigint, id bigint, state smallint, notified bigint), ordered by o, the
 * 1-based index of the request in @s, one for each job made; a request
 * without a row is one whose (session, request id) made a job before:
 * send it again alone with jobq__pg_submit(), which returns that job.
 */
int jobq__pg_submit_many(struct jobq__pg *pg,
			 const struct jobq__pg_submit *const *s, uint32_t n,
			 jobq__pg_cb cb, void *arg);

/*
 * Reserve: up to @max jobs of the @ntypes types @types for worker @owner,
 * highest priority then oldest first, skipping jobs other hosts have
 * locked, paused queues and queues at their parallel limit; each becomes
 * RUNNING with a lease of its timeout and a fresh token. Rows: (id bigint,
 * token bigint, type text, queue text, args bytea, attempts int). An empty
 * result means no job now: wait for a notification on JOBQ__PG_CHANNEL.
 */
int jobq__pg_reserve(struct jobq__pg *pg, const char *owner,
		     const char *const *types, uint32_t ntypes, uint32_t max,
		     jobq__pg_cb cb, void *arg);

/* Complete: job @id succeeded with @result. Rows: one (state smallint)
 * when it was taken, none when @token is stale (the lease ended and the
 * job went to another worker, or it was cancelled): the result is
 * refused. Dependents with nothing left to wait for become ready. */
int jobq__pg_complete(struct jobq__pg *pg, uint64_t id, uint64_t token,
		      const uint8_t *result, size_t len, jobq__pg_cb cb,
		      void *arg);

/* Fail: job @id's run failed with @error. Retried after a backoff of
 * min(1 s * 2^(attempt-1), 300 s) with jitter while attempts remain
 * (state FAILED until then), else DEAD, which fails its dependents too.
 * Rows as complete. */
int jobq__pg_fail(struct jobq__pg *pg, uint64_t id, uint64_t token,
		  const char *error, jobq__pg_cb cb, void *arg);
/* The same, with @final: dead at once, whatever attempts remain (a worker
 * that says its job must not be retried). */
int jobq__pg_fail_final(struct jobq__pg *pg, uint64_t id, uint64_t token,
			const char *error, bool final, jobq__pg_cb cb,
			void *arg);

/* Cancel: a job not final becomes CANCELLED (a running one's token stops
 * matching, so its worker's result is refused); dependents go dead. Rows:
 * one (state smallint) with the state after, none when @id is unknown. */
int jobq__pg_cancel(struct jobq__pg *pg, uint64_t id, jobq__pg_cb cb,
		    void *arg);

/* Retry: job @id, when failed, dead or cancelled (@kick: only dead), runs
 * again from its first attempt, ready now. Rows: one (rerun bigint, old
 * smallint): rerun 1 when it was made ready, 0 when its state @old did not
 * allow it; none when @id is unknown. Its id is announced on
 * JOBQ__PG_DONE_CHANNEL too, so that every host reads its row again. */
int jobq__pg_retry(struct jobq__pg *pg, uint64_t id, bool kick, jobq__pg_cb cb,
		   void *arg);

/* Kick: every dead job runs again as retry does, but for one whose
 * --unique key a live job holds now (it stays dead). Rows: the ids made
 * ready (id bigint). */
int jobq__pg_kick_all(struct jobq__pg *pg, jobq__pg_cb cb, void *arg);

/* Progress of a running job, 0..1, while @token holds. Rows as complete. */
int jobq__pg_progress(struct jobq__pg *pg, uint64_t id, uint64_t token,
		      double progress, jobq__pg_cb cb, void *arg);

/* Extend the lease of a running job by its timeout from now, while @token
 * holds. Rows as complete. */
int jobq__pg_extend(struct jobq__pg *pg, uint64_t id, uint64_t token,
		    jobq__pg_cb cb, void *arg);

/* Expire: running jobs whose lease ended go back to ready (the attempt
 * counts; out of attempts they are dead). Rows: (id bigint) of each. Run
 * from the manager's timer; any host may run it, the rows are locked. */
int jobq__pg_expire(struct jobq__pg *pg, jobq__pg_cb cb, void *arg);

/* Release: waiting jobs whose dependencies all succeeded become ready,
 * those with one dead or cancelled become dead. Complete and fail do this
 * for the dependents they see; this sweep, run from the manager's timer
 * with expire, catches a dependent submitted while its dependency was
 * finishing (invisible to that statement's snapshot). Rows: (id bigint)
 * of each job moved. */
int jobq__pg_release(struct jobq__pg *pg, jobq__pg_cb cb, void *arg);

/* Next run: one row, the milliseconds until the earliest delayed or
 * retried job of the @ntypes types @types may run (<= 0: now; NULL: none
 * waits). A worker that found nothing sets its timer by it, since no
 * NOTIFY marks a delay running out. */
int jobq__pg_next_run(struct jobq__pg *pg, const char *const *types,
		      uint32_t ntypes, jobq__pg_cb cb, void *arg);

/* Retention: finished jobs older than @keep_ms are deleted, at most
 * @limit a statement. Command status: DELETE n. */
int jobq__pg_retain(struct jobq__pg *pg, int64_t keep_ms, uint32_t limit,
		    jobq__pg_cb cb, void *arg);

/* Queue settings: pause/resume (@paused) and the parallel limit (@parallel
 * jobs running at once across hosts; 0: none, -1: leave as it is). */
int jobq__pg_queue_set(struct jobq__pg *pg, const char *queue, int paused,
		       int32_t parallel, jobq__pg_cb cb, void *arg);

/* Show: one row (id, type, queue, state, priority, attempts, max_attempts,
 * args, result, error, progress, lease_owner, created_at, finished_at),
 * none when @id is unknown. */
int jobq__pg_show(struct jobq__pg *pg, uint64_t id, jobq__pg_cb cb, void *arg);

/* Unreserve: job @id, reserved under @token and never handed to a worker,
 * goes back to ready without the attempt counting. Rows: one (id) when it
 * was, none when @token is stale. */
int jobq__pg_unreserve(struct jobq__pg *pg, uint64_t id, uint64_t token,
		       jobq__pg_cb cb, void *arg);

/* Sync: the rows a manager mirrors into its own store: the @limit jobs
 * with the smallest ids above @after, then those of the @nids jobs @ids
 * not above it. Columns:
 * 0 id, 1 type, 2 queue, 3 state, 4 priority, 5 attempts, 6 max_attempts,
 * 7 args, 8 result, 9 error, 10 progress, 11 lease_token, 12 created,
 * 13 started, 14 finished, 15 run_at (times in microseconds since the
 * epoch, NULL when unset), 16 timeout_ms. */
int jobq__pg_sync(struct jobq__pg *pg, uint64_t after, const uint64_t *ids,
		  uint32_t nids, uint32_t limit, jobq__pg_cb cb, void *arg);

/*
 * Key/value (the table jobq_kv: key, type, value bytea, version). Each
 * change is one statement that also sends "VERSION KEY" on
 * JOBQ__PG_KV_CHANNEL ("0 KEY" for a delete) when it commits; versions
 * come from one sequence, so a larger one is a later change of the key.
 * A change names the client's @session and request id @rid (0: none):
 * one sent again finds the answer of the first (kept ten minutes by the
 * caller's jobq__pg_kv_forget()) and changes nothing; a copy that raced
 * the first fails with SQLSTATE 23505 and finds it when sent again.
 * Every change answers one row (..., again boolean, ...) or none:
 *   set    (version, again, _).
 *   incr   (n bigint, version, again, _): the new value, stored as decimal
 *          text of @type; a missing key counts from 0; -EPROTO with
 *          SQLSTATE 22P02 when the value is not an optional '-' and
 *          digits, 22003 when the sum or the value is out of bigint.
 *   cas    (version, again, _) when the value was exactly the @elen bytes
 *          at @expect (@expect NULL: when the key was absent) and @val is
 *          stored now; none otherwise.
 *   del    (version, again, _) when the key was there; none otherwise.
 * version is the row's after the change (a delete's: the row's before);
 * with again, the first change's. fetch: rows (key, type, value bytea,
 * version) of the @n keys that exist; load: of every key. forget: the
 * answers older than @keep_ms go.
 */
#define JOBQ__PG_KV_CHANNEL "jobq_kv"
int jobq__pg_kv_set(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, uint32_t type, const uint8_t *val,
		    size_t len, jobq__pg_cb cb, void *arg);
int jobq__pg_kv_incr(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		     const char *key, int64_t by, uint32_t type, jobq__pg_cb cb,
		     void *arg);
int jobq__pg_kv_cas(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, const uint8_t *expect, size_t elen,
		    uint32_t type, const uint8_t *val, size_t len,
		    jobq__pg_cb cb, void *arg);
int jobq__pg_kv_del(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, jobq__pg_cb cb, void *arg);
int jobq__pg_kv_forget(struct jobq__pg *pg, int64_t keep_ms, jobq__pg_cb cb,
		       void *arg);
int jobq__pg_kv_fetch(struct jobq__pg *pg, const char *const *keys, uint32_t n,
		      jobq__pg_cb cb, void *arg);
int jobq__pg_kv_load(struct jobq__pg *pg, jobq__pg_cb cb, void *arg);

/* ------------------------------------------------------------------------
 * pg_locks.c: named locks as session advisory locks of this connection
 * (the key and why the statements look as they do: pg_locks.c).
 */
/* Released units are announced here: payload the lock's name. */
#define JOBQ__PG_LOCK_CHANNEL "jobq_lock"

/* The advisory key of unit 0 of lock @name; unit u's is this XOR u. */
int64_t jobq__pg_lock_key(const char *name);

/* Try: take one unit of lock @name (of @units units) that this session
 * holds neither in @held (@nheld units the caller knows it holds) nor
 * otherwise, without waiting. One row (u int), the unit now held, or
 * none when every other unit is held by another session. */
int jobq__pg_lock_try(struct jobq__pg *pg, const char *name, uint32_t units,
		      const uint32_t *held, uint32_t nheld, jobq__pg_cb cb,
		      void *arg);

/* Unlock: let go of unit @unit of lock @name (nothing when this session
 * does not hold it) and NOTIFY JOBQ__PG_LOCK_CHANNEL with @name. One
 * row. */
int jobq__pg_lock_unlock(struct jobq__pg *pg, const char *name, uint32_t unit,
			 jobq__pg_cb cb, void *arg);

/*
 * Who holds and waits for each lock on each host (jobq_lock_holders;
 * pg_locks.c says why it looks as it does). @host is this manager's
 * "hostname:jobqd pid".
 *   publish  this host's rows of lock @name become the @n @rows; NOTIFYs
 *            JOBQ__PG_LOCK_LIST_CHANNEL with @host. One row.
 *   forget   deletes this host's rows of every session and the rows of
 *            every session gone (a manager that connected again
 *            publishes what it has after this). One row.
 *   list     the other hosts' live rows, one row a lock: (name text, kind
 *            smallint, lim int, held bigint, waiters bigint, pid int,
 *            host text, since bigint), pid, host and since being the
 *            earliest holder's (NULL when only waited for), since in
 *            microseconds since the epoch. Deletes the rows of sessions
 *            gone.
 */
#define JOBQ__PG_LOCK_LIST_CHANNEL "jobq_lock_list"
struct jobq__pg_lock_row {
	uint64_t client; /* jobq__client_ref() */
	uint64_t owner;
	int32_t pid;
	bool waiting;	   /* a waiter, else a holder */
	uint32_t units;	   /* held (RLock: depth); 0 for a waiter */
	uint64_t since_ns; /* CLOCK_REALTIME */
};
int jobq__pg_lock_publish(struct jobq__pg *pg, const char *host,
			  const char *name, uint32_t kind, uint32_t limit,
			  const struct jobq__pg_lock_row *rows, uint32_t n,
			  jobq__pg_cb cb, void *arg);
int jobq__pg_lock_forget(struct jobq__pg *pg, const char *host, jobq__pg_cb cb,
			 void *arg);
int jobq__pg_lock_list(struct jobq__pg *pg, const char *host, jobq__pg_cb cb,
		       void *arg);
/* Cycle: one row (boolean), whether the published waits of @owner of
 * client @client on @host close a cycle of waits across hosts. */
int jobq__pg_lock_cycle(struct jobq__pg *pg, const char *host, uint64_t client,
			uint64_t owner, jobq__pg_cb cb, void *arg);

/* Small helpers for callbacks: a column of row @row as an integer (0 for
 * NULL), and whether the answer is a SQL error with SQLSTATE @state. */
int64_t jobq__pg_int(const PGresult *res, int row, int col);
bool jobq__pg_sqlstate(const PGresult *res, const char *state);
/* A bigint[] parameter in text form, "{1,2,NULL}": the @n values @v, NULL
 * where @null (may be NULL) says so. malloc'd; NULL when out of memory. */
char *jobq__pg_int_array(const int64_t *v, const bool *null, uint32_t n);

/* ------------------------------------------------------------------------
 * Between pg_mgr.c (the connection) and jobs_pg.c (the job handlers).
 */
/* The manager's connection; NULL without --backend. */
struct jobq__pg *jobq__backend_pg(void);
/* A notification on JOBQ__PG_CHANNEL or JOBQ__PG_DONE_CHANNEL. */
void jobq__jobs_pg_notify(const char *channel, const char *payload);
/* Every second, and when the connection comes up: the mirrors are
 * refreshed and parked reservers ask again. */
void jobq__jobs_pg_tick(void);
/* At every turn, before the connection is flushed: the submits the turn
 * gathered leave, in one statement. */
void jobq__jobs_pg_turn(void);

/* Between pg_mgr.c and kv_pg.c (the key/value store). A notification on
 * JOBQ__PG_KV_CHANNEL; at every turn, before the connection is flushed
 * (true when a fetch was sent); the whole table read again (the
 * connection came back); and read at start, blocking at most @timeout_ms
 * (0, or -errno with a message in @err). */
void jobq__kv_pg_notify(const char *payload);
bool jobq__kv_pg_turn(void);
void jobq__kv_pg_load(void);
int jobq__kv_pg_start(struct jobq__pg *pg, int timeout_ms, char *err,
		      size_t errlen);

#endif
