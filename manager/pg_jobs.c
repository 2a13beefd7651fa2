/* SPDX-License-Identifier: MIT */
/*
 * pg_jobs.c - the job operations of jobqd --backend as SQL: one statement
 * each, so each is one transaction through the pipeline (pg.c) and its
 * callback runs once it committed. pg.h has every function's contract;
 * this file says why the statements are shaped as they are.
 *
 * Three things make them exact under concurrency, with any number of
 * managers on one database, at READ COMMITTED:
 *
 *  - Hand-out is SELECT ... FOR UPDATE SKIP LOCKED: rows another reserve
 *    holds are skipped, not waited for, so no job is handed out twice and
 *    reservers do not queue behind each other.
 *  - Every transition out of a state checks that state, and the lease
 *    token, in the UPDATE's WHERE. An UPDATE that waited for a row lock
 *    re-checks its WHERE against the row as committed (PostgreSQL's
 *    EvalPlanQual), so a stale token or a job already cancelled matches
 *    nothing, and the caller sees no row: refused.
 *  - Counters that limit (a queue's running slots) live in one row that
 *    is changed by UPDATE with the limit in the same expression, for the
 *    same reason; a count(*) over jobs would read the statement's snapshot
 *    and let two hosts both take the last slot.
 *
 * The unique key is exact through the partial unique index: INSERT ...
 * ON CONFLICT DO UPDATE (not DO NOTHING) returns the row that holds the
 * key even when it was committed after this statement's snapshot, which a
 * second SELECT would not see.
 *
 * NOTIFY (pg_notify) is issued inside the statement that made jobs
 * runnable, so it is delivered exactly when that commits, and never for
 * work that rolled back. Its payload is the job's type, or '' for "look
 * again" (a slot was freed, a queue resumed). Jobs that became final are
 * announced the same way on JOBQ__PG_DONE_CHANNEL, for `jobq wait` on
 * any host. A NOTIFY CTE is a SELECT, run only when referenced, hence
 * the counts of wake and fin in each final SELECT.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* ------------------------------------------------------------------------
 * Pieces shared by the statements. @src names a CTE whose rows are jobs
 * that just left a state, with the columns id, queue, slot (it held a
 * queue slot), state (the new one) and type.
 */

/* Gives the queue slots of the runs in @src back. */
#define FREE_SLOTS(src)                                                        \
	" freed AS (UPDATE jobq_queue_settings s"                              \
	" SET running = greatest(s.running - x.n, 0)"                          \
	" FROM (SELECT queue, count(*) AS n FROM " src " WHERE slot"           \
	" GROUP BY queue) x WHERE s.queue = x.queue RETURNING 1),"

/* Jobs waiting (directly or through others) on a job of @src that became
 * dead or cancelled are dead: they can never run. */
#define KILL_DEPENDENTS(src)                                                   \
	" down (id, root) AS (SELECT d.job, x.id FROM jobq_deps d JOIN " src   \
	" x ON d.dep = x.id WHERE x.state IN (7, 8)"                           \
	" UNION SELECT d.job, down.root FROM jobq_deps d"                      \
	" JOIN down ON d.dep = down.id),"                                      \
	" killed AS (UPDATE jobq_jobs w SET state = 7,"                        \
	" error = 'dependency ' || down.root || ' failed',"                    \
	" finished_at = now() FROM down WHERE w.id = down.id"                  \
	" AND w.state = 1 RETURNING w.id),"

/* Wakes the workers of other hosts: one notification per type made
 * runnable (@types: a CTE with a column type), one '' when slots came
 * back. */
#define WAKE(types)                                                            \
	" wake AS (SELECT pg_notify('" JOBQ__PG_CHANNEL "', t)"                \
	" FROM (SELECT DISTINCT type AS t FROM " types                         \
	" UNION SELECT '' FROM freed) z) "

/* Tells every host's waiters that the jobs of @ids (a FROM item with a
 * column id) are final: one notification a job, its id as text. */
#define FINISHED(ids)                                                          \
	" fin AS (SELECT pg_notify('" JOBQ__PG_DONE_CHANNEL "', id::text)"     \
	" FROM " ids "),"

/* Backoff before retry n (attempts so far): min(1 s * 2^(n-1), 300 s),
 * times a jitter from [0.5, 1.5), as the local manager (jobs.c). */
#define BACKOFF                                                                \
	"least(1000 * power(2, greatest(attempts - 1, 0)), 300000)"            \
	" * (0.5 + random()) * interval '1 millisecond'"

/* ------------------------------------------------------------------------
 * Parameters in text form.
 */
static char *hex_bytea(const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char *s = malloc(2 * len + 3), *o = s;

	if (!s)
		return NULL;
	*o++ = '\\';
	*o++ = 'x';
	for (size_t i = 0; i < len; i++) {
		*o++ = hex[p[i] >> 4];
		*o++ = hex[p[i] & 15];
	}
	*o = '\0';
	return s;
}

/* A text[] literal: every element double-quoted, " and \ escaped. */
static char *text_array(const char *const *v, uint32_t n)
{
	size_t len = 3;
	char *s, *o;

	for (uint32_t i = 0; i < n; i++)
		len += 2 * strlen(v[i]) + 3;
	s = malloc(len);
	if (!s)
		return NULL;
	o = s;
	*o++ = '{';
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			*o++ = ',';
		*o++ = '"';
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*o++ = '\\';
			*o++ = *c;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return s;
}

#define NUM(buf, v) (snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)(v)), buf)

/* ------------------------------------------------------------------------
 * Submit.
 */
static const char sql_submit[] =
    /* The job this request made already, when it is a resend whose first
     * answer was lost. Two copies of one request racing (the first still
     * running on a dead manager's connection) both miss it: the loser
     * fails on jobq_jobs_request and is sent again, and then finds it. */
    "WITH prev AS (SELECT id, state,"
    " CASE WHEN state = 4 AND lease_owner = $12 THEN lease_token END AS token"
    " FROM jobq_jobs WHERE req_session = $10 AND req_id = $11),"
    " deps AS (SELECT id, state FROM jobq_jobs"
    " WHERE id = ANY ($9::bigint[]) FOR SHARE),"
    /* FOR SHARE: a dependency finishing now waits for this commit, or
     * this statement sees it finished (a locking read sees the newest
     * row). jobq__pg_release() covers what its statement then misses. */
    " chk AS (SELECT count(*) FILTER (WHERE state <> 5) AS pending,"
    " min(id) FILTER (WHERE state IN (7, 8)) AS failed,"
    " count(*) AS found FROM deps),"
    /* The hand-out to a worker of the submitting host ($12 its owner,
     * $13 its types), when a reserve of that worker now would take this
     * job: no dependency or delay, a queue neither paused nor limited
     * (its slot counter is left to reserve), and no runnable job of the
     * worker's types that a reserve would take first (priority as high
     * or higher: among equals the older goes first). Jobs of paused
     * queues count too, which only costs the hand-out. */
    " sc AS (SELECT $12::text IS NOT NULL AND $5::float8 <= 0"
    " AND cardinality($9::bigint[]) = 0"
    " AND NOT EXISTS (SELECT 1 FROM jobq_queue_settings s"
    " WHERE s.queue = $2 AND (s.paused OR s.parallel > 0))"
    " AND NOT EXISTS (SELECT 1 FROM unnest($13::text[]) t (type)"
    " CROSS JOIN LATERAL (SELECT 1 FROM jobq_jobs j WHERE j.type = t.type"
    " AND j.state IN (2, 3, 6) AND j.run_at <= now()"
    " AND j.priority >= $4 LIMIT 1) x) AS ok),"
    " ins AS (INSERT INTO jobq_jobs (type, queue, args, priority, run_at,"
    " max_attempts, timeout_ms, unique_key, state, error, finished_at,"
    " req_session, req_id, attempts, lease_owner, lease_token,"
    " lease_until, started_at)"
    " SELECT $1, $2, $3::bytea, $4, now() + $5 * interval '1 millisecond',"
    " $6, $7, $8,"
    " CASE WHEN chk.failed IS NOT NULL THEN 7 WHEN chk.pending > 0 THEN 1"
    " WHEN $5 > 0 THEN 2 WHEN sc.ok THEN 4 ELSE 3 END,"
    " CASE WHEN chk.failed IS NOT NULL THEN"
    " 'dependency ' || chk.failed || ' failed' END,"
    " CASE WHEN chk.failed IS NOT NULL THEN now() END, $10, $11,"
    /* As jobq__pg_reserve() sets them. */
    " CASE WHEN sc.ok THEN 1 ELSE 0 END,"
    " CASE WHEN sc.ok THEN $12 END,"
    " CASE WHEN sc.ok THEN nextval('jobq_lease_token') END,"
    " CASE WHEN sc.ok THEN now() + $7::bigint * interval '1 millisecond' END,"
    " CASE WHEN sc.ok THEN now() END"
    " FROM chk, sc WHERE chk.found ="
    " (SELECT count(DISTINCT d) FROM unnest($9::bigint[]) d)"
    " AND NOT EXISTS (SELECT 1 FROM prev)"
    " ON CONFLICT (unique_key)"
    " WHERE unique_key IS NOT NULL AND state IN (1, 2, 3, 4, 6)"
    " DO UPDATE SET unique_key = EXCLUDED.unique_key"
    /* xmax is 0 in a row this statement inserted, ours in one it
     * updated: the usual test for which arm of ON CONFLICT ran. */
    " RETURNING id, xmax = 0 AS created, state, type,"
    " CASE WHEN state = 4 AND lease_owner = $12 THEN lease_token END"
    " AS token),"
    " dl AS (INSERT INTO jobq_deps (job, dep)"
    " SELECT DISTINCT ins.id, d FROM ins, unnest($9::bigint[]) d"
    " WHERE ins.created AND ins.state = 1),"
    " wake AS (SELECT pg_notify('" JOBQ__PG_CHANNEL "', type) FROM ins"
    " WHERE ins.created AND ins.state = 3)"
    " SELECT ins.id, ins.created, (SELECT count(*) FROM wake), ins.state,"
    " false, ins.token FROM ins"
    " UNION ALL SELECT prev.id, false, 0, prev.state, true, prev.token"
    " FROM prev";

int jobq__pg_submit(struct jobq__pg *pg, const struct jobq__pg_submit *s,
		    jobq__pg_cb cb, void *arg)
{
	char prio[24], delay[24], att[24], tmo[24], sess[24], rid[24];
	char *args = NULL, *after, *types = NULL;
	const char *v[13];
	int ret;

	if (!s->type || !*s->type)
		return -EINVAL;
	if (s->owner && !(types = text_array(s->types, s->ntypes)))
		return -ENOMEM;
	if (s->args_len && !(args = hex_bytea(s->args, s->args_len))) {
		free(types);
		return -ENOMEM;
	}
	after = jobq__pg_int_array((const int64_t *)s->after, NULL, s->nafter);
	if (!after) {
		free(args);
		free(types);
		return -ENOMEM;
	}
	v[0] = s->type;
	v[1] = s->queue ? s->queue : "default";
	v[2] = args ? args : "\\x";
	v[3] = NUM(prio, s->priority);
	v[4] = NUM(delay, s->delay_ms > 0 ? s->delay_ms : 0);
	v[5] = NUM(att, s->max_attempts > 0 ? s->max_attempts : 4);
	v[6] = NUM(tmo, s->timeout_ms > 0 ? s->timeout_ms : 60000);
	v[7] = s->unique;
	v[8] = after;
	/* Session ids are random 64-bit numbers: stored as bigint, the same
	 * bits. */
	v[9] = s->session ? NUM(sess, s->session) : NULL;
	v[10] = s->session ? NUM(rid, s->rid) : NULL;
	v[11] = s->owner;
	v[12] = types;
	ret = jobq__pg_query(pg, sql_submit, 13, v, cb, arg);
	free(args);
	free(after);
	free(types);
	return ret;
}

/*
 * Many plain submits in one statement: a statement's fixed cost (bind,
 * plan, executor start, the CTEs of a single submit) is most of a plain
 * submit's, so a turn's submits cost about one. Ids are drawn in the
 * requests' order before the insert, so that jobs of one priority run in
 * the order they came, and each answer row names its request (o). A
 * (session, request id) pair that made a job already is skipped (DO
 * NOTHING): the caller sends that one alone, and jobq__pg_submit() finds
 * the first job.
 */
static const char sql_submit_many[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[],"
    " $4::int[], $5::bigint[], $6::int[], $7::bigint[], $8::bigint[],"
    " $9::bigint[]) WITH ORDINALITY AS u (type, queue, args, priority,"
    " delay_ms, max_attempts, timeout_ms, sess, rid, o)),"
    " ids AS (SELECT x.o, nextval('jobq_jobs_id_seq') AS id"
    " FROM (SELECT o FROM u ORDER BY o) x),"
    " ins AS (INSERT INTO jobq_jobs (id, type, queue, args, priority, run_at,"
    " max_attempts, timeout_ms, state, req_session, req_id)"
    " SELECT ids.id, u.type, u.queue, u.args, u.priority,"
    " now() + u.delay_ms * interval '1 millisecond', u.max_attempts,"
    " u.timeout_ms, CASE WHEN u.delay_ms > 0 THEN 2 ELSE 3 END, u.sess,"
    " u.rid FROM u JOIN ids ON ids.o = u.o ORDER BY ids.id"
    " ON CONFLICT (req_session, req_id) WHERE req_session IS NOT NULL"
    " DO NOTHING RETURNING id, state, type),"
    " wake AS (SELECT pg_notify('" JOBQ__PG_CHANNEL "', t)"
    " FROM (SELECT DISTINCT type AS t FROM ins WHERE state = 3) z)"
    " SELECT ids.o, ins.id, ins.state, (SELECT count(*) FROM wake)"
    " FROM ins JOIN ids ON ids.id = ins.id ORDER BY ids.o";

int jobq__pg_submit_many(struct jobq__pg *pg,
			 const struct jobq__pg_submit *const *s, uint32_t n,
			 jobq__pg_cb cb, void *arg)
{
	const char **txt = NULL;
	char *arr[9] = {0};
	int64_t *num = NULL;
	bool *null = NULL;
	int ret = -ENOMEM;

	if (!n)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (!s[i]->type || !*s[i]->type || s[i]->unique ||
		    s[i]->nafter || s[i]->owner)
			return -EINVAL;
	txt = calloc(n, sizeof(*txt));
	num = calloc(n, sizeof(*num));
	null = calloc(n, sizeof(*null));
	if (!txt || !num || !null)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		txt[i] = s[i]->type;
	arr[0] = text_array(txt, n);
	for (uint32_t i = 0; i < n; i++)
		txt[i] = s[i]->queue ? s[i]->queue : "default";
	arr[1] = text_array(txt, n);
	/* Hex bytea text as array elements: text_array() escapes the
	 * backslash. */
	for (uint32_t i = 0; i < n; i++) {
		txt[i] = s[i]->args_len ? hex_bytea(s[i]->args, s[i]->args_len)
					: strdup("\\x");
		if (!txt[i]) {
			for (uint32_t k = 0; k < i; k++)
				free((char *)txt[k]);
			goto out;
		}
	}
	arr[2] = text_array(txt, n);
	for (uint32_t i = 0; i < n; i++)
		free((char *)txt[i]);
	for (uint32_t i = 0; i < n; i++)
		num[i] = s[i]->priority;
	arr[3] = jobq__pg_int_array(num, NULL, n);
	for (uint32_t i = 0; i < n; i++)
		num[i] = s[i]->delay_ms > 0 ? s[i]->delay_ms : 0;
	arr[4] = jobq__pg_int_array(num, NULL, n);
	for (uint32_t i = 0; i < n; i++)
		num[i] = s[i]->max_attempts > 0 ? s[i]->max_attempts : 4;
	arr[5] = jobq__pg_int_array(num, NULL, n);
	for (uint32_t i = 0; i < n; i++)
		num[i] = s[i]->timeout_ms > 0 ? s[i]->timeout_ms : 60000;
	arr[6] = jobq__pg_int_array(num, NULL, n);
	for (uint32_t i = 0; i < n; i++) {
		num[i] = (int64_t)s[i]->session;
		null[i] = !s[i]->session;
	}
	arr[7] = jobq__pg_int_array(num, null, n);
	for (uint32_t i = 0; i < n; i++)
		num[i] = (int64_t)s[i]->rid;
	arr[8] = jobq__pg_int_array(num, null, n);
	for (int k = 0; k < 9; k++)
		if (!arr[k])
			goto out;
	ret = jobq__pg_query(pg, sql_submit_many, 9, (const char *const *)arr,
			     cb, arg);
out:
	for (int k = 0; k < 9; k++)
		free(arr[k]);
	free(txt);
	free(num);
	free(null);
	return ret;
}

/* ------------------------------------------------------------------------
 * Reserve.
 */
static const char sql_reserve[] =
    /* One ordered scan of the runnable index per type (a condition on
     * ANY of the types would read and sort every runnable row), then the
     * best of them. */
    "WITH cand AS (SELECT c.* FROM unnest($2::text[]) t (type)"
    " CROSS JOIN LATERAL (SELECT j.id, j.queue, j.priority, j.run_at,"
    " EXISTS (SELECT 1 FROM jobq_queue_settings s WHERE s.queue = j.queue"
    " AND s.parallel > 0) AS limited"
    " FROM jobq_jobs j WHERE j.type = t.type AND j.state IN (2, 3, 6)"
    " AND j.run_at <= now()"
    " AND NOT EXISTS (SELECT 1 FROM jobq_queue_settings s"
    " WHERE s.queue = j.queue AND (s.paused"
    " OR (s.parallel > 0 AND s.running >= s.parallel)))"
    " ORDER BY j.priority DESC, j.run_at, j.id LIMIT $3"
    " FOR UPDATE OF j SKIP LOCKED) c"
    " ORDER BY c.priority DESC, c.run_at, c.id LIMIT $3),"
    " want AS (SELECT queue, count(*) AS n FROM cand WHERE limited"
    " GROUP BY queue),"
    /* The slots of limited queues: the UPDATE re-reads the settings row
     * as committed once it holds it, so two hosts never both take the
     * last slot. SET expressions read the old row: last_grant is what
     * this statement got. */
    " grants AS (UPDATE jobq_queue_settings s"
    " SET running = s.running"
    " + least(w.n, greatest(s.parallel - s.running, 0)),"
    " last_grant = least(w.n, greatest(s.parallel - s.running, 0))"
    " FROM want w WHERE s.queue = w.queue"
    " RETURNING s.queue, s.last_grant),"
    " pick AS (SELECT c.id, c.limited FROM (SELECT c.*, row_number()"
    " OVER (PARTITION BY c.queue ORDER BY c.priority DESC, c.run_at, c.id)"
    " AS rn FROM cand c) c LEFT JOIN grants g ON g.queue = c.queue"
    " WHERE NOT c.limited OR c.rn <= g.last_grant)"
    " UPDATE jobq_jobs j SET state = 4, attempts = j.attempts + 1,"
    " lease_owner = $1, lease_token = nextval('jobq_lease_token'),"
    " lease_until = now() + j.timeout_ms * interval '1 millisecond',"
    " started_at = now(), progress = NULL, slot = p.limited"
    " FROM pick p WHERE j.id = p.id"
    " RETURNING j.id, j.lease_token, j.type, j.queue, j.args, j.attempts";

int jobq__pg_reserve(struct jobq__pg *pg, const char *owner,
		     const char *const *types, uint32_t ntypes, uint32_t max,
		     jobq__pg_cb cb, void *arg)
{
	char n[24], *arr;
	const char *v[3];
	int ret;

	if (!ntypes || !max)
		return -EINVAL;
	arr = text_array(types, ntypes);
	if (!arr)
		return -ENOMEM;
	v[0] = owner;
	v[1] = arr;
	v[2] = NUM(n, max);
	ret = jobq__pg_query(pg, sql_reserve, 3, v, cb, arg);
	free(arr);
	return ret;
}

/* ------------------------------------------------------------------------
 * The end of a run: complete, fail.
 */
/* One clause a line, which clang-format would run together. */
/* clang-format off */
static const char sql_complete[] =
    "WITH RECURSIVE done AS (UPDATE jobq_jobs SET state = 5,"
    " result = $3::bytea, finished_at = now(), progress = 1,"
    " lease_token = NULL, lease_until = NULL"
    " WHERE id = $1 AND state = 4 AND lease_token = $2"
    " RETURNING id, queue, slot, state, type),"
    FREE_SLOTS("done")
    /* Dependents with no other unfinished dependency. This statement's
     * snapshot still shows the job running, hence "p.id <> done.id". */
    " rel AS (UPDATE jobq_jobs w SET state = 3, run_at = now()"
    " FROM done, jobq_deps d WHERE d.dep = done.id AND w.id = d.job"
    " AND w.state = 1 AND NOT EXISTS (SELECT 1 FROM jobq_deps d2"
    " JOIN jobq_jobs p ON p.id = d2.dep WHERE d2.job = w.id"
    " AND p.id <> done.id AND p.state <> 5) RETURNING w.type),"
    FINISHED("(SELECT id FROM done) z")
    WAKE("rel")
    "SELECT done.state, (SELECT count(*) FROM wake)"
    " + (SELECT count(*) FROM fin) FROM done";
/* clang-format on */

int jobq__pg_complete(struct jobq__pg *pg, uint64_t id, uint64_t token,
		      const uint8_t *result, size_t len, jobq__pg_cb cb,
		      void *arg)
{
	char a[24], b[24], *res;
	const char *v[3];
	int ret;

	res = hex_bytea(result, len);
	if (!res)
		return -ENOMEM;
	v[0] = NUM(a, id);
	v[1] = NUM(b, token);
	v[2] = res;
	ret = jobq__pg_query(pg, sql_complete, 3, v, cb, arg);
	free(res);
	return ret;
}

/* One clause a line, which clang-format would run together. */
/* clang-format off */
static const char sql_fail[] =
    "WITH RECURSIVE f AS (UPDATE jobq_jobs SET"
    " state = CASE WHEN $4 OR attempts >= max_attempts THEN 7 ELSE 6 END,"
    " run_at = CASE WHEN $4 OR attempts >= max_attempts THEN run_at"
    " ELSE now() + " BACKOFF " END,"
    " finished_at = CASE WHEN $4 OR attempts >= max_attempts"
    " THEN now() END,"
    " error = $3, lease_token = NULL, lease_until = NULL"
    " WHERE id = $1 AND state = 4 AND lease_token = $2"
    " RETURNING id, queue, slot, state, type),"
    FREE_SLOTS("f")
    KILL_DEPENDENTS("f")
    FINISHED("(SELECT id FROM f WHERE state = 7"
             " UNION ALL SELECT id FROM killed) z")
    /* A retry waits for its backoff: no type is runnable now. */
    WAKE("(SELECT type FROM f WHERE false) e")
    "SELECT f.state, (SELECT count(*) FROM wake)"
    " + (SELECT count(*) FROM fin) FROM f";
/* clang-format on */

int jobq__pg_fail_final(struct jobq__pg *pg, uint64_t id, uint64_t token,
			const char *error, bool final, jobq__pg_cb cb,
			void *arg)
{
	char a[24], b[24];
	const char *v[4] = {NUM(a, id), NUM(b, token), error ? error : "",
			    final ? "true" : "false"};

	return jobq__pg_query(pg, sql_fail, 4, v, cb, arg);
}

int jobq__pg_fail(struct jobq__pg *pg, uint64_t id, uint64_t token,
		  const char *error, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_fail_final(pg, id, token, error, false, cb, arg);
}

/* ------------------------------------------------------------------------
 * Cancel, progress, lease extension.
 */
/* One clause a line, which clang-format would run together. */
/* clang-format off */
static const char sql_cancel[] =
    /* pre locks the row and reads it as committed: whether the run held
     * a slot is decided by the state it had, which RETURNING (the new
     * row) cannot say. */
    "WITH RECURSIVE pre AS (SELECT id, state AS old, slot FROM jobq_jobs"
    " WHERE id = $1 FOR UPDATE),"
    " c AS (UPDATE jobq_jobs j SET state = 8, error = 'cancelled',"
    " finished_at = now(), lease_token = NULL, lease_until = NULL"
    " FROM pre WHERE j.id = pre.id AND pre.old IN (1, 2, 3, 4, 6)"
    " RETURNING j.id, j.queue, pre.old = 4 AND pre.slot AS slot,"
    " j.state, j.type),"
    FREE_SLOTS("c")
    KILL_DEPENDENTS("c")
    FINISHED("(SELECT id FROM c UNION ALL SELECT id FROM killed) z")
    WAKE("(SELECT type FROM c WHERE false) e")
    "SELECT coalesce((SELECT state FROM c), pre.old),"
    " (SELECT count(*) FROM wake) + (SELECT count(*) FROM fin)"
    " FROM pre";
/* clang-format on */

int jobq__pg_cancel(struct jobq__pg *pg, uint64_t id, jobq__pg_cb cb, void *arg)
{
	char a[24];
	const char *v[1] = {NUM(a, id)};

	return jobq__pg_query(pg, sql_cancel, 1, v, cb, arg);
}

/* ------------------------------------------------------------------------
 * Retry and kick: a final or failed job back to ready, from its first
 * attempt, as jobs.c's rerun().
 */
#define RERUN                                                                  \
	" SET state = 3, attempts = 0, run_at = now(), finished_at = NULL,"    \
	" error = NULL, result = NULL, progress = NULL, lease_owner = NULL,"   \
	" lease_token = NULL, lease_until = NULL, slot = false"

/* Hosts that mirror the job read its row again on the done channel; the
 * ready channel wakes the workers of its type. */
#define ANNOUNCE(src)                                                          \
	" fin AS (SELECT pg_notify('" JOBQ__PG_DONE_CHANNEL "', id::text)"     \
	" FROM " src "),"                                                      \
	" wake AS (SELECT pg_notify('" JOBQ__PG_CHANNEL "', t)"                \
	" FROM (SELECT DISTINCT type AS t FROM " src ") z)"

/* clang-format off */
static const char sql_retry[] =
    "WITH pre AS (SELECT id, state AS old FROM jobq_jobs"
    " WHERE id = $1 FOR UPDATE),"
    " r AS (UPDATE jobq_jobs j" RERUN
    " FROM pre WHERE j.id = pre.id"
    " AND (pre.old = 7 OR (NOT $2 AND pre.old IN (6, 8)))"
    " RETURNING j.id, j.type),"
    ANNOUNCE("r")
    " SELECT (SELECT count(*) FROM r), pre.old,"
    " (SELECT count(*) FROM fin) + (SELECT count(*) FROM wake) FROM pre";

static const char sql_kick_all[] =
    "WITH r AS (UPDATE jobq_jobs j" RERUN
    " WHERE j.state = 7 AND (j.unique_key IS NULL OR NOT EXISTS"
    " (SELECT 1 FROM jobq_jobs o WHERE o.unique_key = j.unique_key"
    " AND o.state IN (1, 2, 3, 4, 6)))"
    " RETURNING j.id, j.type),"
    ANNOUNCE("r")
    " SELECT id, (SELECT count(*) FROM fin) + (SELECT count(*) FROM wake)"
    " FROM r";
/* clang-format on */

int jobq__pg_retry(struct jobq__pg *pg, uint64_t id, bool kick, jobq__pg_cb cb,
		   void *arg)
{
	char a[24];
	const char *v[2] = {NUM(a, id), kick ? "true" : "false"};

	return jobq__pg_query(pg, sql_retry, 2, v, cb, arg);
}

int jobq__pg_kick_all(struct jobq__pg *pg, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_query(pg, sql_kick_all, 0, NULL, cb, arg);
}

static const char sql_progress[] =
    "UPDATE jobq_jobs SET progress = $3"
    " WHERE id = $1 AND state = 4 AND lease_token = $2 RETURNING state";

int jobq__pg_progress(struct jobq__pg *pg, uint64_t id, uint64_t token,
		      double progress, jobq__pg_cb cb, void *arg)
{
	char a[24], b[24], c[32];
	const char *v[3] = {NUM(a, id), NUM(b, token), c};

	if (!(progress >= 0 && progress <= 1))
		return -EINVAL;
	snprintf(c, sizeof(c), "%.6g", progress);
	return jobq__pg_query(pg, sql_progress, 3, v, cb, arg);
}

static const char sql_extend[] =
    "UPDATE jobq_jobs SET"
    " lease_until = now() + timeout_ms * interval '1 millisecond'"
    " WHERE id = $1 AND state = 4 AND lease_token = $2 RETURNING state";

int jobq__pg_extend(struct jobq__pg *pg, uint64_t id, uint64_t token,
		    jobq__pg_cb cb, void *arg)
{
	char a[24], b[24];
	const char *v[2] = {NUM(a, id), NUM(b, token)};

	return jobq__pg_query(pg, sql_extend, 2, v, cb, arg);
}

/* ------------------------------------------------------------------------
 * Timers: expiry of leases, release of waiting jobs, retention.
 */
/* One clause a line, which clang-format would run together. */
/* clang-format off */
static const char sql_expire[] =
    "WITH RECURSIVE x AS (UPDATE jobq_jobs j SET"
    " state = CASE WHEN attempts >= max_attempts THEN 7 ELSE 3 END,"
    " run_at = now(), error = 'lease expired',"
    " finished_at = CASE WHEN attempts >= max_attempts THEN now() END,"
    " lease_token = NULL, lease_until = NULL"
    " WHERE j.id IN (SELECT id FROM jobq_jobs WHERE state = 4"
    " AND lease_until < now() FOR UPDATE SKIP LOCKED)"
    " AND j.state = 4 AND j.lease_until < now()"
    " RETURNING j.id, j.queue, j.slot, j.state, j.type),"
    FREE_SLOTS("x")
    KILL_DEPENDENTS("x")
    FINISHED("(SELECT id FROM x WHERE state = 7"
             " UNION ALL SELECT id FROM killed) z")
    WAKE("(SELECT type FROM x WHERE state = 3) e")
    "SELECT x.id, (SELECT count(*) FROM wake),"
    " (SELECT count(*) FROM fin) FROM x";
/* clang-format on */

int jobq__pg_expire(struct jobq__pg *pg, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_query(pg, sql_expire, 0, NULL, cb, arg);
}

static const char sql_release[] =
    "WITH r AS (UPDATE jobq_jobs w SET state = 3, run_at = now()"
    " WHERE w.state = 1 AND NOT EXISTS (SELECT 1 FROM jobq_deps d"
    " JOIN jobq_jobs p ON p.id = d.dep WHERE d.job = w.id"
    " AND p.state <> 5) RETURNING w.id, w.type),"
    " k AS (UPDATE jobq_jobs w SET state = 7, finished_at = now(),"
    " error = 'dependency ' || f.dep || ' failed'"
    " FROM (SELECT d.job, min(d.dep) AS dep FROM jobq_deps d"
    " JOIN jobq_jobs p ON p.id = d.dep WHERE p.state IN (7, 8)"
    " GROUP BY d.job) f WHERE w.id = f.job AND w.state = 1"
    " RETURNING w.id),"
    " wake AS (SELECT pg_notify('" JOBQ__PG_CHANNEL "', t)"
    " FROM (SELECT DISTINCT type AS t FROM r) z)"
    " SELECT z.id, (SELECT count(*) FROM wake)"
    " FROM (SELECT id FROM r UNION ALL SELECT id FROM k) z";

int jobq__pg_release(struct jobq__pg *pg, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_query(pg, sql_release, 0, NULL, cb, arg);
}

static const char sql_next_run[] =
    "SELECT (extract(epoch FROM min(run_at) - now()) * 1000)::bigint"
    " FROM jobq_jobs WHERE state IN (2, 3, 6) AND type = ANY ($1::text[])";

int jobq__pg_next_run(struct jobq__pg *pg, const char *const *types,
		      uint32_t ntypes, jobq__pg_cb cb, void *arg)
{
	char *arr = text_array(types, ntypes);
	const char *v[1] = {arr};
	int ret;

	if (!arr)
		return -ENOMEM;
	ret = jobq__pg_query(pg, sql_next_run, 1, v, cb, arg);
	free(arr);
	return ret;
}

static const char sql_retain[] =
    "DELETE FROM jobq_jobs WHERE id IN (SELECT id FROM jobq_jobs"
    " WHERE state IN (5, 7, 8)"
    " AND finished_at < now() - $1 * interval '1 millisecond'"
    " ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

int jobq__pg_retain(struct jobq__pg *pg, int64_t keep_ms, uint32_t limit,
		    jobq__pg_cb cb, void *arg)
{
	char a[24], b[24];
	const char *v[2] = {NUM(a, keep_ms), NUM(b, limit)};

	return jobq__pg_query(pg, sql_retain, 2, v, cb, arg);
}

/* ------------------------------------------------------------------------
 * Queue settings, show, key/value.
 */
static const char sql_queue_set[] =
    "WITH s AS (INSERT INTO jobq_queue_settings (queue, paused, parallel)"
    " VALUES ($1, coalesce($2::boolean, false),"
    " greatest(coalesce($3::integer, 0), 0))"
    " ON CONFLICT (queue) DO UPDATE SET"
    " paused = coalesce($2::boolean, jobq_queue_settings.paused),"
    " parallel = CASE WHEN $3::integer IS NULL OR $3::integer < 0"
    " THEN jobq_queue_settings.parallel ELSE $3::integer END"
    " RETURNING paused, parallel)"
    " SELECT s.paused, s.parallel, pg_notify('" JOBQ__PG_CHANNEL "', '')"
    " FROM s";

int jobq__pg_queue_set(struct jobq__pg *pg, const char *queue, int paused,
		       int32_t parallel, jobq__pg_cb cb, void *arg)
{
	char b[24];
	const char *v[3] = {queue,
			    paused < 0 ? NULL
			    : paused   ? "true"
				       : "false",
			    parallel < 0 ? NULL : NUM(b, parallel)};

	return jobq__pg_query(pg, sql_queue_set, 3, v, cb, arg);
}

static const char sql_show[] =
    "SELECT id, type, queue, state, priority, attempts, max_attempts,"
    " args, result, error, progress, lease_owner, created_at, finished_at"
    " FROM jobq_jobs WHERE id = $1";

int jobq__pg_show(struct jobq__pg *pg, uint64_t id, jobq__pg_cb cb, void *arg)
{
	char a[24];
	const char *v[1] = {NUM(a, id)};

	return jobq__pg_query(pg, sql_show, 1, v, cb, arg);
}

/* Give back: a reservation nobody took (its reserver went before the
 * answer came) returns to ready as if never handed out. */
/* One clause a line, which clang-format would run together. */
/* clang-format off */
static const char sql_unreserve[] =
    "WITH u AS (UPDATE jobq_jobs SET state = 3, run_at = now(),"
    " attempts = greatest(attempts - 1, 0), lease_owner = NULL,"
    " lease_token = NULL, lease_until = NULL, started_at = NULL"
    " WHERE id = $1 AND state = 4 AND lease_token = $2"
    " RETURNING id, queue, slot, type),"
    FREE_SLOTS("u")
    WAKE("u")
    "SELECT u.id, (SELECT count(*) FROM wake) FROM u";
/* clang-format on */

int jobq__pg_unreserve(struct jobq__pg *pg, uint64_t id, uint64_t token,
		       jobq__pg_cb cb, void *arg)
{
	char a[24], b[24];
	const char *v[2] = {NUM(a, id), NUM(b, token)};

	return jobq__pg_query(pg, sql_unreserve, 2, v, cb, arg);
}

/* Times as microseconds since the epoch, so that a row reads without a
 * date parser; NULL stays NULL (0 through jobq__pg_int()). */
#define US(col) " (extract(epoch FROM " col ") * 1000000)::bigint"

/* Two index scans: one condition with OR would walk the whole index. */
#define SYNC_COLS                                                               \
	"SELECT id, type, queue, state, priority, attempts, max_attempts,"      \
	" args, result, error, progress, lease_token," US("created_at") "," US( \
	    "started_at") "," US("finished_at") "," US("run_at") ","            \
								 " timeout_"    \
								 "ms FROM "     \
								 "jobq_jobs"

static const char sql_sync[] =
    "(" SYNC_COLS " WHERE id > $1 ORDER BY id LIMIT $3) UNION ALL"
    " (" SYNC_COLS " WHERE id = ANY ($2::bigint[]) AND id <= $1)";

int jobq__pg_sync(struct jobq__pg *pg, uint64_t after, const uint64_t *ids,
		  uint32_t nids, uint32_t limit, jobq__pg_cb cb, void *arg)
{
	char a[24], l[24],
	    *arr = jobq__pg_int_array((const int64_t *)ids, NULL, nids);
	const char *v[3] = {NUM(a, after), arr, NUM(l, limit)};
	int ret;

	if (!arr)
		return -ENOMEM;
	ret = jobq__pg_query(pg, sql_sync, 3, v, cb, arg);
	free(arr);
	return ret;
}

/* ------------------------------------------------------------------------
 * Key/value (kv_pg.c says how a host uses them). Every change draws a
 * new version from jobq_kv_version and announces "version key" on
 * JOBQ__PG_KV_CHANNEL ("0 key" for a delete) in the same statement, so
 * the NOTIFY goes out exactly when the change commits. The version is
 * drawn in the SET, after the row lock is taken: a change that waited for
 * another gets a larger version than the one it waited for.
 *
 * Each statement is made exact for a request sent again ($1 session, $2
 * request id; NULL for none): prev is the answer recorded for it, and the
 * change runs only without one and records its own in the same
 * transaction. Two copies racing both find none; the second to commit
 * breaks jobq_kv_requests' primary key (23505) and is undone, and sent
 * again it finds the first's answer. Parameters read by INSERT ... SELECT
 * are cast: a SELECT list would take them as text.
 */
#define KV_PREV                                                                \
	"WITH prev AS (SELECT n, version FROM jobq_kv_requests"                \
	" WHERE session = $1 AND rid = $2),"
#define KV_NEW " NOT EXISTS (SELECT 1 FROM prev)"
/* Records the answer of w (n: @n) and notifies; @ver is the version the
 * notification names. */
#define KV_DONE(n, ver)                                                        \
	" r AS (INSERT INTO jobq_kv_requests (session, rid, n, version)"       \
	" SELECT $1, $2, " n ", version FROM w WHERE $1 IS NOT NULL),"         \
	" nt AS (SELECT pg_notify('" JOBQ__PG_KV_CHANNEL "', " ver             \
	" || ' ' || key) FROM w)"
#define KV_ANSWER                                                              \
	" SELECT version, false, (SELECT count(*) FROM nt) FROM w"             \
	" UNION ALL SELECT version, true, 0 FROM prev"

static const char sql_kv_set[] =
    KV_PREV " w AS (INSERT INTO jobq_kv (key, type, value)"
	    " SELECT $3::text, $4::integer, $5::bytea WHERE" KV_NEW
	    " ON CONFLICT (key) DO UPDATE SET type = EXCLUDED.type,"
	    " value = EXCLUDED.value, version = nextval('jobq_kv_version')"
	    " RETURNING key, version)," KV_DONE("0", "version") KV_ANSWER;

/* ON CONFLICT DO UPDATE works on the row as committed, locked: two incrs
 * from two hosts both count. The value must be what the local manager's
 * incr accepts, an optional '-' and digits (bigint's own input would take
 * blanks and '+' too); anything else is made to fail bigint's input with
 * 22P02. encode(escape) turns any bytes into text without failing. */
#define KV_OLD "encode(jobq_kv.value, 'escape')"
static const char sql_kv_incr[] = KV_PREV
    " w AS (INSERT INTO jobq_kv (key, type, value)"
    " SELECT $3::text, $5::integer,"
    " convert_to($4::bigint::text, 'UTF8') WHERE" KV_NEW
    " ON CONFLICT (key) DO UPDATE SET type = EXCLUDED.type,"
    " value = convert_to(((CASE WHEN " KV_OLD " ~ '^-?[0-9]+$' THEN " KV_OLD
    " ELSE 'not a number: ' || " KV_OLD
    " END)::bigint + $4::bigint)::text, 'UTF8'),"
    " version = nextval('jobq_kv_version')"
    " RETURNING key, version,"
    " convert_from(value, 'UTF8')::bigint AS n)," KV_DONE(
	"n", "version") " SELECT n, version, false,"
			" (SELECT count(*) FROM nt) FROM w"
			" UNION ALL SELECT n, version, true, 0 FROM prev";

static const char sql_kv_cas_absent[] =
    KV_PREV " w AS (INSERT INTO jobq_kv (key, type, value)"
	    " SELECT $3::text, $4::integer, $5::bytea WHERE" KV_NEW
	    " ON CONFLICT (key) DO NOTHING RETURNING key, version)," KV_DONE(
		"0", "version") KV_ANSWER;

/* The WHERE is re-checked on the row as committed (EvalPlanQual): of two
 * racing swaps from the same value, one matches. bytea compares bytes. */
static const char sql_kv_cas[] =
    KV_PREV " w AS (UPDATE jobq_kv SET type = $4, value = $5,"
	    " version = nextval('jobq_kv_version')"
	    " WHERE key = $3 AND value = $6 AND" KV_NEW
	    " RETURNING key, version)," KV_DONE("0", "version") KV_ANSWER;

static const char sql_kv_del[] =
    KV_PREV " w AS (DELETE FROM jobq_kv WHERE key = $3 AND" KV_NEW
	    " RETURNING key, version)," KV_DONE("0", "'0'") KV_ANSWER;

static const char sql_kv_forget[] =
    "DELETE FROM jobq_kv_requests WHERE done_at < now() - $1::bigint *"
    " interval '1 millisecond'";

#define KV_COLS "SELECT key, type, value, version FROM jobq_kv"
static const char sql_kv_fetch[] = KV_COLS " WHERE key = ANY ($1::text[])";
static const char sql_kv_load[] = KV_COLS;

/* The request's two parameters: NULL without a session. */
#define KV_REQ(sb, rb, session, rid)                                           \
	(session) ? NUM(sb, session) : NULL, (session) ? NUM(rb, rid) : NULL

int jobq__pg_kv_set(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, uint32_t type, const uint8_t *val,
		    size_t len, jobq__pg_cb cb, void *arg)
{
	char sb[24], rb[24], t[24], *hex = hex_bytea(val, len);
	const char *v[5] = {KV_REQ(sb, rb, session, rid), key, NUM(t, type),
			    hex};
	int ret;

	if (!hex)
		return -ENOMEM;
	ret = jobq__pg_query(pg, sql_kv_set, 5, v, cb, arg);
	free(hex);
	return ret;
}

int jobq__pg_kv_incr(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		     const char *key, int64_t by, uint32_t type, jobq__pg_cb cb,
		     void *arg)
{
	char sb[24], rb[24], b[24], t[24];
	const char *v[5] = {KV_REQ(sb, rb, session, rid), key, NUM(b, by),
			    NUM(t, type)};

	return jobq__pg_query(pg, sql_kv_incr, 5, v, cb, arg);
}

int jobq__pg_kv_cas(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, const uint8_t *expect, size_t elen,
		    uint32_t type, const uint8_t *val, size_t len,
		    jobq__pg_cb cb, void *arg)
{
	char sb[24], rb[24], t[24], *hex = hex_bytea(val, len), *ehex = NULL;
	const char *v[6] = {KV_REQ(sb, rb, session, rid), key, NUM(t, type),
			    hex, NULL};
	int ret;

	if (expect)
		ehex = hex_bytea(expect, elen);
	if (!hex || (expect && !ehex)) {
		free(hex);
		free(ehex);
		return -ENOMEM;
	}
	v[5] = ehex;
	if (expect)
		ret = jobq__pg_query(pg, sql_kv_cas, 6, v, cb, arg);
	else
		ret = jobq__pg_query(pg, sql_kv_cas_absent, 5, v, cb, arg);
	free(hex);
	free(ehex);
	return ret;
}

int jobq__pg_kv_del(struct jobq__pg *pg, uint64_t session, uint64_t rid,
		    const char *key, jobq__pg_cb cb, void *arg)
{
	char sb[24], rb[24];
	const char *v[3] = {KV_REQ(sb, rb, session, rid), key};

	return jobq__pg_query(pg, sql_kv_del, 3, v, cb, arg);
}

int jobq__pg_kv_forget(struct jobq__pg *pg, int64_t keep_ms, jobq__pg_cb cb,
		       void *arg)
{
	char k[24];
	const char *v[1] = {NUM(k, keep_ms)};

	return jobq__pg_query(pg, sql_kv_forget, 1, v, cb, arg);
}

int jobq__pg_kv_fetch(struct jobq__pg *pg, const char *const *keys, uint32_t n,
		      jobq__pg_cb cb, void *arg)
{
	char *arr = text_array(keys, n);
	const char *v[1] = {arr};
	int ret;

	if (!arr)
		return -ENOMEM;
	ret = jobq__pg_query(pg, sql_kv_fetch, 1, v, cb, arg);
	free(arr);
	return ret;
}

int jobq__pg_kv_load(struct jobq__pg *pg, jobq__pg_cb cb, void *arg)
{
	return jobq__pg_query(pg, sql_kv_load, 0, NULL, cb, arg);
}
