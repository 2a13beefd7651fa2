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
