/* SPDX-License-Identifier: MIT */
/*
 * pg_mgr.c - jobqd --backend: the manager's one PostgreSQL connection
 * (pg.c) inside its io_uring loop, the schema check at start, --migrate,
 * the first read of the key/value table, and the maintenance every manager
 * runs from its timer (lease expiry, the release of --after dependents,
 * retention).
 *
 * How the loop drives the connection: at the end of every turn
 * jobq__backend_turn() lets pg.c send what the turn queued (all of it
 * into the pipeline, no query waiting for another) and states what pg.c waits
 * for as a one-shot io_uring poll on its socket (loop.c's UD_WATCH); the poll's
 * completion comes back as jobq__backend_event(). A poll is tagged, and
 * re-armed under a new tag whenever pg.c's socket (its generation) or
 * the events it wants change, the old one being cancelled first: io_uring
 * holds a reference to the file it polls, so a poll left on a socket pg.c
 * closed would keep that connection open. Time-driven work (reconnect
 * backoff, maintenance) runs from the loop's JOBQ__TIMER_BACKEND.
 *
 * The job handlers go through the backend (jobs_pg.c): jobs are shared
 * by every host's manager; so is the key/value store (kv_pg.c), of which
 * each host keeps a copy that notifications keep fresh, and so are locks,
 * as advisory locks of this connection (locks.c, pg_locks.c), and so
 * are queues of objects (queues_pg.c: each host's queue records hold only
 * the objects fetched for its getters), which the log line at start
 * says.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobqd.h"
#include "pg.h"

/* Maintenance: leases and dependents every second, retention every
 * minute, each at most once in flight. */
#define MAINT_NS  (1 * JOBQ__NSEC_PER_SEC)
#define RETAIN_NS (60 * JOBQ__NSEC_PER_SEC)
/* How long a start waits for PostgreSQL before it gives up. */
#define START_TIMEOUT_MS 30000

static struct {
	struct jobq__pg *pg;
	bool armed;	    /* a poll is in flight under tag */
	uint32_t tag;	    /* of the newest poll */
	uint32_t armed_gen; /* pg.c's socket generation it was armed for */
	short armed_ev;
	uint64_t maint_at, retain_at;
	bool maint_busy, retain_busy;
	char why[256]; /* the last reason the connection went down */
} b;

static void on_state(void *ctx, bool up, const char *why)
{
	if (up) {
		jobq__log(0, "backend: connected to PostgreSQL");
		/* What changed while it was down is read now. */
		if (jobq__m.turn) {
			jobq__jobs_pg_tick();
			jobq__locks_pg_state(true);
			jobq__kv_pg_load();
			jobq__queues_pg_up();
		}
		return;
	}
	snprintf(b.why, sizeof(b.why), "%s", why ? why : "closed");
	if (jobq__m.turn) {
		jobq__log(JOBQ__LOG_WARN,
			  "backend: connection lost (%s); reconnecting", b.why);
		jobq__locks_pg_state(false);
	}
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	if (!strcmp(channel, JOBQ__PG_LOCK_CHANNEL)) {
		if (jobq__m.turn)
			jobq__locks_pg_notify(payload);
		return;
	}
	if (!strcmp(channel, JOBQ__PG_LOCK_LIST_CHANNEL)) {
		if (jobq__m.turn)
			jobq__locks_pg_listed(payload);
		return;
	}
	if (!strcmp(channel, JOBQ__PG_KV_CHANNEL)) {
		if (jobq__m.turn)
			jobq__kv_pg_notify(payload);
		return;
	}
	if (!strcmp(channel, JOBQ__PG_QUEUE_CHANNEL)) {
		if (jobq__m.turn)
			jobq__queues_pg_notify(payload);
		return;
	}
	if (!strcmp(channel, JOBQ__PG_QEVENT_CHANNEL)) {
		if (jobq__m.turn)
			jobq__queues_pg_event(payload);
		return;
	}
	if (!strcmp(channel, JOBQ__PG_DONE_CHANNEL))
		jobq__log(JOBQ__LOG_DEBUG, "backend: job %s is final", payload);
	else
		jobq__log(JOBQ__LOG_DEBUG, "backend: work ready (%s)",
			  *payload ? payload : "any type");
	if (jobq__m.turn)
		jobq__jobs_pg_notify(channel, payload);
}

static bool is_up(void *arg)
{
	return jobq__pg_up(b.pg);
}

/* Connects (at most START_TIMEOUT_MS) and brings the schema as @mode
 * says. 0, or -errno with a message in @err. */
static int connect_and_check(const char *url, int mode, int *found, char *err,
			     size_t errlen)
{
	static const char *const channels[] = {
	    JOBQ__PG_CHANNEL,	       JOBQ__PG_DONE_CHANNEL,
	    JOBQ__PG_LOCK_CHANNEL,     JOBQ__PG_KV_CHANNEL,
	    JOBQ__PG_QUEUE_CHANNEL,    JOBQ__PG_QEVENT_CHANNEL,
	    JOBQ__PG_LOCK_LIST_CHANNEL};
	struct jobq__pg_hooks h = {on_notify, on_state, NULL};
	char m[512];
	int ret;

	ret = jobq__pg_open(&b.pg, url, channels,
			    (int)(sizeof(channels) / sizeof(channels[0])), &h,
			    m, sizeof(m));
	if (ret) {
		snprintf(err, errlen, "--backend: %s", m);
		return ret;
	}
	if (jobq__pg_run(b.pg, is_up, NULL, START_TIMEOUT_MS)) {
		snprintf(err, errlen,
			 "--backend: cannot reach PostgreSQL within %d s: %s",
			 START_TIMEOUT_MS / 1000,
			 b.why[0] ? b.why : "no answer");
		return -ETIMEDOUT;
	}
	ret =
	    jobq__pg_schema(b.pg, mode, START_TIMEOUT_MS, found, m, sizeof(m));
	if (ret)
		snprintf(err, errlen, "--backend: %s", m);
	return ret;
}

int jobq__backend_migrate(const char *url)
{
	char err[768];
	int found, ret;

	ret =
	    connect_and_check(url, JOBQ__PG_MIGRATE, &found, err, sizeof(err));
	jobq__pg_close(b.pg);
	b.pg = NULL;
	if (ret) {
		fprintf(stderr, "jobqd: %s\n", err);
		return 1;
	}
	if (found == JOBQ__PG_SCHEMA_VERSION)
		printf("jobqd: the jobq schema is at version %d already\n",
		       found);
	else if (!found)
		printf("jobqd: created the jobq schema, version %d\n",
		       JOBQ__PG_SCHEMA_VERSION);
	else
		printf("jobqd: migrated the jobq schema from version %d to "
		       "%d\n",
		       found, JOBQ__PG_SCHEMA_VERSION);
	return 0;
}

int jobq__backend_open(char *err, size_t errlen)
{
	const char *url = jobq__m.o.backend;
	int found, ret;

	if (!url)
		return 0;
	ret = connect_and_check(url, JOBQ__PG_CREATE, &found, err, errlen);
	/* Before any client reads a key: the store becomes the table. */
	if (!ret)
		ret = jobq__kv_pg_start(b.pg, START_TIMEOUT_MS, err, errlen);
	if (ret) {
		jobq__pg_close(b.pg);
		b.pg = NULL;
		return ret;
	}
	if (!found)
		jobq__log(0, "backend: created the jobq schema, version %d",
			  JOBQ__PG_SCHEMA_VERSION);
	/* A turn's statements commit together: one WAL flush for a burst of
	 * submits or results instead of one each. */
	jobq__pg_batching(b.pg, true);
	jobq__log(0,
		  "backend: schema version %d; jobs, queues of objects, "
		  "keys and locks are shared with every host on this "
		  "database",
		  JOBQ__PG_SCHEMA_VERSION);
	b.maint_at = jobq__now_ns() + MAINT_NS;
	b.retain_at = jobq__now_ns() + RETAIN_NS;
	return 0;
}

struct jobq__pg *jobq__backend_pg(void)
{
	return b.pg;
}

void jobq__backend_close(void)
{
	if (!b.pg)
		return;
	if (b.armed)
		jobq__loop_unwatch_fd(b.tag);
	b.armed = false;
	jobq__pg_close(b.pg);
	b.pg = NULL;
}

static void maint_done(void *arg, int err, const PGresult *res)
{
	bool *busy = arg;

	*busy = false;
	if (err == -EPROTO)
		jobq__log(JOBQ__LOG_WARN, "backend: maintenance: %s",
			  PQresultErrorMessage(res));
	else if (!err && res && PQntuples(res) > 0)
		jobq__log(JOBQ__LOG_DEBUG,
			  "backend: %d jobs moved by lease expiry or their "
			  "dependencies",
			  PQntuples(res));
}

/* The maintenance statements that are due. Any host may run them at
 * any time: each locks the rows it moves (SKIP LOCKED) and is safe to
 * run twice. */
static void maintain(uint64_t now)
{
	bool up = jobq__pg_up(b.pg);

	if (now >= b.maint_at) {
		b.maint_at = now + MAINT_NS;
		if (up) {
			jobq__jobs_pg_tick();
			jobq__locks_pg_tick();
		}
		jobq__queues_pg_tick();
		if (up && !b.maint_busy &&
		    !jobq__pg_expire(b.pg, maint_done, &b.maint_busy)) {
			b.maint_busy = true;
			/* Answered in order: the release's answer comes last
			 * and clears the flag. */
			if (jobq__pg_release(b.pg, maint_done, &b.maint_busy))
				b.maint_busy = false;
		}
	}
	if (now >= b.retain_at) {
		b.retain_at = now + RETAIN_NS;
		if (up && !b.retain_busy &&
		    !jobq__pg_retain(b.pg,
				     (int64_t)(jobq__m.o.keep_ns / 1000000),
				     10000, maint_done, &b.retain_busy))
			b.retain_busy = true;
	}
}

void jobq__backend_timer(void)
{
	if (!b.pg)
		return;
	jobq__pg_tick(b.pg);
	maintain(jobq__now_ns());
}

void jobq__backend_event(uint32_t tag, int res)
{
	if (!b.pg || tag != b.tag || !b.armed)
		return; /* a poll cancelled, or its connection is gone */
	b.armed = false;
	if (res > 0)
		jobq__pg_ready(b.pg, (short)res);
}

void jobq__backend_turn(void)
{
	uint64_t dl, next;
	uint32_t gen;
	short ev;
	int fd;

	if (!b.pg)
		return;
	jobq__locks_pg_turn();
	jobq__jobs_pg_turn();
	jobq__kv_pg_turn();
	jobq__queues_pg_turn();
	jobq__pg_ready(b.pg, 0);
	/* Keys notified in what that flush read are fetched now too. */
	if (jobq__kv_pg_turn())
		jobq__pg_ready(b.pg, 0);
	ev = jobq__pg_events(b.pg, &fd, &dl, &gen);
	if (b.armed && (gen != b.armed_gen || ev != b.armed_ev || fd < 0)) {
		jobq__loop_unwatch_fd(b.tag);
		b.armed = false;
	}
	if (!b.armed && fd >= 0 && ev) {
		b.tag++;
		jobq__loop_watch_fd(fd, ev, b.tag);
		b.armed = true;
		b.armed_gen = gen;
		b.armed_ev = ev;
	}
	next = b.maint_at < b.retain_at ? b.maint_at : b.retain_at;
	if (dl && dl < next)
		next = dl;
	jobq__timer_arm(JOBQ__TIMER_BACKEND, next);
}
