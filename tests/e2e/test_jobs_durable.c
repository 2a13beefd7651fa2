/* SPDX-License-Identifier: MIT */
/*
 * test_jobs_durable.c - jobs survive the manager's death:
 *
 *  - jobs finished, running, waiting on --after, delayed, held by a
 *    paused queue and holding a --unique key; kill -9 jobqd; a new one on
 *    the same directory has every one of them: the finished result, the
 *    running job back to ready with its attempt counted (and run again by
 *    the new manager's workers), the key still taken, the chain still
 *    waiting, the queue still paused; new ids continue after the old. In
 *    each --fsync mode;
 *  - enough big jobs for a snapshot to compact the journal: they all come
 *    back from the snapshot and the journal after it;
 *  - the jobs checker: producers submit numbered echo jobs and record
 *    each submit that was acknowledged, the manager is killed with SIGKILL
 *    at random moments 20+ times and restarted; in the end every
 *    acknowledged submit ends succeeded with its args as result, and no
 *    id was given twice. In each --fsync mode; producers reconnect by
 *    opening a new handle. And again with handles that reconnect by
 *    themselves, and workers that are the checker's own processes
 *    (reconnecting too) instead of jobqd's: no call fails, and no submit
 *    made two jobs (request ids);
 *  - --durable: refused, saying so, when the journal is on tmpfs; on a
 *    disk the put and the submit are answered and survive a kill -9;
 *  - a full store (jobqd --memory 8M): results inside --keep stay, a
 *    submit that does not fit fails with JOBQ_EFULL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

/* A manager with the journal options of one mode and built-in workers.
 * @jdir holds --journal FILE when the mode has one. */
struct dmgr {
	struct jqt_mgr m;
	char jdir[PATH_MAX];
	char jfile[PATH_MAX + 16];
	const char *args[12];
};

static void dmgr_start(struct dmgr *d, const char *fsync, bool file,
		       const char *workers)
{
	int n = 0;

	memset(d, 0, sizeof(*d));
	if (file) {
		assert_int_equal(jqt_tmpdir(d->jdir, sizeof(d->jdir)), 0);
		snprintf(d->jfile, sizeof(d->jfile), "%s/jq.journal", d->jdir);
		d->args[n++] = "--journal";
		d->args[n++] = d->jfile;
	}
	if (fsync) {
		d->args[n++] = "--fsync";
		d->args[n++] = fsync;
	}
	/* Compaction after a few MB of records, not the default 16. */
	d->args[n++] = "--compact-min";
	d->args[n++] = "4M";
	d->args[n++] = "--workers";
	d->args[n++] = workers;
	d->args[n] = NULL;
	assert_int_equal(jqt_mgr_start(&d->m, d->args), 0);
}

/*
 * The instance lock is free (at most 10 s): a worker child forked at the
 * moment of the kill holds the manager's lock until it is gone, which
 * PR_SET_PDEATHSIG makes soon, not at once.
 */
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

static int dmgr_crash_restart(struct dmgr *d)
{
	kill(d->m.pid, SIGKILL);
	if (jqt_mgr_wait_exit(&d->m, 10))
		return -1;
	await_lock_free(d->m.dir);
	return jqt_mgr_restart(&d->m, d->args);
}

static void dmgr_stop(struct dmgr *d)
{
	jqt_mgr_stop(&d->m);
	if (d->jdir[0])
		jqt_rmtree(d->jdir);
}

static uint64_t submit(jobq_t *q, const char *type, const char *args,
		       const struct jobq_submit_opts *o)
{
	uint64_t id = 0;

	assert_int_equal(
	    jobq_submit(q, type, JOBQ_T_JSON, args, strlen(args), o, &id), 0);
	assert_true(id > 0);
	return id;
}

static int state_of(jobq_t *q, uint64_t id)
{
	struct jobq_job_info in;

	if (jobq_job_info(q, id, &in))
		return -1;
	return in.state;
}

/* Waits (at most 20 s) until job @id is in @state. */
static void await_state(jobq_t *q, uint64_t id, int state)
{
	double end = jqt_now() + 20;

	while (state_of(q, id) != state && jqt_now() < end)
		jqt_sleep(0.01);
	assert_int_equal(state_of(q, id), state);
}

static void expect_result(jobq_t *q, uint64_t id, const char *want)
{
	jobq_obj_t o = {0};

	assert_int_equal(jobq_job_result(q, id, &o), 0);
	assert_int_equal(o.len, strlen(want));
	assert_memory_equal(o.data, want, o.len);
	jobq_obj_free(&o);
}

static void restart_case(const char *fsync, bool file)
{
	struct jobq_submit_opts uo = {.unique = "k1"}, po = {.queue = "held"};
	struct jobq_submit_opts ao = {.delay = 0.3};
	struct jobq_job_info in;
	uint64_t done, run, chain, later, held, again, next;
	struct dmgr d;
	jobq_t *q;

	dmgr_start(&d, fsync, file, "1");
	q = jqt_open_or_die(&d.m);
	done = submit(q, "echo", "\"finished\"", NULL);
	assert_int_equal(jobq_job_wait(q, done, 20), 0);
	/* The one worker runs this one when the manager dies. */
	run = submit(q, "sleep", "{\"ms\": 1500}", NULL);
	await_state(q, run, JOBQ_JOB_RUNNING);
	uo.after = &run;
	uo.nafter = 1;
	chain = submit(q, "echo", "\"chained\"", &uo);
	later = submit(q, "echo", "\"later\"", &ao);
	assert_int_equal(jobq_pause(q, "held"), 0);
	held = submit(q, "echo", "\"held\"", &po);
	assert_int_equal(state_of(q, chain), JOBQ_JOB_WAITING);
	assert_int_equal(state_of(q, held), JOBQ_JOB_READY);
	jobq_close(q);

	assert_int_equal(dmgr_crash_restart(&d), 0);
	q = jqt_open_or_die(&d.m);
	assert_int_equal(state_of(q, done), JOBQ_JOB_SUCCEEDED);
	expect_result(q, done, "\"finished\"");
	/* The key is still taken while the chain waits for the sleeper. */
	assert_int_equal(state_of(q, chain), JOBQ_JOB_WAITING);
	assert_int_equal(
	    jobq_submit(q, "echo", JOBQ_T_JSON, "1", 1, &uo, &again), 1);
	assert_int_equal(again, chain);
	/* The sleeper lost its worker: ready again, the attempt counted,
	 * run to the end by the new manager's worker. */
	assert_int_equal(jobq_job_wait(q, run, 20), 0);
	assert_int_equal(jobq_job_info(q, run, &in), 0);
	assert_int_equal(in.attempts, 2);
	assert_int_equal(jobq_job_wait(q, chain, 20), 0);
	expect_result(q, chain, "\"chained\"");
	assert_int_equal(jobq_job_wait(q, later, 20), 0);
	/* The paused queue stayed paused. */
	jqt_sleep(0.2);
	assert_int_equal(state_of(q, held), JOBQ_JOB_READY);
	assert_int_equal(jobq_resume(q, "held"), 0);
	assert_int_equal(jobq_job_wait(q, held, 20), 0);
	/* Ids continue after the highest one before the crash. */
	next = submit(q, "echo", "2", NULL);
	assert_true(next > held);
	assert_int_equal(jobq_job_wait(q, next, 20), 0);
	jobq_close(q);

	/* A graceful stop and start keeps it all too. */
	kill(d.m.pid, SIGTERM);
	assert_int_equal(jqt_mgr_wait_exit(&d.m, 10), 0);
	assert_int_equal(jqt_mgr_restart(&d.m, d.args), 0);
	q = jqt_open_or_die(&d.m);
	expect_result(q, chain, "\"chained\"");
	assert_int_equal(state_of(q, next), JOBQ_JOB_SUCCEEDED);
	assert_true(submit(q, "echo", "3", NULL) > next);
	jobq_close(q);
	dmgr_stop(&d);
}

static void test_restart_none(void **state)
{
	restart_case(NULL, false);
}

static void test_restart_batch(void **state)
{
	restart_case("batch", true);
}

static void test_restart_always(void **state)
{
	restart_case("always", true);
}

/* Past 4 MiB of journal (--compact-min) a snapshot compacts it. */
static void test_snapshot(void **state)
{
	enum { N = 120, ARGS = 60000 };
	uint64_t ids[N];
	struct stat st;
	struct dmgr d;
	char *args = malloc(ARGS + 3);
	jobq_t *q;

	assert_non_null(args);
	dmgr_start(&d, NULL, false, "0");
	snprintf(d.jfile, sizeof(d.jfile), "%s/journal", d.m.dir);
	q = jqt_open_or_die(&d.m);
	for (int i = 0; i < N; i++) {
		args[0] = '"';
		memset(args + 1, 'a' + i % 26, ARGS);
		args[ARGS + 1] = '"';
		args[ARGS + 2] = '\0';
		ids[i] = submit(q, "nobody", args, NULL);
	}
	jobq_close(q);
	assert_int_equal(dmgr_crash_restart(&d), 0);
	q = jqt_open_or_die(&d.m);
	for (int i = 0; i < N; i++) {
		jobq_obj_t o = {0};

		assert_int_equal(state_of(q, ids[i]), JOBQ_JOB_READY);
		assert_int_equal(jobq_job_args_of(q, ids[i], &o), 0);
		assert_int_equal(o.len, ARGS + 2);
		assert_int_equal(((char *)o.data)[ARGS / 2], 'a' + i % 26);
		jobq_obj_free(&o);
	}
	assert_true(submit(q, "nobody", "1", NULL) > ids[N - 1]);
	jobq_close(q);
	/* The journal after the snapshot holds less than the jobs. */
	assert_int_equal(stat(d.jfile, &st), 0);
	assert_true(st.st_size < (off_t)N * ARGS);
	free(args);
	dmgr_stop(&d);
}

/* ------------------------------------------------------------------------
 * The jobs checker.
 */
#define NPROD  2
#define MAXSEQ 8192
#define KILLS  22

struct checker {
	_Atomic int stop;
	_Atomic uint32_t acked[NPROD]; /* submits acknowledged: 0..acked-1 */
	_Atomic uint64_t ids[NPROD][MAXSEQ];
	_Atomic uint64_t reconnects;
	_Atomic uint32_t failed; /* calls that failed in the automatic mode */
	bool autoreconnect;
	char dir[PATH_MAX];
};

static jobq_t *reopen(struct checker *k)
{
	struct jobq_open_opts o = {.reconnect = 30};
	double end = jqt_now() + 30;
	jobq_t *q = NULL;

	while (jobq_open_ex(&q, k->dir, k->autoreconnect ? &o : NULL)) {
		if (jqt_now() > end)
			return NULL;
		jqt_sleep(0.01);
	}
	k->reconnects++;
	return q;
}

static int producer(int idx, void *arg)
{
	struct checker *k = arg;
	/* Kills must not use up a job's attempts. */
	struct jobq_submit_opts o = {.retries = 1000};
	jobq_t *q = reopen(k);
	uint32_t seq = 0;
	char buf[64];

	CK(q);
	while (!k->stop && seq < MAXSEQ) {
		int n = snprintf(buf, sizeof(buf), "[%d,%u]", idx, seq), rc;
		uint64_t id = 0;

		rc = jobq_submit(q, "echo", JOBQ_T_JSON, buf, (size_t)n, &o,
				 &id);
		if (rc == 0) {
			k->ids[idx][seq] = id;
			k->acked[idx] = ++seq;
			jqt_sleep(0.001);
			continue;
		}
		if (k->autoreconnect) {
			fprintf(stderr, "producer %d: submit %u: %s\n", idx,
				seq, jobq_strerror(rc));
			k->failed++;
			continue;
		}
		jobq_close(q);
		q = reopen(k);
		CK(q);
	}
	jobq_close(q);
	return 0;
}

/* A worker of the checker's own: serves echo through every restart. */
static int worker(int idx, void *arg)
{
	struct checker *k = arg;
	jobq_worker_t *w = NULL;
	jobq_t *q = reopen(k);
	int rc;

	CK(q);
	CK(jobq_worker_new(&w, q, NULL) == 0);
	CK(jobq_worker_builtin_types(w, "echo") == 0);
	rc = jobq_worker_run(w);
	if (rc)
		fprintf(stderr, "worker %d: %s\n", idx, jobq_strerror(rc));
	jobq_worker_free(w);
	jobq_close(q);
	return rc ? 1 : 0;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void checker_case(const char *fsync, bool file, bool autoreconnect)
{
	struct checker *k = jqt_shared(sizeof(*k));
	uint64_t extra = 0, maxid = 0;
	pid_t wk[2];
	uint64_t seed = (uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL);
	uint64_t lost = 0, failed = 0, reused = 0, n = 0, *all;
	pid_t prod[NPROD];
	struct dmgr d;
	jobq_t *q;

	print_message("jobs checker --fsync %s: seed %llu\n",
		      fsync ? fsync : "none", (unsigned long long)seed);
	dmgr_start(&d, fsync, file, autoreconnect ? "0" : "2");
	snprintf(k->dir, sizeof(k->dir), "%s", d.m.dir);
	k->autoreconnect = autoreconnect;
	if (autoreconnect)
		for (int i = 0; i < 2; i++)
			wk[i] = jqt_fork(worker, i, k);
	for (int i = 0; i < NPROD; i++)
		prod[i] = jqt_fork(producer, i, k);
	for (int kill_no = 0; kill_no < KILLS; kill_no++) {
		jqt_sleep(0.03 + (double)(jqt_rand(&seed) % 170) / 1000);
		assert_int_equal(dmgr_crash_restart(&d), 0);
	}
	jqt_sleep(0.2);
	k->stop = 1;
	assert_int_equal(jqt_wait_all(prod, NPROD, 30, NULL), 0);

	q = jqt_open_or_die(&d.m);
	all = malloc(sizeof(*all) * NPROD * MAXSEQ);
	assert_non_null(all);
	for (int p = 0; p < NPROD; p++) {
		for (uint32_t s = 0; s < k->acked[p]; s++) {
			char want[64];
			jobq_obj_t o = {0};
			int rc = jobq_job_wait(q, k->ids[p][s], 60);

			all[n++] = k->ids[p][s];
			if (rc == -ENOENT) {
				lost++;
				continue;
			}
			if (rc) {
				print_message("job %llu: %s\n",
					      (unsigned long long)k->ids[p][s],
					      jobq_strerror(rc));
				failed++;
				continue;
			}
			snprintf(want, sizeof(want), "[%d,%u]", p, s);
			if (jobq_job_result(q, k->ids[p][s], &o) ||
			    o.len != strlen(want) ||
			    memcmp(o.data, want, o.len))
				reused++;
			jobq_obj_free(&o);
		}
	}
	qsort(all, n, sizeof(*all), by_u64);
	for (uint64_t i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			reused++;
	/* Jobs nobody was told of: a submit applied twice. */
	maxid = n ? all[n - 1] : 0;
	for (uint64_t id = 1, i = 0; autoreconnect && id <= maxid; id++) {
		struct jobq_job_info info;

		while (i < n && all[i] < id)
			i++;
		if (i < n && all[i] == id)
			continue;
		if (jobq_job_info(q, id, &info) == 0)
			extra++;
	}
	free(all);
	if (autoreconnect)
		for (int i = 0; i < 2; i++)
			jqt_kill_child(wk[i]);
	jobq_close(q);
	print_message("jobs checker --fsync %s%s: %d kills, %u + %u submits "
		      "acknowledged, lost %llu, not succeeded %llu, ids given "
		      "twice %llu, jobs submitted twice %llu, %llu opens, %u "
		      "failed calls\n",
		      fsync ? fsync : "none",
		      autoreconnect ? " (reconnecting handles)" : "", KILLS,
		      k->acked[0], k->acked[1], (unsigned long long)lost,
		      (unsigned long long)failed, (unsigned long long)reused,
		      (unsigned long long)extra,
		      (unsigned long long)k->reconnects, k->failed);
	assert_int_equal(lost, 0);
	assert_int_equal(k->failed, 0);
	assert_int_equal(extra, 0);
	assert_int_equal(failed, 0);
	assert_int_equal(reused, 0);
	assert_true(k->acked[0] > 0 && k->acked[1] > 0);
	dmgr_stop(&d);
}

static void test_checker_none(void **state)
{
	checker_case(NULL, false, false);
}

static void test_checker_auto_none(void **state)
{
	checker_case(NULL, false, true);
}

static void test_checker_auto_batch(void **state)
{
	checker_case("batch", true, true);
}

static void test_checker_auto_always(void **state)
{
	checker_case("always", true, true);
}

static void test_checker_batch(void **state)
{
	checker_case("batch", true, false);
}

static void test_checker_always(void **state)
{
	checker_case("always", true, false);
}

/* ------------------------------------------------------------------------
 * --durable.
 */
static bool in_memory_fs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

static void test_durable_tmpfs(void **state)
{
	struct jobq_submit_opts o = {.durable = 1};
	char dir[] = "/dev/shm/jqt-XXXXXX", jfile[64];
	const char *args[] = {"--journal", jfile, "--workers", "0", NULL};
	struct jqt_mgr mgr, *m = &mgr;
	struct jqt_out out;
	uint64_t id;
	jobq_t *q;

	if (!in_memory_fs("/dev/shm") || !mkdtemp(dir)) {
		print_message("no tmpfs at /dev/shm: skipped\n");
		return;
	}
	snprintf(jfile, sizeof(jfile), "%s/journal", dir);
	assert_int_equal(jqt_mgr_start(m, args), 0);
	q = jqt_open_or_die(m);
	assert_int_equal(jobq_put_durable(q, "dq", JOBQ_T_TEXT, "x", 1, 5),
			 -EOPNOTSUPP);
	assert_int_equal(jobq_submit(q, "echo", JOBQ_T_JSON, "1", 1, &o, &id),
			 -EOPNOTSUPP);
	/* Without --durable the same works. */
	assert_int_equal(jobq_put(q, "dq", JOBQ_T_TEXT, "x", 1, 5), 0);
	jobq_close(q);
	CLI(&out, "submit", "echo", "{}", "--durable");
	assert_int_equal(out.code, 1);
	assert_non_null(strstr(out.err, "tmpfs"));
	jqt_out_free(&out);
	CLI(&out, "put", "dq", "y", "--durable");
	assert_int_equal(out.code, 1);
	assert_non_null(strstr(out.err, "tmpfs"));
	jqt_out_free(&out);
	jqt_mgr_stop(m);
	jqt_rmtree(dir);
}

/*
 * A directory on a disk for --journal: the tests' temporary directory,
 * else /var/tmp, else the working directory (the build tree). Returns
 * false when all of them are in memory.
 */
static bool disk_dir(char *buf, size_t len)
{
	const char *t = getenv("TMPDIR");
	char cwd[PATH_MAX];
	const char *cand[] = {t && *t ? t : "/tmp", "/var/tmp",
			      getcwd(cwd, sizeof(cwd))};

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		if (!cand[i] || in_memory_fs(cand[i]))
			continue;
		if ((size_t)snprintf(buf, len, "%s/jqt-XXXXXX", cand[i]) <
			len &&
		    mkdtemp(buf))
			return true;
	}
	return false;
}

static void test_durable_disk(void **state)
{
	struct jobq_submit_opts o = {.durable = 1};
	char jdir[PATH_MAX], jfile[PATH_MAX + 16];
	struct jqt_out out;
	jobq_obj_t obj = {0};
	struct dmgr d;
	struct jqt_mgr *m = &d.m;
	uint64_t id;
	jobq_t *q;

	if (!disk_dir(jdir, sizeof(jdir))) {
		print_message("no directory on a disk: skipped\n");
		return;
	}
	snprintf(jfile, sizeof(jfile), "%s/journal", jdir);
	memset(&d, 0, sizeof(d));
	d.args[0] = "--journal";
	d.args[1] = jfile;
	d.args[2] = "--workers";
	d.args[3] = "0";
	assert_int_equal(jqt_mgr_start(&d.m, d.args), 0);
	q = jqt_open_or_die(&d.m);
	assert_int_equal(jobq_put_durable(q, "dq", JOBQ_T_TEXT, "x", 1, 5), 0);
	assert_int_equal(jobq_submit(q, "nobody", JOBQ_T_JSON, "1", 1, &o, &id),
			 0);
	jobq_close(q);
	CLI(&out, "put", "dq", "y", "--durable");
	assert_int_equal(out.code, 0);
	jqt_out_free(&out);
	CLI(&out, "submit", "nobody", "{}", "--durable");
	assert_int_equal(out.code, 0);
	jqt_out_free(&out);

	assert_int_equal(dmgr_crash_restart(&d), 0);
	q = jqt_open_or_die(&d.m);
	assert_int_equal(jobq_get(q, "dq", &obj, 5), 0);
	assert_memory_equal(obj.data, "x", 1);
	jobq_obj_free(&obj);
	assert_int_equal(jobq_get(q, "dq", &obj, 5), 0);
	assert_memory_equal(obj.data, "y", 1);
	jobq_obj_free(&obj);
	assert_int_equal(state_of(q, id), JOBQ_JOB_READY);
	assert_int_equal(state_of(q, id + 1), JOBQ_JOB_READY);
	jobq_close(q);
	jqt_mgr_stop(&d.m);
	jqt_rmtree(jdir);
}

/* ------------------------------------------------------------------------
 * A full store keeps the results inside --keep.
 */
static void test_full_store_keeps_results(void **state)
{
	const char *args[] = {"--memory", "8M", "--workers", "1", NULL};
	enum { BIG = 200000, NDONE = 8 };
	struct jqt_mgr mgr;
	uint64_t done[NDONE], id;
	char *big = malloc(BIG + 3);
	int rc = 0, n;
	jobq_t *q;

	assert_non_null(big);
	big[0] = '"';
	memset(big + 1, 'r', BIG);
	big[BIG + 1] = '"';
	big[BIG + 2] = '\0';
	assert_int_equal(jqt_mgr_start(&mgr, args), 0);
	q = jqt_open_or_die(&mgr);
	/* Finished jobs whose results take room. */
	for (int i = 0; i < NDONE; i++) {
		done[i] = submit(q, "echo", big, NULL);
		assert_int_equal(jobq_job_wait(q, done[i], 20), 0);
	}
	/* Then more than the store holds, to no worker. */
	for (n = 0; n < 1000; n++) {
		rc = jobq_submit(q, "nobody", JOBQ_T_JSON, big, BIG + 2, NULL,
				 &id);
		if (rc)
			break;
	}
	assert_int_equal(rc, JOBQ_EFULL);
	assert_true(n > 0);
	for (int i = 0; i < NDONE; i++) {
		jobq_obj_t o = {0};

		assert_int_equal(state_of(q, done[i]), JOBQ_JOB_SUCCEEDED);
		assert_int_equal(jobq_job_result(q, done[i], &o), 0);
		assert_int_equal(o.len, BIG + 2);
		jobq_obj_free(&o);
	}
	jobq_close(q);
	free(big);
	jqt_mgr_stop(&mgr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_restart_none),
	    cmocka_unit_test(test_restart_batch),
	    cmocka_unit_test(test_restart_always),
	    cmocka_unit_test(test_snapshot),
	    cmocka_unit_test(test_durable_tmpfs),
	    cmocka_unit_test(test_durable_disk),
	    cmocka_unit_test(test_full_store_keeps_results),
	    cmocka_unit_test(test_checker_none),
	    cmocka_unit_test(test_checker_batch),
	    cmocka_unit_test(test_checker_always),
	    cmocka_unit_test(test_checker_auto_none),
	    cmocka_unit_test(test_checker_auto_batch),
	    cmocka_unit_test(test_checker_auto_always),
	};

	jqt_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
