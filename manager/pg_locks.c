/* SPDX-License-Identifier: MIT */
/*
 * pg_locks.c - the named locks of jobqd --backend as SQL: PostgreSQL
 * session advisory locks, held by the manager's connection for its
 * clients (locks.c keeps who holds what on this host; pg.h has each
 * function's contract).
 *
 * The key. A lock's unit u (0 for a Lock or RLock, 0..value-1 for a
 * Semaphore) is the advisory lock on the 64-bit key
 *
 *	jobq__pg_lock_key(name) XOR u
 *
 * where jobq__pg_lock_key() is FNV-1a 64 over "jobq-lock:" and the name's
 * bytes, computed here, so that the key does not depend on a PostgreSQL
 * internal hash that may change between major versions. Two names (or
 * units of two semaphores) whose keys collide would exclude each other
 * (never break exclusion): with 64-bit keys that takes about 2^32 names
 * to become likely. The keys share the database's advisory lock space
 * with other programs on it, and with the migrations' transaction lock
 * (pg_schema.c), which a collision would only delay.
 *
 * Never the blocking form: pg_advisory_lock() would stop the connection's
 * whole pipeline (and every job statement behind it) until another host
 * let go. pg_try_advisory_lock() answers at once; a unit held elsewhere
 * is tried again when that host's release NOTIFYs JOBQ__PG_LOCK_CHANNEL
 * or by locks.c's poll.
 *
 * Session advisory locks are not transactional: one taken in a
 * transaction that rolls back stays taken. pg.c's batching rolls back a
 * batch when one of its statements fails and sends the others again, each
 * alone, so a try may run twice on one session. Both statements are
 * therefore written against what the session holds (pg_locks), not what
 * they are told: a try takes a unit the session holds but the manager
 * does not know of (a try that ran before) instead of taking a new one,
 * and an unlock of a unit the session does not hold does nothing. Thus
 * the session holds each key at most once, and one unlock lets it go.
 * An unlock run twice could still let go of a unit that a try took
 * between the two runs: locks.c sends no try for a lock while an unlock
 * of it is unanswered (its answer comes after the last run).
 *
 * Who holds and waits, for `jobq locks` on every host (migration 6). The
 * advisory locks say only which session holds which key; a listing needs
 * names, client pids, depths and waiters, which only each host's manager
 * knows. So each manager publishes them to jobq_lock_holders, one row per
 * (host, lock name, client, owner, holding or waiting), host being
 * "hostname:jobqd pid". A publish replaces all of one host's rows of one
 * lock in one statement (delete, then insert what locks.c has now), so
 * that a publish run twice by the batching, or two publishes whose order
 * does not matter, leave the latest state; locks.c sends one per changed
 * lock per loop turn, a release's publish being an empty one. Each
 * publish NOTIFYs JOBQ__PG_LOCK_LIST_CHANNEL, and every other manager
 * reads the table again (one statement, never waited for) into its lock
 * records, where `jobq locks` reads it without a round trip.
 *
 * A host whose manager died cannot delete its rows. Each row names the
 * PostgreSQL session (backend pid and start) that wrote it, and a row
 * whose session is no longer in pg_stat_activity is ignored by every
 * read and deleted by the next one; a manager's rows of an older session
 * of its own are replaced when it reconnects. pg_stat_activity hides
 * backend_start of sessions of other roles: for those the pid alone
 * decides. A death sends no NOTIFY, so a manager that mirrors rows of
 * other hosts reads again every second (locks.c) until it mirrors none.
 *
 * Deadlocks across hosts. The same rows are the wait-for graph of every
 * host: a waiter row (host, client, owner) points at a lock's name, whose
 * holder rows point at their owners, who may wait in turn. A wait parked
 * here is published, and then sql_cycle walks that graph from it (one
 * recursive statement); when the walk comes back to the waiter, locks.c
 * fails the wait with -EDEADLK as a local cycle would have. What it does
 * not see it cannot refuse: rows not yet committed (a grant or wait on
 * another host in the same few milliseconds). Two hosts closing one cycle
 * at once each publish before they walk, on one connection each, so the
 * later walk sees both waits: at least one of them is refused, and both
 * may be. Rows lag the other way too: a cycle that another host is just
 * breaking (its release not yet published) is still refused. A refusal
 * comes a round trip after the wait was parked, not at once as a local
 * one does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* The session holds bigint advisory key k: pg_locks shows such a key
 * with its high half in classid and its low half in objid, objsubid 1. */
#define MINE(k)                                                                \
	"EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' "      \
	"AND l.pid = pg_backend_pid() AND l.objsubid = 1 AND l.granted "       \
	"AND ((l.classid::bigint << 32) | l.objid::bigint) = " k ")"

/*
 * $1 the name's key, $2 the number of units, $3 the units the manager
 * holds. The units are tried in order and the first taken ends the scan
 * (LIMIT 1 stops pulling rows, and CASE evaluates its branches in order,
 * so no unit past it, and none known, is tried).
 */
static const char sql_try[] =
    "SELECT u FROM generate_series(0, $2::int - 1) AS u WHERE CASE "
    "WHEN u = ANY ($3::int[]) THEN false "
    "WHEN " MINE("($1::bigint # u)") " THEN true "
				     "ELSE pg_try_advisory_lock($1::bigint # "
				     "u) END LIMIT 1";

/* $1 the unit's key, $2 the lock's name. The NOTIFY is sent whether or
 * not the unlock ran here: when it ran in a batch that rolled back, the
 * NOTIFY went with that batch, and this second run is the one that
 * commits it. */
static const char sql_unlock[] = "SELECT CASE WHEN " MINE(
    "$1::bigint") " THEN "
		  "pg_advisory_unlock($1::bigint) ELSE false END, "
		  "pg_notify('" JOBQ__PG_LOCK_CHANNEL "', $2)";

int64_t jobq__pg_lock_key(const char *name)
{
	static const char prefix[] = "jobq-lock:";
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = prefix; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return (int64_t)h;
}

int jobq__pg_lock_try(struct jobq__pg *pg, const char *name, uint32_t units,
		      const uint32_t *held, uint32_t nheld, jobq__pg_cb cb,
		      void *arg)
{
	char k[24], n[12], *list;
	size_t len = 3 + (size_t)nheld * 11, off = 0;
	int ret;

	list = malloc(len);
	if (!list)
		return -ENOMEM;
	list[off++] = '{';
	for (uint32_t i = 0; i < nheld; i++)
		off += (size_t)snprintf(list + off, len - off, "%s%" PRIu32,
					i ? "," : "", held[i]);
	snprintf(list + off, len - off, "}");
	snprintf(k, sizeof(k), "%" PRId64, jobq__pg_lock_key(name));
	snprintf(n, sizeof(n), "%" PRIu32, units);
	{
		const char *v[3] = {k, n, list};

		ret = jobq__pg_query(pg, sql_try, 3, v, cb, arg);
	}
	free(list);
	return ret;
}

int jobq__pg_lock_unlock(struct jobq__pg *pg, const char *name, uint32_t unit,
			 jobq__pg_cb cb, void *arg)
{
	char k[24];
	const char *v[2] = {k, name};

	snprintf(k, sizeof(k), "%" PRId64,
		 jobq__pg_lock_key(name) ^ (int64_t)unit);
	return jobq__pg_query(pg, sql_unlock, 2, v, cb, arg);
}

/* The rows of live sessions: the session that wrote row h is still
 * connected. */
#define LIVE(h)                                                                \
	"EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = " h            \
	".session AND (a.backend_start IS NULL OR " h ".session_start IS "     \
	"NULL OR a.backend_start = " h ".session_start))"

/* $1 host, $2 name, $3 kind, $4 limit, then the rows as arrays: $5
 * client, $6 owner, $7 pid, $8 waiting, $9 units, $10 since (us since
 * the epoch). */
static const char sql_publish[] =
    "WITH d AS (DELETE FROM jobq_lock_holders WHERE host = $1 AND name = "
    "$2), i AS (INSERT INTO jobq_lock_holders (host, session, "
    "session_start, name, kind, lim, client, owner, pid, waiting, units, "
    "since) SELECT $1, pg_backend_pid(), (SELECT backend_start FROM "
    "pg_stat_activity WHERE pid = pg_backend_pid()), $2, $3::smallint, "
    "$4::int, r.c, r.o, r.p, r.w, r.u, to_timestamp(r.s / 1e6) FROM "
    "unnest($5::bigint[], $6::bigint[], $7::int[], $8::boolean[], "
    "$9::int[], $10::bigint[]) AS r (c, o, p, w, u, s)) "
    "SELECT pg_notify('" JOBQ__PG_LOCK_LIST_CHANNEL "', $1)";

/* $1 host: its rows of any session, and every row of a session gone. */
static const char sql_forget[] =
    "WITH d AS (DELETE FROM jobq_lock_holders h WHERE h.host = $1 OR NOT " LIVE(
	"h") " RETURNING 1) SELECT pg_notify('" JOBQ__PG_LOCK_LIST_CHANNEL
	     "', $1) FROM (SELECT count(*) FROM d) AS n";

/* $1 host: the other hosts' rows, one a lock. Rows of sessions gone are
 * left out, and deleted. */
static const char sql_list[] =
    "WITH gone AS (DELETE FROM jobq_lock_holders h WHERE NOT " LIVE(
	"h") ") SELECT h.name, min(h.kind), max(h.lim), coalesce(sum(h.units) "
	     "FILTER (WHERE NOT h.waiting), 0), count(*) FILTER (WHERE "
	     "h.waiting), (array_agg(h.pid ORDER BY h.since, h.pid) FILTER "
	     "(WHERE NOT h.waiting))[1], (array_agg(h.host ORDER BY h.since, "
	     "h.pid) FILTER (WHERE NOT h.waiting))[1], (extract(epoch FROM "
	     "min(h.since) FILTER (WHERE NOT h.waiting)) * 1000000)::bigint "
	     "FROM jobq_lock_holders h WHERE h.host <> $1 AND " LIVE(
		 "h") " GROUP BY h.name";

/* A PostgreSQL array literal being built ("{1,2}"), for a parameter;
 * err is set once a step ran out of memory. */
struct arr {
	char *p;
	size_t len, cap;
	int err;
};

/* Appends element @v (grown as needed): '{' before the first, ','
 * before the others. */
static void arr_add(struct arr *a, const char *v)
{
	size_t need = a->len + strlen(v) + 3;

	if (a->err)
		return;
	if (need > a->cap) {
		size_t ncap = need * 2 + 32;
		char *n = realloc(a->p, ncap);

		if (!n) {
			a->err = -ENOMEM;
			return;
		}
		a->p = n;
		a->cap = ncap;
	}
	a->len += (size_t)snprintf(a->p + a->len, a->cap - a->len, "%c%s",
				   a->len ? ',' : '{', v);
}

/* Closes *@a ("{}" when empty); 0 or -ENOMEM. */
static int arr_end(struct arr *a)
{
	if (!a->err && !a->len)
		arr_add(a, "");
	if (a->err)
		return a->err;
	if (a->len + 2 > a->cap) {
		char *n = realloc(a->p, a->len + 2);

		if (!n)
			return -ENOMEM;
		a->p = n;
		a->cap = a->len + 2;
	}
	a->p[a->len++] = '}';
	a->p[a->len] = '\0';
	return 0;
}

int jobq__pg_lock_publish(struct jobq__pg *pg, const char *host,
			  const char *name, uint32_t kind, uint32_t limit,
			  const struct jobq__pg_lock_row *rows, uint32_t n,
			  jobq__pg_cb cb, void *arg)
{
	struct arr a[6] = {0};
	char k[12], l[12], v[24];
	int ret = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct jobq__pg_lock_row *r = &rows[i];

		snprintf(v, sizeof(v), "%" PRId64, (int64_t)r->client);
		arr_add(&a[0], v);
		snprintf(v, sizeof(v), "%" PRId64, (int64_t)r->owner);
		arr_add(&a[1], v);
		snprintf(v, sizeof(v), "%d", (int)r->pid);
		arr_add(&a[2], v);
		arr_add(&a[3], r->waiting ? "t" : "f");
		snprintf(v, sizeof(v), "%" PRIu32, r->units);
		arr_add(&a[4], v);
		snprintf(v, sizeof(v), "%" PRIu64, r->since_ns / 1000);
		arr_add(&a[5], v);
	}
	for (int i = 0; i < 6; i++)
		if (!ret)
			ret = arr_end(&a[i]);
	snprintf(k, sizeof(k), "%" PRIu32, kind);
	snprintf(l, sizeof(l), "%" PRIu32, limit);
	if (!ret) {
		const char *vals[10] = {host,	name,	k,	l,	a[0].p,
					a[1].p, a[2].p, a[3].p, a[4].p, a[5].p};

		ret = jobq__pg_query(pg, sql_publish, 10, vals, cb, arg);
	}
	for (int i = 0; i < 6; i++)
		free(a[i].p);
	return ret;
}

int jobq__pg_lock_forget(struct jobq__pg *pg, const char *host, jobq__pg_cb cb,
			 void *arg)
{
	const char *v[1] = {host};

	return jobq__pg_query(pg, sql_forget, 1, v, cb, arg);
}

int jobq__pg_lock_list(struct jobq__pg *pg, const char *host, jobq__pg_cb cb,
		       void *arg)
{
	const char *v[1] = {host};

	return jobq__pg_query(pg, sql_list, 1, v, cb, arg);
}

/* $1 host, $2 client, $3 owner: whether following the locks that owner
 * waits for to their holders, and what those wait for, comes back to it.
 * Its own holding of a lock it waits for (more units of a semaphore) is
 * not an edge. */
static const char sql_cycle[] =
    "WITH RECURSIVE live AS (SELECT h.host, h.client, h.owner, h.name, "
    "h.waiting FROM jobq_lock_holders h WHERE " LIVE(
	"h") "), walk (host, client, owner) AS (SELECT hd.host, hd.client, "
	     "hd.owner FROM live w JOIN live hd ON hd.name = w.name AND NOT "
	     "hd.waiting WHERE w.waiting AND w.host = $1 AND w.client = "
	     "$2::bigint AND w.owner = $3::bigint AND NOT (hd.host = $1 AND "
	     "hd.client = $2::bigint AND hd.owner = $3::bigint) UNION SELECT "
	     "hd.host, hd.client, hd.owner FROM walk k JOIN live w ON "
	     "w.waiting AND w.host = k.host AND w.client = k.client AND "
	     "w.owner = k.owner JOIN live hd ON hd.name = w.name AND NOT "
	     "hd.waiting) SELECT EXISTS (SELECT 1 FROM walk WHERE host = $1 "
	     "AND client = $2::bigint AND owner = $3::bigint)";

int jobq__pg_lock_cycle(struct jobq__pg *pg, const char *host, uint64_t client,
			uint64_t owner, jobq__pg_cb cb, void *arg)
{
	char c[24], o[24];
	const char *v[3] = {host, c, o};

	snprintf(c, sizeof(c), "%" PRId64, (int64_t)client);
	snprintf(o, sizeof(o), "%" PRId64, (int64_t)owner);
	return jobq__pg_query(pg, sql_cycle, 3, v, cb, arg);
}
