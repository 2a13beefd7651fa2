/* SPDX-License-Identifier: MIT */
/*
 * test_engine.c - the io_uring loop and its fibers: switching, spawn and
 * join, sleeps that overlap, pipe and file IO, timeouts, cancellation, the
 * callback form, the blocking form outside any fiber, and the message
 * when io_uring is forbidden.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "internal.h"

static double now_s(void)
{
	return (double)jobq__now_ns() / 1e9;
}

static jobq_loop_t *loop_new(void)
{
	jobq_loop_t *l = NULL;
	int err = jobq_loop_new(&l, NULL);

	if (err)
		fprintf(stderr, "jobq_loop_new: %s: %s\n", strerror(-err),
			jobq_loop_why());
	assert_int_equal(err, 0);
	return l;
}

/* ------------------------------------------------------------------------
 * Two fibers passing a token through two pipes: each read suspends one
 * fiber and the other's write resumes it.
 */
struct pingpong {
	int in, out;
	int rounds;
	char *log;
	size_t *at;
	char name;
};

static void pingpong_fn(void *arg)
{
	struct pingpong *p = arg;
	char c = 'x';

	for (int i = 0; i < p->rounds; i++) {
		if (p->name == 'a')
			assert_int_equal(jobq_io_write(p->out, &c, 1, -1, 5),
					 1);
		assert_int_equal(jobq_io_read(p->in, &c, 1, -1, 5), 1);
		p->log[(*p->at)++] = p->name;
		if (p->name == 'b')
			assert_int_equal(jobq_io_write(p->out, &c, 1, -1, 5),
					 1);
	}
}

static void test_switching(void **state)
{
	jobq_loop_t *l = loop_new();
	int ab[2], ba[2];
	char log[64] = "";
	size_t at = 0;
	jobq_fiber_t *fa, *fb;

	(void)state;
	assert_int_equal(pipe2(ab, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ba, O_CLOEXEC), 0);
	struct pingpong a = {ba[0], ab[1], 5, log, &at, 'a'};
	struct pingpong b = {ab[0], ba[1], 5, log, &at, 'b'};

	assert_int_equal(jobq_spawn(l, pingpong_fn, &a, &fa), 0);
	assert_int_equal(jobq_spawn(l, pingpong_fn, &b, &fb), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_string_equal(log, "bababababa");
	assert_int_equal(jobq_fiber_join(fa, 0), 0);
	assert_int_equal(jobq_fiber_join(fb, 0), 0);
	jobq_loop_free(l);
	close(ab[0]);
	close(ab[1]);
	close(ba[0]);
	close(ba[1]);
}

/* ------------------------------------------------------------------------
 * Ten fibers sleeping 100 ms each, joined from plain code: they overlap.
 */
struct sleeper {
	double start, end;
	int res;
};

static void sleeper_fn(void *arg)
{
	struct sleeper *s = arg;

	s->start = now_s();
	s->res = jobq_io_sleep(0.1);
	s->end = now_s();
}

static void test_sleepers_overlap(void **state)
{
	jobq_loop_t *l = loop_new();
	struct sleeper s[10] = {0};
	jobq_fiber_t *f[10];
	double t0 = now_s(), last_start = 0, first_end = 1e18;

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(jobq_spawn(l, sleeper_fn, &s[i], &f[i]), 0);
	assert_int_equal(jobq_fiber_join_all(f, 10, 5), 0);
	for (int i = 0; i < 10; i++) {
		assert_null(f[i]);
		assert_int_equal(s[i].res, 0);
		assert_true(s[i].end - s[i].start >= 0.099);
		if (s[i].start > last_start)
			last_start = s[i].start;
		if (s[i].end < first_end)
			first_end = s[i].end;
	}
	/* Every one started before any ended: they slept at once. */
	assert_true(last_start < first_end);
	/* Ten in a row would take a second; this only catches that. */
	assert_true(now_s() - t0 < 0.9);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * A fiber spawning and joining others, and join timeouts.
 */
static void nap_fn(void *arg)
{
	jobq_io_sleep(*(double *)arg);
}

static void parent_fn(void *arg)
{
	double quick = 0.01, slow = 0.5;
	jobq_fiber_t *a, *b;
	int *ok = arg;

	assert_int_equal(jobq_spawn(NULL, nap_fn, &quick, &a), 0);
	assert_int_equal(jobq_spawn(NULL, nap_fn, &slow, &b), 0);
	assert_int_equal(jobq_fiber_join(a, 5), 0);
	assert_int_equal(jobq_fiber_join(b, 0.02), -ETIMEDOUT);
	assert_int_equal(jobq_fiber_join(jobq_fiber_current(), 1), -EDEADLK);
	assert_int_equal(jobq_fiber_join(b, 5), 0);
	*ok = 1;
}

static void test_spawn_join(void **state)
{
	jobq_loop_t *l = loop_new();
	int ok = 0;

	(void)state;
	assert_int_equal(jobq_spawn(l, parent_fn, &ok, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(ok, 1);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Pipes and files: short reads put together by read_full, timeouts.
 */
struct writer {
	int fd;
};

static void chunk_writer_fn(void *arg)
{
	struct writer *w = arg;
	char buf[1000];

	for (int i = 0; i < 10; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		assert_int_equal(
		    jobq_io_write_all(w->fd, buf, sizeof(buf), -1, 5),
		    sizeof(buf));
		assert_int_equal(jobq_io_sleep(0.001), 0);
	}
	assert_int_equal(jobq_io_close(w->fd), 0);
}

struct reader {
	int fd;
	int ok;
};

static void full_reader_fn(void *arg)
{
	struct reader *r = arg;
	char buf[20000];
	ssize_t n;

	n = jobq_io_read_full(r->fd, buf, sizeof(buf), -1, 5);
	assert_int_equal(n, 10000);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf[i], 'a' + i / 1000);
	r->ok = 1;
}

static void test_pipe_full(void **state)
{
	jobq_loop_t *l = loop_new();
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct writer w = {p[1]};
	struct reader r = {p[0], 0};

	assert_int_equal(jobq_spawn(l, full_reader_fn, &r, NULL), 0);
	assert_int_equal(jobq_spawn(l, chunk_writer_fn, &w, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(r.ok, 1);
	close(p[0]);
	jobq_loop_free(l);
}

static void file_fn(void *arg)
{
	const char *path = arg;
	char buf[64] = "";
	int fd;

	fd = jobq_io_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(jobq_io_write_all(fd, "hello, ", 7, 0, -1), 7);
	assert_int_equal(jobq_io_write_all(fd, "world", 5, 7, -1), 5);
	assert_int_equal(jobq_io_fsync(fd, 1), 0);
	assert_int_equal(jobq_io_read(fd, buf, sizeof(buf), 0, -1), 12);
	assert_string_equal(buf, "hello, world");
	assert_int_equal(jobq_io_read_full(fd, buf, 5, 7, -1), 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(jobq_io_close(fd), 0);
	assert_int_equal(
	    jobq_io_openat(AT_FDCWD, "/nonexistent/x", O_RDONLY, 0), -ENOENT);
}

static void test_file(void **state)
{
	jobq_loop_t *l = loop_new();
	char path[] = "/tmp/jobq-test-engine-XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(jobq_spawn(l, file_fn, path, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	unlink(path);
	jobq_loop_free(l);
}

static void timeout_fn(void *arg)
{
	int *fds = arg;
	char c;
	double t0 = now_s();

	assert_int_equal(jobq_io_read(fds[0], &c, 1, -1, 0.05), -ETIMEDOUT);
	assert_true(now_s() - t0 >= 0.04);
	assert_int_equal(jobq_io_poll(fds[0], POLLIN, 0.02), -ETIMEDOUT);
	/* A request that completes at once is not hurt by its timeout. */
	assert_int_equal(jobq_io_write(fds[1], "z", 1, -1, 0.5), 1);
	assert_int_equal(jobq_io_poll(fds[0], POLLIN, 1) & POLLIN, POLLIN);
	assert_int_equal(jobq_io_read(fds[0], &c, 1, -1, 1), 1);
	assert_int_equal(c, 'z');
}

static void test_timeouts(void **state)
{
	jobq_loop_t *l = loop_new();
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(jobq_spawn(l, timeout_fn, p, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	close(p[0]);
	close(p[1]);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Cancel: a fiber blocked in a read and one asleep end at once with
 * -ECANCELED, and their later IO fails the same way.
 */
struct victim {
	int fd;
	int res, after;
	int closed, closed_fd;
	double took;
};

static void victim_read_fn(void *arg)
{
	struct victim *v = arg;
	double t0 = now_s();
	char c;

	v->res = (int)jobq_io_read(v->fd, &c, 1, -1, 30);
	v->took = now_s() - t0;
	v->after = jobq_io_sleep(0.001);
}

static void victim_sleep_fn(void *arg)
{
	struct victim *v = arg;
	double t0 = now_s();
	int mine = dup(v->fd);

	v->res = jobq_io_sleep(30);
	v->took = now_s() - t0;
	v->after = (int)jobq_io_write(v->fd, "x", 1, -1, 1);
	/* Cancelled, it can still let go of what it holds. */
	v->closed = jobq_io_close(mine);
	v->closed_fd = mine;
}

struct killer {
	jobq_fiber_t *a, *b;
};

static void killer_fn(void *arg)
{
	struct killer *k = arg;

	jobq_io_sleep(0.05);
	jobq_fiber_cancel(k->a);
	jobq_fiber_cancel(k->b);
}

static void test_cancel(void **state)
{
	jobq_loop_t *l = loop_new();
	int p[2];
	struct victim a = {0}, b = {0};
	struct killer k;
	double t0 = now_s();

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	a.fd = p[0];
	b.fd = p[1];
	assert_int_equal(jobq_spawn(l, victim_read_fn, &a, &k.a), 0);
	assert_int_equal(jobq_spawn(l, victim_sleep_fn, &b, &k.b), 0);
	assert_int_equal(jobq_spawn(l, killer_fn, &k, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(a.res, -ECANCELED);
	assert_int_equal(a.after, -ECANCELED);
	assert_int_equal(b.res, -ECANCELED);
	assert_int_equal(b.after, -ECANCELED);
	assert_int_equal(b.closed, 0);
	assert_int_equal(fcntl(b.closed_fd, F_GETFD), -1); /* really closed */
	assert_true(jobq_fiber_cancelled(k.a));
	assert_true(now_s() - t0 < 5);
	assert_int_equal(jobq_fiber_join(k.a, 0), 0);
	assert_int_equal(jobq_fiber_join(k.b, 0), 0);
	close(p[0]);
	close(p[1]);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * The callback form, mixed with a fiber.
 */
struct cbstate {
	int p[2];
	char buf[16];
	int step;
	ssize_t res[3];
};

static void on_read(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct cbstate *s = arg;

	assert_ptr_equal(jobq_loop_current(), l);
	assert_null(jobq_fiber_current());
	s->res[s->step++] = res;
}

static void on_slept(jobq_loop_t *l, ssize_t res, void *arg)
{
	struct cbstate *s = arg;

	s->res[s->step++] = res;
	/* From a callback, the next request. */
	assert_int_equal(jobq_io_read_cb(l, s->p[0], s->buf, sizeof(s->buf), -1,
					 5, on_read, s),
			 0);
	assert_int_equal(
	    jobq_io_write_cb(l, s->p[1], "ping", 4, -1, 5, on_read, s), 0);
}

static void test_callbacks(void **state)
{
	jobq_loop_t *l = loop_new();
	struct cbstate s = {0};

	(void)state;
	assert_int_equal(pipe2(s.p, O_CLOEXEC), 0);
	assert_int_equal(jobq_io_sleep_cb(l, 0.01, on_slept, &s), 0);
	assert_int_equal(s.step, 0); /* never inside the submitting call */
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(s.step, 3);
	assert_int_equal(s.res[0], 0);
	/* The read and write finish in either order; both move 4 bytes. */
	assert_int_equal(s.res[1], 4);
	assert_int_equal(s.res[2], 4);
	assert_memory_equal(s.buf, "ping", 4);
	assert_int_equal(jobq_io_poll_cb(NULL, s.p[0], POLLIN, 1, on_read, &s),
			 -EINVAL);
	close(s.p[0]);
	close(s.p[1]);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Plain code: the same calls block the thread.
 */
static void test_blocking_form(void **state)
{
	int p[2], sv[2], status = 0;
	char buf[8] = "";
	double t0;
	pid_t pid;

	(void)state;
	assert_null(jobq_fiber_current());
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(jobq_io_write(p[1], "abc", 3, -1, 1), 3);
	assert_int_equal(jobq_io_read(p[0], buf, sizeof(buf), -1, 1), 3);
	assert_string_equal(buf, "abc");
	t0 = now_s();
	assert_int_equal(jobq_io_read(p[0], buf, 1, -1, 0.05), -ETIMEDOUT);
	assert_true(now_s() - t0 >= 0.04);
	assert_int_equal(jobq_io_sleep(0.01), 0);
	close(p[0]);
	close(p[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(jobq_io_send(sv[0], "hi", 2, 0, 1), 2);
	assert_int_equal(jobq_io_recv(sv[1], buf, sizeof(buf), 0, 1), 2);
	close(sv[0]);
	assert_int_equal(jobq_io_recv(sv[1], buf, sizeof(buf), 0, 1), 0);
	close(sv[1]);

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child's blocking calls use a ring of its own, not the
		 * parent's private one. */
		if (jobq_io_write(p[1], "c", 1, -1, 1) != 1)
			_exit(1);
		_exit(7);
	}
	assert_int_equal(jobq_io_waitpid(pid, &status, 5), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	assert_int_equal(jobq_io_read(p[0], buf, 1, -1, 1), 1);
	assert_int_equal(buf[0], 'c');
	close(p[0]);
	close(p[1]);
	assert_int_equal(jobq_io_waitpid(pid, &status, 5), -ECHILD);
}

/* A fiber waiting for a child, while another fiber keeps going. */
static void waiter_fn(void *arg)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(50 * 1000);
		_exit(3);
	}
	assert_int_equal(jobq_io_waitpid(pid, &status, 5), 0);
	assert_int_equal(WEXITSTATUS(status), 3);
	*(int *)arg = 1;
}

static void test_waitpid_fiber(void **state)
{
	jobq_loop_t *l = loop_new();
	int ok = 0;

	(void)state;
	assert_int_equal(jobq_spawn(l, waiter_fn, &ok, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(ok, 1);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Yield and stop.
 */
static void yielder_fn(void *arg)
{
	int *n = arg;

	for (int i = 0; i < 100; i++) {
		(*n)++;
		assert_int_equal(jobq_yield(), 0);
	}
}

static void stopper_fn(void *arg)
{
	jobq_loop_stop(jobq_loop_current());
	jobq_io_sleep(0.01);
	*(int *)arg = 1;
}

static void test_yield_stop(void **state)
{
	jobq_loop_t *l = loop_new();
	int a = 0, b = 0, done = 0;

	(void)state;
	assert_int_equal(jobq_yield(), -EINVAL);
	assert_int_equal(jobq_spawn(l, yielder_fn, &a, NULL), 0);
	assert_int_equal(jobq_spawn(l, yielder_fn, &b, NULL), 0);
	assert_int_equal(jobq_spawn(l, stopper_fn, &done, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 1);
	assert_int_equal(done, 0);
	/* Both yielders ran their first step before the stop took hold. */
	assert_true(a >= 1 && b >= 1 && a < 100);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(a, 100);
	assert_int_equal(b, 100);
	assert_int_equal(done, 1);
	jobq_loop_free(l);
}

/* jobq_loop_free() with fibers still asleep: they are cancelled and end. */
static void long_nap_fn(void *arg)
{
	*(int *)arg = jobq_io_sleep(60);
}

static void test_free_cancels(void **state)
{
	jobq_loop_t *l = loop_new();
	int res = 1;

	(void)state;
	assert_int_equal(jobq_spawn(l, long_nap_fn, &res, NULL), 0);
	jobq_loop_stop(l);
	assert_int_equal(jobq_loop_run(l), 1);
	jobq_loop_free(l);
	assert_int_equal(res, -ECANCELED);
}

/* ------------------------------------------------------------------------
 * Many fibers at once, each on its own socket pair.
 */
struct echo_pair {
	int fd;
	int ok;
};

static void echo_side_fn(void *arg)
{
	struct echo_pair *e = arg;
	char buf[32];
	ssize_t n = jobq_io_recv(e->fd, buf, sizeof(buf), 0, 10);

	if (n > 0 && jobq_io_send(e->fd, buf, (size_t)n, 0, 10) == n)
		e->ok = 1;
}

static void ask_side_fn(void *arg)
{
	struct echo_pair *e = arg;
	char buf[32];

	if (jobq_io_send(e->fd, "hello", 5, 0, 10) == 5 &&
	    jobq_io_recv(e->fd, buf, sizeof(buf), 0, 10) == 5)
		e->ok = 1;
}

static void test_many_fibers(void **state)
{
	enum { N = 500 };
	jobq_loop_t *l = loop_new();
	struct echo_pair *e = calloc(2 * N, sizeof(*e));

	(void)state;
	assert_non_null(e);
	for (int i = 0; i < N; i++) {
		int sv[2];

		assert_int_equal(
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		e[2 * i].fd = sv[0];
		e[2 * i + 1].fd = sv[1];
		assert_int_equal(jobq_spawn(l, echo_side_fn, &e[2 * i], NULL),
				 0);
		assert_int_equal(
		    jobq_spawn(l, ask_side_fn, &e[2 * i + 1], NULL), 0);
	}
	assert_int_equal(jobq_loop_run(l), 0);
	for (int i = 0; i < 2 * N; i++) {
		assert_int_equal(e[i].ok, 1);
		close(e[i].fd);
	}
	free(e);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * A fiber that overflows its stack hits the guard page: SIGSEGV.
 */
static int recurse(volatile char *p, int n)
{
	volatile char buf[1024];

	buf[0] = (char)n;
	if (p)
		buf[1] = p[0];
	return n > 1000000 ? buf[0] : recurse(buf, n + 1) + buf[1];
}

static void overflow_fn(void *arg)
{
	*(int *)arg = recurse(NULL, 0);
}

static void test_guard_page(void **state)
{
	int status = 0;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct jobq_loop_opts o = {.stack_size = 32 * 1024};
		jobq_loop_t *l;
		int r = 0;

		/* ASan would report the overflow itself: fine too, but
		 * the test wants the plain signal. */
		signal(SIGSEGV, SIG_DFL);
		if (jobq_loop_new(&l, &o))
			_exit(2);
		jobq_spawn(l, overflow_fn, &r, NULL);
		jobq_loop_run(l);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Killed by SIGSEGV, or (under AddressSanitizer) its report and a
	 * non-zero exit: either way not a normal end. */
	assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ------------------------------------------------------------------------
 * io_uring forbidden by seccomp, as a container's default profile does:
 * jobq_loop_new() says so and names the remedy.
 */
static void test_seccomp_refused(void **state)
{
	int status = 0, fds[2];
	char msg[1024] = "";
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sock_filter filter[] = {
		    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			     offsetof(struct seccomp_data, nr)),
		    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0,
			     1),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {
		    .len = sizeof(filter) / sizeof(filter[0]),
		    .filter = filter,
		};
		jobq_loop_t *l;
		int err;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(77);
		err = jobq_loop_new(&l, NULL);
		dprintf(fds[1], "%d %s", err, jobq_loop_why());
		_exit(err ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof(msg) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		skip();
		return;
	}
	assert_true(n > 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(atoi(msg), -EPERM);
	assert_non_null(strstr(msg, "seccomp"));
	assert_non_null(strstr(msg, "io_uring_setup"));
}

/* ------------------------------------------------------------------------
 * Registered buffers: fixed reads and writes, and a kernel that refuses
 * the registration (RLIMIT_MEMLOCK) leaving plain buffers that work.
 */
struct fixed_io {
	jobq_loop_t *l;
	const char *path;
	int ok;
};

static void fixed_fn(void *arg)
{
	struct fixed_io *x = arg;
	void *a, *b;
	size_t size;
	int fd;

	assert_int_equal(jobq_buffer_get(x->l, &a, &size), 0);
	assert_int_equal(size, 64 * 1024);
	assert_int_equal(jobq_buffer_get(x->l, &b, NULL), 0);
	{
		void *c;

		assert_int_equal(jobq_buffer_get(x->l, &c, NULL), -ENOBUFS);
	}
	fd =
	    jobq_io_openat(AT_FDCWD, x->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (size_t i = 0; i < size; i++)
		((unsigned char *)a)[i] = (unsigned char)(i * 7);
	assert_int_equal(jobq_io_write_all(fd, a, size, 0, 5), size);
	/* Half a buffer, at an offset inside it: still that buffer. */
	assert_int_equal(jobq_io_read_full(fd, (char *)b + 100, size / 2, 0, 5),
			 size / 2);
	assert_memory_equal((char *)b + 100, a, size / 2);
	jobq_io_close(fd);
	jobq_buffer_put(x->l, a);
	jobq_buffer_put(x->l, b);
	x->ok = 1;
}

static void run_fixed(bool refuse)
{
	struct jobq_loop_opts o = {.buffers = 2};
	char path[] = "/tmp/jobq-test-fixed-XXXXXX";
	struct fixed_io x = {0};
	jobq_loop_t *l;
	void *p;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(jobq_loop_new(&l, &o), 0);
	print_message("buffers registered: %d%s\n",
		      jobq_loop_buffers_registered(l),
		      refuse ? " (refused on purpose)" : "");
	if (refuse)
		assert_int_equal(jobq_loop_buffers_registered(l), 0);
	x.l = l;
	x.path = path;
	assert_int_equal(jobq_spawn(l, fixed_fn, &x, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(x.ok, 1);
	/* Both are back. */
	assert_int_equal(jobq_buffer_get(l, &p, NULL), 0);
	assert_int_equal(jobq_buffer_get(l, &p, NULL), 0);
	jobq_loop_free(l);
	unlink(path);
}

static int refuse_register(struct io_uring *ring, const struct iovec *iov,
			   unsigned n)
{
	(void)ring;
	(void)iov;
	(void)n;
	return -ENOMEM; /* what RLIMIT_MEMLOCK makes the kernel say */
}

static void test_fixed_buffers(void **state)
{
	int (*real)(struct io_uring *, const struct iovec *, unsigned) =
	    jobq__uring_register_buffers;
	jobq_loop_t *l;
	void *p;

	(void)state;
	run_fixed(false);
	jobq__uring_register_buffers = refuse_register;
	run_fixed(true);
	jobq__uring_register_buffers = real;
	assert_int_equal(jobq_loop_new(&l, NULL), 0);
	assert_int_equal(jobq_buffer_get(l, &p, NULL), -EINVAL);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * More completions than the completion queue holds: the kernel keeps the
 * rest (IORING_FEAT_NODROP) and refuses submissions (-EBUSY) until the
 * loop has made room; nothing is lost.
 */
static void count_cb(jobq_loop_t *l, ssize_t res, void *arg)
{
	(void)l;
	if (res == 0)
		(*(int *)arg)++;
}

/* The largest ring there is: the completion queue is clamped to the
 * kernel's limit rather than refused. */
static void test_big_ring(void **state)
{
	struct jobq_loop_opts o = {.entries = 32768};
	jobq_loop_t *l;

	(void)state;
	assert_int_equal(jobq_loop_new(&l, &o), 0);
	assert_int_equal(jobq_io_sleep(0), 0);
	jobq_loop_free(l);
}

static void test_cq_overflow(void **state)
{
	struct jobq_loop_opts o = {.entries = 2};
	jobq_loop_t *l;
	int n = 0;

	(void)state;
	assert_int_equal(jobq_loop_new(&l, &o), 0);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(jobq_io_sleep_cb(l, 0, count_cb, &n), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(n, 2000);
	jobq_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Stream receive: a megabyte through a provided-buffer ring of four 4 KiB
 * buffers, so that the kernel runs out (-ENOBUFS) and the stream re-arms
 * unseen; then a stream stopped while nothing comes.
 */
struct streamed {
	size_t total;
	int bad;
	int ended;
	ssize_t last;
	int chunks;
};

static void on_chunk(jobq_loop_t *l, ssize_t n, const void *data, void *arg)
{
	struct streamed *st = arg;

	(void)l;
	if (n <= 0) {
		assert_null(data);
		st->ended++;
		st->last = n;
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		if (((const unsigned char *)data)[i] !=
		    (unsigned char)((st->total + (size_t)i) % 251))
			st->bad = 1;
	st->total += (size_t)n;
	st->chunks++;
}

static void stream_writer(void *arg)
{
	int fd = *(int *)arg;
	unsigned char buf[65536];
	size_t sent = 0;

	for (int k = 0; k < 16; k++) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (unsigned char)((sent + i) % 251);
		assert_int_equal(
		    jobq_io_write_all(fd, buf, sizeof(buf), -1, 10),
		    sizeof(buf));
		sent += sizeof(buf);
	}
	shutdown(fd, SHUT_WR);
}

struct stopper {
	jobq_stream_t *s;
};

static void stream_stopper(void *arg)
{
	struct stopper *x = arg;

	jobq_io_sleep(0.01);
	jobq_io_stream_stop(x->s);
}

static void test_stream(void **state)
{
	unsigned count = jobq__pbuf_count;
	size_t size = jobq__pbuf_size;
	struct streamed st = {0}, idle = {0};
	struct stopper x;
	jobq_loop_t *l;
	int sv[2], sv2[2];

	(void)state;
	jobq__pbuf_count = 4;
	jobq__pbuf_size = 4096;
	assert_int_equal(jobq_loop_new(&l, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(jobq_io_recv_stream_cb(l, sv[0], on_chunk, &st, NULL),
			 0);
	assert_int_equal(jobq_spawn(l, stream_writer, &sv[1], NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	print_message("stream: %zu bytes in %d chunks, multishot %d, "
		      "%u times out of buffers\n",
		      st.total, st.chunks, jobq__loop_multishot(l),
		      jobq__loop_enobufs(l));
	assert_int_equal(st.total, 16 * 65536);
	assert_int_equal(st.bad, 0);
	assert_int_equal(st.ended, 1);
	assert_int_equal(st.last, 0);
	if (jobq__loop_multishot(l))
		assert_true(jobq__loop_enobufs(l) > 0);

	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	assert_int_equal(
	    jobq_io_recv_stream_cb(l, sv2[0], on_chunk, &idle, &x.s), 0);
	assert_int_equal(jobq_spawn(l, stream_stopper, &x, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(idle.ended, 1);
	assert_int_equal(idle.last, -ECANCELED);
	assert_int_equal(idle.total, 0);
	jobq_loop_free(l);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);

	/* Without a buffer ring: single-shot receives, the same result. */
	memset(&st, 0, sizeof(st));
	jobq__pbuf_count = 0;
	assert_int_equal(jobq_loop_new(&l, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(jobq_io_recv_stream_cb(l, sv[0], on_chunk, &st, NULL),
			 0);
	assert_int_equal(jobq_spawn(l, stream_writer, &sv[1], NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(jobq__loop_multishot(l), 0);
	assert_int_equal(st.total, 16 * 65536);
	assert_int_equal(st.bad, 0);
	assert_int_equal(st.ended, 1);
	assert_int_equal(st.last, 0);
	jobq_loop_free(l);
	close(sv[0]);
	close(sv[1]);
	jobq__pbuf_count = count;
	jobq__pbuf_size = size;
}

/* ------------------------------------------------------------------------
 * Two threads, a loop each, side by side: nothing is shared.
 */
static void *thread_loop(void *arg)
{
	struct sleeper s[10] = {0};
	jobq_fiber_t *f[10];
	jobq_loop_t *l;
	int *ok = arg;

	if (jobq_loop_new(&l, NULL))
		return NULL;
	for (int i = 0; i < 10; i++)
		if (jobq_spawn(l, sleeper_fn, &s[i], &f[i]))
			return NULL;
	if (jobq_fiber_join_all(f, 10, 10) == 0 && jobq_loop_current() == NULL)
		*ok = 1;
	for (int i = 0; i < 10; i++)
		if (s[i].res != 0)
			*ok = 0;
	jobq_loop_free(l);
	/* The blocking form too, on this thread's private ring. */
	if (jobq_io_sleep(0.01) != 0)
		*ok = 0;
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[2];
	int ok[2] = {0, 0};

	(void)state;
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, thread_loop, &ok[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(ok[0], 1);
	assert_int_equal(ok[1], 1);
}

/* ------------------------------------------------------------------------
 * The internal nap: a sleep that an unpark ends early (-EINTR), and that a
 * cancel ends as usual.
 */
struct napper {
	int res[2];
	double took;
};

static void napper_fn(void *arg)
{
	struct napper *n = arg;
	double t0 = now_s();

	n->res[0] = jobq__fiber_nap(10);
	n->took = now_s() - t0;
	n->res[1] = jobq__fiber_nap(10);
}

static void waker_fn(void *arg)
{
	jobq_fiber_t *f = arg;

	jobq_io_sleep(0.01);
	jobq__fiber_unpark(f);
	jobq_io_sleep(0.01);
	jobq_fiber_cancel(f);
}

static void test_nap(void **state)
{
	jobq_loop_t *l = loop_new();
	struct napper n = {{1, 1}, 0};
	jobq_fiber_t *f;

	(void)state;
	assert_int_equal(jobq_spawn(l, napper_fn, &n, &f), 0);
	assert_int_equal(jobq_spawn(l, waker_fn, f, NULL), 0);
	assert_int_equal(jobq_loop_run(l), 0);
	assert_int_equal(n.res[0], -EINTR);
	assert_int_equal(n.res[1], -ECANCELED);
	assert_true(n.took < 5);
	assert_int_equal(jobq_fiber_join(f, 0), 0);
	jobq_loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_switching),
	    cmocka_unit_test(test_sleepers_overlap),
	    cmocka_unit_test(test_spawn_join),
	    cmocka_unit_test(test_pipe_full),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_callbacks),
	    cmocka_unit_test(test_blocking_form),
	    cmocka_unit_test(test_waitpid_fiber),
	    cmocka_unit_test(test_yield_stop),
	    cmocka_unit_test(test_free_cancels),
	    cmocka_unit_test(test_many_fibers),
	    cmocka_unit_test(test_guard_page),
	    cmocka_unit_test(test_seccomp_refused),
	    cmocka_unit_test(test_fixed_buffers),
	    cmocka_unit_test(test_cq_overflow),
	    cmocka_unit_test(test_big_ring),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_nap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
