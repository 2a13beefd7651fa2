/* SPDX-License-Identifier: MIT */
/*
 * test_idle.c - an idle instance sleeps, and still hears.
 *
 * A manager with three `jobq get` processes blocked on an empty queue has
 * nothing to do, so none of its processes may run: over a window of
 * $JOBQ_IDLE_WINDOW seconds (default 60) the voluntary and involuntary
 * context switches of every thread of the manager, its workers and the
 * getters (/proc/PID/task/TID/status) must not change at all. A thread
 * that sleeps in the kernel and is never woken makes no context switch,
 * so any periodic re-check, poll or timer shows up here as a count.
 *
 * Idle must not mean deaf: after the window each put wakes one getter
 * within a few seconds, and with workers a submitted job still runs.
 *
 * The case with `--workers 2` counts the two built-in workers' threads
 * too: they wait for work on their io_uring, with no timer.
 *
 * Sleeping without a timer is only safe when every wake-up arrives, so
 * the other cases make each event that used to be polled for the only
 * thing that happens, and hang (until a bound) if its wake-up is lost: a
 * client acknowledging an object that a blocked put waits for, a client
 * making room in a full cq, the manager making room in a full sq, and a
 * worker's orphan dying.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "harness.h"

#define NGETTERS    3
#define QUEUE	    "idle"
#define MAX_THREADS 256
#define SETTLE_S    1.0
#define PROMPT_S    5.0 /* a woken getter exits well within this */

/* One thread's context switches at one moment. */
struct tcount {
	pid_t pid, tid;
	unsigned long long sw;
	char comm[20];
};

struct snap {
	struct tcount t[MAX_THREADS];
	int n;
};

static double window_s(void)
{
	const char *s = getenv("JOBQ_IDLE_WINDOW");
	double w = s && *s ? strtod(s, NULL) : 60;

	return w > 0 ? w : 60;
}

/* voluntary + nonvoluntary context switches of @tid, the voluntary ones
 * alone (its sleeps) in @vol when not NULL, and its name. */
static int thread_switches(pid_t pid, pid_t tid, unsigned long long *sw,
			   unsigned long long *vol, char *comm, size_t commlen)
{
	char path[96], line[256];
	unsigned long long v = 0, nv = 0;
	int got = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid,
		 (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	comm[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Name:\t", 6)) {
			snprintf(comm, commlen, "%.15s", line + 6);
			comm[strcspn(comm, "\n")] = '\0';
		} else if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) ==
			   1) {
			got |= 1;
		} else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu",
				  &nv) == 1) {
			got |= 2;
		}
	}
	fclose(f);
	if (got != 3)
		return -EIO;
	*sw = v + nv;
	if (vol)
		*vol = v;
	return 0;
}

/* Every thread of every process in @pids, appended to @s. */
static void take_snap(const pid_t *pids, int n, struct snap *s)
{
	s->n = 0;
	for (int i = 0; i < n; i++) {
		char path[64];
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)pids[i]);
		d = opendir(path);
		assert_non_null(d);
		while ((de = readdir(d))) {
			struct tcount *t;
			pid_t tid = (pid_t)atoi(de->d_name);

			if (tid <= 0)
				continue;
			assert_true(s->n < MAX_THREADS);
			t = &s->t[s->n];
			t->pid = pids[i];
			t->tid = tid;
			if (thread_switches(pids[i], tid, &t->sw, NULL, t->comm,
					    sizeof(t->comm)))
				continue; /* exited meanwhile: seen below */
			s->n++;
		}
		closedir(d);
	}
}

/*
 * Context switches between @a and @b, each thread that changed printed.
 * A thread that appeared or went away counts as one: something ran.
 */
static unsigned long long switches_between(const struct snap *a,
					   const struct snap *b)
{
	unsigned long long total = 0;

	for (int i = 0; i < b->n; i++) {
		const struct tcount *tb = &b->t[i];
		const struct tcount *ta = NULL;

		for (int j = 0; j < a->n; j++)
			if (a->t[j].tid == tb->tid)
				ta = &a->t[j];
		if (!ta) {
			printf("  pid %d thread %d (%s) started\n",
			       (int)tb->pid, (int)tb->tid, tb->comm);
			total++;
		} else if (tb->sw != ta->sw) {
			printf("  pid %d thread %d (%s): %llu switches\n",
			       (int)tb->pid, (int)tb->tid, tb->comm,
			       tb->sw - ta->sw);
			total += tb->sw - ta->sw;
		}
	}
	for (int j = 0; j < a->n; j++) {
		bool found = false;

		for (int i = 0; i < b->n; i++)
			found |= a->t[j].tid == b->t[i].tid;
		if (!found) {
			printf("  pid %d thread %d (%s) went away\n",
			       (int)a->t[j].pid, (int)a->t[j].tid,
			       a->t[j].comm);
			total++;
		}
	}
	return total;
}

/* A getter: `jobq --dir DIR get QUEUE` without a timeout, its stdout in
 * DIR/../get-IDX.out. */
static int getter_main(int idx, void *arg)
{
	const struct jqt_mgr *m = arg;
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/get-%d.out", m->top, idx);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
		return 98;
	execl(jqt_jobq_path(), "jobq", "--dir", m->dir, "get", QUEUE,
	      (char *)NULL);
	return 127;
}

static void wait_getters_blocked(const struct jqt_mgr *m)
{
	double end = jqt_now() + 10;
	jobq_t *q;

	assert_rc(jobq_open(&q, m->dir), 0);
	for (;;) {
		struct jobq_queue_info qi;

		if (jobq_queue_info(q, QUEUE, &qi) == 0 &&
		    qi.getters == NGETTERS)
			break;
		assert_true(jqt_now() < end);
		jqt_sleep(0.01);
	}
	jobq_close(q);
}

/* Reaps whichever getter exits first within PROMPT_S; returns its index. */
static int wait_one_getter(pid_t *pids, bool *gone)
{
	double end = jqt_now() + PROMPT_S;

	for (;;) {
		for (int i = 0; i < NGETTERS; i++) {
			int st;

			if (gone[i] || jqt_wait_pid(pids[i], 0, &st))
				continue;
			gone[i] = true;
			if (!jqt_status_ok(st))
				fail_msg("getter %d ended with status 0x%x", i,
					 st);
			return i;
		}
		if (jqt_now() >= end)
			fail_msg("no getter woke within %.0f s of a put",
				 PROMPT_S);
		jqt_sleep(0.002);
	}
}

static char *slurp(const char *path)
{
	char *buf = calloc(1, 256);
	FILE *f = fopen(path, "re");

	assert_non_null(buf);
	assert_non_null(f);
	if (fread(buf, 1, 255, f)) {
	}
	fclose(f);
	return buf;
}

/*
 * The whole check on a manager started with @args: getters blocked, the
 * window measured, then puts (and with @workers a job) served promptly.
 * Returns the context switches counted in the window.
 */
static unsigned long long idle_case(const char *const *args, bool workers)
{
	struct jqt_mgr m;
	pid_t getters[NGETTERS], pids[2 + NGETTERS + 16];
	bool gone[NGETTERS] = {false};
	bool seen[NGETTERS] = {false};
	static struct snap a, b;
	unsigned long long sw;
	double w = window_s();
	int np = 0, nk;
	jobq_t *q;

	assert_int_equal(jqt_mgr_start(&m, args), 0);
	if (workers) {
		/* Both workers registered before anything is measured. */
		double end = jqt_now() + 10;

		assert_rc(jobq_open(&q, m.dir), 0);
		for (;;) {
			struct jobq_worker_info *ws = NULL;
			size_t n = 0;

			assert_rc(jobq_workers(q, &ws, &n), 0);
			free(ws);
			if (n == 2)
				break;
			assert_true(jqt_now() < end);
			jqt_sleep(0.01);
		}
		jobq_close(q);
	}
	for (int i = 0; i < NGETTERS; i++) {
		getters[i] = jqt_fork(getter_main, i, &m);
		assert_true(getters[i] > 0);
	}
	wait_getters_blocked(&m);
	jqt_sleep(SETTLE_S);

	pids[np++] = m.pid;
	nk = jqt_proc_children(m.pid, pids + np, NULL, 16);
	assert_true(nk >= 0 && nk <= 16);
	assert_int_equal(nk, workers ? 2 : 0);
	np += nk;
	for (int i = 0; i < NGETTERS; i++)
		pids[np++] = getters[i];

	printf("idle window: %.0f s, %d processes\n", w, np);
	take_snap(pids, np, &a);
	jqt_sleep(w);
	take_snap(pids, np, &b);
	sw = switches_between(&a, &b);
	printf("context switches in the window: %llu\n", sw);

	/* Not deaf: each put wakes one getter, promptly. */
	assert_rc(jobq_open(&q, m.dir), 0);
	for (int i = 0; i < NGETTERS; i++) {
		char msg[16];
		double t0 = jqt_now();
		int who;

		snprintf(msg, sizeof(msg), "obj-%d", i);
		assert_rc(jobq_put(q, QUEUE, JOBQ_T_BYTES, msg, strlen(msg), 0),
			  0);
		who = wait_one_getter(getters, gone);
		printf("put %d: getter %d got it and exited in %.1f ms\n", i,
		       who, (jqt_now() - t0) * 1e3);
	}
	for (int i = 0; i < NGETTERS; i++) {
		char path[PATH_MAX + 32], *out;
		int k;

		snprintf(path, sizeof(path), "%s/get-%d.out", m.top, i);
		out = slurp(path);
		assert_int_equal(sscanf(out, "obj-%d", &k), 1);
		assert_true(k >= 0 && k < NGETTERS && !seen[k]);
		seen[k] = true;
		free(out);
	}
	if (workers) {
		static const char args_json[] = "{\"hello\":1}";
		uint64_t id;
		double t0 = jqt_now();

		assert_rc(jobq_submit(q, "echo", JOBQ_T_JSON, args_json,
				      strlen(args_json), NULL, &id),
			  0);
		assert_rc(jobq_job_wait(q, id, 30), 0);
		printf("a job ran in %.1f ms\n", (jqt_now() - t0) * 1e3);
	}
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
	return sw;
}

static void test_idle_manager(void **state)
{
	(void)state;
	assert_int_equal(idle_case(NULL, false), 0);
}

static void test_idle_workers(void **state)
{
	static const char *const args[] = {"--workers", "2", NULL};
	unsigned long long sw;

	(void)state;
	sw = idle_case(args, true);
	assert_int_equal(sw, 0);
}

/* ------------------------------------------------------------------------
 * The manager sleeps while it waits for a client's cq head, so the client
 * must wake it when it moves head (WANT_HEAD, proto.h). Each case below
 * hangs if that wake-up is lost: nothing else happens after the head moves.
 */

/* A put of 60000 bytes into a full store: waits until a get frees room. */
static int blocked_putter(int idx, void *arg)
{
	const struct jqt_mgr *m = arg;
	uint8_t *buf = calloc(1, 60000);
	jobq_t *q;

	(void)idx;
	CK(buf);
	CK_RC(jobq_open(&q, m->dir), 0);
	CK_RC(jobq_put(q, "full", JOBQ_T_BYTES, buf, 60000, 20), 0);
	free(buf);
	jobq_close(q);
	return 0;
}

static void got_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	(void)q;
	(void)obj;
	*(int *)arg = res;
}

/*
 * An object handed to a client is freed when the client acknowledges it
 * (moves cq head). With a put waiting for that memory, the acknowledgement
 * alone must get the put through: no request follows it.
 */
static void test_ack_wakes_manager(void **state)
{
	static const char *const args[] = {"--memory", "8M", "--max-object",
					   "64K", NULL};
	enum { SZ = 60000 };
	struct jobq_queue_info qi;
	struct jqt_mgr m;
	uint8_t *buf = calloc(1, SZ);
	double end;
	int got = 1, rc, n = 0;
	jobq_t *q;
	pid_t pid;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	while ((rc = jobq_put(q, "full", JOBQ_T_BYTES, buf, SZ, 0)) == 0)
		assert_true(++n < 10000);
	assert_rc(rc, JOBQ_EFULL);

	pid = jqt_fork(blocked_putter, 0, &m);
	assert_true(pid > 0);
	end = jqt_now() + 10;
	while (jobq_queue_info(q, "full", &qi) || qi.putters != 1) {
		assert_true(jqt_now() < end);
		jqt_sleep(0.01);
	}

	/* Handed to us and posted, but not acknowledged: the manager keeps
	 * the object, and the put keeps waiting, until we reap. */
	assert_rc(jobq_get_async(q, "full", 5, got_cb, &got), 0);
	jqt_sleep(0.5);
	assert_rc(jobq_queue_info(q, "full", &qi), 0);
	assert_int_equal(qi.putters, 1);
	assert_int_equal(got, 1);

	/* Reaping moves head; nothing else goes to the manager after it. */
	assert_rc(jobq_process(q), 1);
	assert_rc(got, 0);
	assert_int_equal(jqt_wait_all(&pid, 1, PROMPT_S, NULL), 0);

	jobq_close(q);
	free(buf);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

/*
 * A request that needs cq room waits in the sq while the client has not
 * consumed its full cq; consuming one entry must get it taken. Spoken over
 * a raw connection, which follows the handshake exactly (jqt_raw_wait()).
 */
static void test_cq_room_wakes_manager(void **state)
{
	struct jobq_sqe nop = {.op = JOBQ_OP_NOP};
	struct jobq_cqe cqe;
	struct jqt_raw r;
	struct jqt_mgr m;
	uint32_t n;

	(void)state;
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	assert_rc(jqt_raw_open(m.dir, &r), 0);
	n = r.cq_entries;

	/* Fill the cq without consuming, a submission ring at a time. */
	for (uint32_t i = 0; i < n; i++) {
		nop.user_data = i;
		assert_rc(jqt_raw_submit(&r, &nop), 0);
		if ((i + 1) % r.sq_entries == 0 || i + 1 == n)
			assert_rc(jqt_raw_peek(&r, i, &cqe, 10), 0);
	}
	nop.user_data = n;
	assert_rc(jqt_raw_submit(&r, &nop), 0);
	jqt_sleep(0.3);
	assert_int_equal(
	    load_acquire(&r.hdr->cq.tail) - load_acquire(&r.hdr->cq.head), n);
	/* The manager asked to be woken when we make room, and sleeps. */
	assert_true(load_acquire(&r.hdr->cq.pflags) & JOBQ_RING_WANT_HEAD);

	assert_rc(jqt_raw_wait(&r, &cqe, 1), 0);
	assert_int_equal(cqe.user_data, 0);
	assert_rc(jqt_raw_peek(&r, n - 1, &cqe, PROMPT_S), 0);
	assert_int_equal(cqe.user_data, n);
	assert_int_equal(cqe.res, 0);

	jqt_raw_close(&r);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

static void count_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	(void)q;
	(void)obj;
	if (res == 0)
		(*(int *)arg)++;
}

/*
 * More gets than the submission ring holds, on an empty queue: the manager
 * takes them and answers none, so only its WANT_HEAD wake-up tells the
 * submitting thread that the ring has room again.
 */
static void test_sq_room_wakes_client(void **state)
{
	enum { N = 600 };
	struct jqt_mgr m;
	double t0;
	int got = 0;
	jobq_t *q, *q2;

	(void)state;
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	assert_rc(jobq_open(&q2, m.dir), 0);
	/* A lost wake-up hangs the loop below: SIGALRM ends the test (the
	 * harness cleans up) rather than the meson timeout. */
	printf("submitting %d gets; a hang here is a lost wake-up\n", N);
	alarm(30);
	t0 = jqt_now();
	for (int i = 0; i < N; i++)
		assert_rc(jobq_get_async(q, "many", -1, count_cb, &got), 0);
	alarm(0);
	assert_true(jqt_now() - t0 < PROMPT_S);
	for (int i = 0; i < N; i++)
		assert_rc(jobq_put(q2, "many", JOBQ_T_BYTES, "x", 1, 0), 0);
	assert_rc(jobq_wait_idle(q, 10), 0);
	assert_int_equal(got, N);
	jobq_close(q2);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

/* Whether /proc still shows @pid, and if so whether it is a zombie. */
static int proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	int st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1])
		st = p[2];
	fclose(f);
	return st ? st : '?';
}

/*
 * A worker that leaves a child behind: the child is killed with the
 * worker's group, comes to jobqd (a subreaper) and is reaped there, on the
 * SIGCHLD of its death rather than by a poll.
 */
static void test_orphans_reaped(void **state)
{
	char dir[PATH_MAX], file[PATH_MAX + 16], cmd[2 * PATH_MAX];
	const char *args[] = {"--worker", cmd, NULL};
	struct jqt_mgr m;
	double end;
	pid_t orphan = 0;
	FILE *f;

	(void)state;
	assert_int_equal(jqt_tmpdir(dir, sizeof(dir)), 0);
	snprintf(file, sizeof(file), "%s/orphan", dir);
	snprintf(cmd, sizeof(cmd),
		 "sleep 1000 & echo $! >> %s; sleep 0.2; exit 3", file);
	assert_int_equal(jqt_mgr_start(&m, args), 0);
	end = jqt_now() + 10;
	while (!orphan) {
		int v;

		f = fopen(file, "re");
		if (f) {
			if (fscanf(f, "%d", &v) == 1)
				orphan = (pid_t)v;
			fclose(f);
		}
		assert_true(jqt_now() < end);
		if (!orphan)
			jqt_sleep(0.01);
	}
	end = jqt_now() + 10;
	while (proc_state(orphan)) {
		if (jqt_now() >= end)
			fail_msg("pid %d left by a worker still exists (state "
				 "%c)",
				 (int)orphan, proc_state(orphan));
		jqt_sleep(0.01);
	}
	printf("orphan %d reaped %.0f ms after it was seen\n", (int)orphan,
	       (jqt_now() - end + 10) * 1e3);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
	jqt_rmtree(dir);
}

/* Voluntary context switches of @pid's main thread and its CPU time in
 * clock ticks (user + system), from /proc. */
static void proc_sleeps_cpu(pid_t pid, unsigned long long *vol,
			    unsigned long long *ticks)
{
	unsigned long long sw, ut, st;
	char path[64], line[256], comm[32];
	const char *p;
	FILE *f;

	assert_int_equal(
	    thread_switches(pid, pid, &sw, vol, comm, sizeof(comm)), 0);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	p = strrchr(line, ')');
	assert_non_null(p);
	/* Fields 14 and 15, counted from the state (field 3). */
	assert_int_equal(sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %llu %llu",
				&ut, &st),
			 2);
	*ticks = ut + st;
}

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * jobqd --busy-poll polls and never sleeps, even with nothing to do; a
 * client opened with busy_poll polls through a wait instead of sleeping,
 * gets its answers and keeps its deadlines; a busy_poll other than 0 or 1
 * is refused. Without the options, an idle manager uses no CPU and a
 * waiting client sleeps (the tests above, and the control here).
 */
static void test_busy_poll(void **state)
{
	const char *busy[] = {"--busy-poll", NULL};
	struct jobq_open_opts o = {.busy_poll = 2};
	unsigned long long v0, v1, t0, t1;
	jobq_obj_t obj;
	struct jqt_mgr m;
	double w0, c0;
	jobq_t *q;

	(void)state;
	assert_int_equal(jqt_mgr_start(&m, busy), 0);
	assert_int_equal(jobq_open_ex(&q, m.dir, &o), -EINVAL);
	o.busy_poll = 1;
	assert_rc(jobq_open_ex(&q, m.dir, &o), 0);
	for (int i = 0; i < 1000; i++) {
		char b[16];
		int n = snprintf(b, sizeof(b), "%d", i);

		assert_rc(jobq_put(q, QUEUE, JOBQ_T_BYTES, b, (size_t)n, -1),
			  0);
		assert_rc(jobq_get(q, QUEUE, &obj, 5), 0);
		assert_int_equal(obj.len, n);
		assert_memory_equal(obj.data, b, (size_t)n);
		jobq_obj_free(&obj);
	}
	/* A get on an empty queue polls until its deadline. */
	w0 = jqt_now();
	c0 = thread_cpu_s();
	assert_int_equal(jobq_get(q, QUEUE, &obj, 0.3), -ETIMEDOUT);
	printf("a busy 0.3 s get: %.3f s, %.3f s of CPU\n", jqt_now() - w0,
	       thread_cpu_s() - c0);
	assert_true(jqt_now() - w0 >= 0.29);
	assert_true(thread_cpu_s() - c0 >= 0.3 * 0.25);

	/* The idle manager polls: CPU time, and no sleep. */
	proc_sleeps_cpu(m.pid, &v0, &t0);
	jqt_sleep(0.5);
	proc_sleeps_cpu(m.pid, &v1, &t1);
	printf("idle --busy-poll jobqd over 0.5 s: %llu sleeps, %llu ticks\n",
	       v1 - v0, t1 - t0);
	assert_true(v1 - v0 <= 2);
	assert_true(t1 - t0 >= 5);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));

	/* The control: neither option, and both sides sleep. */
	assert_int_equal(jqt_mgr_start(&m, NULL), 0);
	assert_rc(jobq_open(&q, m.dir), 0);
	c0 = thread_cpu_s();
	assert_int_equal(jobq_get(q, QUEUE, &obj, 0.3), -ETIMEDOUT);
	printf("a 0.3 s get: %.3f s of CPU\n", thread_cpu_s() - c0);
	assert_true(thread_cpu_s() - c0 < 0.3 * 0.25);
	jqt_sleep(0.2);
	proc_sleeps_cpu(m.pid, &v0, &t0);
	jqt_sleep(0.5);
	proc_sleeps_cpu(m.pid, &v1, &t1);
	printf("idle jobqd over 0.5 s: %llu sleeps, %llu ticks\n", v1 - v0,
	       t1 - t0);
	assert_true(t1 - t0 <= 2);
	jobq_close(q);
	assert_true(jqt_status_ok(jqt_mgr_stop(&m)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_busy_poll),
	    cmocka_unit_test(test_ack_wakes_manager),
	    cmocka_unit_test(test_cq_room_wakes_manager),
	    cmocka_unit_test(test_sq_room_wakes_client),
	    cmocka_unit_test(test_orphans_reaped),
	    cmocka_unit_test(test_idle_manager),
	    cmocka_unit_test(test_idle_workers),
	};

	jqt_init_cli();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
