/* SPDX-License-Identifier: MIT */
/*
 * test_pg_crash.c - the jobs checker over jobqd --backend: two managers
 * ("hosts", each in an instance directory of its own) on one database of
 * a PostgreSQL 15 of the test's own (pg_server.h); on each, a producer
 * submitting numbered jobs and recording every acknowledged submit, and a
 * worker of the test's own (a library worker on a handle that reconnects
 * by itself) whose handler appends each run to a file. Managers and
 * workers are SIGKILLed at random moments and started again, PostgreSQL
 * is restarted once. At the end every acknowledged submit ended succeeded
 * with its args as result, no id was given to two submits, and a job run
 * more than once (a worker killed mid-job, or a manager killed between a
 * run and the commit of its result) is counted and printed, not hidden.
 *
 * A submit whose answer was lost with a manager (or with a cut
 * connection to PostgreSQL) is sent again by the handle, and must find
 * the job it made: host 0's producer gives each submit a --unique key of
 * its number, host 1's none, so that only the (session, request id)
 * stored on the row tells a resend from a new submit. The table must
 * hold no job beyond the acknowledged ones, but for submits that failed
 * (their handle given up and opened anew: a new session).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"

#define NHOST  2
#define MAXSEQ 4096
#define EVENTS 24
/* The lease of each job, in seconds: a job whose worker was killed comes
 * back this soon. */
#define LEASE 2.0

static struct jqt_pg server;
static char conninfo[256];

/* Shared by the test and its children (jqt_shared()). */
struct checker {
	_Atomic int stop;
	_Atomic uint32_t acked[NHOST]; /* submits acknowledged: 0..acked-1 */
	_Atomic uint64_t ids[NHOST][MAXSEQ];
	_Atomic uint32_t resent; /* submits that failed and were sent again */
	char dirs[NHOST][PATH_MAX];
	char runs[PATH_MAX + 16]; /* a line "P S" appended for each run */
};

/* A host: a manager on the test's database, without built-in
 * workers. */
static void host_start(struct jqt_pg_host *h)
{
	static const char *const extra[] = {"--workers", "0", NULL};

	assert_int_equal(jqt_pg_host_start(h, conninfo, extra), 0);
}

/* The instance lock is free (at most 10 s) once the killed manager is
 * gone. */
static void await_lock_free(const char *dir)
{
	char path[PATH_MAX + 32];
	double end = jqt_now() + 10;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, JOBQ_LOCK_NAME);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	while (flock(fd, LOCK_EX | LOCK_NB) && jqt_now() < end)
		jqt_sleep(0.005);
	close(fd);
}

static void host_crash_restart(struct jqt_pg_host *h)
{
	kill(h->m.pid, SIGKILL);
	assert_int_equal(jqt_mgr_wait_exit(&h->m, 10), 0);
	await_lock_free(h->m.dir);
	assert_int_equal(jqt_mgr_restart(&h->m, h->args), 0);
}

static jobq_t *open_host(struct checker *k, int idx)
{
	struct jobq_open_opts o = {.reconnect = 30};
	double end = jqt_now() + 30;
	jobq_t *q = NULL;

	while (jobq_open_ex(&q, k->dirs[idx], &o)) {
		if (jqt_now() > end)
			return NULL;
		jqt_sleep(0.01);
	}
	return q;
}

/* Producer @idx submits "[idx,seq]" on host @idx until told to stop. A
 * submit that fails is sent again, same key, until it is answered. */
static int producer(int idx, void *arg)
{
	struct checker *k = arg;
	struct jobq_submit_opts o = {.retries = 1000, .timeout = LEASE};
	jobq_t *q = open_host(k, idx);
	uint32_t seq = 0;
	char buf[64], key[64];

	CK(q);
	if (idx == 0)
		o.unique = key;
	while (!k->stop && seq < MAXSEQ) {
		int n = snprintf(buf, sizeof(buf), "[%d,%u]", idx, seq), rc;
		uint64_t id = 0;

		snprintf(key, sizeof(key), "ck-%d-%u", idx, seq);
		rc = jobq_submit(q, "ck", JOBQ_T_JSON, buf, (size_t)n, &o, &id);
		if (rc == 0 || rc == 1) {
			k->ids[idx][seq] = id;
			k->acked[idx] = ++seq;
			jqt_sleep(0.002);
			continue;
		}
		k->resent++;
		jobq_close(q);
		q = open_host(k, idx);
		CK(q);
	}
	jobq_close(q);
	return 0;
}

/* Each run appends "P S\n" (one write, O_APPEND) before it succeeds with
 * its args as result. */
static int ck_run(jobq_job_t *job, void *arg)
{
	struct checker *k = arg;
	const jobq_obj_t *a = jobq_job_args(job);
	char line[64], in[64];
	int p, s, fd, n;

	/* The args are not NUL-terminated. */
	snprintf(in, sizeof(in), "%.*s", (int)(a->len < 63 ? a->len : 63),
		 (const char *)a->data);
	if (sscanf(in, "[%d,%d]", &p, &s) != 2)
		return jobq_job_fail(job, 1, "bad args");
	n = snprintf(line, sizeof(line), "%d %d\n", p, s);
	fd = open(k->runs, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		abort();
	close(fd);
	return jobq_job_succeed(job, JOBQ_T_JSON, a->data, a->len);
}

/* A worker on host @idx: runs until killed (the producers' stop is not
 * its: the jobs must still be run), opening the host again if its run
 * ends. */
static int worker(int idx, void *arg)
{
	struct checker *k = arg;

	for (;;) {
		jobq_worker_t *w = NULL;
		jobq_t *q = open_host(k, idx);
		int rc;

		CK(q);
		CK(jobq_worker_new(&w, q, NULL) == 0);
		CK(jobq_worker_handle(w, "ck", ck_run, k) == 0);
		rc = jobq_worker_run(w);
		fprintf(stderr, "worker %d: run ended: %s\n", idx,
			jobq_strerror(rc));
		jobq_worker_free(w);
		jobq_close(q);
	}
	return 0;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* How many times each (producer, seq) ran, from the runs file. */
static void count_runs(const char *path, unsigned (*runs)[MAXSEQ])
{
	FILE *f = fopen(path, "r");
	int p, s;

	if (!f)
		return;
	while (fscanf(f, "%d %d", &p, &s) == 2)
		if (p >= 0 && p < NHOST && s >= 0 && s < MAXSEQ)
			runs[p][s]++;
	fclose(f);
}

static void test_checker(void **state)
{
	struct checker *k = jqt_shared(sizeof(*k));
	uint64_t seed = (uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL);
	uint64_t lost = 0, failed = 0, wrong = 0, twice = 0, n = 0, *all;
	unsigned(*runs)[MAXSEQ] = calloc(NHOST, sizeof(*runs));
	unsigned mkills = 0, wkills = 0, never_ran = 0;
	long long rows = -1;
	char *v;
	struct jqt_pg_host h[NHOST];
	pid_t prod[NHOST], wk[NHOST];
	char rdir[PATH_MAX];
	double end;
	jobq_t *q;

	assert_non_null(runs);
	print_message("pg jobs checker: seed %llu\n", (unsigned long long)seed);
	assert_int_equal(jqt_tmpdir(rdir, sizeof(rdir)), 0);
	snprintf(k->runs, sizeof(k->runs), "%s/runs", rdir);
	for (int i = 0; i < NHOST; i++) {
		host_start(&h[i]);
		snprintf(k->dirs[i], sizeof(k->dirs[i]), "%s", h[i].m.dir);
	}
	for (int i = 0; i < NHOST; i++) {
		wk[i] = jqt_fork(worker, i, k);
		prod[i] = jqt_fork(producer, i, k);
	}
	for (int ev = 0; ev < EVENTS; ev++) {
		int what = (int)(jqt_rand(&seed) % 3);
		int i = (int)(jqt_rand(&seed) % NHOST);

		jqt_sleep(0.1 + (double)(jqt_rand(&seed) % 400) / 1000);
		if (ev == EVENTS / 2) {
			/* Once: the database itself goes away and comes
			 * back; managers reconnect, nothing is lost. */
			assert_int_equal(jqt_pg_restart(&server), 0);
			continue;
		}
		if (what < 2) {
			host_crash_restart(&h[i]);
			mkills++;
		} else {
			jqt_kill_child(wk[i]);
			wk[i] = jqt_fork(worker, i, k);
			wkills++;
		}
	}
	jqt_sleep(0.3);
	k->stop = 1;
	assert_int_equal(jqt_wait_all(prod, NHOST, 60, NULL), 0);

	/* Every acknowledged job, waited for on the other host. */
	q = jobq_open_ex(&q, h[1].m.dir, NULL) ? NULL : q;
	assert_non_null(q);
	all = malloc(sizeof(*all) * NHOST * MAXSEQ);
	assert_non_null(all);
	end = jqt_now() + 90;
	for (int p = 0; p < NHOST; p++) {
		for (uint32_t s = 0; s < k->acked[p]; s++) {
			uint64_t id = k->ids[p][s];
			double left = end - jqt_now();
			jobq_obj_t o = {0};
			char want[64];
			int rc;

			all[n++] = id;
			rc = jobq_job_wait(q, id, left > 0.2 ? left : 0.2);
			if (rc == -ENOENT) {
				lost++;
				continue;
			}
			if (rc) {
				print_message("job %llu [%d,%u]: %s\n",
					      (unsigned long long)id, p, s,
					      jobq_strerror(rc));
				failed++;
				continue;
			}
			snprintf(want, sizeof(want), "[%d,%u]", p, s);
			if (jobq_job_result(q, id, &o) ||
			    o.len != strlen(want) ||
			    memcmp(o.data, want, o.len))
				wrong++;
			jobq_obj_free(&o);
		}
	}
	jobq_close(q);
	qsort(all, n, sizeof(*all), by_u64);
	for (uint64_t i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			wrong++;
	free(all);
	count_runs(k->runs, runs);
	/* Jobs nobody was told of: a submit applied twice, or one whose
	 * answer never came (counted in resent). */
	v = jqt_pg_exec(conninfo, "SELECT count(*) FROM jobq_jobs");
	if (v)
		rows = atoll(v);
	free(v);
	if (failed) {
		v = jqt_pg_exec(
		    conninfo, "SELECT string_agg(id || ':' || state || ':' || "
			      "attempts || ':' || coalesce(lease_owner, '-') "
			      "|| ':' || coalesce((lease_until < now())::text, "
			      "'-') || ':' || run_at::time, ' ') FROM "
			      "jobq_jobs WHERE state <> 5");
		print_message("not succeeded (id:state:attempts:owner:lease "
			      "over:run at): %s\n",
			      v ? v : "?");
		free(v);
		/* A transaction left open holds the rows it locked, which
		 * every reserve then skips. */
		v = jqt_pg_exec(
		    conninfo,
		    "SELECT string_agg(pid || ' ' || state || ' since ' || "
		    "coalesce((now() - xact_start)::text, '-') || ': ' || "
		    "left(query, 60), E'\\n') FROM pg_stat_activity WHERE "
		    "datname = current_database() AND pid <> "
		    "pg_backend_pid()");
		print_message("sessions:\n%s\n", v ? v : "?");
		free(v);
		/* Who serves each host now, and what the managers said
		 * last. */
		for (int i = 0; i < NHOST; i++) {
			struct jobq_worker_info *wi = NULL;
			jobq_t *hq = NULL;
			size_t nw = 0;

			print_message("host %d: manager %s\n", i,
				      jqt_mgr_alive(&h[i].m) ? "alive"
							     : "gone");
			print_message("host %d: the test's worker is pid %d\n",
				      i, (int)wk[i]);
			if (jobq_open_ex(&hq, h[i].m.dir, NULL) == 0 &&
			    jobq_workers(hq, &wi, &nw) == 0)
				for (size_t w = 0; w < nw; w++)
					print_message(
					    "host %d: worker %d running %u of "
					    "%u, done %llu\n",
					    i, (int)wi[w].pid, wi[w].running,
					    wi[w].capacity,
					    (unsigned long long)wi[w].done);
			free(wi);
			jobq_close(hq);
		}
		for (int i = 0; i < NHOST; i++) {
			char cmd[PATH_MAX + 64];

			snprintf(cmd, sizeof(cmd), "tail -n 25 '%s' >&2",
				 h[i].log);
			if (system(cmd))
				print_message("no log at %s\n", h[i].log);
		}
	}
	/* Only now: the list of workers above is of the live ones. */
	for (int i = 0; i < NHOST; i++)
		jqt_kill_child(wk[i]);
	for (int p = 0; p < NHOST; p++)
		for (uint32_t s = 0; s < k->acked[p]; s++) {
			if (!runs[p][s])
				never_ran++;
			else if (runs[p][s] > 1)
				twice++;
		}
	print_message("pg jobs checker: %u manager kills, %u worker kills, 1 "
		      "PostgreSQL restart; %u + %u submits acknowledged (%u "
		      "sent again), lost %llu, not succeeded %llu, wrong "
		      "result or id given twice %llu, never ran %u, run more "
		      "than once %llu, jobs in the table %lld\n",
		      mkills, wkills, k->acked[0], k->acked[1], k->resent,
		      (unsigned long long)lost, (unsigned long long)failed,
		      (unsigned long long)wrong, never_ran,
		      (unsigned long long)twice, rows);
	assert_int_equal(lost, 0);
	assert_int_equal(failed, 0);
	assert_int_equal(wrong, 0);
	assert_int_equal(never_ran, 0);
	assert_true(rows >= (long long)n);
	assert_true(rows - (long long)n <= (long long)k->resent);
	assert_true(k->acked[0] > 0 && k->acked[1] > 0);
	free(runs);
	for (int i = 0; i < NHOST; i++)
		jqt_pg_host_stop(&h[i]);
	jqt_rmtree(rdir);
}

static int setup(void **state)
{
	return jqt_pg_createdb(&server, "crash", conninfo, sizeof(conninfo));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_checker, setup),
	};

	jqt_init();
	return jqt_pg_run_tests(&server, tests);
}
